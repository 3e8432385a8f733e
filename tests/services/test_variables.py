"""Variables: CRUD by id and by name, name and value rules, filters, sorts, counts.

Expected bodies are the ones a real Prefect 3.9.1 server answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx

from databases import DatabaseBackends
from deputy.db.engine import Database
from deputy.services.variables import read_variable_values
from factories import unique

INTEGRITY_409 = {
    "detail": "Data integrity conflict. This usually means a unique or foreign key constraint "
    "was violated. See server logs for details."
}
NOT_FOUND_404 = {"detail": "Variable not found."}
BAD_NAME_MSG = (
    "Value error, Variable name must only contain lowercase letters, numbers, and dashes or"
    " underscores."
)
TOO_BIG_MSG = "Value error, Variable value must be less than 5000 characters"


def var_name(prefix: str = "var") -> str:
    return unique(prefix).replace("-", "_")


async def create_variable(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": var_name(), "value": 1, **fields}
    response = await client.post("/variables/", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def timestamp(text: str) -> dt.datetime:
    """Compare instants, not strings: a zero fraction of a second is left out of the text."""
    return dt.datetime.fromisoformat(text)


def validation_error(
    loc: list[Any], msg: str, value: Any, request_body: Any, kind: str = "value_error"
) -> dict[str, Any]:
    detail: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if kind == "value_error":
        detail["ctx"] = {"error": {}}
    return {
        "exception_message": "Invalid request received.",
        "exception_detail": [detail],
        "request_body": request_body,
    }


# --- create --------------------------------------------------------------------------------


async def test_create_variable_returns_201_with_the_variable(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/variables/", json={"name": "my_var", "value": {"a": 1}, "tags": ["t"]}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "created", "updated", "name", "value", "tags"}
    assert (body["name"], body["value"], body["tags"]) == ("my_var", {"a": 1}, ["t"])
    assert body["created"].endswith("Z")
    uuid.UUID(body["id"])


async def test_create_variable_accepts_every_json_value_type(client: httpx.AsyncClient) -> None:
    for value in ["hello", 7, 1.0, 1.5, True, None, [1, "a"], {"k": [1, 2]}, 2**63]:
        created = await create_variable(client, value=value)
        assert created["value"] == value
        assert type(created["value"]) is type(value)


async def test_number_values_read_back_through_every_route(
    client: httpx.AsyncClient, test_databases: DatabaseBackends
) -> None:
    """SQLite hands numbers stored in a JSON column back as native numbers, not JSON text."""
    for value in [0, 1.5, 2**62 + 1, -7, 1e300]:
        created = await create_variable(client, value=value)
        by_name = (await client.get(f"/variables/name/{created['name']}")).json()
        listed = await client.post(
            "/variables/filter", json={"variables": {"name": {"any_": [created["name"]]}}}
        )
        expected = value
        if value == 1e300 and test_databases.is_postgres:
            # JSONB writes 1e300 as 1 and 300 zeros, which reads back as that integer (as in
            # Prefect, whose JSON columns are read by json.loads).
            expected = 10**300
        assert by_name["value"] == expected == listed.json()[0]["value"]


async def test_create_echoes_the_value_as_sent_while_sqlite_reads_1_0_back_as_1(
    client: httpx.AsyncClient, sqlite_only: None
) -> None:
    created = await create_variable(client, value=1.0)
    assert isinstance(created["value"], float)
    read = (await client.get(f"/variables/{created['id']}")).json()
    assert read["value"] == 1
    assert isinstance(read["value"], int)


async def test_create_variable_tags_default_to_empty(client: httpx.AsyncClient) -> None:
    created = await create_variable(client)
    assert created["tags"] == []


async def test_create_duplicate_name_is_409_with_prefect_message(
    client: httpx.AsyncClient,
) -> None:
    await create_variable(client, name="var_dup")
    response = await client.post("/variables/", json={"name": "var_dup", "value": 2})
    assert response.status_code == 409
    assert response.json() == {"detail": "A variable with the name 'var_dup' already exists."}


async def test_concurrent_creates_of_one_name_give_one_201_and_one_409(
    client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(client.post("/variables/", json={"name": "racy", "value": i}) for i in range(5))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    assert (await client.post("/variables/count", json={})).json() == 1


async def test_names_with_uppercase_spaces_or_punctuation_are_refused(
    client: httpx.AsyncClient,
) -> None:
    for name in ["Bad Name!", "Upper", "a.b", "a/b", "é"]:
        body = {"name": name, "value": 1}
        response = await client.post("/variables/", json=body)
        assert response.status_code == 422
        assert response.json() == validation_error(["body", "name"], BAD_NAME_MSG, name, body)


async def test_names_with_dashes_underscores_digits_and_the_empty_name_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    for name in ["a-b", "a_b", "0-9_z", ""]:
        created = await create_variable(client, name=name)
        assert created["name"] == name


async def test_name_of_256_characters_is_too_long(client: httpx.AsyncClient) -> None:
    body = {"name": "a" * 256, "value": 1}
    response = await client.post("/variables/", json=body)
    assert response.status_code == 422
    assert response.json()["exception_detail"] == [
        {
            "type": "too_long",
            "loc": ["body", "name"],
            "msg": "Value should have at most 255 items after validation, not 256",
            "input": "a" * 256,
            "ctx": {"field_type": "Value", "max_length": 255, "actual_length": 256},
        }
    ]
    assert (await client.post("/variables/", json={"name": "b" * 255, "value": 1})).is_success


async def test_long_name_with_bad_characters_reports_the_characters(
    client: httpx.AsyncClient,
) -> None:
    body = {"name": "A" * 300, "value": 1}
    response = await client.post("/variables/", json=body)
    assert response.json() == validation_error(["body", "name"], BAD_NAME_MSG, "A" * 300, body)


async def test_value_of_5000_json_bytes_passes_and_5001_is_refused(
    client: httpx.AsyncClient,
) -> None:
    ok = await create_variable(client, value="x" * 4998)  # '"' + 4998 + '"' = 5000
    assert len(ok["value"]) == 4998
    body = {"name": "big", "value": "x" * 4999}
    response = await client.post("/variables/", json=body)
    assert response.status_code == 422
    assert response.json() == validation_error(["body", "value"], TOO_BIG_MSG, "x" * 4999, body)


async def test_value_limit_counts_utf8_bytes_not_characters(client: httpx.AsyncClient) -> None:
    await create_variable(client, value="é" * 2499)  # 4998 bytes + 2 quotes
    response = await client.post("/variables/", json={"name": "utf", "value": "é" * 2500})
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["msg"] == TOO_BIG_MSG


async def test_oversized_dict_value_is_refused(client: httpx.AsyncClient) -> None:
    body = {"name": "bigd", "value": {"k": "y" * 6000}}
    response = await client.post("/variables/", json=body)
    assert response.json() == validation_error(["body", "value"], TOO_BIG_MSG, body["value"], body)


async def test_integer_beyond_64_bits_is_not_serializable(client: httpx.AsyncClient) -> None:
    body = {"name": "huge", "value": 2**70}
    response = await client.post("/variables/", json=body)
    assert response.status_code == 422
    assert response.json() == validation_error(
        ["body", "value"], "Value error, Variable value must be serializable to JSON", 2**70, body
    )


async def test_create_requires_value_and_refuses_unknown_keys_and_bad_tags(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.post("/variables/", json={"name": "noval"})
    assert missing.json()["exception_detail"] == [
        {"type": "missing", "loc": ["body", "value"], "msg": "Field required",
         "input": {"name": "noval"}}
    ]  # fmt: skip
    extra = await client.post("/variables/", json={"name": "x", "value": 1, "bogus": 2})
    assert extra.json()["exception_detail"][0]["type"] == "extra_forbidden"
    body = {"name": "tg", "value": 1, "tags": "t"}
    tags = await client.post("/variables/", json=body)
    assert tags.json() == validation_error(
        ["body", "tags"], "Input should be a valid list", "t", body, kind="list_type"
    )


# --- read ----------------------------------------------------------------------------------


async def test_read_variable_by_id_and_by_name(client: httpx.AsyncClient) -> None:
    created = await create_variable(client, value={"a": [1]}, tags=["x"])
    by_id = await client.get(f"/variables/{created['id']}")
    by_name = await client.get(f"/variables/name/{created['name']}")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == created == by_name.json()


async def test_unknown_variable_is_404_and_malformed_id_does_not_match(
    client: httpx.AsyncClient,
) -> None:
    by_id = await client.get(f"/variables/{uuid.uuid4()}")
    by_name = await client.get("/variables/name/nope_nope")
    malformed = await client.get("/variables/xyz")
    assert (by_id.status_code, by_id.json()) == (404, NOT_FOUND_404)
    assert (by_name.status_code, by_name.json()) == (404, NOT_FOUND_404)
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


# --- update --------------------------------------------------------------------------------


async def test_patch_by_id_writes_only_the_keys_sent_and_bumps_updated(
    client: httpx.AsyncClient,
) -> None:
    created = await create_variable(client, value=1, tags=["t"])
    response = await client.patch(f"/variables/{created['id']}", json={"value": [1, 2, 3]})
    assert (response.status_code, response.content) == (204, b"")
    after = (await client.get(f"/variables/{created['id']}")).json()
    assert (after["value"], after["tags"], after["name"]) == ([1, 2, 3], ["t"], created["name"])
    assert after["created"] == created["created"]
    assert timestamp(after["updated"]) > timestamp(created["updated"])


async def test_patch_by_name_updates_value_and_tags(client: httpx.AsyncClient) -> None:
    created = await create_variable(client)
    response = await client.patch(
        f"/variables/name/{created['name']}", json={"value": "v3", "tags": ["u"]}
    )
    assert response.status_code == 204
    after = (await client.get(f"/variables/{created['id']}")).json()
    assert (after["value"], after["tags"]) == ("v3", ["u"])


async def test_patch_value_null_stores_null(client: httpx.AsyncClient) -> None:
    created = await create_variable(client, value=5)
    assert (await client.patch(f"/variables/{created['id']}", json={"value": None})).is_success
    assert (await client.get(f"/variables/{created['id']}")).json()["value"] is None


async def test_patch_empty_body_still_bumps_updated(client: httpx.AsyncClient) -> None:
    created = await create_variable(client)
    assert (await client.patch(f"/variables/{created['id']}", json={})).status_code == 204
    after = (await client.get(f"/variables/{created['id']}")).json()
    assert timestamp(after["updated"]) > timestamp(created["updated"])
    assert {k: v for k, v in after.items() if k != "updated"} == {
        k: v for k, v in created.items() if k != "updated"
    }


async def test_rename_by_name_then_back(client: httpx.AsyncClient) -> None:
    created = await create_variable(client)
    renamed = created["name"] + "_r"
    first = await client.patch(f"/variables/name/{created['name']}", json={"name": renamed})
    assert first.status_code == 204
    assert (await client.get(f"/variables/name/{renamed}")).json()["id"] == created["id"]
    assert (await client.get(f"/variables/name/{created['name']}")).status_code == 404
    back = await client.patch(f"/variables/name/{renamed}", json={"name": created["name"]})
    assert back.status_code == 204


async def test_rename_onto_a_taken_name_is_the_generic_integrity_409(
    client: httpx.AsyncClient,
) -> None:
    first = await create_variable(client)
    second = await create_variable(client)
    by_name = await client.patch(f"/variables/name/{second['name']}", json={"name": first["name"]})
    by_id = await client.patch(f"/variables/{second['id']}", json={"name": first["name"]})
    assert (by_name.status_code, by_name.json()) == (409, INTEGRITY_409)
    assert (by_id.status_code, by_id.json()) == (409, INTEGRITY_409)
    assert (await client.get(f"/variables/{second['id']}")).json() == second


async def test_patch_name_or_tags_to_null_is_the_generic_integrity_409(
    client: httpx.AsyncClient,
) -> None:
    created = await create_variable(client, tags=["x"])
    for body in ({"tags": None}, {"name": None}):
        response = await client.patch(f"/variables/{created['id']}", json=body)
        assert (response.status_code, response.json()) == (409, INTEGRITY_409)
    assert (await client.get(f"/variables/{created['id']}")).json() == created
    missing = await client.patch(f"/variables/{uuid.uuid4()}", json={"tags": None})
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND_404)


async def test_patch_unknown_variable_is_404(client: httpx.AsyncClient) -> None:
    by_id = await client.patch(f"/variables/{uuid.uuid4()}", json={"value": 1})
    by_name = await client.patch("/variables/name/nope_nope", json={"value": 1})
    assert (by_id.status_code, by_id.json()) == (404, NOT_FOUND_404)
    assert (by_name.status_code, by_name.json()) == (404, NOT_FOUND_404)


async def test_patch_applies_the_name_and_value_rules_and_forbids_unknown_keys(
    client: httpx.AsyncClient,
) -> None:
    created = await create_variable(client)
    path = f"/variables/name/{created['name']}"
    too_big = {"value": "x" * 6000}
    response = await client.patch(path, json=too_big)
    assert response.json() == validation_error(["body", "value"], TOO_BIG_MSG, "x" * 6000, too_big)
    bad_name = await client.patch(path, json={"name": "Bad"})
    assert bad_name.json() == validation_error(
        ["body", "name"], BAD_NAME_MSG, "Bad", {"name": "Bad"}
    )
    extra = await client.patch(path, json={"bogus": 1})
    assert extra.json()["exception_detail"][0]["type"] == "extra_forbidden"


# --- delete --------------------------------------------------------------------------------


async def test_delete_by_id_then_404(client: httpx.AsyncClient) -> None:
    created = await create_variable(client)
    response = await client.delete(f"/variables/{created['id']}")
    assert (response.status_code, response.content) == (204, b"")
    again = await client.delete(f"/variables/{created['id']}")
    assert (again.status_code, again.json()) == (404, NOT_FOUND_404)
    assert (await client.get(f"/variables/{created['id']}")).status_code == 404


async def test_delete_by_name_then_404(client: httpx.AsyncClient) -> None:
    created = await create_variable(client)
    assert (await client.delete(f"/variables/name/{created['name']}")).status_code == 204
    again = await client.delete(f"/variables/name/{created['name']}")
    assert (again.status_code, again.json()) == (404, NOT_FOUND_404)


# --- filter and count ----------------------------------------------------------------------


async def _seed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Three variables, created in the order b, a, c so creation and name orders differ."""
    return [
        await create_variable(client, name="b_two", tags=["y"]),
        await create_variable(client, name="a_one", tags=["x", "y"]),
        await create_variable(client, name="c3"),
    ]


