"""Block document data encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256), as Prefect.

A document's data (its references taken out) is stored as one Fernet token, so a copied
database hands out no credentials without its key. Where the key comes from is decided at
start (``deputy.app``): the ``DEPUTY_ENCRYPTION_KEY`` setting, else on SQLite the key file
``<DEPUTY_HOME>/encryption.key`` (created on first start, mode 0600), else on PostgreSQL a key
kept in the database's ``configuration`` table, as Prefect keeps its own.

Everything here is pure apart from the key file, read and created once at start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_FILE_NAME = "encryption.key"

#: What the key check (kept in the database) authenticates: its HMAC under a key proves the
#: key is the one the database's documents were written with, and reveals nothing of it.
_CHECK_TEXT = b"deputy block encryption key check"

#: 19 digits in a row may be an integer beyond 64 bits, which orjson would read as a float.
_LONG_NUMBER = re.compile(rb"\d{19}")

HOW_TO_MAKE_ONE = (
    'make one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class InvalidKey(ValueError):
    """A key that is not a Fernet key (32 url-safe base64-encoded bytes)."""


class UndecryptableData(ValueError):
    """A token the key in use did not write (or that was altered)."""


@dataclass(frozen=True)
class KeySource:
    """Where the key comes from: the key itself (``None``: kept in the database), a phrase
    naming its origin, and what to do when it is the wrong one."""

    key: str | None
    origin: str
    remedy: str


def new_key() -> str:
    """A new random Fernet key (the format ``Fernet.generate_key`` makes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class Cipher:
    """Encrypts and decrypts documents' data with one Fernet key.

    ``cryptography`` (about 8 MiB of memory) is loaded on the first encryption or
    decryption, not at start: checking the key against the database needs only an HMAC.
    """

    def __init__(self, key: str) -> None:
        text = key.strip()
        try:
            raw = base64.urlsafe_b64decode(text.encode())
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise InvalidKey(
                f"not a Fernet key (32 url-safe base64-encoded bytes); {HOW_TO_MAKE_ONE}"
            )
        self._key = text.encode()
        self._raw = raw
        self._loaded: Fernet | None = None

    @property
    def _fernet(self) -> Fernet:
        if self._loaded is None:
            from cryptography.fernet import Fernet  # on first use, not at start

            self._loaded = Fernet(self._key)
        return self._loaded

    def encrypt(self, data: Mapping[str, Any]) -> str:
        return self.encrypt_encoded(encode(data))

    def encrypt_encoded(self, plaintext: bytes) -> str:
        """A token of data already :func:`encode`-d (to measure it first)."""
        return self._fernet.encrypt(plaintext).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        from cryptography.fernet import InvalidToken  # on first use, not at start

        try:
            plaintext = self._fernet.decrypt(token.encode())
        except (InvalidToken, ValueError):
            raise UndecryptableData("block document data this key did not encrypt") from None
        data: dict[str, Any] = decode(plaintext)
        return data

    def check_value(self) -> str:
        """The key's check, to keep in the database: an HMAC-SHA256 of a fixed text."""
        return hmac.new(self._raw, _CHECK_TEXT, hashlib.sha256).hexdigest()

    def verifies(self, check: Any) -> bool:
        """Whether ``check`` is this key's :meth:`check_value`."""
        return isinstance(check, str) and hmac.compare_digest(check, self.check_value())


def encode(data: Mapping[str, Any]) -> bytes:
    """Data as compact JSON: orjson, or the standard library for what orjson refuses
    (integers beyond 64 bits, strings with lone surrogates, very deep nesting)."""
    try:
        return orjson.dumps(data)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(data, separators=(",", ":")).encode()


def decode(plaintext: bytes) -> Any:
    if _LONG_NUMBER.search(plaintext) is None:
        try:
            return orjson.loads(plaintext)
        except orjson.JSONDecodeError:
            pass
    return json.loads(plaintext)


# --- the key file --------------------------------------------------------------------------


def read_or_create_key_file(path: Path) -> str:
    """The key in ``path``, created first (mode 0600) when there is none.

    Creation is atomic: the key is written to a private temporary file that is then
    hard-linked to ``path``, which fails if ``path`` exists; so two processes starting
    together both end up reading the one key that won, never a half-written file.
    """
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    _write_private(temporary, new_key())
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process created it first: its key wins
    finally:
        temporary.unlink()
    return _read_key_file(path)


def _write_private(path: Path, key: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, f"{key}\n".encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_key_file(path: Path) -> str:
    key = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        Cipher(key)
    except InvalidKey as error:
        raise InvalidKey(f"the key file {path} holds {error}") from None
    return key
