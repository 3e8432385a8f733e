"""Block documents: references resolved to any depth in a bounded number of statements,
cycles and runaway graphs refused with nothing written, data encrypted at rest, Prefect's
lifecycle events, and work-pool template defaults that point at a document.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from databases import counted_statements
from deputy.blocks.crypto import Cipher
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.errors import BadRequest
from deputy.services.blocks import documents, references
from deputy.settings import Settings
from factories import insert_block_schema, insert_block_type, read_events

CYCLE = (
    "Cannot create block document reference: it would introduce a cycle into the "
    "block_document_reference graph (parent={parent}, reference={reference})."
)


@pytest.fixture
async def body(database: Database) -> dict[str, Any]:
    """What a create body needs: a type whose schema has the secret field ``pw``."""
    block_type = await insert_block_type(database)
    schema = await insert_block_schema(
        database,
        block_type["id"],
        fields={"title": "S", "properties": {}, "secret_fields": ["pw"]},
        capabilities=["read", "write"],
    )
    return {"block_type_id": str(block_type["id"]), "block_schema_id": str(schema["id"])}


def ref(document: dict[str, Any]) -> dict[str, Any]:
    return {"$ref": {"block_document_id": document["id"]}}


async def create(
    client: httpx.AsyncClient, body: dict[str, Any], name: str, data: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/block_documents/", json={**body, "name": name, "data": data})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def read(
    client: httpx.AsyncClient, document: dict[str, Any], secrets: bool = False
) -> dict[str, Any]:
    response = await client.get(
        f"/block_documents/{document['id']}", params={"include_secrets": secrets}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def chain(
    client: httpx.AsyncClient, body: dict[str, Any], depth: int, prefix: str = "level"
) -> list[dict[str, Any]]:
    """``depth + 1`` documents, each referencing the previous one under ``child``."""
    made = [await create(client, body, f"{prefix}-0", {"pw": "secret-0", "level": 0})]
    for level in range(1, depth + 1):
        data = {"pw": f"secret-{level}", "level": level, "child": ref(made[-1])}
        made.append(await create(client, body, f"{prefix}-{level}", data))
    return made


# --- references ----------------------------------------------------------------------------


async def test_references_are_resolved_to_any_depth_each_level_hidden_by_its_schema(
    client: httpx.AsyncClient, body: dict[str, Any], database: Database
) -> None:
    # The deepest document's schema marks nothing secret: its ``pw`` shows.
    plain_schema = await insert_block_schema(
        database,
        uuid.UUID(body["block_type_id"]),
        fields={"title": "P", "properties": {}, "secret_fields": []},
    )
    bottom = await create(
        client,
        {**body, "block_schema_id": str(plain_schema["id"])},
        "bottom",
        {"pw": "shown", "level": "bottom"},
    )
    made = [bottom]
    for level in range(1, 4):
        data = {"pw": f"secret-{level}", "child": ref(made[-1])}
        made.append(await create(client, body, f"level-{level}", data))
    top = await read(client, made[-1])
    assert top["data"] == {
        "pw": "********",
        "child": {
            "pw": "********",
            "child": {"pw": "********", "child": {"pw": "shown", "level": "bottom"}},
        },
    }
    revealed = await read(client, made[-1], secrets=True)
    assert revealed["data"]["child"]["child"]["pw"] == "secret-1"
    assert revealed["data"]["child"]["child"]["child"] == {"pw": "shown", "level": "bottom"}
    entry = top["block_document_references"]["child"]["block_document"]
    for level in (2, 1):
        assert (entry["id"], entry["name"], entry["is_anonymous"]) == (
            made[level]["id"],
            f"level-{level}",
            False,
        )
        assert entry["block_type"]["id"] == body["block_type_id"]
        entry = entry["block_document_references"]["child"]["block_document"]
    assert (entry["id"], entry["block_document_references"]) == (bottom["id"], {})
    assert top["block_schema"]["fields"]["secret_fields"] == ["pw"]


async def test_a_document_shared_twice_is_inlined_under_each_key(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    shared = await create(client, body, "shared", {"v": 1})
    parent = await create(client, body, "parent", {"a": ref(shared), "b": ref(shared)})
    child = await create(client, body, "child", {"p": ref(parent), "s": ref(shared)})
    answer = await read(client, child)
    assert answer["data"] == {"p": {"a": {"v": 1}, "b": {"v": 1}}, "s": {"v": 1}}
    assert set(
        answer["block_document_references"]["p"]["block_document"]["block_document_references"]
    ) == {"a", "b"}


async def test_reading_costs_the_same_statements_whatever_the_depth(
    client: httpx.AsyncClient, body: dict[str, Any], database: Database
) -> None:
    shallow = (await chain(client, body, 1, "shallow"))[-1]
    deep = (await chain(client, body, 8, "deep"))[-1]
    counts = []
    for document in (shallow, deep):
        with counted_statements(database) as statements:
            await read(client, document)
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 4, counts
    with counted_statements(database) as statements:
        response = await client.post("/block_documents/filter", json={})
    assert len(response.json()) == 11
    assert len(statements) <= counts[0] + 1, statements


async def test_only_top_level_references_are_references(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    target = await create(client, body, "target", {"v": 1})
    nested = {"deep": ref(target), "list": [ref(target)]}
    document = await create(client, body, "holder", {"n": nested})
    answer = await read(client, document)
    assert answer["data"] == {"n": nested}
    assert answer["block_document_references"] == {}


async def test_self_references_and_cycles_are_refused_and_nothing_changes(
    client: httpx.AsyncClient, body: dict[str, Any], database: Database
) -> None:
    a, b, c = await chain(client, body, 2)  # c -> b -> a
    before = await read(client, a, secrets=True)

    async def refused(document: dict[str, Any], target: dict[str, Any]) -> None:
        response = await client.patch(
            f"/block_documents/{document['id']}", json={"data": {"x": 9, "back": ref(target)}}
        )
        expected = CYCLE.format(parent=document["id"], reference=target["id"])
        assert (response.status_code, response.json()) == (400, {"detail": expected})
        assert await read(client, a, secrets=True) == before

    await refused(a, a)
    await refused(a, b)
    await refused(a, c)
    async with database.read() as conn:
        rows = (await conn.execute(select(t.block_document_reference))).all()
    assert len(rows) == 2


async def test_a_merging_patch_keeps_references_sent_again_and_drops_the_others(
    client: httpx.AsyncClient, body: dict[str, Any], database: Database
) -> None:
    """As Prefect: the stored data (references taken out) merged with the keys sent."""
    one = await create(client, body, "one", {"v": 1})
    two = await create(client, body, "two", {"v": 2})
    parent = await create(client, body, "parent", {"a": ref(one), "b": ref(two), "x": 0})
    async with database.read() as conn:
        query = select(t.block_document_reference.c.id).where(
            t.block_document_reference.c.name == "a"
        )
        kept_row = (await conn.execute(query)).scalar_one()
    url = f"/block_documents/{parent['id']}"
    response = await client.patch(url, json={"data": {"a": ref(one), "c": ref(two)}})
    assert response.status_code == 204
    answer = await read(client, parent)
    assert answer["data"] == {"x": 0, "a": {"v": 1}, "c": {"v": 2}}
    assert set(answer["block_document_references"]) == {"a", "c"}
    async with database.read() as conn:
        assert (await conn.execute(query)).scalar_one() == kept_row
    response = await client.patch(url, json={"data": {"x": 1}})
    answer = await read(client, parent)
    assert (answer["data"], answer["block_document_references"]) == ({"x": 1}, {})


async def test_deleting_a_referenced_document_drops_it_from_its_parents(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    child = await create(client, body, "child", {"v": 1})
    parent = await create(client, body, "parent", {"c": ref(child), "x": 0})
    assert (await client.delete(f"/block_documents/{child['id']}")).status_code == 204
    answer = await read(client, parent)
    assert (answer["data"], answer["block_document_references"]) == ({"x": 0}, {})
    # Deleting a parent leaves what it referenced alone.
    other = await create(client, body, "other", {"v": 2})
    holder = await create(client, body, "holder", {"o": ref(other)})
    assert (await client.delete(f"/block_documents/{holder['id']}")).status_code == 204
    assert (await read(client, other))["data"] == {"v": 2}


async def test_too_deep_a_graph_is_refused_as_prefect_refuses_it(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    made = await chain(client, body, references.MAX_DEPTH)
    assert (await read(client, made[-1]))["data"]["level"] == references.MAX_DEPTH
    response = await client.post(
        "/block_documents/", json={**body, "name": "too-deep", "data": {"c": ref(made[-1])}}
    )
    assert (response.status_code, response.json()) == (400, {"detail": references.TOO_DEEP})
    count = await client.post("/block_documents/count", json={})
    assert count.json() == references.MAX_DEPTH + 1


async def test_a_graph_that_would_answer_too_many_documents_is_refused(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """Each level references the previous twice: the answer doubles at every level."""
    level = await create(client, body, "level-0", {"v": 0})
    expanded, depth = 1, 0
    while 1 + 2 * expanded <= references.MAX_EXPANDED:
        depth += 1
        level = await create(client, body, f"level-{depth}", {"a": ref(level), "b": ref(level)})
        expanded = 1 + 2 * expanded
    response = await client.post(
        "/block_documents/",
        json={**body, "name": "boom", "data": {"a": ref(level), "b": ref(level)}},
    )
    assert (response.status_code, response.json()) == (400, {"detail": references.TOO_LARGE})
    assert (await client.post("/block_documents/count", json={})).json() == depth + 1


# --- encryption at rest --------------------------------------------------------------------


async def test_the_stored_data_is_a_fernet_token_of_the_key_file(
    client: httpx.AsyncClient, body: dict[str, Any], database: Database, settings: Settings
) -> None:
    child = await create(client, body, "child", {"v": 1})
    document = await create(client, body, "secret", {"pw": "hunter2-plaintext", "c": ref(child)})
    async with database.read() as conn:
        query = select(t.block_document.c.encrypted_data).where(
            t.block_document.c.id == uuid.UUID(document["id"])
        )
        stored = (await conn.execute(query)).scalar_one()
    assert "hunter2" not in stored
    if database.is_sqlite:
        key = (Path(settings.home) / "encryption.key").read_text().strip()
        plaintext = Fernet(key.encode()).decrypt(stored.encode())
        assert plaintext == b'{"pw":"hunter2-plaintext"}'  # the reference is not in it


async def test_read_block_document_data_resolves_references(
    client: httpx.AsyncClient, app: Any, body: dict[str, Any], database: Database
) -> None:
    child = await create(client, body, "child", {"pw": "inner"})
    parent = await create(client, body, "parent", {"pw": "outer", "c": ref(child)})
    cipher: Cipher = await app.state.cipher.get()
    async with database.read() as conn:
        for secrets, expected in (
            (True, {"pw": "outer", "c": {"pw": "inner"}}),
            (False, {"pw": "********", "c": {"pw": "********"}}),
        ):
            data = await documents.read_block_document_data(
                conn, uuid.UUID(parent["id"]), cipher=cipher, include_secrets=secrets
            )
            assert data == expected
        missing = await documents.read_block_document_data(
            conn, uuid.uuid4(), cipher=cipher, include_secrets=True
        )
    assert missing is None


# --- events --------------------------------------------------------------------------------


async def test_named_documents_emit_prefects_lifecycle_events(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    document = await create(client, body, "ev", {"pw": "p", "s": "text", "n": 3, "o": {"a": "b"}})
    await client.patch(f"/block_documents/{document['id']}", json={"data": {"s": "text2"}})
    await client.delete(f"/block_documents/{document['id']}")
    anonymous = await client.post(
        "/block_documents/", json={**body, "is_anonymous": True, "data": {"s": "x"}}
    )
    resources = [f"prefect.block-document.{document['id']}"]
    resources.append(f"prefect.block-document.{anonymous.json()['id']}")
    flt = {
        "resource": {"id": resources},
        "order": "ASC",
        "event": {"prefix": ["prefect.block-document."]},
    }
    # The bus's own flusher may be writing a batch when the helper flushes: wait for it.
    for _ in range(100):
        events = (await read_events(client, flt))["events"]
        if len(events) >= 3:
            break
        await asyncio.sleep(0.05)
    assert [e["event"] for e in events] == [
        "prefect.block-document.created",
        "prefect.block-document.updated",
        "prefect.block-document.deleted",
    ]
    type_name = document["block_type_name"]
    assert events[0]["resource"] == {
        "prefect.resource.id": resources[0],
        "prefect.resource.name": "ev",
    }
    assert events[0]["related"] == [
        {
            "prefect.resource.id": f"prefect.block-type.{body['block_type_id']}",
            "prefect.resource.role": "block-type",
            "prefect.resource.name": type_name,
        },
        {
            "prefect.resource.id": f"prefect.block-schema.{body['block_schema_id']}",
            "prefect.resource.role": "block-schema",
        },
    ]
    schema = {
        "capabilities": ["read", "write"],
        "block_type": {"id": body["block_type_id"], "name": type_name},
    }
    assert [e["payload"] for e in events] == [
        {"name": "ev", "data": {"s": "text"}, "block_schema": schema},
        {"name": "ev", "data": {"s": "text2"}, "block_schema": schema},
        {"name": "ev", "data": {"s": "text2"}, "block_schema": schema},
    ]


# --- work-pool template defaults -------------------------------------------------------------


async def test_a_template_default_pointing_at_a_document_is_validated_as_prefect_reads_it(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """Prefect checks the default against the document as answered without secrets."""
    child = await create(client, body, "child", {"n": 1})
    document = await create(client, body, "wp", {"pw": "secret", "c": ref(child)})
    properties: dict[str, Any] = {
        "pw": {"type": "string", "maxLength": 8},
        "c": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    variable = {"type": "object", "properties": properties, "default": ref(document)}
    template = {
        "job_configuration": {"x": "{{ x }}"},
        "variables": {"type": "object", "properties": {"x": variable}},
    }

    async def create_pool() -> httpx.Response:
        pool = {"name": f"p-{uuid.uuid4().hex[:8]}", "type": "process"}
        return await client.post("/work_pools/", json={**pool, "base_job_template": template})

    assert (await create_pool()).status_code == 201
    properties["pw"]["maxLength"] = 3
    response = await create_pool()
    assert (response.status_code, response.json()) == (
        422,
        {
            "detail": "Validation failed for work pool's job variable defaults: Validation "
            "failed for field 'x.pw'. Failure reason: '********' is too long"
        },
    )
    properties["pw"]["maxLength"] = 8
    properties["c"]["properties"]["n"]["type"] = "string"
    response = await create_pool()
    assert response.status_code == 422
    assert "'x.c.n'" in response.json()["detail"]
    variable["default"] = {"$ref": {"block_document_id": str(uuid.uuid4())}}
    response = await create_pool()
    assert (response.status_code, response.json()) == (404, {"detail": "Block not found."})


# --- concurrency and hostile keys ------------------------------------------------------------


async def test_creating_the_same_name_at_once_makes_one_document(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """The unique constraint decides: one 201, the others Prefect's 409."""
    payload = {**body, "name": "race", "data": {"v": 1}}
    responses = await asyncio.gather(
        *(client.post("/block_documents/", json=payload) for _ in range(6))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert {r.json()["detail"] for r in responses if r.status_code == 409} == {
        "Block already exists"
    }
    assert (await client.post("/block_documents/count", json={})).json() == 1


async def test_a_reference_under_a_key_no_database_can_store_is_a_400(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    target = await create(client, body, "target", {"v": 1})
    for key in ("a\x00b", "\ud800"):
        response = await client.post(
            "/block_documents/",
            content=json_bytes({**body, "name": "odd", "data": {key: ref(target)}}),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith(
            "Received block reference in a key that cannot be stored"
        )
    assert (await client.post("/block_documents/count", json={})).json() == 1


def json_bytes(value: Any) -> bytes:
    """JSON with lone surrogates escaped, as a client's JSON library may send them."""
    return json.dumps(value).encode()


def test_a_cycle_written_by_hand_is_refused_when_read() -> None:
    """deputy never writes a cycle; one put in the database by hand is a 400, not a hang."""
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    graph = references._Graph(edges={a: [("b", b)], b: [("c", c)], c: [("a", a)]})
    graph.documents = {a: None, b: None, c: None}
    with pytest.raises(BadRequest, match="would introduce a cycle"):
        references._measure(graph, [a])
    # The same document as a root and below another root is measured once, and fine.
    graph.edges = {a: [("b", b)], b: [("c", c)]}
    references._measure(graph, [c, a, b])