async def _names(client: httpx.AsyncClient, body: dict[str, Any] | None) -> list[str]:
    response = await client.post("/variables/filter", json=body)
    assert response.status_code == 200, response.text
    return [v["name"] for v in response.json()]


async def test_filter_defaults_to_name_ascending_with_or_without_body(
    client: httpx.AsyncClient,
) -> None:
    seeded = await _seed(client)
    assert await _names(client, {}) == ["a_one", "b_two", "c3"]
    assert await _names(client, None) == ["a_one", "b_two", "c3"]
    listed = (await client.post("/variables/filter", json={})).json()
    assert listed[0] == seeded[1]


async def test_filter_sorts(client: httpx.AsyncClient) -> None:
    await _seed(client)
    assert await _names(client, {"sort": "NAME_DESC"}) == ["c3", "b_two", "a_one"]
    assert await _names(client, {"sort": "CREATED_DESC"}) == ["c3", "a_one", "b_two"]
    await client.patch("/variables/name/a_one", json={"value": 9})
    assert (await _names(client, {"sort": "UPDATED_DESC"}))[0] == "a_one"
    bogus = await client.post("/variables/filter", json={"sort": "BOGUS"})
    assert bogus.status_code == 422
    assert bogus.json()["exception_detail"][0]["type"] == "enum"


