"""The ``deputy`` command: ``deputy server start`` and ``deputy db upgrade|reset``."""

from __future__ import annotations

import asyncio
import time

import typer

app = typer.Typer(help="deputy: a fast, lean server for the Prefect 3 REST API.", no_args_is_help=True)
server_app = typer.Typer(help="Run the API server.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(server_app, name="server")
app.add_typer(db_app, name="db")


@server_app.command("start")
def start(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(4200, help="Port to listen on."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Start the API server at http://HOST:PORT/api (migrating the database first)."""
    started = time.perf_counter()
    import uvicorn

    from deputy.app import create_app
    from deputy.db import migrate
    from deputy.db.engine import Database
    from deputy.settings import Settings

    settings = Settings(host=host, port=port)
    database = Database(settings)
    asyncio.run(_upgrade_and_close(database))
    application = create_app(settings, migrate_on_start=False)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=log_level,
        loop="auto",
        http="auto",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    banner = (
        f"deputy serving the Prefect API at http://{host}:{port}/api\n"
        f"database: {database.describe()}\n"
        f"set PREFECT_API_URL=http://{host}:{port}/api in your Prefect environment"
    )

    async def serve() -> None:
        serve_task = asyncio.create_task(server.serve())
        while not server.started and not serve_task.done():
            await asyncio.sleep(0.01)
        if server.started:
            elapsed = time.perf_counter() - started
            typer.echo(f"{banner}\nready in {elapsed:.2f}s", err=False)
        await serve_task

    del migrate
    asyncio.run(serve())


async def _upgrade_and_close(database: object) -> None:
    from deputy.db import migrate
    from deputy.db.engine import Database

    assert isinstance(database, Database)
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    asyncio.run(_db_command("upgrade"))


@db_app.command("reset")
def db_reset(yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Drop all deputy data and recreate the schema."""
    if not yes:
        typer.confirm("This deletes every flow, deployment and run. Continue?", abort=True)
    asyncio.run(_db_command("reset"))


async def _db_command(action: str) -> None:
    from deputy.db import migrate
    from deputy.db.engine import Database
    from deputy.settings import Settings

    database = Database(Settings())
    try:
        if action == "reset":
            await migrate.reset(database)
        else:
            await migrate.upgrade(database)
        revision = await migrate.current_revision(database)
    finally:
        await database.dispose()
    typer.echo(f"database {database.describe()} at revision {revision}")


def main() -> None:
    app()
