"""Runtime configuration, read from ``DEPUTY_*`` environment variables when asked for.

A plain pydantic model fills the fields it is not given from the environment; pydantic
converts the strings. (pydantic-settings did the same with 1.25 MiB and 13 ms more of
start-up, for sources deputy does not use.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ENV_PREFIX = "DEPUTY_"


class Settings(BaseModel):
    """Everything deputy can be told from outside; built once by the CLI or a test.

    A field given to the constructor wins over its ``DEPUTY_<FIELD>`` variable, which wins
    over the default. Variable names are matched ignoring case.
    """

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _fill_from_environment(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        variables = {
            name.upper(): value
            for name, value in os.environ.items()
            if name.upper().startswith(ENV_PREFIX)
        }
        from_environment = {
            field: variables[f"{ENV_PREFIX}{field.upper()}"]
            for field in cls.model_fields
            if f"{ENV_PREFIX}{field.upper()}" in variables
        }
        return {**from_environment, **given}

    home: Path = Field(default_factory=lambda: Path.home() / ".deputy")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 4200
    #: How long a SQLite writer waits for another process's write lock before failing.
    sqlite_busy_timeout_ms: int = 60_000
    #: Run the background loops (scheduler, late runs, lease reaper, worker status) here.
    services_enabled: bool = True
    late_runs_interval_seconds: float = 5.0
    #: A SCHEDULED run this far past its scheduled time is marked Late.
    late_runs_after_seconds: float = 15.0
    lease_reaper_interval_seconds: float = 10.0
    worker_status_interval_seconds: float = 10.0
    #: How often the scheduler looks for schedules that need more runs (a cheap query).
    scheduler_interval_seconds: float = 10.0
    #: Prefect's scheduler defaults: keep at least 3 and at most 100 future runs per
    #: schedule, from 1 hour up to 100 days ahead.
    scheduler_min_runs: int = 3
    scheduler_max_runs: int = 100
    scheduler_min_scheduled_time_seconds: float = 3600.0
    scheduler_max_scheduled_time_seconds: float = 100 * 86400.0
    #: The Fernet key block documents are encrypted with. Unset: on SQLite the key file
    #: ``<home>/encryption.key`` (made on first start), on PostgreSQL a key kept in the
    #: database. Every replica needs the same key (``docs/blocks.md``).
    encryption_key: SecretStr | None = None
    #: Connections kept open to PostgreSQL per server process.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    #: Register the block types of Prefect's distribution (the ``ui`` extra) at start, as a
    #: fresh Prefect server offers them (docs/blocks.md, "Installing the catalogs").
    block_catalog: bool = True
    #: A folder (site-packages) holding the Prefect distribution the catalogs are read from;
    #: unset: the one installed beside deputy.
    prefect_path: Path | None = None

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in use: ``database_url`` or a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'deputy.db'}"
