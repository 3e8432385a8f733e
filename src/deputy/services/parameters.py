"""Parameter hydration with the workspace variables it needs, loaded in one query."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from deputy.db import tables as t
from deputy.parameters.hydration import (
    FLOW_RUN_PREFIX,
    has_placeholders,
    hydrate_parameters,
    referenced_variable_names,
)
from deputy.services.variables import read_variable_values

if TYPE_CHECKING:
    from deputy.db.connection import Connection


async def hydrate(
    conn: Connection, values: dict[str, Any], *, prefix: str = FLOW_RUN_PREFIX
) -> Any:
    """``values`` with every ``__prefect_kind`` placeholder resolved; no query without any."""
    if not has_placeholders(values):
        return values
    names = referenced_variable_names(values)
    if names is None:  # a variable's name is itself computed: every variable may be needed
        query = select(t.variable.c.name, t.variable.c.value)
        variables = {row.name: row.value for row in await conn.execute(query)}
    else:
        variables = await read_variable_values(conn, names)
    return hydrate_parameters(values, variables, prefix=prefix)
