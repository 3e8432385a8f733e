"""Blocks with the real Prefect 3.9.1 SDK and CLI against a real deputy.

Every journey saves its blocks through Prefect itself, then checks what Prefect loads back and
what the raw API answers: secret fields obfuscated unless ``include_secrets=true``, nested
blocks stored as references and answered resolved. Each journey runs twice: on a server that
holds only what clients register, and on one that registered Prefect's block catalog at start
(from the Prefect distribution in ``.venv-prefect``, as the ``ui`` extra provides it), where the
SDK must find the types and schemas it computes already there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalogs import prefect_site_packages
from databases import DatabaseBackends
from e2e.conftest import (
    PrefectEnv,
    assert_no_server_complaints,
    prefect_environment,
    wait_for,
)

OBFUSCATED = "********"
#: Prefect 3.9.1's protected system block types.
SYSTEM_TYPES = {"secret", "webhook", "local-file-system"}


@pytest.fixture(scope="module", params=[False, True], ids=["sdk-registered", "catalog"])
def catalog(request: pytest.FixtureRequest) -> bool:
    """Whether the module's server registers Prefect's block catalog at start."""
    return bool(request.param)


@pytest.fixture(scope="module")
def prefect(
    tmp_path_factory: pytest.TempPathFactory, test_databases: DatabaseBackends, catalog: bool
) -> Iterator[PrefectEnv]:
    settings = {"block_catalog": str(catalog).lower()}
    if catalog:
        settings["prefect_path"] = str(prefect_site_packages())
    with prefect_environment(tmp_path_factory, test_databases, **settings) as env:
        if catalog:  # registered in the background, in one transaction, after start
            wait_for(lambda: _protected(env, "secret"), timeout=60, interval=0.5)
        yield env


def _protected(prefect: PrefectEnv, slug: str) -> bool:
    response = httpx.get(f"{prefect.server.url}/block_types/slug/{slug}")
    return response.status_code == 200 and response.json()["is_protected"] is True


def get(prefect: PrefectEnv, path: str, **params: Any) -> Any:
    response = httpx.get(f"{prefect.server.url}{path}", params=params)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def document(prefect: PrefectEnv, slug: str, name: str, *, secrets: bool = False) -> Any:
    """A block document as the raw API answers it, by its type's slug and its name."""
    return get(
        prefect,
        f"/block_types/slug/{slug}/block_documents/name/{name}",
        include_secrets=str(secrets).lower(),
    )


def cli_ok(prefect: PrefectEnv, *args: str) -> str:
    done = prefect.cli(*args)
    output = done.stdout + done.stderr
    assert done.returncode == 0, (args, output)
    assert_no_server_complaints(output)
    return output


def cli_fails(prefect: PrefectEnv, *args: str) -> str:
    done = prefect.cli(*args)
    output = done.stdout + done.stderr
    assert done.returncode == 1, (args, output)
    return output


def schemas_of(prefect: PrefectEnv, slug: str) -> list[str]:
    """The checksums of the schemas stored for the type ``slug``."""
    type_id = get(prefect, f"/block_types/slug/{slug}")["id"]
    response = httpx.post(
        f"{prefect.server.url}/block_schemas/filter",
        json={"block_schemas": {"block_type_id": {"any_": [type_id]}}},
    )
    assert response.status_code == 200, response.text
    return [schema["checksum"] for schema in response.json()]


THROWAWAY_BLOCKS = """
from prefect.blocks.core import Block


class Throwaway(Block):
    '''A block type registered from a file, then deleted.'''

    setting: str = "x"
"""


