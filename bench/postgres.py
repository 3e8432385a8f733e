"""PostgreSQL for the benchmark: two fresh databases, one per server, or why not."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from launch import Database

DATABASES = {"deputy": "deputy_bench", "prefect": "prefect_bench"}


def prepare(pg_url: str | None) -> tuple[Database | None, str]:
    """Drop and create deputy_bench and prefect_bench on the server at ``pg_url``.

    Returns the Database to benchmark on, or None and the reason PostgreSQL is skipped.
    """
    if not pg_url:
        return (
            None,
            "no --pg-url given (e.g. --pg-url postgresql://user:pass@127.0.0.1:5432/postgres)",
        )
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return None, "asyncpg is not installed in this venv (pip install -e '.[postgres]')"
    parts = urlsplit(pg_url)
    plain = urlunsplit(parts._replace(scheme="postgresql"))
    try:
        asyncio.run(_recreate(plain, list(DATABASES.values())))
    except Exception as error:  # asyncpg raises many kinds; any means "not available"
        return None, f"cannot prepare PostgreSQL at {parts.hostname}:{parts.port}: {error}"

    def url(name: str) -> str:
        return urlunsplit(parts._replace(scheme="postgresql+asyncpg", path=f"/{name}"))

    return Database("postgres", url(DATABASES["deputy"]), url(DATABASES["prefect"])), ""


async def _recreate(url: str, names: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
