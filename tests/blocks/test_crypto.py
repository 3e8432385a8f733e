"""Encryption of block document data, and the key file (pure, apart from a temporary dir)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from deputy.blocks.crypto import (
    Cipher,
    InvalidKey,
    UndecryptableData,
    new_key,
    read_or_create_key_file,
)


def test_data_round_trips_and_is_not_plaintext() -> None:
    cipher = Cipher(new_key())
    data = {
        "password": "hunter2-very-secret",
        "nested": {"list": [1, 2.5, None, True], "text": "é☃\x00"},
        "big": 2**70,  # beyond 64 bits: written by the standard library
        "lone": "\ud800",  # a lone surrogate, as JSON can carry it
    }
    token = cipher.encrypt(data)
    assert "hunter2" not in token
    assert cipher.decrypt(token) == data
    assert cipher.encrypt(data) != token  # a fresh IV each time


def test_the_token_is_a_fernet_token_of_the_json() -> None:
    key = new_key()
    token = Cipher(key).encrypt({"a": 1})
    assert Fernet(key.encode()).decrypt(token.encode()) == b'{"a":1}'


def test_another_key_cannot_decrypt_and_the_check_tells_keys_apart() -> None:
    one, two = Cipher(new_key()), Cipher(new_key())
    with pytest.raises(UndecryptableData):
        two.decrypt(one.encrypt({"a": 1}))
    with pytest.raises(UndecryptableData):
        one.decrypt("not a token")
    check = one.check_value()
    assert one.verifies(check)
    assert Cipher(one._key.decode()).verifies(check)  # the same key, read again
    assert not two.verifies(check)
    assert not one.verifies(None)
    assert not one.verifies("garbage")


def test_checking_a_key_does_not_load_cryptography() -> None:
    """Start-up checks the key with an HMAC: ``cryptography`` (8 MiB) waits for the first
    document encrypted or decrypted."""
    program = (
        "import sys\n"
        "from deputy.blocks.crypto import Cipher, new_key\n"
        "cipher = Cipher(new_key())\n"
        "assert cipher.verifies(cipher.check_value())\n"
        "print('cryptography' in sys.modules)\n"
        "cipher.decrypt(cipher.encrypt({'a': 1}))\n"
        "print('cryptography' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("key", ["", "short", "x" * 44, "\ud800"])
def test_a_malformed_key_is_refused_with_how_to_make_one(key: str) -> None:
    with pytest.raises(InvalidKey, match=r"Fernet\.generate_key"):
        Cipher(key)


def test_the_key_file_is_created_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "home" / "encryption.key"
    key = read_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    assert read_or_create_key_file(path) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["encryption.key"]  # no leftovers
    Cipher(key)


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "encryption.key"
    keys: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(read_or_create_key_file(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(keys) == 8
    assert set(keys) == {path.read_text().strip()}


def test_a_damaged_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "encryption.key"
    path.write_text("not a key\n")
    os.chmod(path, 0o600)
    with pytest.raises(InvalidKey, match=str(path)):
        read_or_create_key_file(path)
