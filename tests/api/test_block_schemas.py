"""/block_schemas and /block_capabilities: schemas made by the real Prefect 3.9.1 SDK saved
with the SDK's own checksums, nested blocks answered back exactly as the SDK sent them, the
answers Prefect gives (status and body), hostile fields, and concurrent saves.

The SDK runs in its own virtualenv (``.venv-prefect``), in a subprocess: deputy never
imports Prefect.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import textwrap
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from databases import DatabaseBackends, counted_statements
from deputy.db import tables as t
from deputy.db.engine import Database
from prefect_venv import PREFECT_PYTHON

NOT_FOUND_404 = {"detail": "Block schema not found"}

#: Built-in blocks (a secret, a webhook, a notification block, a file system) and custom
#: ones: a block nesting another, a union of two blocks and an optional built-in block.
SDK_SCRIPT = textwrap.dedent(
    """
    import json, uuid
    from typing import Optional, Union
    from pydantic import SecretStr
    from prefect.blocks.core import Block
    from prefect.blocks.system import Secret
    from prefect.blocks.webhook import Webhook
    from prefect.blocks.notifications import SlackWebhook
    from prefect.filesystems import LocalFileSystem

    class DeputyInner(Block):
        _block_type_name = "Deputy Inner"
        token: SecretStr
        note: str = ""

    class DeputyOther(Block):
        _block_type_name = "Deputy Other"
        password: SecretStr
        port: int = 5432

    class DeputyOuter(Block):
        _block_type_name = "Deputy Outer"
        _block_schema_capabilities = ["read", "write"]
        inner: DeputyInner
        either: Union[DeputyInner, DeputyOther]
        hooks: list[str] = []
        webhook: Optional[Webhook] = None

    out = {}
    for block in [Secret, Webhook, SlackWebhook, LocalFileSystem,
                  DeputyInner, DeputyOther, DeputyOuter]:
        kind = block._to_block_type().model_dump(mode="json", include={
            "name", "slug", "logo_url", "documentation_url", "description", "code_example"})
        schema = block._to_block_schema(block_type_id=uuid.uuid4()).model_dump(
            mode="json", include={"fields", "capabilities", "version", "checksum"})
        out[block.__name__] = {"type": kind, "schema": schema}
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def sdk_blocks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each block's type and schema as the SDK sends them (``_to_block_type``,
    ``_to_block_schema``), with the checksum the SDK computes itself."""
    if not PREFECT_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Prefect 3.9.1 virtualenv missing at {PREFECT_PYTHON}")
        pytest.skip(f"Prefect 3.9.1 virtualenv missing at {PREFECT_PYTHON}")
    home = tmp_path_factory.mktemp("prefect-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VIRTUAL_ENV"))}
    result = subprocess.run(
        [str(PREFECT_PYTHON), "-c", SDK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    blocks: dict[str, Any] = json.loads(result.stdout)
    return blocks


async def register_type(client: httpx.AsyncClient, block: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/block_types/", json=block["type"])
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def schema_body(block: dict[str, Any], block_type_id: str) -> dict[str, Any]:
    schema = block["schema"]
    return {
        "fields": schema["fields"],
        "block_type_id": block_type_id,
        "capabilities": schema["capabilities"],
        "version": schema["version"],
    }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


async def count(database: Database, table: Any) -> int:
    async with database.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# --- the SDK's own schemas -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Secret", "Webhook", "SlackWebhook", "LocalFileSystem", "DeputyInner"]
)
async def test_sdk_schemas_are_saved_under_the_sdks_checksum(
    client: httpx.AsyncClient, sdk_blocks: dict[str, Any], name: str
) -> None:
    block = sdk_blocks[name]
    block_type = await register_type(client, block)
    body = schema_body(block, block_type["id"])
    response = await client.post("/block_schemas/", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert list(created) == [
        "id", "created", "updated", "checksum", "fields", "block_type_id", "block_type",
        "capabilities", "version",
    ]  # fmt: skip
    assert created["checksum"] == block["schema"]["checksum"]
    assert canonical(created["fields"]) == canonical(block["schema"]["fields"])
    assert (created["block_type_id"], created["block_type"]) == (block_type["id"], block_type)
    assert (created["capabilities"], created["version"]) == (body["capabilities"], body["version"])
    # Reads answer the stored fields, as Prefect: where the answer to the creation echoes
    # the definitions sent, a read leaves out an empty one (Secret's ``JsonValue: {}``).
    read = (await client.get(f"/block_schemas/{created['id']}")).json()
    expected = dict(created["fields"])
    if name == "Secret":
        assert expected.pop("definitions") == {"JsonValue": {}}
    assert read == {**created, "fields": expected}
    # The SDK then finds it by the checksum it computed, and saving again is Prefect's 200.
    checksum = block["schema"]["checksum"]
    found = await client.get(
        f"/block_schemas/checksum/{checksum}", params={"version": body["version"]}
    )
    assert (found.status_code, found.json()) == (200, read)
    again = await client.post("/block_schemas/", json=body)
    assert (again.status_code, again.json()) == (200, read)


async def test_a_nested_sdk_block_reads_back_exactly_as_the_sdk_sent_it(
    client: httpx.AsyncClient, database: Database, sdk_blocks: dict[str, Any]
) -> None:
    """Only the types exist: the nested blocks' schemas are registered from the outer
    schema's definitions, under the checksums the SDK computes for them."""
    types = {
        name: await register_type(client, sdk_blocks[name])
        for name in ["Webhook", "DeputyInner", "DeputyOther", "DeputyOuter"]
    }
    outer = sdk_blocks["DeputyOuter"]
    response = await client.post(
        "/block_schemas/", json=schema_body(outer, types["DeputyOuter"]["id"])
    )
    assert response.status_code == 201, response.text
    assert response.json()["checksum"] == outer["schema"]["checksum"]
    read = (await client.get(f"/block_schemas/{response.json()['id']}")).json()
    assert canonical(read["fields"]) == canonical(outer["schema"]["fields"])
    assert read["fields"]["block_schema_references"]["either"] == [
        {
            "block_schema_checksum": sdk_blocks[name]["schema"]["checksum"],
            "block_type_slug": types[name]["slug"],
        }
        for name in ["DeputyInner", "DeputyOther"]
    ]
    # The nested schemas exist on their own, unversioned and without capabilities...
    for name in ["DeputyInner", "DeputyOther", "Webhook"]:
        nested = await client.get(
            f"/block_schemas/checksum/{sdk_blocks[name]['schema']['checksum']}"
        )
        assert nested.status_code == 200
        assert (nested.json()["version"], nested.json()["capabilities"]) == ("non-versioned", [])
    assert await count(database, t.block_schema) == 4
    assert await count(database, t.block_schema_reference) == 4  # inner, either x2, webhook
    # ...so the SDK registering DeputyInner itself finds it; Webhook's 3.9.1 version is new.
    inner = await client.post(
        "/block_schemas/", json=schema_body(sdk_blocks["DeputyInner"], types["DeputyInner"]["id"])
    )
    assert inner.status_code == 200
    webhook = await client.post(
        "/block_schemas/", json=schema_body(sdk_blocks["Webhook"], types["Webhook"]["id"])
    )
    assert (webhook.status_code, webhook.json()["version"]) == (201, "3.9.1")


