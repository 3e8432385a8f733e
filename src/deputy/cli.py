"""The ``deputy`` command: ``deputy server start`` and ``deputy db upgrade|reset``."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time

import typer

app = typer.Typer(
    help="deputy: a fast, lean server for the Prefect 3 REST API.", no_args_is_help=True
)
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
    # Start-up allocates ~150k long-lived objects (modules, models, routes); the cyclic GC
    # would scan them over and over while they are built (~50 ms). It is enabled again once
    # they are frozen: kept out of every later collection, as they live as long as we do.
    gc.disable()
    import uvicorn

    from deputy.app import create_app
    from deputy.settings import Settings

    settings = Settings(host=host, port=port)
    database_name = asyncio.run(_db_command("upgrade", quiet=True))
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
    banner = (
        f"deputy serving the Prefect API at http://{host}:{port}/api\n"
        f"database: {database_name}\n"
        f"set PREFECT_API_URL=http://{host}:{port}/api in your Prefect environment"
    )

    class AnnouncingServer(uvicorn.Server):
        """Prints the banner once the socket is listening, with the time it took."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                typer.echo(f"{banner}\nready in {_seconds_since_process_start():.2f}s")

    gc.freeze()
    gc.enable()
    AnnouncingServer(config).run()


_IMPORTED_AT = time.monotonic()


def _seconds_since_process_start() -> float:
    """Since the process was created (Linux: its start time in /proc, 10 ms resolution), so
    the interpreter's own start-up and every import count; elsewhere, or if the clocks
    disagree, since this module was imported."""
    since_import = time.monotonic() - _IMPORTED_AT
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        since_start = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return since_import
    return since_start if since_start >= since_import else since_import


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


async def _db_command(action: str, *, quiet: bool = False) -> str:
    """Run a migration action on the configured database; returns its printable URL."""
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
    if not quiet:
        typer.echo(f"database {database.describe()} at revision {revision}")
    return database.describe()


def main() -> None:
    app()