def test_the_catalog_of_a_fresh_server(prefect: PrefectEnv, catalog: bool) -> None:
    listed_types = httpx.post(f"{prefect.server.url}/block_types/filter", json={})
    types = {block_type["slug"]: block_type for block_type in listed_types.json()}
    listed = cli_ok(prefect, "block", "type", "ls")
    if catalog:
        assert {slug for slug, kind in types.items() if kind["is_protected"]} == SYSTEM_TYPES
        assert len(types) >= 54, sorted(types)  # Prefect 3.9.1 without integrations: 54
        for slug in ("aws-credentials", "gcs-bucket", "docker-host", "slack-webhook"):
            assert slug in types, sorted(types)
            assert slug in listed, listed
        inspected = cli_ok(prefect, "block", "type", "inspect", "aws-credentials")
        assert "aws_access_key_id" in inspected, inspected
        refused = cli_fails(prefect, "block", "type", "delete", "secret")
        assert "Block Type 'secret' is a protected block!" in refused, refused
        forbidden = httpx.delete(f"{prefect.server.url}/block_types/{types['secret']['id']}")
        assert (forbidden.status_code, forbidden.json()) == (
            403,
            {"detail": "protected block types cannot be deleted."},
        )
    else:
        assert types == {}  # only what clients register
        assert "aws-credentials" not in listed, listed

    (prefect.flows / "throwaway_blocks.py").write_text(THROWAWAY_BLOCKS)
    registered = cli_ok(prefect, "block", "register", "-f", "throwaway_blocks.py")
    assert "Successfully registered 1 block" in registered, registered
    assert "A block type registered from a file" in cli_ok(
        prefect, "block", "type", "inspect", "throwaway"
    )
    deleted = cli_ok(prefect, "block", "type", "delete", "throwaway")
    assert "Deleted Block Type 'throwaway'" in deleted, deleted
    gone = httpx.get(f"{prefect.server.url}/block_types/slug/throwaway")
    assert (gone.status_code, gone.json()) == (404, {"detail": "Block type not found"})


def test_secret_is_saved_loaded_and_overwritten_only_when_asked(prefect: PrefectEnv) -> None:
    result = prefect.python(
        """
        import json
        from prefect.blocks.core import Block
        from prefect.blocks.system import Secret

        first = Secret(value="s3cr3t-one").save("db-password")
        loaded = Secret.load("db-password").get()
        try:
            Secret(value="not saved").save("db-password")
            refused = None
        except ValueError as error:
            refused = str(error)
        kept = Secret.load("db-password").get()
        second = Secret(value="s3cr3t-two").save("db-password", overwrite=True)
        by_slug = Block.load("secret/db-password")
        Secret(value={"user": "ann", "password": "pw"}).save("db-login")
        print(json.dumps({
            "same_document": first == second,
            "loaded": loaded,
            "refused": refused,
            "kept": kept,
            "overwritten": Secret.load("db-password").get(),
            "by_slug": [type(by_slug).__name__, by_slug.get()],
            "json_secret": Secret.load("db-login").get(),
            "id": str(second),
            "checksum": Secret._calculate_schema_checksum(),
        }))
        """
    )
    assert result["same_document"] is True
    assert result["loaded"] == "s3cr3t-one"
    assert result["refused"] is not None
    assert "overwrite=True" in result["refused"]
    assert result["kept"] == "s3cr3t-one"
    assert result["overwritten"] == "s3cr3t-two"
    assert result["by_slug"] == ["Secret", "s3cr3t-two"]
    assert result["json_secret"] == {"user": "ann", "password": "pw"}
    # The SDK found (catalog) or created one schema, by the checksum it computes itself.
    assert schemas_of(prefect, "secret") == [result["checksum"]]

    hidden = get(prefect, f"/block_documents/{result['id']}")
    assert hidden["data"] == {"value": OBFUSCATED}
    assert hidden["name"] == "db-password"
    assert hidden["block_type"]["slug"] == "secret"
    assert hidden["block_schema"]["block_type"]["slug"] == "secret"
    shown = get(prefect, f"/block_documents/{result['id']}", include_secrets="true")
    assert shown["data"] == {"value": "s3cr3t-two"}
    # A JSON secret is hidden whole, and sending the mask back keeps it: deputy's deliberate
    # difference (docs/blocks.md). Prefect 3.9.1 answers it in clear (no leaf sits at the
    # secret's path), and a PATCH of the mask would store the literal "********".
    login = document(prefect, "secret", "db-login")
    assert login["data"] == {"value": OBFUSCATED}
    resent = httpx.patch(
        f"{prefect.server.url}/block_documents/{login['id']}",
        json={"data": login["data"], "merge_existing_data": False},
    )
    assert resent.status_code == 204, resent.text
    assert document(prefect, "secret", "db-login", secrets=True)["data"] == {
        "value": {"user": "ann", "password": "pw"}
    }
    listed = httpx.post(
        f"{prefect.server.url}/block_documents/filter",
        json={"block_types": {"slug": {"any_": ["secret"]}}},
    ).json()
    assert {d["name"]: d["data"] for d in listed} == {
        "db-login": {"value": OBFUSCATED},
        "db-password": {"value": OBFUSCATED},
    }

    duplicate = httpx.post(
        f"{prefect.server.url}/block_documents/",
        json={
            "name": "db-password",
            "data": {"value": "again"},
            "block_schema_id": hidden["block_schema_id"],
            "block_type_id": hidden["block_type_id"],
        },
    )
    assert (duplicate.status_code, duplicate.json()) == (409, {"detail": "Block already exists"})
    badly_named = httpx.post(
        f"{prefect.server.url}/block_documents/",
        json={
            "name": "Not A Slug!",
            "data": {"value": "x"},
            "block_schema_id": hidden["block_schema_id"],
            "block_type_id": hidden["block_type_id"],
        },
    )
    assert badly_named.status_code == 422, badly_named.text
    assert badly_named.json()["exception_message"] == "Invalid request received."
    unknown = httpx.get(f"{prefect.server.url}/block_documents/{hidden['block_type_id']}")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Block document not found"})
    missing = httpx.get(f"{prefect.server.url}/block_types/slug/secret/block_documents/name/nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Block document not found"})


