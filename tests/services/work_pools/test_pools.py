"""Work pools: Prefect 3.9.1's bodies, codes, reserved names, templates and statuses."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.errors import NotFound
from deputy.services.common import now
from deputy.services.work_pools import pools as work_pools
from factories import create_queue, create_work_pool, queues_of, unique

EMPTY_STORAGE = {
    "bundle_upload_step": None,
    "bundle_execution_step": None,
    "default_result_storage_block_id": None,
}

#: The process worker's default base job template (Prefect 3.9.1), as workers send it.
PROCESS_TEMPLATE: dict[str, Any] = {
    "job_configuration": {
        "command": "{{ command }}",
        "env": "{{ env }}",
        "labels": "{{ labels }}",
        "name": "{{ name }}",
        "stream_output": "{{ stream_output }}",
        "working_dir": "{{ working_dir }}",
    },
    "variables": {
        "properties": {
            "name": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "title": "Name",
            },
            "env": {
                "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "title": "Environment Variables",
                "type": "object",
            },
            "labels": {
                "additionalProperties": {"type": "string"},
                "title": "Labels",
                "type": "object",
            },
            "command": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "title": "Command",
            },
            "stream_output": {"default": True, "title": "Stream Output", "type": "boolean"},
            "working_dir": {
                "anyOf": [{"format": "path", "type": "string"}, {"type": "null"}],
                "default": None,
                "title": "Working Directory",
            },
        },
        "type": "object",
    },
}


# --- pools --------------------------------------------------------------------------------


async def test_create_work_pool_answers_prefect_shape_with_a_default_queue(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/work_pools/", json={"name": "pool-a", "type": "process"})
    assert response.status_code == 201
    pool = response.json()
    assert set(pool) == {
        "id", "created", "updated", "name", "description", "type", "base_job_template",
        "is_paused", "concurrency_limit", "status", "default_queue_id",
        "storage_configuration", "active_slots",
    }  # fmt: skip
    assert {k: v for k, v in pool.items() if k not in {"id", "created", "updated"}} == {
        "name": "pool-a",
        "description": None,
        "type": "process",
        "base_job_template": {},
        "is_paused": False,
        "concurrency_limit": None,
        "status": "NOT_READY",
        "default_queue_id": pool["default_queue_id"],
        "storage_configuration": EMPTY_STORAGE,
        "active_slots": None,
    }
    assert pool["created"].endswith("Z")
    assert (await client.get("/work_pools/pool-a")).json() == pool
    [default] = await queues_of(client, "pool-a")
    assert default["id"] == pool["default_queue_id"]
    assert {k: v for k, v in default.items() if k not in {"id", "created", "updated"}} == {
        "name": "default",
        "description": "The work pool's default queue.",
        "is_paused": False,
        "concurrency_limit": None,
        "priority": 1,
        "work_pool_id": pool["id"],
        "filter": None,
        "last_polled": None,
        "work_pool_name": "pool-a",
        "status": "NOT_READY",
        "active_slots": None,
    }


async def test_pool_without_type_is_an_agent_pool_with_null_status(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/work_pools/", json={"name": unique("agent")})
    assert response.status_code == 201
    assert (response.json()["type"], response.json()["status"]) == ("prefect-agent", None)
    name = response.json()["name"]
    assert (await client.patch(f"/work_pools/{name}", json={"is_paused": True})).status_code == 204
    paused = (await client.get(f"/work_pools/{name}")).json()
    assert (paused["is_paused"], paused["status"]) == (True, None)


async def test_paused_pool_with_a_limit_reports_paused_and_zero_active_slots(
    client: httpx.AsyncClient,
) -> None:
    template = {
        "job_configuration": {"a": "{{ a }}"},
        "variables": {"properties": {"a": {"type": "string"}}},
    }
    pool = await create_work_pool(
        client,
        type="kubernetes",
        description="desc",
        is_paused=True,
        concurrency_limit=5,
        base_job_template=template,
        storage_configuration={"bundle_upload_step": {"a": 1}},
    )
    assert pool["status"] == "PAUSED"
    assert pool["active_slots"] == 0
    assert pool["base_job_template"] == template
    assert pool["storage_configuration"] == {**EMPTY_STORAGE, "bundle_upload_step": {"a": 1}}


async def test_duplicate_pool_name_is_409(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    response = await client.post("/work_pools/", json={"name": pool["name"], "type": "process"})
    assert (response.status_code, response.json()) == (
        409,
        {"detail": "A work pool with this name already exists."},
    )


@pytest.mark.parametrize("name", ["prefect-x", "Prefect", "prefect", "PREFECT-y"])
async def test_pool_names_starting_with_prefect_are_reserved(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.post("/work_pools/", json={"name": name, "type": "process"})
    assert (response.status_code, response.json()) == (
        403,
        {"detail": "Work pools starting with 'Prefect' are reserved for internal use."},
    )


async def test_empty_ish_and_banned_character_pool_names_are_422(
    client: httpx.AsyncClient,
) -> None:
    empty = await client.post("/work_pools/", json={"name": '""', "type": "process"})
    assert empty.status_code == 422
    assert empty.json()["exception_detail"] == [
        {
            "type": "value_error",
            "loc": ["body", "name"],
            "msg": "Value error, name cannot be an empty string",
            "input": '""',
            "ctx": {"error": {}},
        }
    ]
    slash = await client.post("/work_pools/", json={"name": "a/b", "type": "process"})
    assert slash.status_code == 422
    assert slash.json()["exception_detail"][0]["type"] == "string_pattern_mismatch"


async def test_base_job_template_needs_job_configuration_and_variables(
    client: httpx.AsyncClient,
) -> None:
    template = {"job_configuration": {"a": "{{ a }}"}}
    response = await client.post(
        "/work_pools/", json={"name": "p", "type": "process", "base_job_template": template}
    )
    assert response.status_code == 422
    assert response.json()["exception_detail"] == [
        {
            "type": "value_error",
            "loc": ["body", "base_job_template"],
            "msg": "Value error, The `base_job_template` must contain both a "
            "`job_configuration` key and a `variables` key.",
            "input": template,
            "ctx": {"error": {}},
        }
    ]


async def test_base_job_template_placeholders_must_be_declared_variables(
    client: httpx.AsyncClient,
) -> None:
    template = {
        "job_configuration": {"a": "{{ a }}", "b": "{{b}} {{ c }}"},
        "variables": {"properties": {"a": {}}},
    }
    response = await client.post(
        "/work_pools/", json={"name": "p", "type": "process", "base_job_template": template}
    )
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["msg"] == (
        "Value error, The variables specified in the job configuration template must be "
        "present as properties in the variables schema. Your job configuration uses the "
        "following undeclared variable(s): b ,c."
    )


async def test_invalid_variables_schema_is_422_detail(client: httpx.AsyncClient) -> None:
    template = {
        "job_configuration": {"a": "{{ a }}"},
        "variables": {"type": "bogus", "properties": {"a": {}}},
    }
    response = await client.post(
        "/work_pools/", json={"name": "p", "type": "process", "base_job_template": template}
    )
    assert (response.status_code, response.json()) == (
        422,
        {"detail": "Invalid schema: 'bogus' is not valid under any of the given schemas"},
    )


async def test_invalid_job_variable_default_is_422_and_required_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    template = {
        "job_configuration": {"a": "{{ a }}"},
        "variables": {"properties": {"a": {"type": "integer", "default": "x"}}, "required": ["a"]},
    }
    response = await client.post(
        "/work_pools/", json={"name": "p", "type": "process", "base_job_template": template}
    )
    assert (response.status_code, response.json()) == (
        422,
        {
            "detail": "Validation failed for work pool's job variable defaults: Validation "
            "failed for field 'a'. Failure reason: 'x' is not of type 'integer'"
        },
    )
    template["variables"]["properties"]["a"]["default"] = 3  # type: ignore[index]
    ok = await client.post(
        "/work_pools/", json={"name": "p", "type": "process", "base_job_template": template}
    )
    assert ok.status_code == 201


async def test_block_reference_defaults_must_exist(client: httpx.AsyncClient) -> None:
    def template(ref: Any) -> dict[str, Any]:
        return {
            "job_configuration": {"a": "{{ a }}"},
            "variables": {"properties": {"a": {"type": "object", "default": {"$ref": ref}}}},
        }

    for ref in ({"block_document_id": "nope"}, {"block_document_id": str(uuid.uuid4())}):
        body = {"name": "p", "type": "process", "base_job_template": template(ref)}
        response = await client.post("/work_pools/", json=body)
        assert (response.status_code, response.json()) == (404, {"detail": "Block not found."})
    body = {"name": "p", "type": "process", "base_job_template": template({})}
    assert (await client.post("/work_pools/", json=body)).status_code == 201


async def test_process_worker_default_template_is_accepted(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client, base_job_template=PROCESS_TEMPLATE)
    assert pool["base_job_template"] == PROCESS_TEMPLATE


async def test_unknown_pool_is_404_with_prefect_text(client: httpx.AsyncClient) -> None:
    expected = (404, {"detail": 'Work pool "nope-pool" not found.'})
    read = await client.get("/work_pools/nope-pool")
    patch = await client.patch("/work_pools/nope-pool", json={"description": "x"})
    remove = await client.delete("/work_pools/nope-pool")
    for response in (read, patch, remove):
        assert (response.status_code, response.json()) == expected


async def test_update_pool_fields_and_pause_status(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    name = pool["name"]
    response = await client.patch(
        f"/work_pools/{name}", json={"description": "d2", "concurrency_limit": 3}
    )
    assert response.status_code == 204
    assert response.content == b""
    updated = (await client.get(f"/work_pools/{name}")).json()
    assert (updated["description"], updated["concurrency_limit"]) == ("d2", 3)
    assert (updated["status"], updated["active_slots"]) == ("NOT_READY", 0)
    assert updated["updated"] > pool["updated"]
    await client.patch(f"/work_pools/{name}", json={"is_paused": True})
    assert (await client.get(f"/work_pools/{name}")).json()["status"] == "PAUSED"
    await client.patch(f"/work_pools/{name}", json={"is_paused": False})
    assert (await client.get(f"/work_pools/{name}")).json()["status"] == "NOT_READY"


async def test_update_pool_refuses_unknown_fields(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    response = await client.patch(f"/work_pools/{pool['name']}", json={"type": "docker"})
    assert response.status_code == 422
    assert response.json() == {
        "exception_message": "Invalid request received.",
        "exception_detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "type"],
                "msg": "Extra inputs are not permitted",
                "input": "docker",
            }
        ],
        "request_body": {"type": "docker"},
    }


async def test_null_for_a_required_pool_column_is_integrity_409(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    response = await client.patch(f"/work_pools/{pool['name']}", json={"is_paused": None})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Data integrity conflict.")


async def test_reserved_pools_can_only_be_paused_or_limited_and_never_deleted(
    client: httpx.AsyncClient,
) -> None:
    patch = await client.patch("/work_pools/prefect-x", json={"description": "d"})
    assert (patch.status_code, patch.json()) == (
        403,
        {
            "detail": "Work pools starting with 'Prefect' are reserved for internal use "
            "and can only be updated to set concurrency limits or pause."
        },
    )
    allowed = await client.patch("/work_pools/prefect-x", json={"is_paused": True})
    assert (allowed.status_code, allowed.json()) == (
        404,
        {"detail": 'Work pool "prefect-x" not found.'},
    )
    remove = await client.delete("/work_pools/Prefect-x")
    assert (remove.status_code, remove.json()) == (
        403,
        {
            "detail": "Work pools starting with 'Prefect' are reserved for internal use "
            "and can not be deleted."
        },
    )


async def test_delete_pool_removes_its_queues(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    await create_queue(client, pool["name"], name="extra")
    response = await client.delete(f"/work_pools/{pool['name']}")
    assert (response.status_code, response.content) == (204, b"")
    assert (await client.get(f"/work_queues/{pool['default_queue_id']}")).status_code == 404
    assert (await client.post("/work_queues/filter", json={})).json() == []
    assert (await client.delete(f"/work_pools/{pool['name']}")).status_code == 404


async def test_filter_and_count_pools(client: httpx.AsyncClient) -> None:
    assert (await client.post("/work_pools/filter", json={})).json() == []
    names = sorted([unique("b"), unique("a"), unique("c")])
    for name in names:
        await create_work_pool(client, name=name, type="docker" if name[0] == "a" else "process")
    listed = await client.post("/work_pools/filter")
    assert [p["name"] for p in listed.json()] == names
    by_name = await client.post(
        "/work_pools/filter", json={"work_pools": {"name": {"any_": [names[1]]}}}
    )
    assert [p["name"] for p in by_name.json()] == [names[1]]
    paged = await client.post("/work_pools/filter", json={"limit": 1, "offset": 1, "bogus": 1})
    assert [p["name"] for p in paged.json()] == [names[1]]
    too_many = await client.post("/work_pools/filter", json={"limit": 201})
    assert (too_many.status_code, too_many.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    nested_bogus = await client.post("/work_pools/filter", json={"work_pools": {"bogus": 1}})
    assert nested_bogus.status_code == 422
    assert (await client.post("/work_pools/count")).json() == 3
    by_type = await client.post(
        "/work_pools/count", json={"work_pools": {"type": {"any_": ["process"]}}}
    )
    assert by_type.json() == 2


async def test_clients_up_to_3_3_7_do_not_get_default_result_storage_block_id(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    old = {"User-Agent": "prefect/3.3.7 (API 0.8.4)"}
    new = {"User-Agent": "prefect/3.3.8 (API 0.8.4)"}
    old_read = (await client.get(f"/work_pools/{pool['name']}", headers=old)).json()
    new_read = (await client.get(f"/work_pools/{pool['name']}", headers=new)).json()
    assert old_read["storage_configuration"] == {
        "bundle_upload_step": None,
        "bundle_execution_step": None,
    }
    assert new_read["storage_configuration"] == EMPTY_STORAGE


async def test_active_slots_count_pending_and_running_runs(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client, concurrency_limit=2)
    queue = await create_queue(client, pool["name"], name="limited", concurrency_limit=1)
    now = dt.datetime.now(dt.UTC)
    async with database.write() as conn:
        flow_id = uuid.uuid4()
        await conn.execute(t.flow.insert().values(id=flow_id, created=now, updated=now, name="f"))
        for state in ("RUNNING", "PENDING", "SCHEDULED"):
            await conn.execute(
                t.flow_run.insert().values(
                    id=uuid.uuid4(),
                    created=now,
                    updated=now,
                    name=f"run-{state}",
                    flow_id=flow_id,
                    work_queue_id=uuid.UUID(queue["id"]),
                    state_type=state,
                )
            )
    assert (await client.get(f"/work_pools/{pool['name']}")).json()["active_slots"] == 2
    read = await client.get(f"/work_pools/{pool['name']}/queues/limited")
    assert read.json()["active_slots"] == 2
    by_id = await client.get(f"/work_queues/{queue['id']}")
    assert by_id.json()["active_slots"] == 2


async def test_get_or_create_default_agent_pool_is_idempotent(
    client: httpx.AsyncClient, database: Database
) -> None:
    async with database.write() as conn:
        first = await work_pools.get_or_create_default_agent_pool(conn, now=now())
    async with database.write() as conn:
        again = await work_pools.get_or_create_default_agent_pool(conn, now=now())
    assert first.id == again.id
    pool = (await client.get("/work_pools/default-agent-pool")).json()
    assert (pool["type"], pool["status"], pool["default_queue_id"]) == (
        "prefect-agent",
        None,
        str(first.default_queue_id),
    )
    assert [q["name"] for q in await queues_of(client, "default-agent-pool")] == ["default"]


async def test_read_work_pool_by_name_raises_prefect_404(database: Database) -> None:
    async with database.read() as conn:
        with pytest.raises(NotFound) as raised:
            await work_pools.read_work_pool_by_name(conn, "nope")
    assert raised.value.body() == {"detail": 'Work pool "nope" not found.'}