async def test_registering_nested_blocks_first_as_the_sdk_does(
    client: httpx.AsyncClient, database: Database, sdk_blocks: dict[str, Any]
) -> None:
    ids = {}
    for name in ["Webhook", "DeputyInner", "DeputyOther", "DeputyOuter"]:
        block_type = await register_type(client, sdk_blocks[name])
        response = await client.post(
            "/block_schemas/", json=schema_body(sdk_blocks[name], block_type["id"])
        )
        assert response.status_code == 201
        ids[name] = response.json()["id"]
    assert await count(database, t.block_schema) == 4  # nothing registered twice
    read = (await client.get(f"/block_schemas/{ids['DeputyOuter']}")).json()
    assert canonical(read["fields"]) == canonical(sdk_blocks["DeputyOuter"]["schema"]["fields"])
    listed = (await client.post("/block_schemas/filter", json={})).json()
    assert [schema["id"] for schema in listed] == [
        ids[name] for name in ["DeputyOuter", "DeputyOther", "DeputyInner", "Webhook"]
    ]
    capabilities = await client.get("/block_capabilities/")
    assert (capabilities.status_code, capabilities.json()) == (200, ["read", "write"])


# --- errors --------------------------------------------------------------------------------


async def test_missing_schemas_and_types_are_prefects_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for url in [f"/block_schemas/{missing}", "/block_schemas/checksum/not-a-checksum"]:
        response = await client.get(url)
        assert (response.status_code, response.json()) == (404, NOT_FOUND_404)
    deleted = await client.delete(f"/block_schemas/{missing}")
    assert (deleted.status_code, deleted.json()) == (404, NOT_FOUND_404)
    response = await client.post(
        "/block_schemas/", json={"fields": {}, "block_type_id": str(missing)}
    )
    assert (response.status_code, response.json()) == (
        404,
        {"detail": f"Block type {missing} not found."},
    )
    malformed = await client.get("/block_schemas/not-a-uuid")
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