def test_builtin_webhook_file_system_and_notification_blocks(
    prefect: PrefectEnv, tmp_path: Path
) -> None:
    result = prefect.python(
        f"""
        import json
        from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
        from prefect.blocks.webhook import Webhook
        from prefect.filesystems import LocalFileSystem

        Webhook(method="PUT", url="https://example.com/hook/abcdefghijkl",
                headers={{"Authorization": "Bearer tok-123"}}).save("hook")
        LocalFileSystem(basepath={str(tmp_path)!r}).save("files")
        SlackWebhook(url="https://hooks.slack.com/services/T0/B0/xyz").save("slack")
        CustomWebhookNotificationBlock(
            name="pager", url="https://example.com/notify", json_data={{"text": "{{{{body}}}}",
            "key": "{{{{token}}}}"}}, secrets={{"token": "tok-456"}},
        ).save("pager")

        hook = Webhook.load("hook")
        files = LocalFileSystem.load("files")
        files.write_path("note.txt", b"written through the block")
        slack = SlackWebhook.load("slack")
        pager = CustomWebhookNotificationBlock.load("pager")
        print(json.dumps({{
            "hook": [hook.method, hook.url.get_secret_value(), hook.headers.get_secret_value()],
            "files": [files.basepath, files.read_path("note.txt").decode()],
            "slack": slack.url.get_secret_value(),
            "pager": [pager.name, pager.json_data, pager.secrets.get_secret_value()],
            "checksums": {{block.get_block_type_slug(): block._calculate_schema_checksum()
                          for block in (Webhook, LocalFileSystem, SlackWebhook,
                                        CustomWebhookNotificationBlock)}},
        }}))
        """
    )
    checksums = result.pop("checksums")
    for slug, checksum in checksums.items():
        assert schemas_of(prefect, slug) == [checksum], slug
    assert result == {
        "hook": [
            "PUT",
            "https://example.com/hook/abcdefghijkl",
            {"Authorization": "Bearer tok-123"},
        ],
        "files": [str(tmp_path), "written through the block"],
        "slack": "https://hooks.slack.com/services/T0/B0/xyz",
        "pager": ["pager", {"text": "{{body}}", "key": "{{token}}"}, {"token": "tok-456"}],
    }
    assert (tmp_path / "note.txt").read_bytes() == b"written through the block"

    hook = document(prefect, "webhook", "hook")
    assert hook["data"]["url"] == OBFUSCATED
    assert hook["data"]["headers"] == {"Authorization": OBFUSCATED}
    assert hook["data"]["method"] == "PUT"
    # What a form sends back: every field, the secrets still masked. The stored secrets stay.
    patched = httpx.patch(
        f"{prefect.server.url}/block_documents/{hook['id']}",
        json={"data": {**hook["data"], "method": "POST"}, "merge_existing_data": False},
    )
    assert patched.status_code == 204, patched.text
    hook = document(prefect, "webhook", "hook", secrets=True)
    assert hook["data"]["method"] == "POST"
    assert hook["data"]["url"] == "https://example.com/hook/abcdefghijkl"
    assert hook["data"]["headers"] == {"Authorization": "Bearer tok-123"}

    files = document(prefect, "local-file-system", "files")
    assert files["data"] == {"basepath": str(tmp_path)}
    assert sorted(files["block_schema"]["capabilities"]) == [
        "get-directory",
        "put-directory",
        "read-path",
        "write-path",
    ]

    assert document(prefect, "slack-webhook", "slack")["data"]["url"] == OBFUSCATED
    pager = document(prefect, "custom-webhook", "pager")
    assert pager["data"]["secrets"] == {"token": OBFUSCATED}
    assert pager["data"]["url"] == "https://example.com/notify"
    assert document(prefect, "custom-webhook", "pager", secrets=True)["data"]["secrets"] == {
        "token": "tok-456"
    }
    capabilities = get(prefect, "/block_capabilities/")
    assert {"notify", "read-path", "write-path"} <= set(capabilities)