async def test_filter_by_name_any(client: httpx.AsyncClient) -> None:
    await _seed(client)
    body = {"variables": {"name": {"any_": ["c3", "a_one", "zzz"]}}}
    assert await _names(client, body) == ["a_one", "c3"]


async def test_filter_by_name_like_is_case_insensitive_substring_with_sql_wildcards(
    client: httpx.AsyncClient,
) -> None:
    await _seed(client)
    assert await _names(client, {"variables": {"name": {"like_": "ONE"}}}) == ["a_one"]
    assert await _names(client, {"variables": {"name": {"like_": "_t"}}}) == ["b_two"]
    assert await _names(client, {"variables": {"name": {"like_": "%"}}}) == [
        "a_one",
        "b_two",
        "c3",
    ]


async def test_filter_by_tags_all_and_is_null(client: httpx.AsyncClient) -> None:
    await _seed(client)
    assert await _names(client, {"variables": {"tags": {"all_": ["y"]}}}) == ["a_one", "b_two"]
    assert await _names(client, {"variables": {"tags": {"all_": ["x", "y"]}}}) == ["a_one"]
    assert await _names(client, {"variables": {"tags": {"is_null_": True}}}) == ["c3"]
    assert await _names(client, {"variables": {"tags": {"is_null_": False}}}) == [
        "a_one",
        "b_two",
    ]


