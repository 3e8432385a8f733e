"""Event filters to SQL, following Prefect's storage layout.

The ``event`` row carries the event's own resource id; ``event_resource`` has one row per
resource the event names (role ``""`` for its own resource), so label and related-resource
conditions become ``event.id IN (SELECT event_id FROM event_resource WHERE ...)`` with the
sub-query scoped to the same ``occurred`` window (and so to its ``(resource_id, occurred)``
index).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, not_, or_, select

from deputy.db import tables as t
from deputy.db.filters.logs import text_search_conditions
from deputy.schemas.events import (
    EventAnyResourceFilter,
    EventFilter,
    EventNameFilter,
    EventRelatedFilter,
    EventResourceFilter,
    ResourceSpecification,
)

Clause = ColumnElement[bool]
_event = t.event.c
_resource = t.event_resource.c

_GLOB_TO_LIKE = str.maketrans({"*": "%", "?": "_", "\\": "\\\\", "%": "\\%", "_": "\\_"})


def _glob(column: Any, pattern: str) -> Clause:
    """A label pattern as LIKE: ``*`` any text, ``?`` one character, ``!`` in front negates."""
    clause: Clause = column.like(pattern.removeprefix("!").translate(_GLOB_TO_LIKE), escape="\\")
    return not_(clause) if pattern.startswith("!") else clause


def _patterns(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _label_conditions(labels: ResourceSpecification, *, with_role: bool) -> list[Clause]:
    """Conditions on one ``event_resource`` row: its id and role are columns, other labels
    are read from its JSON; an empty list of patterns matches nothing."""
    out: list[Clause] = []
    for label, value in labels.items():
        patterns = _patterns(value)
        if label == "prefect.resource.id":
            if patterns:
                out.append(or_(*(_glob(_resource.resource_id, p) for p in patterns)))
            continue
        if label == "prefect.resource.role" and with_role:
            if patterns:
                out.append(_resource.resource_role.in_(patterns))
            continue
        if not patterns:
            out.append(false())
            continue
        column = _resource.resource[label].as_string()
        out.append(or_(*(_glob(column, p) for p in patterns)))
    return out


def event_where(flt: EventFilter) -> list[Clause]:
    """The WHERE conditions (to AND) selecting the events ``flt`` matches."""
    since, until = flt.occurred.since, flt.occurred.until
    scope: Select[Any] = select(_resource.event_id).where(
        _resource.occurred >= since, _resource.occurred <= until
    )
    out: list[Clause] = [_event.occurred >= since, _event.occurred <= until]
    if flt.event is not None:
        out.extend(_name_conditions(flt.event))
    if flt.resource is not None:
        out.extend(_own_resource_conditions(flt.resource, scope))
    for conditions in (
        *(_related_conditions(related) for related in flt.related_filters()),
        *(_any_resource_conditions(any_resource) for any_resource in flt.any_resource_filters()),
    ):
        if conditions:
            out.append(_event.id.in_(scope.where(*conditions)))
    if flt.id.id:
        out.append(_event.id.in_(flt.id.id))
    if flt.text is not None and flt.text.query.strip():
        out.extend(text_search_conditions(_SEARCHABLE, flt.text))
    return out


#: The text a search looks in: the event's name, resource, related resources and payload.
_SEARCHABLE = (
    _event.event
    + " "
    + cast(_event.resource, String)
    + " "
    + cast(_event.related, String)
    + " "
    + cast(_event.payload, String)
)


def _name_conditions(name: EventNameFilter) -> list[Clause]:
    out: list[Clause] = []
    if name.prefix:
        out.append(or_(*(_event.event.startswith(p) for p in name.prefix)))
    if name.exclude_prefix:
        out.extend(not_(_event.event.startswith(p)) for p in name.exclude_prefix)
    if name.name:
        out.append(_event.event.in_(name.name))
    if name.exclude_name:
        out.append(_event.event.not_in(name.exclude_name))
    return out


def _own_resource_conditions(own: EventResourceFilter, scope: Select[Any]) -> list[Clause]:
    out: list[Clause] = []
    if own.id:
        out.append(_event.resource_id.in_(own.id))
    if own.id_prefix:
        out.append(or_(*(_event.resource_id.startswith(p) for p in own.id_prefix)))
    if own.labels:
        conditions = [
            _resource.resource_role == "",
            *_label_conditions(own.labels, with_role=False),
        ]
        out.append(_event.id.in_(scope.where(*conditions)))
    return out


def _related_conditions(flt: EventRelatedFilter) -> list[Clause]:
    out: list[Clause] = []
    if flt.id:
        out.append(_resource.resource_id.in_(flt.id))
    if flt.role:
        out.append(_resource.resource_role.in_(flt.role))
    if flt.resources_in_roles:
        out.append(
            or_(
                *(
                    and_(_resource.resource_id == resource_id, _resource.resource_role == role)
                    for resource_id, role in flt.resources_in_roles
                )
            )
        )
    if flt.labels:
        out.append(and_(*_label_conditions(flt.labels, with_role=True)))
    if out and not flt.role:
        out.append(_resource.resource_role != "")  # related resources only, not the event's own
    return out


def _any_resource_conditions(flt: EventAnyResourceFilter) -> list[Clause]:
    out: list[Clause] = []
    if flt.id:
        out.append(_resource.resource_id.in_(flt.id))
    if flt.id_prefix:
        out.append(or_(*(_resource.resource_id.startswith(p) for p in flt.id_prefix)))
    if flt.labels:
        out.append(and_(*_label_conditions(flt.labels, with_role=True)))
    return out
