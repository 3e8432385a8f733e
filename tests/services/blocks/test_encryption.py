"""Where the block encryption key comes from, and the start refused with a key that is not
the database's: a copied database without its key, a lost key file, replicas given different
keys, a malformed setting.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from databases import DatabaseBackends
from deputy.app import create_app
from deputy.blocks.crypto import Cipher, KeySource, new_key
from deputy.db import migrate
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.services.blocks.encryption import (
    DATABASE_KEY,
    KEY_CHECK,
    EncryptionKeyError,
    open_cipher,
)
from deputy.services.common import now
from deputy.settings import Settings


async def start(settings: Settings) -> Cipher:
    """Start an app (its lifespan) on ``settings`` and hand back the cipher it opened."""
    application = create_app(settings)
    try:
        async with application.router.lifespan_context(application):
            cipher: Cipher = await application.state.cipher.get()
            return cipher
    finally:
        await application.state.database.dispose()


async def refused(settings: Settings, *phrases: str) -> str:
    with pytest.raises(EncryptionKeyError) as caught:
        await start(settings)
    message = str(caught.value)
    for phrase in phrases:
        assert phrase in message, message
    return message


async def configuration(database: Database) -> dict[str, object]:
    async with database.read() as conn:
        rows = (await conn.execute(select(t.configuration.c.key, t.configuration.c.value))).all()
    return {key: value for key, value in rows}


def with_key(settings: Settings, key: str) -> Settings:
    return settings.model_copy(update={"encryption_key": SecretStr(key)})


async def test_a_first_start_keeps_a_key_check_and_sqlite_a_private_key_file(
    app: FastAPI, settings: Settings, database: Database
) -> None:
    cipher: Cipher = await app.state.cipher.get()
    stored = await configuration(database)
    check = stored[KEY_CHECK]
    assert isinstance(check, dict)
    assert cipher.verifies(check["hmac_sha256"])
    key_file = Path(settings.home) / "encryption.key"
    if database.is_sqlite:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert DATABASE_KEY not in stored
        assert Cipher(key_file.read_text()).verifies(check["hmac_sha256"])
    else:
        assert not key_file.exists()
        kept = stored[DATABASE_KEY]
        assert isinstance(kept, dict)
        assert Cipher(kept["fernet_key"]).verifies(check["hmac_sha256"])
    # The next start opens the same key.
    again = await start(settings)
    assert again.decrypt(cipher.encrypt({"a": 1})) == {"a": 1}


async def test_a_lost_key_file_refuses_the_start_naming_the_fix(
    app: FastAPI, settings: Settings, sqlite_only: None
) -> None:
    key_file = Path(settings.home) / "encryption.key"
    key_file.write_text(new_key() + "\n")
    await refused(
        settings,
        f"the key file {key_file}",
        "is not the key this database's block documents were encrypted with",
        f"Put back the key file {key_file}",
        "DEPUTY_ENCRYPTION_KEY",
    )


async def test_a_database_copied_without_its_key_refuses_to_start(
    app: FastAPI, settings: Settings, database: Database, sqlite_only: None, tmp_path: Path
) -> None:
    await database.dispose()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(Path(settings.home) / "deputy.db", copy / "deputy.db")
    elsewhere = Settings(home=copy, services_enabled=False)
    await refused(elsewhere, f"Put back the key file {copy / 'encryption.key'}")
    # With the original key given as the setting, the copy starts and reads its documents.
    original = (Path(settings.home) / "encryption.key").read_text().strip()
    await start(with_key(elsewhere, original))


async def test_the_setting_is_the_key_and_must_stay_the_same(
    settings: Settings, test_databases: DatabaseBackends
) -> None:
    key = new_key()
    cipher = await start(with_key(settings, key))
    assert not (Path(settings.home) / "encryption.key").exists()
    token = cipher.encrypt({"a": 1})
    assert Cipher(key).decrypt(token) == {"a": 1}
    await start(with_key(settings, key))
    await refused(
        with_key(settings, new_key()), "from DEPUTY_ENCRYPTION_KEY", "Set DEPUTY_ENCRYPTION_KEY"
    )
    # Dropping the setting is refused too: the file (SQLite) or the database's own key
    # (PostgreSQL) is not the key the documents were written with.
    await refused(settings, "is not the key this database's block documents")


async def test_the_setting_comes_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    monkeypatch.setenv("DEPUTY_ENCRYPTION_KEY", key)
    from_environment = Settings(home=settings.home, database_url=settings.database_url)
    cipher = await start(from_environment.model_copy(update={"services_enabled": False}))
    assert Cipher(key).decrypt(cipher.encrypt({"a": 1})) == {"a": 1}


async def test_a_malformed_setting_is_refused_clearly(settings: Settings) -> None:
    await refused(with_key(settings, "not-a-key"), "DEPUTY_ENCRYPTION_KEY", "not a Fernet key")


async def test_replicas_starting_together_agree_on_the_databases_key(
    settings: Settings,
) -> None:
    """On PostgreSQL without a setting the key lives in the database: the first insert wins
    and every replica reads it back (SQLite writers queue, with the same outcome)."""
    database = Database(settings)
    await migrate.upgrade(database)
    source = KeySource(None, "the database", "fix")

    async def replica() -> Cipher:
        async with database.write() as conn:
            return await open_cipher(conn, source, now=now())

    try:
        ciphers = await asyncio.gather(*(replica() for _ in range(4)))
    finally:
        await database.dispose()
    token = ciphers[0].encrypt({"a": 1})
    assert all(cipher.decrypt(token) == {"a": 1} for cipher in ciphers)


def test_a_start_checks_the_key_without_loading_cryptography(tmp_path: Path) -> None:
    """``cryptography`` (about 8 MiB) is loaded by the first document, not by the start."""
    program = f"""
import asyncio, sys, httpx
from deputy.app import create_app
from deputy.settings import Settings

async def main():
    for _ in range(2):  # the first start writes the key check, the next one reads it
        app = create_app(Settings(home={str(tmp_path)!r}, services_enabled=False))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/api/health")).json() is True
        print("cryptography" in sys.modules)

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == ["False", "False"]
    assert (tmp_path / "encryption.key").exists()
