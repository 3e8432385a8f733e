"""/block_types: the answers Prefect 3.9.1 gives, status and body, for creation, reads,
updates, deletes and filters, hostile text, and two replicas creating one type at once.

The expected bodies are the ones a real Prefect 3.9.1 server answers to the same requests.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from databases import DatabaseBackends
from deputy.db import tables as t
from deputy.db.engine import Database
from factories import read_events

RESERVED_403 = {"detail": "Block type names beginning with 'Prefect' are reserved."}
NOT_FOUND_404 = {"detail": "Block type not found"}
PROTECTED_403 = {"detail": "protected block types cannot be deleted."}
ROUTE_404 = {"detail": "Not Found"}
NAME_PATTERN = "^[^/%&><]+$"
BAD_SLUG = "Value error, Block type slug must only contain lowercase letters, numbers, and dashes."


def invalid(detail: dict[str, Any], body: Any) -> dict[str, Any]:
    return {
        "exception_message": "Invalid request received.",
        "exception_detail": [detail],
        "request_body": body,
    }


async def create_type(client: httpx.AsyncClient, slug: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/block_types/", json={"name": slug.title(), "slug": slug, **fields}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def protect(database: Database, block_type_id: str) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(t.block_type)
            .where(t.block_type.c.id == uuid.UUID(block_type_id))
            .values(is_protected=True)
        )


def without_times(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "created", "updated")}


# --- create --------------------------------------------------------------------------------


async def test_create_answers_201_with_the_type_as_stored(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/block_types/",
        json={
            "name": "Zeta",
            "slug": "zeta",
            "logo_url": "  http://l  ",
            "documentation_url": "http://d",
            "description": "<b> & 'q' \"d\"",
            "code_example": "x < y",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "id", "created", "updated", "name", "slug", "logo_url", "documentation_url",
        "description", "code_example", "is_protected",
    ]  # fmt: skip
    assert without_times(body) == {
        "name": "Zeta",
        "slug": "zeta",
        "logo_url": "http://l",
        "documentation_url": "http://d",
        "description": "&lt;b&gt; &amp; 'q' \"d\"",
        "code_example": "x &lt; y",
        "is_protected": False,
    }
    uuid.UUID(body["id"])
    assert body["created"].endswith("Z")
    assert body["created"] == body["updated"]
    assert (await client.get(f"/block_types/{body['id']}")).json() == body
    assert (await client.get("/block_types/slug/zeta")).json() == body


@pytest.mark.parametrize(
    ("sent", "detail"),
    [
        (
            {"name": "A/b", "slug": "ab"},
            {
                "type": "string_pattern_mismatch",
                "loc": ["body", "name"],
                "msg": f"String should match pattern '{NAME_PATTERN}'",
                "input": "A/b",
                "ctx": {"pattern": NAME_PATTERN},
            },
        ),
        (
            {"name": "", "slug": "e"},
            {
                "type": "string_pattern_mismatch",
                "loc": ["body", "name"],
                "msg": f"String should match pattern '{NAME_PATTERN}'",
                "input": "",
                "ctx": {"pattern": NAME_PATTERN},
            },
        ),
        (
            {"name": "Ab", "slug": "A_b"},
            {
                "type": "value_error",
                "loc": ["body", "slug"],
                "msg": BAD_SLUG,
                "input": "A_b",
                "ctx": {"error": {}},
            },
        ),
        (
            {"name": "Ab", "slug": "ab", "is_protected": True},
            {
                "type": "extra_forbidden",
                "loc": ["body", "is_protected"],
                "msg": "Extra inputs are not permitted",
                "input": True,
            },
        ),
        (
            {"name": "Ab"},
            {
                "type": "missing",
                "loc": ["body", "slug"],
                "msg": "Field required",
                "input": {"name": "Ab"},
            },
        ),
    ],
)
async def test_invalid_types_are_prefects_422(
    client: httpx.AsyncClient, sent: dict[str, Any], detail: dict[str, Any]
) -> None:
    response = await client.post("/block_types/", json=sent)
    assert (response.status_code, response.json()) == (422, invalid(detail, sent))


async def test_slug_and_name_edge_cases_prefect_accepts(client: httpx.AsyncClient) -> None:
    """Prefect's slug rule lets the empty slug and one trailing newline through."""
    for slug in ["", "trailing\n"]:
        response = await client.post("/block_types/", json={"name": "Edge", "slug": slug})
        assert response.status_code == 201, response.text
        assert response.json()["slug"] == slug
    assert (await client.get("/block_types/slug/")).json() == ROUTE_404  # empty: no route


