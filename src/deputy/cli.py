"""The ``deputy`` command: ``deputy server start`` and ``deputy db upgrade|reset``.

Parsed with the standard library's argparse, so the serving process carries no CLI framework:
typer brought its own copy of click besides uvicorn's, 1.6 MiB and ~35 ms of start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import uvicorn

DESCRIPTION = "deputy: a fast, lean server for the Prefect 3 REST API."
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def build_parser() -> argparse.ArgumentParser:
    """``deputy server start [--host] [--port] [--log-level]``, ``deputy db upgrade``,
    ``deputy db reset [--yes]``."""
    parser = argparse.ArgumentParser(prog="deputy", description=DESCRIPTION)
    parser.set_defaults(run=_help_of(parser))
    groups = parser.add_subparsers(title="commands", metavar="COMMAND")

    server = _command(groups, "server", "Run the API server.")
    server.set_defaults(run=_help_of(server))
    server_commands = server.add_subparsers(title="commands", metavar="COMMAND")
    start = _command(
        server_commands,
        "start",
        "Start the API server at http://HOST:PORT/api (migrating the database first).",
    )
    start.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    start.add_argument("--port", type=int, default=4200, help="port to listen on (%(default)s)")
    start.add_argument(
        "--log-level", default="warning", choices=LOG_LEVELS, help="uvicorn log level (%(default)s)"
    )
    start.set_defaults(run=lambda args: start_server(args.host, args.port, args.log_level))

    db = _command(groups, "db", "Manage the database schema.")
    db.set_defaults(run=_help_of(db))
    db_commands = db.add_subparsers(title="commands", metavar="COMMAND")
    upgrade = _command(db_commands, "upgrade", "Apply every pending migration.")
    upgrade.set_defaults(run=lambda _args: db_upgrade())
    reset = _command(db_commands, "reset", "Drop all deputy data and recreate the schema.")
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask")
    reset.set_defaults(run=lambda args: db_reset(yes=args.yes))
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=text, description=text)


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command group run without a command prints its help (and fails, as nothing ran)."""

    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show_help


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int | None = args.run(args)
    return status or 0


def start_server(host: str, port: int, log_level: str) -> None:
    """Start the API server at http://HOST:PORT/api (migrating the database first)."""
    server, sockets = prepare_server(host, port, log_level)
    server.run(sockets=sockets)


def prepare_server(
    host: str, port: int, log_level: str
) -> tuple[uvicorn.Server, list[socket.socket] | None]:
    """Migrate the database and build the server; returns it with the socket it is to serve
    on (None when uvicorn is to resolve ``host`` itself)."""
    # Start-up allocates ~150k long-lived objects (modules, models, routes); the cyclic GC
    # would scan them over and over while they are built (~50 ms). It is enabled again once
    # they are frozen: kept out of every later collection, as they live as long as we do.
    gc.disable()
    from deputy import lean

    lean.leave_out_pydantic_v1()
    # Migrated before the app is imported, which reuses the memory the migration freed
    # (0.5 MiB less RSS than the other way round).
    database_name = asyncio.run(_db_command("upgrade", quiet=True))
    import uvicorn

    from deputy.app import create_app
    from deputy.settings import Settings

    settings = Settings(host=host, port=port)
    application = create_app(settings, migrate_on_start=False)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=log_level,
        loop="auto",
        http="auto",
        ws=cast("type[asyncio.Protocol]", lean.websocket_protocol),  # a factory is enough
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
                print(f"{banner}\nready in {_seconds_since_process_start():.2f}s", flush=True)

    # An address needs no name lookup, which would load the idna codec (0.4 MiB): bind it here.
    sockets = [config.bind_socket()] if _is_address(host) else None
    gc.freeze()
    gc.enable()
    return AnnouncingServer(config), sockets


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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


_IMPORTED_AT = time.monotonic()


def db_upgrade() -> None:
    """Apply every pending migration."""
    asyncio.run(_db_command("upgrade"))


def db_reset(*, yes: bool) -> int:
    """Drop all deputy data and recreate the schema, once confirmed (or with ``--yes``)."""
    if not yes:
        try:
            answer = input("This deletes every flow, deployment and run. Continue? [y/N]: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Aborted.", file=sys.stderr)
            return 1
    asyncio.run(_db_command("reset"))
    return 0


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
        print(f"database {database.describe()} at revision {revision}")
    return database.describe()