CUSTOM_BLOCKS = """
import json
from pydantic import SecretStr
from prefect.blocks.core import Block
from prefect.blocks.system import Secret


class Endpoint(Block):
    url: str
    port: int = 443


class ServiceConfig(Block):
    token: SecretStr
    endpoint: Endpoint
    password: Secret
    backup: Endpoint
    hosts: list[str]
    weights: dict[str, float] = {}
"""


def test_custom_block_with_secret_nested_blocks_and_lists(prefect: PrefectEnv) -> None:
    saved = prefect.python(
        CUSTOM_BLOCKS
        + """
endpoint_id = Endpoint(url="https://api.example.com", port=8443).save("main-endpoint")
password_id = Secret(value="p4ssw0rd").save("service-password")
config = ServiceConfig(
    token="tok-789",
    endpoint=Endpoint.load("main-endpoint"),
    password=Secret.load("service-password"),
    backup=Endpoint(url="https://backup.example.com"),
    hosts=["a.example.com", "b.example.com"],
    weights={"a": 0.75, "b": 0.25},
)
config_id = config.save("service")
loaded = ServiceConfig.load("service")
by_slug = Block.load(ServiceConfig.get_block_type_slug() + "/service")
print(json.dumps({
    "slug": ServiceConfig.get_block_type_slug(),
    "checksum": ServiceConfig._calculate_schema_checksum(),
    "ids": [str(config_id), str(endpoint_id), str(password_id)],
    "equal": loaded.model_dump(context={"include_secrets": True})
    == config.model_dump(context={"include_secrets": True}),
    "token": loaded.token.get_secret_value(),
    "endpoint": [loaded.endpoint.url, loaded.endpoint.port,
                 str(loaded.endpoint._block_document_id)],
    "password": [loaded.password.get(), str(loaded.password._block_document_id)],
    "backup": [loaded.backup.url, loaded.backup.port, loaded.backup._block_document_id],
    "hosts": loaded.hosts,
    "weights": loaded.weights,
    "by_slug": [type(by_slug).__name__, by_slug.endpoint.url, by_slug.password.get()],
}))
"""
    )
    config_id, endpoint_id, password_id = saved["ids"]
    assert saved["equal"] is True
    assert saved["token"] == "tok-789"
    assert saved["endpoint"] == ["https://api.example.com", 8443, endpoint_id]
    assert saved["password"] == ["p4ssw0rd", password_id]
    assert saved["backup"] == ["https://backup.example.com", 443, None]  # inline, no document
    assert saved["hosts"] == ["a.example.com", "b.example.com"]
    assert saved["weights"] == {"a": 0.75, "b": 0.25}
    assert saved["by_slug"] == ["ServiceConfig", "https://api.example.com", "p4ssw0rd"]

    raw = get(prefect, f"/block_documents/{config_id}")
    assert raw["block_schema"]["checksum"] == saved["checksum"]
    assert raw["block_type"]["slug"] == saved["slug"]
    assert raw["data"] == {
        "token": OBFUSCATED,
        "endpoint": {"url": "https://api.example.com", "port": 8443},
        "password": {"value": OBFUSCATED},
        # the SDK tags an inline nested block with its type
        "backup": {"url": "https://backup.example.com", "port": 443, "block_type_slug": "endpoint"},
        "hosts": ["a.example.com", "b.example.com"],
        "weights": {"a": 0.75, "b": 0.25},
    }
    references = raw["block_document_references"]
    assert sorted(references) == ["endpoint", "password"]
    endpoint = references["endpoint"]["block_document"]
    assert (endpoint["id"], endpoint["name"], endpoint["is_anonymous"]) == (
        endpoint_id,
        "main-endpoint",
        False,
    )
    assert endpoint["block_type"]["slug"] == "endpoint"
    assert endpoint["block_document_references"] == {}
    assert references["password"]["block_document"]["id"] == password_id
    assert references["password"]["block_document"]["block_type"]["slug"] == "secret"

    shown = get(prefect, f"/block_documents/{config_id}", include_secrets="true")
    assert shown["data"]["token"] == "tok-789"
    assert shown["data"]["password"] == {"value": "p4ssw0rd"}
    by_checksum = get(prefect, f"/block_schemas/checksum/{saved['checksum']}")
    assert by_checksum["id"] == raw["block_schema_id"]

    # A referenced document changed on its own is seen through the parent.
    reloaded = prefect.python(
        CUSTOM_BLOCKS
        + """
Secret(value="rotated").save("service-password", overwrite=True)
print(json.dumps(ServiceConfig.load("service").password.get()))
"""
    )
    assert reloaded == "rotated"

    # Deleting a referenced document drops the reference (and the field) from the parent.
    deleted = httpx.delete(f"{prefect.server.url}/block_documents/{endpoint_id}")
    assert deleted.status_code == 204, deleted.text
    orphaned = get(prefect, f"/block_documents/{config_id}")
    assert "endpoint" not in orphaned["data"]
    assert sorted(orphaned["block_document_references"]) == ["password"]