@pytest.mark.parametrize("name", ["Prefect", "prefect-ish", "PREFECT Thing"])
async def test_names_starting_with_prefect_are_a_403(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/block_types/", json={"name": name, "slug": "p"})
    assert (response.status_code, response.json()) == (403, RESERVED_403)


async def test_a_taken_slug_is_a_409_naming_the_type(client: httpx.AsyncClient) -> None:
    await create_type(client, "taken")
    for name in ["Other Name", "Taken Too"]:
        response = await client.post("/block_types/", json={"name": name, "slug": "taken"})
        assert response.status_code == 409
        assert response.json() == {"detail": f'Block type with name "{name}" already exists'}


async def test_creating_an_identical_type_again_answers_it(client: httpx.AsyncClient) -> None:
    """deputy's difference: the same type sent twice (the SDK's read-then-create, from two
    workers at once) answers the stored type with 200 instead of Prefect's 409."""
    body = {"name": "Again", "slug": "again", "description": "a < b"}
    first = await client.post("/block_types/", json=body)
    second = await client.post("/block_types/", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    changed = await client.post("/block_types/", json={**body, "description": "other"})
    assert changed.status_code == 409


async def test_two_replicas_creating_one_type_at_once_both_succeed(
    client: httpx.AsyncClient, database: Database
) -> None:
    body = {"name": "Together", "slug": "together", "description": "a < b"}
    responses = await asyncio.wait_for(
        asyncio.gather(*(client.post("/block_types/", json=body) for _ in range(4))), 30
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert all(r.json() == responses[0].json() for r in responses)
    async with database.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(t.block_type))).scalar()
    assert count == 1


async def test_a_different_type_taking_the_slug_at_once_is_a_409(
    client: httpx.AsyncClient,
) -> None:
    bodies = [{"name": "One", "slug": "contested"}, {"name": "Two", "slug": "contested"}]
    responses = await asyncio.gather(*(client.post("/block_types/", json=b) for b in bodies))
    assert sorted(r.status_code for r in responses) == [201, 409]
    loser = next(r for r in responses if r.status_code == 409)
    winner = next(r for r in responses if r.status_code == 201).json()["name"]
    loser_name = "Two" if winner == "One" else "One"
    assert loser.json() == {"detail": f'Block type with name "{loser_name}" already exists'}


# --- hostile text --------------------------------------------------------------------------


async def test_text_postgresql_cannot_store_is_a_clear_422(
    client: httpx.AsyncClient, test_databases: DatabaseBackends
) -> None:
    response = await client.post("/block_types/", json={"name": "x\u0000y", "slug": "nul"})
    if test_databases.is_postgres:
        assert response.status_code == 422
        assert "NUL" in response.json()["detail"]
    else:
        assert (response.status_code, response.json()["name"]) == (201, "x\u0000y")
    lone = b'{"name": "a\\ud800", "slug": "lone"}'
    refused = await client.post(
        "/block_types/", content=lone, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 422
    assert refused.json()["exception_detail"][0]["type"] == "string_unicode"
    slug_nul = await client.get("/block_types/slug/a%00b")
    assert slug_nul.status_code in (404, 422)  # PostgreSQL cannot even compare it


async def test_huge_descriptions_are_stored_whole(client: httpx.AsyncClient) -> None:
    text = "é" * 200_000
    created = await create_type(client, "big", description=text, code_example=text)
    assert created["description"] == text
    response = await client.patch(f"/block_types/{created['id']}", json={"description": "s"})
    assert response.status_code == 204


# --- reads ---------------------------------------------------------------------------------


async def test_missing_types_are_prefects_404(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/block_types/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND_404)
    by_slug = await client.get("/block_types/slug/nope")
    assert (by_slug.status_code, by_slug.json()) == (404, NOT_FOUND_404)
    malformed = await client.get("/block_types/not-a-uuid")
    assert (malformed.status_code, malformed.json()) == (404, ROUTE_404)


# --- update --------------------------------------------------------------------------------


async def test_update_answers_204_and_writes_the_keys_sent(client: httpx.AsyncClient) -> None:
    created = await create_type(client, "upd", description="old", logo_url="http://l")
    url = f"/block_types/{created['id']}"
    response = await client.patch(url, json={"description": "a < b", "logo_url": " http://z "})
    assert (response.status_code, response.content) == (204, b"")
    after = (await client.get(url)).json()
    assert (after["description"], after["logo_url"]) == ("a < b", "http://z")
    assert after["updated"] > created["updated"]
    response = await client.patch(url, json={"code_example": None, "logo_url": None})
    assert response.status_code == 204
    assert (await client.get(url)).json()["logo_url"] is None


async def test_update_refuses_what_prefect_refuses(client: httpx.AsyncClient) -> None:
    created = await create_type(client, "strict")
    url = f"/block_types/{created['id']}"
    response = await client.patch(url, json={"name": "x"})
    assert response.status_code == 422
    assert response.json() == invalid(
        {
            "type": "extra_forbidden",
            "loc": ["body", "name"],
            "msg": "Extra inputs are not permitted",
            "input": "x",
        },
        {"name": "x"},
    )
    response = await client.patch(url, json={"description": 5})
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["type"] == "string_type"
    missing = await client.patch(f"/block_types/{uuid.uuid4()}", json={})
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND_404)


async def test_protected_types_may_be_updated_but_not_deleted(
    client: httpx.AsyncClient, database: Database
) -> None:
    created = await create_type(client, "system")
    await protect(database, created["id"])
    url = f"/block_types/{created['id']}"
    response = await client.patch(url, json={"description": "changed"})
    assert response.status_code == 204  # Prefect 3.9.1 lets a PATCH through
    assert (await client.get(url)).json()["description"] == "changed"
    refused = await client.delete(url)
    assert (refused.status_code, refused.json()) == (403, PROTECTED_403)
    assert (await client.get(url)).status_code == 200


# --- delete --------------------------------------------------------------------------------


async def test_delete_answers_204_then_404(client: httpx.AsyncClient) -> None:
    created = await create_type(client, "gone")
    schema = await client.post(
        "/block_schemas/", json={"fields": {"title": "Gone"}, "block_type_id": created["id"]}
    )
    assert schema.status_code == 201
    response = await client.delete(f"/block_types/{created['id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert (await client.get(f"/block_schemas/{schema.json()['id']}")).status_code == 404
    again = await client.delete(f"/block_types/{created['id']}")
    assert (again.status_code, again.json()) == (404, NOT_FOUND_404)


async def test_a_types_life_emits_prefects_events(client: httpx.AsyncClient) -> None:
    created = await create_type(client, "evented", description="d")
    await client.patch(f"/block_types/{created['id']}", json={"description": "e"})
    await client.delete(f"/block_types/{created['id']}")
    resource = f"prefect.block-type.{created['id']}"
    page = await read_events(client, {"order": "ASC", "resource": {"id": [resource]}})
    events = page["events"]
    assert [e["event"] for e in events] == [
        "prefect.block-type.created",
        "prefect.block-type.updated",
        "prefect.block-type.deleted",
    ]
    assert events[0]["resource"] == {
        "prefect.resource.id": resource,
        "prefect.resource.name": "Evented",
    }
    assert events[0]["payload"] == {
        "name": "Evented",
        "slug": "evented",
        "logo_url": None,
        "documentation_url": None,
        "description": "d",
        "code_example": None,
        "is_protected": False,
    }
    assert events[1]["payload"]["description"] == "e"


# --- filter --------------------------------------------------------------------------------


async def slugs(client: httpx.AsyncClient, body: Any = None) -> list[str]:
    response = await client.post("/block_types/filter", json=body)
    assert response.status_code == 200, response.text
    return [row["slug"] for row in response.json()]


async def test_filter_sorts_by_name_and_pages(client: httpx.AsyncClient) -> None:
    for slug, name in [("z", "Zed"), ("a", "Alpha"), ("ab", "Alphabet"), ("m", "Mid")]:
        await create_type(client, slug, name=name)
    assert await slugs(client) == ["a", "ab", "m", "z"]
    assert await slugs(client, {"limit": 2, "offset": 1}) == ["ab", "m"]
    assert await slugs(client, {"block_types": {"name": {"like_": "alph"}}}) == ["a", "ab"]
    assert await slugs(client, {"block_types": {"slug": {"any_": ["z", "m"]}}}) == ["m", "z"]
    assert await slugs(client, {"block_types": None, "limit": None, "unknown": 1}) == [
        "a", "ab", "m", "z",
    ]  # fmt: skip
    full = (await client.post("/block_types/filter", json={"limit": 1})).json()
    assert full == [(await client.get("/block_types/slug/a")).json()]


async def test_filter_by_schema_capabilities(client: httpx.AsyncClient) -> None:
    for slug, capabilities in [("s", ["read-path", "write-path"]), ("r", ["read-path"])]:
        created = await create_type(client, slug)
        body = {"fields": {"title": slug}, "block_type_id": created["id"]}
        await client.post("/block_schemas/", json={**body, "capabilities": capabilities})
    await create_type(client, "n")
    wanted = {"block_schemas": {"block_capabilities": {"all_": ["write-path"]}}}
    assert await slugs(client, wanted) == ["s"]
    read = {"block_schemas": {"block_capabilities": {"all_": ["read-path"]}}}
    assert await slugs(client, read) == ["r", "s"]


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        ({"limit": 201}, 422, {"detail": "Invalid limit: must be less than or equal to 200."}),
        ({"limit": -1}, 422, {"detail": "Invalid limit: must be greater than or equal to 0."}),
        (
            {"offset": -1},
            422,
            invalid(
                {
                    "type": "greater_than_equal",
                    "loc": ["body", "offset"],
                    "msg": "Input should be greater than or equal to 0",
                    "input": -1,
                    "ctx": {"ge": 0},
                },
                {"offset": -1},
            ),
        ),
        (
            {"block_types": {"operator": "or_"}},
            422,
            invalid(
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "block_types", "operator"],
                    "msg": "Extra inputs are not permitted",
                    "input": "or_",
                },
                {"block_types": {"operator": "or_"}},
            ),
        ),
    ],
)
async def test_filter_refuses_what_prefect_refuses(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, answer: dict[str, Any]
) -> None:
    response = await client.post("/block_types/filter", json=body)
    assert (response.status_code, response.json()) == (status, answer)
