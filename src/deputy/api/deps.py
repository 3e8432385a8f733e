"""Typed dependencies shared by the routers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request

from deputy.db.engine import Database
from deputy.settings import Settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

#: A ``{id:uuid}`` path segment: a malformed id does not match the route (404, as Prefect).
IdPath = Annotated[uuid.UUID, Path(alias="id")]