async def test_filter_by_id_and_or_operator(client: httpx.AsyncClient) -> None:
    seeded = await _seed(client)
    by_id = {"variables": {"id": {"any_": [seeded[2]["id"]]}}}
    assert await _names(client, by_id) == ["c3"]
    either = {
        "variables": {
            "operator": "or_",
            "id": {"any_": [seeded[2]["id"]]},
            "name": {"any_": ["b_two"]},
        }
    }
    assert await _names(client, either) == ["b_two", "c3"]


async def test_filter_offset_and_limit(client: httpx.AsyncClient) -> None:
    await _seed(client)
    assert await _names(client, {"offset": 1, "limit": 1}) == ["b_two"]
    assert await _names(client, {"limit": 0}) == []


async def test_filter_limit_above_200_or_below_0_is_refused(client: httpx.AsyncClient) -> None:
    high = await client.post("/variables/filter", json={"limit": 201})
    low = await client.post("/variables/filter", json={"limit": -1})
    assert (high.status_code, high.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    assert (low.status_code, low.json()) == (
        422,
        {"detail": "Invalid limit: must be greater than or equal to 0."},
    )


async def test_filter_ignores_unknown_top_level_keys_but_refuses_unknown_filter_keys(
    client: httpx.AsyncClient,
) -> None:
    await _seed(client)
    assert await _names(client, {"bogus": 1, "limit": 1}) == ["a_one"]
    body: dict[str, Any]
    for body in (
        {"variables": {"bogus": 1}},
        {"variables": {"tags": {"any_": ["y"]}}},
        {"variables": {"id": {"not_any_": []}}},
    ):
        response = await client.post("/variables/filter", json=body)
        assert response.status_code == 422
        assert response.json()["exception_detail"][0]["type"] == "extra_forbidden"


async def test_count_with_and_without_filter(client: httpx.AsyncClient) -> None:
    assert (await client.post("/variables/count")).json() == 0
    await _seed(client)
    assert (await client.post("/variables/count", json={})).json() == 3
    assert (await client.post("/variables/count", json={"bogus": 1})).json() == 3
    tagged = {"variables": {"tags": {"all_": ["y"]}}}
    assert (await client.post("/variables/count", json=tagged)).json() == 2
    bad = await client.post("/variables/count", json={"variables": {"bogus": 1}})
    assert bad.status_code == 422


# --- read_variable_values (parameter hydration) --------------------------------------------


async def test_read_variable_values_returns_existing_names_only(
    client: httpx.AsyncClient, database: Database
) -> None:
    await create_variable(client, name="v_dict", value={"a": 1})
    await create_variable(client, name="v_null", value=None)
    await create_variable(client, name="v_str", value="s")
    async with database.read() as conn:
        values = await read_variable_values(conn, {"v_dict", "v_null", "missing"})
        empty = await read_variable_values(conn, [])
    assert values == {"v_dict": {"a": 1}, "v_null": None}
    assert empty == {}
