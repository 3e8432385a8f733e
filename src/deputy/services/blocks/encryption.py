"""Opening the block encryption key against the database, once at start.

The key itself comes from outside (``deputy.app`` reads the setting or the key file and hands
it in as a :class:`~deputy.blocks.crypto.KeySource`), except on PostgreSQL without a setting,
where it is kept in the ``configuration`` table as Prefect keeps its own.

Whatever its source, the database keeps a *key check*: the HMAC-SHA256, under the key of the
first start, of a fixed text (it reveals nothing of the key). A key that does not match it is
not the key the documents were written with (a database copied without its key, a lost key
file, replicas given different keys), and the server refuses to start, naming the fix, rather
than answer every document with an error.

Both rows are written ``INSERT .. ON CONFLICT DO NOTHING`` and read back in the same
transaction, so replicas starting together agree on the first one written. Once written, a
start only reads them (:func:`read_cipher`, no write transaction).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from deputy.blocks.crypto import Cipher, InvalidKey, KeySource, new_key
from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict

if TYPE_CHECKING:
    from deputy.db.connection import Connection

#: The ``configuration`` keys: the key kept in the database, and the key check.
DATABASE_KEY = "ENCRYPTION_KEY"
KEY_CHECK = "ENCRYPTION_KEY_CHECK"


class EncryptionKeyError(RuntimeError):
    """The key in use cannot be used with this database; the message says what to do."""


async def read_cipher(conn: Connection, source: KeySource) -> Cipher | None:
    """:func:`open_cipher` in a read transaction, for every start but the first: ``None``
    when the database keeps no key check (or no key) yet."""
    try:
        return await _open(conn, source, None)
    except _NotWritten:
        return None


async def open_cipher(conn: Connection, source: KeySource, *, now: dt.datetime) -> Cipher:
    """The cipher of ``source``'s key, checked against the database's key check; what the
    database lacks (its key, the check) is written first."""
    return await _open(conn, source, now)


class _NotWritten(Exception):
    pass


async def _open(conn: Connection, source: KeySource, now: dt.datetime | None) -> Cipher:
    key = source.key
    if key is None:
        stored = await _stored(conn, DATABASE_KEY, lambda: {"fernet_key": new_key()}, now)
        key = stored.get("fernet_key") if isinstance(stored, dict) else None
        if not isinstance(key, str):
            raise EncryptionKeyError(
                f"The block encryption key kept in {source.origin} is missing or malformed. "
                f"{source.remedy}"
            )
    try:
        cipher = Cipher(key)
    except InvalidKey as error:
        raise EncryptionKeyError(
            f"The block encryption key from {source.origin} is {error}."
        ) from None
    check = await _stored(conn, KEY_CHECK, lambda: {"hmac_sha256": cipher.check_value()}, now)
    if not cipher.verifies(check.get("hmac_sha256") if isinstance(check, dict) else None):
        raise EncryptionKeyError(
            f"The block encryption key from {source.origin} is not the key this database's "
            "block documents were encrypted with (it does not match its key check): the "
            "database was copied without its key, the key was lost or replaced, or replicas "
            f"were given different keys. {source.remedy}"
        )
    return cipher


async def _stored(
    conn: Connection,
    key: str,
    make: Callable[[], dict[str, Any]],
    now: dt.datetime | None,
) -> Any:
    """The value stored under ``key``; without one, ``make()`` is stored first (the first
    writer wins, and every writer reads the winner back), or, when only reading
    (``now`` is None), :class:`_NotWritten`."""
    query = select(t.configuration.c.value).where(t.configuration.c.key == key)
    row = (await conn.execute(query)).first()
    if row is not None:
        return row.value
    if now is None:
        raise _NotWritten(key)
    insert = (
        insert_on_conflict(conn.dialect.name, t.configuration)
        .values(id=uuid.uuid4(), created=now, updated=now, key=key, value=make())
        .on_conflict_do_nothing(index_elements=["key"])
    )
    await conn.execute(insert)
    return (await conn.execute(query)).scalar_one()