async def test_a_nested_block_of_an_unregistered_type_is_a_409(
    client: httpx.AsyncClient, sdk_blocks: dict[str, Any]
) -> None:
    outer = await register_type(client, sdk_blocks["DeputyOuter"])
    response = await client.post(
        "/block_schemas/", json=schema_body(sdk_blocks["DeputyOuter"], outer["id"])
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Cannot create block schema because block type 'deputy-inner' was not "
        "found.Did you forget to register the block type?"
    }
    assert (await client.post("/block_schemas/filter", json={})).json() == []


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ([], "dict_type"),
        ("text", "dict_type"),
        (None, "dict_type"),
    ],
)
async def test_fields_that_are_not_an_object_are_a_422(
    client: httpx.AsyncClient, fields: Any, error: str
) -> None:
    block_type = (await client.post("/block_types/", json={"name": "F", "slug": "f"})).json()
    body = {"fields": fields, "block_type_id": block_type["id"]}
    response = await client.post("/block_schemas/", json=body)
    assert response.status_code == 422
    detail = response.json()["exception_detail"]
    assert [(d["type"], d["loc"]) for d in detail] == [(error, ["body", "fields"])]


@pytest.mark.parametrize(
    "fields",
    [
        {"block_schema_references": None},
        {"block_schema_references": {"x": "sha256:abc"}},
        {"block_schema_references": {"x": [{"block_type_slug": 1}]}},
        {"properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": {"A": [1]}},
        {"properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": ["A"]},
        {
            "properties": {},
            "block_schema_references": {
                "x": {"block_type_slug": "f", "block_schema_checksum": "sha256:abc"}
            },
            "definitions": {"X": {"block_type_slug": "f"}},
        },
    ],
)
async def test_fields_prefect_would_fail_on_are_a_clear_422(
    client: httpx.AsyncClient, database: Database, fields: dict[str, Any]
) -> None:
    block_type = (await client.post("/block_types/", json={"name": "F", "slug": "f"})).json()
    response = await client.post(
        "/block_schemas/", json={"fields": fields, "block_type_id": block_type["id"]}
    )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)
    assert await count(database, t.block_schema) == 0


async def test_hostile_text_in_fields_is_kept_or_refused_never_a_500(
    client: httpx.AsyncClient, test_databases: DatabaseBackends
) -> None:
    block_type = (await client.post("/block_types/", json={"name": "H", "slug": "h"})).json()
    headers = {"content-type": "application/json"}
    for text in [b'"a\\u0000b"', b'"a\\ud800b"']:
        body = b'{"block_type_id": "%s", "fields": {"title": %s}}' % (
            block_type["id"].encode(),
            text,
        )
        response = await client.post("/block_schemas/", content=body, headers=headers)
        if test_databases.is_postgres:
            assert response.status_code == 422, response.text
        else:
            assert response.status_code == 201, response.text
            assert response.json()["fields"]["title"] == json.loads(text)


async def test_big_and_deep_fields_are_saved(client: httpx.AsyncClient) -> None:
    block_type = (await client.post("/block_types/", json={"name": "B", "slug": "b"})).json()
    wide = {"properties": {f"p{i}": {"type": "string", "title": "x" * 50} for i in range(5000)}}
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(200):
        deep = {"items": deep, "secret_fields": []}
    for fields in [wide, {"properties": {"d": deep}}]:
        response = await client.post(
            "/block_schemas/", json={"fields": fields, "block_type_id": block_type["id"]}
        )
        assert response.status_code == 201, response.text
        assert response.json()["fields"] == {**fields, "block_schema_references": {}}


# --- delete, filter, capabilities ----------------------------------------------------------


