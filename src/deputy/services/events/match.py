"""Whether an event in memory passes an ``EventFilter``: what the live subscribers of
``/events/out`` receive.

The meaning is the SQL's (``deputy.db.filters.events``), field by field, so that a stream's
backfill (read with SQL) and its live events (matched here) agree; a test compares the two.
An event is the dict the bus holds (``deputy.services.events.bus``): parsed times and ids.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from deputy.schemas.events import (
    EventAnyResourceFilter,
    EventFilter,
    EventIDFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventRelatedFilter,
    EventResourceFilter,
)
from deputy.text_search import ParsedQuery, parse

Resource = Mapping[str, str]


def matches(flt: EventFilter, event: Mapping[str, Any], text: ParsedQuery | None = None) -> bool:
    """Whether ``event`` passes ``flt``; ``text`` is ``flt.text`` parsed once beforehand."""
    resource: Resource = event["resource"]
    related: Sequence[Resource] = event["related"]
    return (
        _occurred_matches(flt.occurred, event["occurred"])
        and _name_matches(flt.event, event["event"])
        and _resource_matches(flt.resource, resource)
        and all(_some_related_matches(f, related) for f in flt.related_filters())
        and all(_any_resource_matches(f, resource, related) for f in flt.any_resource_filters())
        and _id_matches(flt.id, event["id"])
        and _text_matches(flt, event, text)
    )


def _occurred_matches(flt: EventOccurredFilter, occurred: dt.datetime) -> bool:
    return flt.since <= occurred <= flt.until


def _name_matches(flt: EventNameFilter | None, name: str) -> bool:
    if flt is None:
        return True
    if flt.prefix and not any(name.startswith(p) for p in flt.prefix):
        return False
    if flt.exclude_prefix and any(name.startswith(p) for p in flt.exclude_prefix):
        return False
    if flt.name and name not in flt.name:
        return False
    return not (flt.exclude_name and name in flt.exclude_name)


def _resource_matches(flt: EventResourceFilter | None, resource: Resource) -> bool:
    if flt is None:
        return True
    return _id_and_labels_match(flt.id, flt.id_prefix, flt.labels, resource)


def _some_related_matches(flt: EventRelatedFilter, related: Sequence[Resource]) -> bool:
    """An empty related filter passes every event, even one without related resources."""
    if not (flt.id or flt.role or flt.resources_in_roles or flt.labels):
        return True
    return any(_related_matches(flt, resource) for resource in related)


def _related_matches(flt: EventRelatedFilter, resource: Resource) -> bool:
    resource_id = resource.get("prefect.resource.id", "")
    role = resource.get("prefect.resource.role", "")
    if flt.id and resource_id not in flt.id:
        return False
    if flt.role and role not in flt.role:
        return False
    if flt.resources_in_roles and (resource_id, role) not in {
        tuple(pair) for pair in flt.resources_in_roles
    }:
        return False
    return not flt.labels or _labels_match(flt.labels, resource)


def _any_resource_matches(
    flt: EventAnyResourceFilter, resource: Resource, related: Sequence[Resource]
) -> bool:
    """The event's own resource or one of its related ones passes ``flt``."""
    return any(
        _id_and_labels_match(flt.id, flt.id_prefix, flt.labels, candidate)
        for candidate in (resource, *related)
    )


def _id_and_labels_match(
    ids: list[str] | None,
    id_prefixes: list[str] | None,
    labels: Mapping[str, str | list[str]] | None,
    resource: Resource,
) -> bool:
    resource_id = resource.get("prefect.resource.id", "")
    if ids and resource_id not in ids:
        return False
    if id_prefixes and not any(resource_id.startswith(p) for p in id_prefixes):
        return False
    return not labels or _labels_match(labels, resource)


def _labels_match(spec: Mapping[str, str | list[str]], resource: Resource) -> bool:
    """Every label of ``spec`` matches one of its glob patterns (``!`` negates one)."""
    for label, expected in spec.items():
        patterns = [expected] if isinstance(expected, str) else expected
        value = resource.get(label)
        if not any(_glob(pattern, value) for pattern in patterns):
            return False
    return True


def _glob(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern.startswith("!"):
        return not fnmatch.fnmatchcase(value, pattern[1:])
    return fnmatch.fnmatchcase(value, pattern)


def _id_matches(flt: EventIDFilter, event_id: uuid.UUID) -> bool:
    return not flt.id or event_id in flt.id


def _text_matches(flt: EventFilter, event: Mapping[str, Any], text: ParsedQuery | None) -> bool:
    if flt.text is None or not flt.text.query.strip():
        return True
    query = text if text is not None else parse(flt.text.query)
    return query.matches(_searchable_text(event))


def _searchable_text(event: Mapping[str, Any]) -> str:
    """What a text query searches: the name, every label value, and the payload's JSON."""
    parts = [event["event"], *event["resource"].values()]
    for related in event["related"]:
        parts.extend(related.values())
    parts.append(json.dumps(event["payload"], default=str))
    return " ".join(parts)
