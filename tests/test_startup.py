"""Start-up stays cheap: modules only some requests need are loaded when first needed.

Each check runs in a fresh interpreter, so what the test suite itself imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

#: Loaded on first use only (a schema compiled, a template rendered, a run named, a schedule
#: computed, an old database upgraded), or only on PostgreSQL: each costs milliseconds and MiBs.
LAZY_MODULES = (
    "alembic",  # only to upgrade a database older than the head revision
    "mako",  # Alembic's templates
    "jsonschema",  # parameter and job-variable schemas
    "referencing",
    "jinja2",  # templates in parameters and job variables
    "coolname",  # generated run names
    "whenever",  # interval and cron schedules
    "croniter",  # cron schedules
    "dateutil",  # RRule schedules
    "asyncpg",  # PostgreSQL
    "sqlalchemy.dialects.postgresql",  # its SQL dialect (over 2 MiB)
)

#: Never loaded, on either database: SQLAlchemy's asyncio extension imports the ORM (~90 ms,
#: ~8 MiB), and deputy drives asyncpg without it (``db/postgres_connection.py``).
NEVER_LOADED = ("sqlalchemy.ext.asyncio", "sqlalchemy.orm")


def _modules_after(script: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``script`` (not those marked
    absent with a ``None`` entry)."""
    listing = "[name for name, module in sys.modules.items() if module is not None]"
    program = f"{textwrap.dedent(script)}\nimport json, sys\nprint(json.dumps({listing}))"
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _loaded(modules: set[str], name: str) -> bool:
    return name in modules or any(module.startswith(f"{name}.") for module in modules)


def test_importing_the_app_and_cli_loads_no_lazy_module() -> None:
    modules = _modules_after("import deputy.app, deputy.cli")
    assert _loaded(modules, "fastapi")  # the check sees what is imported
    assert [name for name in (*LAZY_MODULES, *NEVER_LOADED) if _loaded(modules, name)] == []


def test_serving_health_on_a_new_sqlite_database_loads_no_lazy_module(tmp_path: Path) -> None:
    """The whole start on SQLite: the schema created, the app built and started, one request."""
    modules = _modules_after(
        f"""
        import asyncio, httpx
        from deputy.app import create_app
        from deputy.settings import Settings

        async def main():
            app = create_app(Settings(home={str(tmp_path)!r}), migrate_on_start=True)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    assert (await client.get("/api/health")).json() is True
                    await client.post("/api/flows/", json={{"name": "etl"}})

        asyncio.run(main())
        """
    )
    assert (tmp_path / "deputy.db").exists()
    assert [name for name in (*LAZY_MODULES, *NEVER_LOADED) if _loaded(modules, name)] == []


def test_serving_on_the_suites_database_never_loads_the_orm(
    tmp_path: Path, database_url: str
) -> None:
    """On PostgreSQL (``--db postgres``) too: the schema created, runs written and read."""
    modules = _modules_after(
        f"""
        import asyncio, httpx
        from deputy.app import create_app
        from deputy.settings import Settings

        async def main():
            settings = Settings(home={str(tmp_path)!r}, database_url={database_url!r})
            app = create_app(settings, migrate_on_start=True)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    flow = (await client.post("/api/flows/", json={{"name": "etl"}})).json()
                    pool = {{"name": "local", "type": "process"}}
                    assert (await client.post("/api/work_pools/", json=pool)).status_code == 201
                    body = {{"name": "d", "flow_id": flow["id"], "work_pool_name": "local"}}
                    deployment = (await client.post("/api/deployments/", json=body)).json()
                    path = f"/api/deployments/{{deployment['id']}}/create_flow_run"
                    assert (await client.post(path, json={{}})).status_code == 201
                    assert (await client.post("/api/flow_runs/count", json={{}})).json() == 1

        asyncio.run(main())
        """
    )
    assert _loaded(modules, "sqlalchemy.dialects.postgresql") == database_url.startswith("post")
    assert [name for name in NEVER_LOADED if _loaded(modules, name)] == []


def test_the_lazy_modules_load_when_first_needed() -> None:
    """The other side: the code that needs them still finds them."""
    modules = _modules_after(
        """
        from deputy.services.names import generate_run_name
        from deputy.parameters import hydration
        from deputy.parameters import schema as parameter_schema
        generate_run_name()
        hydration.render_template("{{ 1 + 1 }}")
        parameter_schema.validate_parameters({"x": 1}, {"properties": {"x": {"type": "integer"}}})

        import datetime as dt
        from deputy.scheduling import schedule_times
        from deputy.schemas.schedules import CronSchedule, IntervalSchedule
        start = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        for schedule in (IntervalSchedule(interval=60), CronSchedule(cron="0 * * * *")):
            assert len(schedule_times(schedule, start=start, count=2)) == 2
        """
    )
    assert {"coolname", "jinja2", "jsonschema", "referencing", "whenever", "croniter"} <= modules


def test_the_server_process_leaves_out_what_serving_does_not_need(tmp_path: Path) -> None:
    """``deputy server start`` up to serving (database migrated, app built, socket bound):
    no lazy module, no CLI framework or settings library, and none of what ``deputy.lean``
    leaves out or defers (pydantic.v1, the websocket protocol, the idna codec)."""
    modules = _modules_after(
        f"""
        import os
        os.environ["DEPUTY_HOME"] = {str(tmp_path)!r}
        os.environ.pop("DEPUTY_DATABASE_URL", None)
        from deputy.cli import prepare_server
        server, sockets = prepare_server("127.0.0.1", 0, "warning")
        assert server.config.loaded is False and sockets and sockets[0].getsockname()[1] > 0
        """
    )
    assert (tmp_path / "deputy.db").exists()
    assert _loaded(modules, "uvicorn")
    assert _loaded(modules, "fastapi")
    left_out = ("typer", "pydantic_settings", "pydantic.v1", "websockets", "encodings.idna")
    assert [name for name in (*LAZY_MODULES, *left_out) if _loaded(modules, name)] == []