def test_cli_registers_lists_inspects_and_deletes_blocks(prefect: PrefectEnv) -> None:
    registered = cli_ok(prefect, "block", "register", "-m", "prefect.blocks.notifications")
    assert "Successfully registered" in registered, registered
    assert "Slack Webhook" in registered, registered
    slack_type = get(prefect, "/block_types/slug/slack-webhook")
    assert slack_type["name"] == "Slack Webhook"
    assert "notify" in get(prefect, "/block_capabilities/")

    types = cli_ok(prefect, "block", "type", "ls")
    for slug in ("slack-webhook", "custom-webhook", "ms-teams-webhook", "secret"):
        assert slug in types, types
    inspected_type = cli_ok(prefect, "block", "type", "inspect", "slack-webhook")
    assert "Slack Webhook" in inspected_type, inspected_type
    assert slack_type["id"] in inspected_type, inspected_type
    assert "notify_type" in inspected_type, inspected_type
    assert "not found" in cli_fails(prefect, "block", "type", "inspect", "no-such-type")

    prefect.python(
        """
        import json
        from prefect.blocks.system import Secret
        print(json.dumps(str(Secret(value="cli-visible-value").save("cli-secret"))))
        """
    )
    listed = cli_ok(prefect, "block", "ls")
    assert "secret/cli-secret" in listed, listed
    inspected = cli_ok(prefect, "block", "inspect", "secret/cli-secret")
    assert OBFUSCATED in inspected, inspected
    assert "cli-visible-value" not in inspected, inspected
    assert "not found" in cli_fails(prefect, "block", "inspect", "secret/no-such-block")

    deleted = cli_ok(prefect, "block", "delete", "secret/cli-secret")
    assert "Deleted Block 'secret/cli-secret'" in deleted, deleted
    gone = httpx.get(
        f"{prefect.server.url}/block_types/slug/secret/block_documents/name/cli-secret"
    )
    assert gone.status_code == 404, gone.text
    assert "not found" in cli_fails(prefect, "block", "delete", "secret/cli-secret")
