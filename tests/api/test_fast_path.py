"""The create_flow_run fast path (``deputy.api.fast_path``) answers what the FastAPI route
answers.

Every request is sent twice, to the app and to one built with the fast path off. Refusals must
be the same bytes;
created runs the same JSON once the values that differ from run to run (ids, names, times) are
masked. Each case also says which way it must take: served by the fast path, or handed on to
the route before any side effect.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount
from starlette.types import Message, Receive, Scope, Send

from deputy.api import deployments, fast_path
from deputy.app import create_api_app
from deputy.db.engine import Database
from deputy.schemas.deployments import DeploymentFlowRunCreate
from deputy.settings import Settings
from factories import create_deployment, create_work_pool

#: Values that differ between two runs created alike.
VOLATILE = {
    "id",
    "name",
    "created",
    "updated",
    "state_id",
    "timestamp",
    "expected_start_time",
    "next_scheduled_start_time",
    "estimated_start_time_delta",
    "flow_run_id",
    "scheduled_time",
}


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<varies>" if k in VOLATILE else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


@pytest.fixture
def ways(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which way each fast-path-enabled request took: "served" or "handed on"."""
    taken: list[str] = []
    validate = fast_path._valid_request

    def recording(body: bytes) -> DeploymentFlowRunCreate | None:
        request = validate(body)
        taken.append("handed on" if request is None else "served")
        return request

    monkeypatch.setattr(fast_path, "_valid_request", recording)
    return taken


BothWays = Callable[..., Awaitable[tuple[httpx.Response, httpx.Response]]]


@pytest.fixture
async def routed_client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same database through an app without the fast path, mounted alike."""
    root = FastAPI(openapi_url=None)
    root.mount("/api", create_api_app(settings, database, fast_path=False))
    transport = httpx.ASGITransport(app=root)
    async with httpx.AsyncClient(transport=transport, base_url="http://deputy.test/api") as c:
        yield c


@pytest.fixture
def both_ways(client: httpx.AsyncClient, routed_client: httpx.AsyncClient) -> BothWays:
    """``await both_ways(url, **request)``: the answers with the fast path on, then off."""

    async def send(url: str, **request: Any) -> tuple[httpx.Response, httpx.Response]:
        fast = await client.post(url, **request)
        routed = await routed_client.post(url, **request)
        assert fast.status_code == routed.status_code, (fast.text, routed.text)
        assert fast.headers.get("content-type") == routed.headers.get("content-type")
        return fast, routed

    return send


@pytest.fixture
def path(deployment: dict[str, Any]) -> str:
    return f"/deployments/{deployment['id']}/create_flow_run"


@pytest.fixture
async def deployment(client: httpx.AsyncClient) -> dict[str, Any]:
    pool = await create_work_pool(client)
    return await create_deployment(
        client,
        work_pool_name=pool["name"],
        parameters={"x": 1, "nested": {"a": [1, 2]}},
        parameter_openapi_schema={
            "type": "object",
            "properties": {"x": {"type": "integer"}, "y": {"type": "string"}},
        },
        enforce_parameter_schema=True,
        tags=["from-deployment"],
        job_variables={"image": "python:3.12"},
    )


async def test_created_runs_are_the_same(both_ways: BothWays, path: str, ways: list[str]) -> None:
    bodies: list[dict[str, Any]] = [
        {},
        {"parameters": {"x": 2, "y": "é☃"}, "tags": ["t"], "labels": {"k": "v"}},
        {
            "state": {
                "type": "SCHEDULED",
                "state_details": {"scheduled_time": "2031-01-01T00:00:00Z"},
            }
        },
        {"job_variables": {"env": {"A": "1"}}, "work_queue_name": "default"},
        {"parameters": {"x": 2**70}},  # beyond 64 bits: read by the standard library
    ]
    for body in bodies:
        fast, routed = await both_ways(path, json=body)
        assert fast.status_code == 201, fast.text
        assert masked(fast.json()) == masked(routed.json()), body
    assert ways == ["served"] * len(bodies)


async def test_an_idempotency_key_replays_the_same(
    client: httpx.AsyncClient, both_ways: BothWays, path: str, ways: list[str]
) -> None:
    first = await client.post(path, json={"idempotency_key": "k"})
    assert first.status_code == 201
    fast, routed = await both_ways(path, json={"idempotency_key": "k"})
    assert fast.status_code == 200
    assert fast.json()["id"] == routed.json()["id"] == first.json()["id"]
    assert masked(fast.json()) == masked(routed.json())
    assert ways == ["served", "served"]


async def test_answers_decided_by_the_service_are_the_same(
    both_ways: BothWays, path: str, ways: list[str]
) -> None:
    """Refusals are answered by the app's exception handlers, from inside the transaction."""
    cases: list[tuple[str, dict[str, Any], int]] = [
        (f"/deployments/{uuid.uuid4()}/create_flow_run", {}, 404),  # no such deployment
        (path, {"parameters": {"x": "not an integer"}}, 409),  # the schema is enforced
        (path, {"enforce_parameter_schema": False, "parameters": {"x": "any"}}, 201),
    ]
    for url, body, status in cases:
        fast, routed = await both_ways(url, json=body)
        assert fast.status_code == status, fast.text
        if status < 300:
            assert masked(fast.json()) == masked(routed.json()), body
        else:
            assert fast.content == routed.content, body
    assert ways == ["served"] * len(cases)


