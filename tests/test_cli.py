"""The ``deputy`` command line, run as users run it (the installed script, in a subprocess),
and the settings it builds from ``DEPUTY_*`` variables."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from deputy.db.migrate import head_revision
from deputy.settings import Settings
from servers import deputy_server

DEPUTY = Path(sys.executable).with_name("deputy")


def _deputy(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEPUTY_HOME": str(home)}
    env.pop("DEPUTY_DATABASE_URL", None)
    return subprocess.run(
        [str(DEPUTY), *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def _flow_count(home: Path) -> int:
    with sqlite3.connect(home / "deputy.db") as connection:
        count: int = connection.execute("SELECT count(*) FROM flow").fetchone()[0]
    return count


def test_help_names_every_command(tmp_path: Path) -> None:
    top = _deputy(tmp_path, "--help")
    assert top.returncode == 0
    assert "server" in top.stdout
    assert "db" in top.stdout
    start = _deputy(tmp_path, "server", "start", "--help")
    assert start.returncode == 0
    assert all(option in start.stdout for option in ("--host", "--port", "--log-level"))


def test_a_group_without_a_command_prints_its_help_and_fails(tmp_path: Path) -> None:
    result = _deputy(tmp_path, "db")
    assert result.returncode == 2
    assert "upgrade" in result.stdout
    assert "reset" in result.stdout


def test_bad_arguments_are_refused_with_usage(tmp_path: Path) -> None:
    result = _deputy(tmp_path, "server", "start", "--port", "many")
    assert result.returncode == 2
    assert "invalid int value" in result.stderr


def test_db_upgrade_creates_the_schema_and_reports_the_revision(tmp_path: Path) -> None:
    result = _deputy(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"at revision {head_revision()}" in result.stdout
    assert _flow_count(tmp_path) == 0


def test_db_reset_asks_first_and_deletes_only_when_told(tmp_path: Path) -> None:
    assert _deputy(tmp_path, "db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "deputy.db") as connection:
        connection.execute(
            "INSERT INTO flow (id, name, created, updated) VALUES "
            "('00000000000000000000000000000001', 'etl', '2026-01-01', '2026-01-01')"
        )

    declined = _deputy(tmp_path, "db", "reset", stdin="n\n")
    assert declined.returncode == 1
    assert "Continue?" in declined.stdout
    assert "Aborted" in declined.stderr
    assert _flow_count(tmp_path) == 1

    assert _deputy(tmp_path, "db", "reset", stdin="y\n").returncode == 0
    assert _flow_count(tmp_path) == 0


def test_db_reset_with_yes_does_not_ask(tmp_path: Path) -> None:
    assert _deputy(tmp_path, "db", "upgrade").returncode == 0
    result = _deputy(tmp_path, "db", "reset", "--yes")  # no input given: asking would abort
    assert result.returncode == 0, result.stderr
    assert "Continue?" not in result.stdout


def test_settings_are_read_from_deputy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPUTY_PORT", "4300")
    monkeypatch.setenv("DEPUTY_SERVICES_ENABLED", "false")
    monkeypatch.setenv("deputy_late_runs_after_seconds", "2.5")  # names ignore case
    monkeypatch.setenv("DEPUTY_HOME", "/srv/deputy")
    settings = Settings()
    assert settings.port == 4300
    assert settings.services_enabled is False
    assert settings.late_runs_after_seconds == 2.5
    assert settings.home == Path("/srv/deputy")
    assert settings.database_url is None


def test_settings_given_to_the_constructor_win_over_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPUTY_PORT", "4300")
    monkeypatch.setenv("DEPUTY_HOST", "0.0.0.0")
    settings = Settings(port=5000)
    assert (settings.host, settings.port) == ("0.0.0.0", 5000)


def test_a_bad_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPUTY_DB_POOL_SIZE", "lots")
    with pytest.raises(ValidationError, match="db_pool_size"):
        Settings()


def test_server_start_on_a_host_name_lets_uvicorn_resolve_it(tmp_path: Path) -> None:
    """Literal addresses are bound by the CLI itself; a name still works (uvicorn looks it up)."""
    with deputy_server(tmp_path, host="localhost") as server:
        assert httpx.get(f"{server.url}/health").json() is True
        port = server.url.split(":")[2].split("/")[0]
        assert f"http://localhost:{port}/api" in server.output()


def test_server_start_on_a_port_in_use_fails_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _deputy(tmp_path, "server", "start", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 3  # uvicorn's start-up failure
    assert "address already in use" in (result.stdout + result.stderr).lower()
