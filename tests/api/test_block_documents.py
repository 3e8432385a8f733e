"""/block_documents and /block_types/slug/{slug}/block_documents over HTTP: status codes and
bodies as a Prefect 3.9.1 server answers them (each expected body was checked against one),
hostile input answered with a clear 4xx.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deputy.app import create_api_app
from deputy.db.engine import Database
from deputy.settings import Settings
from factories import insert_block_schema, insert_block_type

INTEGRITY_409 = {
    "detail": "Data integrity conflict. This usually means a unique or foreign key constraint "
    "was violated. See server logs for details."
}
NOT_FOUND = {"detail": "Block document not found"}
SECRET_FIELDS = ["pw", "d.*"]


@pytest.fixture
async def kind(database: Database) -> dict[str, Any]:
    """A block type with one schema; ``kind["body"]`` is what a create body needs."""
    block_type = await insert_block_type(database)
    schema = await insert_block_schema(
        database,
        block_type["id"],
        fields={
            "title": "Probe",
            "type": "object",
            "properties": {"pw": {"type": "string", "format": "password"}},
            "secret_fields": SECRET_FIELDS,
        },
        capabilities=["read"],
    )
    body = {"block_type_id": str(block_type["id"]), "block_schema_id": str(schema["id"])}
    return {"type": block_type, "schema": schema, "body": body}


async def create(client: httpx.AsyncClient, kind: dict[str, Any], **fields: Any) -> dict[str, Any]:
    response = await client.post("/block_documents/", json={**kind["body"], **fields})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def type_wire(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: str(value) if key == "id" else value
        for key, value in row.items()
        if key not in ("created", "updated")
    }


def without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in ("created", "updated")}
    if isinstance(value, list):
        return [without_times(item) for item in value]
    return value


def validation_error(body: Any, *details: dict[str, Any]) -> dict[str, Any]:
    return {
        "exception_message": "Invalid request received.",
        "exception_detail": list(details),
        "request_body": body,
    }


# --- create --------------------------------------------------------------------------------


async def test_create_answers_prefects_block_document(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    data = {"pw": "secret", "x": 1, "d": {"a": 1, "b": None}}
    answer = await create(client, kind, name="one", data=data)
    block_type = type_wire(kind["type"])
    assert without_times(answer) == {
        "id": answer["id"],
        "name": "one",
        "data": {"pw": "********", "x": 1, "d": {"a": "********", "b": "********"}},
        "block_schema_id": str(kind["schema"]["id"]),
        "block_schema": {
            "id": str(kind["schema"]["id"]),
            "checksum": kind["schema"]["checksum"],
            "fields": {**kind["schema"]["fields"], "block_schema_references": {}},
            "block_type_id": str(kind["type"]["id"]),
            "block_type": block_type,
            "capabilities": ["read"],
            "version": "non-versioned",
        },
        "block_type_id": str(kind["type"]["id"]),
        "block_type_name": kind["type"]["name"],
        "block_type": block_type,
        "block_document_references": {},
        "is_anonymous": False,
    }
    assert answer["created"] == answer["updated"]
    read = await client.get(f"/block_documents/{answer['id']}", params={"include_secrets": True})
    assert read.status_code == 200
    assert read.json()["data"] == data


async def test_an_anonymous_document_gets_prefects_generated_name(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    answer = await create(client, kind, is_anonymous=True)
    prefix, _, rest = answer["name"].partition("anonymous-")
    assert prefix == ""
    uuid.UUID(rest)
    assert answer["is_anonymous"] is True
    named = await create(client, kind, is_anonymous=True, name="given")
    assert named["name"] == "given"


async def test_a_name_its_type_already_has_is_a_409_before_anything_else(
    client: httpx.AsyncClient, kind: dict[str, Any], database: Database
) -> None:
    await create(client, kind, name="one")
    bad_reference: dict[str, Any] = {"r": {"$ref": {}}}
    for body in ({"name": "one"}, {"name": "one", "data": bad_reference}):
        response = await client.post("/block_documents/", json={**kind["body"], **body})
        assert (response.status_code, response.json()) == (409, {"detail": "Block already exists"})
    # The same name in another type is another document.
    other_type = await insert_block_type(database)
    other_schema = await insert_block_schema(database, other_type["id"])
    response = await client.post(
        "/block_documents/",
        json={
            "name": "one",
            "block_type_id": str(other_type["id"]),
            "block_schema_id": str(other_schema["id"]),
        },
    )
    assert response.status_code == 201


async def test_unknown_type_or_schema_is_prefects_integrity_409(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    for key in ("block_type_id", "block_schema_id"):
        body = {**kind["body"], "name": "x", key: str(uuid.uuid4())}
        response = await client.post("/block_documents/", json=body)
        assert (response.status_code, response.json()) == (409, INTEGRITY_409)
    count = await client.post("/block_documents/count", json={})
    assert count.json() == 0


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {},
            {
                "type": "value_error",
                "loc": ["body"],
                "msg": "Value error, Names must be provided for block documents.",
                "ctx": {"error": {}},
            },
        ),
        (
            {"name": None},
            {
                "type": "value_error",
                "loc": ["body"],
                "msg": "Value error, Names must be provided for block documents.",
                "ctx": {"error": {}},
            },
        ),
        (
            {"name": ""},
            {
                "type": "value_error",
                "loc": ["body"],
                "msg": "Value error, Names must be provided for block documents.",
                "ctx": {"error": {}},
            },
        ),
        (
            {"name": "Bad Name"},
            {
                "type": "value_error",
                "loc": ["body", "name"],
                "msg": "Value error, Block document name must only contain lowercase letters, "
                "numbers, and dashes.",
                "input": "Bad Name",
                "ctx": {"error": {}},
            },
        ),
        (
            {"name": "a\x00b"},
            {
                "type": "value_error",
                "loc": ["body", "name"],
                "msg": "Value error, Block document name must only contain lowercase letters, "
                "numbers, and dashes.",
                "input": "a\x00b",
                "ctx": {"error": {}},
            },
        ),
        (
            {"name": "a/b"},
            {
                "type": "string_pattern_mismatch",
                "loc": ["body", "name"],
                "msg": "String should match pattern '^[^/%&><]+$'",
                "input": "a/b",
                "ctx": {"pattern": "^[^/%&><]+$"},
            },
        ),
        (
            {"name": "", "is_anonymous": True},
            {
                "type": "string_pattern_mismatch",
                "loc": ["body", "name"],
                "msg": "String should match pattern '^[^/%&><]+$'",
                "input": "",
                "ctx": {"pattern": "^[^/%&><]+$"},
            },
        ),
        (
            {"name": "l", "data": [1]},
            {
                "type": "dict_type",
                "loc": ["body", "data"],
                "msg": "Input should be a valid dictionary",
                "input": [1],
            },
        ),
        (
            {"name": "e", "zzz": 1},
            {
                "type": "extra_forbidden",
                "loc": ["body", "zzz"],
                "msg": "Extra inputs are not permitted",
                "input": 1,
            },
        ),
    ],
)
async def test_bad_bodies_are_prefects_422(
    client: httpx.AsyncClient,
    kind: dict[str, Any],
    fields: dict[str, Any],
    detail: dict[str, Any],
) -> None:
    body = {**kind["body"], **fields}
    response = await client.post("/block_documents/", json=body)
    expected = {"input": body, **detail} if detail["loc"] == ["body"] else detail
    assert (response.status_code, response.json()) == (422, validation_error(body, expected))


async def test_a_lone_surrogate_in_a_name_is_a_422(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    ids = kind["body"]
    content = (
        f'{{"name": "a\\ud800", "block_type_id": "{ids["block_type_id"]}", '
        f'"block_schema_id": "{ids["block_schema_id"]}"}}'
    ).encode()
    headers = {"content-type": "application/json"}
    response = await client.post("/block_documents/", content=content, headers=headers)
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["loc"] == ["body", "name"]


async def test_any_text_is_data_and_comes_back_as_sent(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    """Data is stored encrypted, so NUL and lone surrogates (which PostgreSQL cannot store
    in text) are fine, as are integers beyond 64 bits."""
    ids = kind["body"]
    content = (
        f'{{"name": "odd", "block_type_id": "{ids["block_type_id"]}", '
        f'"block_schema_id": "{ids["block_schema_id"]}", "data": {{"nul": "a\\u0000b", '
        '"lone": "\\ud800", "big": 123456789012345678901234567890}}'
    ).encode()
    headers = {"content-type": "application/json"}
    response = await client.post("/block_documents/", content=content, headers=headers)
    assert response.status_code == 201, response.text
    read = await client.get(f"/block_documents/{response.json()['id']}")
    assert b'"lone":"\\ud800"' in read.content
    assert read.json()["data"]["nul"] == "a\x00b"
    assert read.json()["data"]["big"] == 123456789012345678901234567890


async def test_huge_data_is_a_clear_422_and_writes_nothing(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    body = {**kind["body"], "name": "huge", "data": {"blob": "x" * 1_100_000}}
    response = await client.post("/block_documents/", json=body)
    assert (response.status_code, response.json()) == (
        422,
        {"detail": "Block document data must be at most 1,048,576 bytes as JSON."},
    )
    assert (await client.post("/block_documents/count", json={})).json() == 0


@pytest.mark.parametrize(
    ("reference", "status", "detail"),
    [
        ({}, 400, "Received block reference without a block_document_id in key r"),
        ("text", 400, "Received block reference without a block_document_id in key r"),
        (
            {"block_document_id": "nope"},
            400,
            "Received block reference with an invalid block_document_id in key r",
        ),
        ({"block_document_id": str(uuid.uuid4())}, 409, INTEGRITY_409["detail"]),
    ],
)
async def test_bad_references_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, kind: dict[str, Any], reference: Any, status: int, detail: str
) -> None:
    body = {**kind["body"], "name": "r", "data": {"r": {"$ref": reference}}}
    response = await client.post("/block_documents/", json=body)
    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert (await client.post("/block_documents/count", json={})).json() == 0


# --- read, filter, count -------------------------------------------------------------------


async def test_reading_unknown_documents_is_prefects_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/block_documents/{uuid.uuid4()}")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    response = await client.get("/block_documents/nope")
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


async def test_obfuscation_on_and_off(client: httpx.AsyncClient, kind: dict[str, Any]) -> None:
    data = {"pw": "hunter2", "d": {"k": 1}, "plain": "p"}
    document = await create(client, kind, name="s", data=data)
    hidden = {"pw": "********", "d": {"k": "********"}, "plain": "p"}
    url = f"/block_documents/{document['id']}"
    assert (await client.get(url)).json()["data"] == hidden
    assert (await client.get(url, params={"include_secrets": False})).json()["data"] == hidden
    assert (await client.get(url, params={"include_secrets": True})).json()["data"] == data
    listed = await client.post("/block_documents/filter", json={"include_secrets": True})
    assert [d["data"] for d in listed.json()] == [data]
    listed = await client.post("/block_documents/filter", json={})
    assert [d["data"] for d in listed.json()] == [hidden]
    slug = kind["type"]["slug"]
    by_type = await client.get(f"/block_types/slug/{slug}/block_documents")
    assert [d["data"] for d in by_type.json()] == [hidden]
    by_name = await client.get(
        f"/block_types/slug/{slug}/block_documents/name/s", params={"include_secrets": True}
    )
    assert by_name.json()["data"] == data


async def test_filters_leave_anonymous_documents_out_unless_asked(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    await create(client, kind, name="named")
    anonymous = await create(client, kind, is_anonymous=True)

    async def names(body: dict[str, Any]) -> list[str]:
        response = await client.post("/block_documents/filter", json=body)
        assert response.status_code == 200, response.text
        count = await client.post(
            "/block_documents/count",
            json={k: v for k, v in body.items() if k in ("block_documents", "block_types")},
        )
        assert count.json() == len(response.json())
        return [d["name"] for d in response.json()]

    assert await names({}) == ["named"]
    assert await names({"block_documents": None}) == ["named"]
    assert await names({"block_documents": {}}) == ["named"]
    both = await names({"block_documents": {"is_anonymous": None}})
    assert sorted(both) == sorted(["named", anonymous["name"]])
    assert await names({"block_documents": {"is_anonymous": {"eq_": True}}}) == [anonymous["name"]]
    slug = kind["type"]["slug"]
    by_type = await client.get(f"/block_types/slug/{slug}/block_documents")
    assert [d["name"] for d in by_type.json()] == ["named"]
    by_name = await client.get(f"/block_types/slug/{slug}/block_documents/name/{anonymous['name']}")
    assert by_name.status_code == 200


async def test_filter_by_name_type_schema_and_sort_and_page(
    client: httpx.AsyncClient, kind: dict[str, Any], database: Database
) -> None:
    for name in ("b-one", "a-two", "c-three"):
        await create(client, kind, name=name)
    other_type = await insert_block_type(database, name="AAA first")
    other_schema = await insert_block_schema(
        database, other_type["id"], capabilities=["write", "read"], version="2"
    )
    other = {"block_type_id": str(other_type["id"]), "block_schema_id": str(other_schema["id"])}
    response = await client.post("/block_documents/", json={**other, "name": "z-other"})
    assert response.status_code == 201

    async def names(body: dict[str, Any]) -> list[str]:
        response = await client.post("/block_documents/filter", json=body)
        assert response.status_code == 200, response.text
        return [d["name"] for d in response.json()]

    assert await names({}) == ["a-two", "b-one", "c-three", "z-other"]
    assert await names({"sort": None}) == ["a-two", "b-one", "c-three", "z-other"]
    assert await names({"sort": "NAME_DESC"}) == ["z-other", "c-three", "b-one", "a-two"]
    assert await names({"sort": "BLOCK_TYPE_AND_NAME_ASC"}) == [
        "z-other",
        "a-two",
        "b-one",
        "c-three",
    ]
    assert await names({"offset": 1, "limit": 2}) == ["b-one", "c-three"]
    assert await names({"block_documents": {"name": {"like_": "T"}}}) == [
        "a-two",
        "c-three",
        "z-other",
    ]
    assert await names({"block_documents": {"name": {"any_": ["b-one", "nope"]}}}) == ["b-one"]
    by_slug = {"block_types": {"slug": {"any_": [kind["type"]["slug"]]}}}
    assert await names(by_slug) == ["a-two", "b-one", "c-three"]
    assert await names({"block_types": {"name": {"like_": "aaa"}}}) == ["z-other"]
    capabilities = {"block_schemas": {"block_capabilities": {"all_": ["write"]}}}
    assert await names(capabilities) == ["z-other"]
    assert await names({"block_schemas": {"version": {"any_": ["2"]}}}) == ["z-other"]
    either: dict[str, Any] = {
        "operator": "or_",
        "name": {"any_": ["a-two"]},
        "block_type_id": {"any_": [str(other_type["id"])]},
    }
    # The default ``is_anonymous`` condition is one of those ``or_`` joins, as in Prefect.
    assert await names({"block_documents": either}) == ["a-two", "b-one", "c-three", "z-other"]
    either["is_anonymous"] = None
    assert await names({"block_documents": either}) == ["a-two", "z-other"]


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        ({"limit": 201}, 422, {"detail": "Invalid limit: must be less than or equal to 200."}),
        (
            {"sort": "X"},
            422,
            validation_error(
                {"sort": "X"},
                {
                    "type": "enum",
                    "loc": ["body", "sort"],
                    "msg": "Input should be 'NAME_DESC', 'NAME_ASC' or 'BLOCK_TYPE_AND_NAME_ASC'",
                    "input": "X",
                    "ctx": {"expected": "'NAME_DESC', 'NAME_ASC' or 'BLOCK_TYPE_AND_NAME_ASC'"},
                },
            ),
        ),
        (
            {"block_types": {"operator": "or_"}},
            422,
            validation_error(
                {"block_types": {"operator": "or_"}},
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "block_types", "operator"],
                    "msg": "Extra inputs are not permitted",
                    "input": "or_",
                },
            ),
        ),
    ],
)
async def test_bad_filters_are_prefects_422(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, answer: Any
) -> None:
    response = await client.post("/block_documents/filter", json=body)
    assert (response.status_code, response.json()) == (status, answer)


async def test_a_filter_with_text_postgresql_cannot_store_is_a_4xx(
    client: httpx.AsyncClient,
) -> None:
    body = {"block_documents": {"name": {"any_": ["a\x00b"], "like_": "\x00"}}}
    response = await client.post("/block_documents/filter", json=body)
    assert response.status_code in (200, 422)
    if response.status_code == 200:
        assert response.json() == []


async def test_the_type_routes(client: httpx.AsyncClient, kind: dict[str, Any]) -> None:
    slug = kind["type"]["slug"]
    response = await client.get("/block_types/slug/no-such-type/block_documents")
    assert (response.status_code, response.json()) == (404, {"detail": "Block type not found"})
    for path in (f"{slug}/block_documents/name/zzz", "no-such-type/block_documents/name/zzz"):
        response = await client.get(f"/block_types/slug/{path}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    for odd in ("a%00b", "%ED%A0%80"):
        response = await client.get(f"/block_types/slug/{odd}/block_documents")
        assert response.status_code == 404
        response = await client.get(f"/block_types/slug/{slug}/block_documents/name/{odd}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    await create(client, kind, name="b")
    await create(client, kind, name="a")
    listed = await client.get(f"/block_types/slug/{slug}/block_documents")
    assert [d["name"] for d in listed.json()] == ["a", "b"]


# --- update and delete ---------------------------------------------------------------------


async def test_patch_merges_replaces_and_keeps_obfuscated_secrets(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    document = await create(client, kind, name="p", data={"pw": "hunter2", "x": 1, "y": 2})
    url = f"/block_documents/{document['id']}"

    async def stored() -> dict[str, Any]:
        data: dict[str, Any] = (await client.get(url, params={"include_secrets": True})).json()[
            "data"
        ]
        return data

    response = await client.patch(url, json={"data": {"pw": "********", "x": 10}})
    assert response.status_code == 204
    assert await stored() == {"pw": "hunter2", "x": 10, "y": 2}
    # Sending the whole obfuscated document back changes nothing secret.
    read_back = (await client.get(url)).json()["data"]
    response = await client.patch(url, json={"data": read_back, "merge_existing_data": False})
    assert response.status_code == 204
    assert await stored() == {"pw": "hunter2", "x": 10, "y": 2}
    response = await client.patch(url, json={"data": {"pw": "new"}, "merge_existing_data": False})
    assert await stored() == {"pw": "new"}
    # Without ``data`` a merging PATCH writes nothing (not even the schema); a replacing one
    # replaces the data with nothing.
    before = (await client.get(url)).json()
    response = await client.patch(url, json={})
    assert response.status_code == 204
    assert (await client.get(url)).json() == before
    response = await client.patch(url, json={"merge_existing_data": False})
    assert await stored() == {}


async def test_patch_and_delete_of_unknown_documents_are_404(
    client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    response = await client.patch(f"/block_documents/{uuid.uuid4()}", json={"data": {}})
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    response = await client.delete(f"/block_documents/{uuid.uuid4()}")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    document = await create(client, kind, name="gone")
    assert (await client.delete(f"/block_documents/{document['id']}")).status_code == 204
    response = await client.delete(f"/block_documents/{document['id']}")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    response = await client.patch(f"/block_documents/{document['id']}", json={"data": None})
    assert (response.status_code, response.json()) == (
        422,
        validation_error(
            {"data": None},
            {
                "type": "dict_type",
                "loc": ["body", "data"],
                "msg": "Input should be a valid dictionary",
                "input": None,
            },
        ),
    )


async def test_patch_moves_to_another_schema_of_the_same_type_only(
    client: httpx.AsyncClient, kind: dict[str, Any], database: Database
) -> None:
    document = await create(client, kind, name="m", data={"x": 1})
    url = f"/block_documents/{document['id']}"
    newer = await insert_block_schema(database, kind["type"]["id"], version="2")
    response = await client.patch(url, json={"data": {}, "block_schema_id": str(newer["id"])})
    assert response.status_code == 204
    assert (await client.get(url)).json()["block_schema"]["version"] == "2"
    other_type = await insert_block_type(database)
    foreign = await insert_block_schema(database, other_type["id"])
    response = await client.patch(
        url, json={"data": {"x": 2}, "block_schema_id": str(foreign["id"])}
    )
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Must migrate block document to a block schema of the same block type."},
    )
    response = await client.patch(
        url, json={"data": {"x": 2}, "block_schema_id": str(uuid.uuid4())}
    )
    assert (response.status_code, response.json()) == (409, INTEGRITY_409)
    read = (await client.get(url)).json()
    assert (read["data"], read["block_schema_id"]) == ({"x": 1}, str(newer["id"]))


# --- an app built without its lifespan -----------------------------------------------------


async def test_an_app_without_lifespan_opens_the_same_key_on_first_use(
    settings: Settings, database: Database, client: httpx.AsyncClient, kind: dict[str, Any]
) -> None:
    document = await create(client, kind, name="shared", data={"pw": "hunter2"})
    root = FastAPI(openapi_url=None)
    root.mount("/api", create_api_app(settings, database))
    transport = httpx.ASGITransport(app=root)
    async with httpx.AsyncClient(transport=transport, base_url="http://deputy.test/api") as other:
        response = await other.get(
            f"/block_documents/{document['id']}", params={"include_secrets": True}
        )
    assert response.status_code == 200
    assert response.json()["data"] == {"pw": "hunter2"}