async def test_unusual_requests_are_handed_to_the_route(
    both_ways: BothWays, path: str, ways: list[str]
) -> None:
    """Whatever the route refuses while reading the request, it answers itself."""
    deep = b'{"parameters": {"p": ' + b"[" * 400 + b"]" * 400 + b"}}"
    cases: list[dict[str, Any]] = [
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"null", "headers": {"content-type": "application/json"}},
        {"content": b"", "headers": {"content-type": "application/json"}},
        {"json": {"no_such_field": 1}},  # extra="forbid"
        {"json": {"parameters": "not a dict"}},
        {"json": []},
        {"content": deep, "headers": {"content-type": "application/json"}},
    ]
    for request in cases:
        fast, routed = await both_ways(path, **request)
        assert fast.status_code == 422, fast.text
        assert fast.content == routed.content, request
    assert ways == ["handed on"] * len(cases)


async def test_requests_the_fast_path_does_not_take(
    both_ways: BothWays, path: str, ways: list[str]
) -> None:
    """Other content types, other paths: the route (or no route) decides."""
    cases: list[tuple[str, dict[str, Any]]] = [
        (f"{path}/", {"json": {}}),
        ("/deployments/not-a-uuid/create_flow_run", {"json": {}}),
        (path, {"content": b"{}", "headers": {"content-type": "text/plain"}}),
    ]
    for url, request in cases:
        fast, routed = await both_ways(url, **request)
        assert fast.content == routed.content, url
    assert ways == []


async def test_no_content_type_and_a_dashless_id_are_served_as_by_the_route(
    client: httpx.AsyncClient,
    both_ways: BothWays,
    deployment: dict[str, Any],
    path: str,
    ways: list[str],
) -> None:
    """Old Prefect clients send no Content-Type; the header check in front assumes JSON."""
    request = httpx.Request("POST", f"http://deputy.test/api{path}", content=b'{"tags": ["a"]}')
    assert "content-type" not in request.headers
    response = await client.send(request)
    assert response.status_code == 201, response.text
    assert "a" in response.json()["tags"]
    # The id as Starlette's uuid convertor also accepts it, without dashes.
    dashless = f"/deployments/{uuid.UUID(deployment['id']).hex}/create_flow_run"
    fast, routed = await both_ways(dashless, json={})
    assert masked(fast.json()) == masked(routed.json())
    assert ways == ["served", "served"]


async def test_a_client_gone_before_its_body_is_not_answered() -> None:
    """Neither served nor handed on: the route would only fail to read the body."""
    handed_on: list[Scope] = []
    sent: list[Message] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        handed_on.append(scope)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": f"/deployments/{uuid.uuid4()}/create_flow_run",
        "headers": [(b"content-type", b"application/json")],
    }
    await fast_path.CreateFlowRunFastPath(route)(scope, receive, send)
    assert (handed_on, sent) == ([], [])


def _resolved(dependant: Dependant) -> set[str]:
    """What FastAPI resolves for a route: each parameter by kind, each dependency by its
    function, and the special parameters (request, response, ...), recursively."""
    found = {
        f"{kind} {param.name}"
        for kind, params in (
            ("path", dependant.path_params),
            ("query", dependant.query_params),
            ("header", dependant.header_params),
            ("cookie", dependant.cookie_params),
            ("body", dependant.body_params),
        )
        for param in params
    }
    specials = {
        "request": dependant.request_param_name,
        "websocket": dependant.websocket_param_name,
        "http_connection": dependant.http_connection_param_name,
        "response": dependant.response_param_name,
        "background_tasks": dependant.background_tasks_param_name,
        "security_scopes": dependant.security_scopes_param_name,
    }
    found |= {f"special {kind}" for kind, name in specials.items() if name is not None}
    for sub in dependant.dependencies:
        found.add(f"depends {getattr(sub.call, '__name__', sub.call)}")
        found |= _resolved(sub)
    return found


def test_the_route_takes_only_what_the_fast_path_copies(app: FastAPI) -> None:
    """The fast path runs no route dependency: it reads the id and the body and calls
    ``created_by_from`` itself. A parameter or dependency added to the route, its router or
    the app fails this test until the fast path does the same; then it is added here."""
    (api,) = (route.app for route in app.routes if isinstance(route, Mount))
    assert isinstance(api, FastAPI)
    assert (api.router.dependencies, deployments.router.dependencies) == ([], [])
    (route,) = (
        route
        for route in deployments.router.routes
        if isinstance(route, APIRoute)
        and route.path_format == "/deployments/{id}/create_flow_run"
        and route.methods == {"POST"}
    )
    assert _resolved(route.dependant) == {
        "path id",
        "body body",
        "depends get_database",  # the fast path uses the app's database
        "depends get_created_by",  # created_by_from(headers)
        "special request",  # what both dependencies read
    }
