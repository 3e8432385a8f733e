"""Runtime configuration, read from ``DEPUTY_*`` environment variables when asked for."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything deputy can be told from outside; built once by the CLI or a test."""

    model_config = SettingsConfigDict(env_prefix="DEPUTY_", extra="ignore")

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
    #: Connections kept open to PostgreSQL per server process.
    db_pool_size: int = 10
    db_max_overflow: int = 10

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in use: ``database_url`` or a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'deputy.db'}"