async def test_delete_answers_204_and_refuses_protected_types(
    client: httpx.AsyncClient, database: Database
) -> None:
    block_type = (await client.post("/block_types/", json={"name": "D", "slug": "d"})).json()
    body = {"fields": {"title": "D"}, "block_type_id": block_type["id"]}
    first = (await client.post("/block_schemas/", json=body)).json()
    second = (await client.post("/block_schemas/", json={**body, "version": "2"})).json()
    async with database.write() as conn:
        await conn.execute(
            update(t.block_type)
            .where(t.block_type.c.id == uuid.UUID(block_type["id"]))
            .values(is_protected=True)
        )
    refused = await client.delete(f"/block_schemas/{first['id']}")
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "Block schemas for protected block types cannot be deleted."},
    )
    async with database.write() as conn:
        await conn.execute(update(t.block_type).values(is_protected=False))
    deleted = await client.delete(f"/block_schemas/{first['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert (await client.get(f"/block_schemas/{first['id']}")).status_code == 404
    assert (await client.get(f"/block_schemas/{second['id']}")).status_code == 200


async def test_filter_and_capabilities(client: httpx.AsyncClient) -> None:
    kinds = []
    for slug in ["a", "b"]:
        kinds.append((await client.post("/block_types/", json={"name": slug, "slug": slug})).json())
    made = []
    for title, kind, capabilities, version in [
        ("S0", kinds[0], ["zzz", "read"], "1"),
        ("S1", kinds[1], ["read", "write"], "1"),
        ("S2", kinds[0], [], "2"),
    ]:
        body = {"fields": {"title": title}, "block_type_id": kind["id"]}
        response = await client.post(
            "/block_schemas/", json={**body, "capabilities": capabilities, "version": version}
        )
        made.append(response.json())

    async def titles(body: Any) -> list[str]:
        response = await client.post("/block_schemas/filter", json=body)
        assert response.status_code == 200, response.text
        return [schema["fields"]["title"] for schema in response.json()]

    assert await titles(None) == ["S2", "S1", "S0"]
    assert await titles({"limit": 1, "offset": 1, "ignored": True}) == ["S1"]
    assert await titles({"block_schemas": {"block_type_id": {"any_": [kinds[0]["id"]]}}}) == [
        "S2", "S0",
    ]  # fmt: skip
    assert await titles({"block_schemas": {"block_capabilities": {"all_": ["read"]}}}) == [
        "S1", "S0",
    ]  # fmt: skip
    assert await titles({"block_schemas": {"version": {"any_": ["2"]}}}) == ["S2"]
    assert await titles({"block_schemas": {"id": {"any_": [made[1]["id"]]}}}) == ["S1"]
    either = {"operator": "or_", "id": {"any_": [made[0]["id"]]}, "version": {"any_": ["2"]}}
    assert await titles({"block_schemas": either}) == ["S2", "S0"]
    listed = (await client.post("/block_schemas/filter", json={"limit": 1})).json()
    assert listed == [made[2]]
    refused = await client.post("/block_schemas/filter", json={"block_schemas": {"nope": 1}})
    assert refused.status_code == 422
    too_many = await client.post("/block_schemas/filter", json={"limit": 201})
    assert too_many.json() == {"detail": "Invalid limit: must be less than or equal to 200."}
    answer = await client.get("/block_capabilities/")
    assert (answer.status_code, answer.json()) == (200, ["read", "write", "zzz"])


# --- concurrency and cost ------------------------------------------------------------------


async def test_two_replicas_saving_one_new_block_at_once_both_succeed(
    client: httpx.AsyncClient,
    database: Database,
    sdk_blocks: dict[str, Any],
) -> None:
    """As two workers starting together: both find each type missing and create it (201
    and 200), then all save the nested schema at once (201 and 200s); one row of each."""
    answers = {}
    for name in ["Webhook", "DeputyInner", "DeputyOther", "DeputyOuter"]:
        responses = await asyncio.wait_for(
            asyncio.gather(
                *(client.post("/block_types/", json=sdk_blocks[name]["type"]) for _ in range(2))
            ),
            30,
        )
        assert sorted(r.status_code for r in responses) == [200, 201]
        assert responses[0].json() == responses[1].json()
        answers[name] = responses[0].json()
    outer = schema_body(sdk_blocks["DeputyOuter"], answers["DeputyOuter"]["id"])
    saved = await asyncio.wait_for(
        asyncio.gather(*(client.post("/block_schemas/", json=outer) for _ in range(3))), 60
    )
    assert sorted(r.status_code for r in saved) == [200, 200, 201]
    assert len({r.json()["id"] for r in saved}) == 1
    assert (await count(database, t.block_type), await count(database, t.block_schema)) == (4, 4)
    assert await count(database, t.block_schema_reference) == 4


async def test_saving_a_simple_schema_takes_three_statements(
    client: httpx.AsyncClient, database: Database, sdk_blocks: dict[str, Any]
) -> None:
    block_type = await register_type(client, sdk_blocks["Secret"])
    body = schema_body(sdk_blocks["Secret"], block_type["id"])
    with counted_statements(database) as creating:
        assert (await client.post("/block_schemas/", json=body)).status_code == 201
    assert len(creating) == 3, creating  # the type, the lookup by checksum, the insert
    with counted_statements(database) as again:
        assert (await client.post("/block_schemas/", json=body)).status_code == 200
    assert len(again) == 3, again  # the type, the schema found, its (empty) reference tree
    with counted_statements(database) as creating_type:
        await client.post("/block_types/", json={"name": "Cheap", "slug": "cheap"})
    assert len(creating_type) == 1, creating_type  # the insert (ON CONFLICT decides a taken slug)
