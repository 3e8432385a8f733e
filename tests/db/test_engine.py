"""The SQLite write path: queued writers share commits, and a failure undoes only its own work."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, select

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.db.types import json_type
from deputy.services.common import now
from deputy.settings import Settings
from factories import create_deployment, create_work_pool


async def _count_runs(settings: Settings) -> int:
    """Counted through a separate Database, as another process would see the file."""
    other = Database(settings)
    try:
        async with other.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(t.flow_run))).scalar_one()
            )
    finally:
        await other.dispose()


async def test_concurrent_writes_share_commits_and_each_failure_stays_its_own(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"])
    url = f"/deployments/{deployment['id']}/create_flow_run"
    bodies = [
        {"parent_task_run_id": str(uuid.uuid4())} if i % 3 == 0 else {"tags": [str(i)]}
        for i in range(60)
    ]
    responses = await asyncio.gather(*(client.post(url, json=body) for body in bodies))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 40, 409: 20}
    assert await _count_runs(settings) == 40  # every acknowledged run is committed


async def test_a_failing_first_writer_does_not_lose_the_writers_behind_it(
    database: Database, settings: Settings
) -> None:
    async def failing() -> None:
        async with database.write() as conn:
            await conn.execute(t.flow.insert().values(id=uuid.uuid4(), name="x"))  # no created
            raise AssertionError("unreachable")

    async def good(name: str) -> None:
        async with database.write() as conn:
            await conn.execute(
                t.flow.insert().values(
                    id=uuid.uuid4(), name=name, created=now(), updated=now(), tags=[]
                )
            )

    results = await asyncio.gather(
        failing(), good("a"), good("b"), good("c"), return_exceptions=True
    )
    assert isinstance(results[0], Exception)
    assert list(results[1:]) == [None, None, None]
    other = Database(settings)
    try:
        async with other.read() as conn:
            names = set((await conn.execute(select(t.flow.c.name))).scalars())
    finally:
        await other.dispose()
    assert names == {"a", "b", "c"}


@pytest.mark.parametrize("writers", [1, 5])
async def test_every_writer_is_answered_after_its_commit(
    database: Database, settings: Settings, writers: int
) -> None:
    async def write(index: int) -> int:
        async with database.write() as conn:
            await conn.execute(
                t.variable.insert().values(
                    id=uuid.uuid4(),
                    name=f"v{index}",
                    value=index,
                    tags=[],
                    created=now(),
                    updated=now(),
                )
            )
        other = Database(settings)
        try:
            async with other.read() as conn:
                query = select(t.variable.c.value).where(t.variable.c.name == f"v{index}")
                return int((await conn.execute(query)).scalar_one())
        finally:
            await other.dispose()

    assert await asyncio.gather(*(write(i) for i in range(writers))) == list(range(writers))


async def test_commits_reach_the_database_file_without_waiting_for_sqlites_threshold(
    database: Database, settings: Settings, tmp_path: Path, sqlite_only: None
) -> None:
    """The checkpoint thread copies committed pages from the WAL into the main file soon
    after a commit (SQLite alone would wait for its 10,000-page safety net): a copy of the
    file without its WAL already holds the row."""
    async with database.write() as conn:
        await conn.execute(
            t.variable.insert().values(
                id=uuid.uuid4(), name="copied", value=1, tags=[], created=now(), updated=now()
            )
        )
    source = Path(settings.resolved_database_url().removeprefix("sqlite:///"))
    copy = tmp_path / "copy.db"

    def copied_names() -> list[str]:
        shutil.copyfile(source, copy)  # the main file only: no -wal beside the copy
        with sqlite3.connect(copy) as connection:
            return [name for (name,) in connection.execute("SELECT name FROM variable")]

    for _ in range(100):
        if copied_names() == ["copied"]:
            break
        await asyncio.sleep(0.02)
    assert copied_names() == ["copied"]


async def test_json_columns_store_none_as_json_null_unless_nullable(database: Database) -> None:
    """``json_type()`` writes ``None`` as JSON ``null`` (the column may be NOT NULL);
    ``json_type(nullable=True)`` writes SQL NULL, on both databases."""
    scratch = MetaData()
    table = Table(
        "json_none_check",
        scratch,
        Column("id", Integer, primary_key=True),
        Column("document", json_type(), nullable=False),
        Column("optional", json_type(nullable=True)),
    )
    await database.run_sync(scratch.create_all)
    try:
        async with database.write() as conn:
            await conn.execute(table.insert().values(id=1, document=None, optional=None))
            await conn.execute(
                table.insert(),
                [
                    {"id": 2, "document": None, "optional": None},
                    {"id": 3, "document": [1], "optional": None},
                ],
            )
            await conn.execute(table.update().where(table.c.id == 3).values(document=None))
        async with database.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        table.c.document.is_(None), table.c.optional.is_(None), table.c.document
                    ).order_by(table.c.id)
                )
            ).all()
        assert [tuple(row) for row in rows] == [(False, True, None)] * 3  # JSON null reads as None
    finally:
        await database.run_sync(scratch.drop_all)
