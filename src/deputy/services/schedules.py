"""Deployment schedules: their rows, Prefect's rules for editing them, and the schedule
routes' use cases (each edit re-plans the deployment's runs in the same transaction, through
``scheduler.replan``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from deputy.db import tables as t
from deputy.errors import Conflict, NotFound, Unprocessable
from deputy.schemas.schedules import DeploymentScheduleCreate, DeploymentScheduleUpdate
from deputy.services.scheduler import (
    DEPLOYMENT_NOT_FOUND,
    Horizon,
    lock_deployment,
    read_schedules,
    replan,
)

if TYPE_CHECKING:
    from deputy.db.connection import Connection

SCHEDULE_NOT_FOUND = "Schedule not found."
DUPLICATE_SLUG = "Schedule slugs must be unique within a deployment."

_schedule = t.deployment_schedule.c
_deployment = t.deployment.c


def _schedule_values(
    body: DeploymentScheduleCreate, deployment_id: uuid.UUID, *, now: dt.datetime
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "created": now,
        "updated": now,
        "deployment_id": deployment_id,
        "schedule": body.schedule.model_dump(mode="json"),
        "active": body.active,
        "max_scheduled_runs": body.max_scheduled_runs,
        "parameters": body.parameters,
        "slug": body.slug,
        "refill_at": None,
    }


async def read_schedules_for(
    conn: Connection, deployment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[Any]]:
    """Schedules of several deployments in one statement (for deployment lists)."""
    ids = list(deployment_ids)
    found: dict[uuid.UUID, list[Any]] = {deployment_id: [] for deployment_id in ids}
    if not ids:
        return found
    query = (
        select(t.deployment_schedule)
        .where(_schedule.deployment_id.in_(ids))
        .order_by(_schedule.updated.desc(), _schedule.id)
    )
    for row in (await conn.execute(query)).all():
        found[row.deployment_id].append(row)
    return found


async def add_schedules(
    conn: Connection,
    deployment_id: uuid.UUID,
    bodies: Sequence[DeploymentScheduleCreate],
    *,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Insert new schedules; a slug already used on the deployment is a 409."""
    rows = [_schedule_values(body, deployment_id, now=now) for body in bodies]
    slugs = [row["slug"] for row in rows if row["slug"] is not None]
    if len(slugs) != len(set(slugs)):
        raise Conflict(DUPLICATE_SLUG)
    if slugs:
        taken = await conn.execute(
            select(_schedule.id).where(
                _schedule.deployment_id == deployment_id, _schedule.slug.in_(slugs)
            )
        )
        if taken.first() is not None:
            raise Conflict(DUPLICATE_SLUG)
    if rows:
        await conn.execute(t.deployment_schedule.insert(), rows)
    return rows


async def replace_schedules(
    conn: Connection,
    deployment_id: uuid.UUID,
    bodies: Sequence[DeploymentScheduleCreate],
    *,
    now: dt.datetime,
) -> None:
    await conn.execute(
        delete(t.deployment_schedule).where(_schedule.deployment_id == deployment_id)
    )
    await add_schedules(conn, deployment_id, bodies, now=now)


async def update_schedule(
    conn: Connection,
    deployment_id: uuid.UUID,
    body: DeploymentScheduleUpdate,
    *,
    schedule_id: uuid.UUID,
    now: dt.datetime,
) -> bool:
    """Change the fields sent (null ones are left alone, as in Prefect); False if absent."""
    values: dict[str, Any] = {
        key: getattr(body, key)
        for key in ("active", "max_scheduled_runs", "parameters", "slug")
        if getattr(body, key) is not None and key in body.model_fields_set
    }
    if body.schedule is not None:
        values["schedule"] = body.schedule.model_dump(mode="json")
    matches = _schedule.id == schedule_id
    if "slug" in values:
        clash = await conn.execute(
            select(_schedule.id).where(
                _schedule.deployment_id == deployment_id,
                _schedule.slug == values["slug"],
                ~matches,
            )
        )
        if clash.first() is not None:
            raise Conflict(DUPLICATE_SLUG)
    values["updated"] = now
    values["refill_at"] = None
    result = await conn.execute(
        update(t.deployment_schedule)
        .where(_schedule.deployment_id == deployment_id, matches)
        .values(**values)
    )
    return bool(result.rowcount)


async def delete_schedule(
    conn: Connection, deployment_id: uuid.UUID, schedule_id: uuid.UUID
) -> bool:
    result = await conn.execute(
        delete(t.deployment_schedule).where(
            _schedule.deployment_id == deployment_id, _schedule.id == schedule_id
        )
    )
    return bool(result.rowcount)


NO_SCHEDULE = "Unable to create new deployment schedules without a schedule configuration."
MISSING_SLUGS = (
    "Please provide a slug for each schedule in your request to ensure schedules are updated "
    "correctly."
)


def _as_create(body: DeploymentScheduleUpdate) -> DeploymentScheduleCreate:
    return DeploymentScheduleCreate(
        schedule=body.schedule,
        active=body.active if body.active is not None else True,
        max_scheduled_runs=body.max_scheduled_runs,
        parameters=body.parameters,
        slug=body.slug,
    )


async def apply_deployment_schedules(
    conn: Connection,
    deployment_id: uuid.UUID,
    bodies: Sequence[DeploymentScheduleUpdate] | None,
    *,
    now: dt.datetime,
) -> None:
    """``schedules`` in a deployment PATCH, by Prefect's rules: when every existing and every
    sent schedule has a slug, schedules are updated in place by slug (or ``replaces``) and new
    slugs created; when the existing ones have slugs but a sent one has none, 422; otherwise
    (None: not sent) the sent list replaces them all."""
    existing = await read_schedules(conn, deployment_id)
    sent = list(bodies or [])
    all_sent_slugged = all(body.slug is not None for body in sent)
    all_existing_slugged = bool(existing) and all(row.slug is not None for row in existing)
    if all_existing_slugged and not all_sent_slugged:
        raise Unprocessable(MISSING_SLUGS)
    if not all_existing_slugged:
        if bodies is not None:
            await replace_schedules(
                conn,
                deployment_id,
                [_as_create(b) for b in sent if b.schedule is not None],
                now=now,
            )
        return
    current = {row.slug: row.id for row in existing}
    _check_renames(sent, current)
    patches, creates = _by_target(sent, current)
    renamed = [body.replaces for _, body in patches if body.replaces]
    if renamed:  # free the old slugs first, so renames may swap them
        await conn.execute(
            update(t.deployment_schedule)
            .where(_schedule.deployment_id == deployment_id, _schedule.slug.in_(renamed))
            .values(slug=None)
        )
    for schedule_id, body in patches:
        await update_schedule(conn, deployment_id, body, schedule_id=schedule_id, now=now)
    await add_schedules(conn, deployment_id, creates, now=now)


def _check_renames(sent: Sequence[DeploymentScheduleUpdate], current: dict[str, Any]) -> None:
    """Each existing slug is replaced at most once, and a rename never takes the slug of a
    schedule that stays."""
    targets: set[str] = set()
    for body in sent:
        if body.replaces:
            if body.replaces in targets:
                raise Unprocessable(
                    f"Multiple schedules have 'replaces' targeting the same slug: {body.replaces}"
                )
            targets.add(body.replaces)
    for body in sent:
        if body.replaces and body.slug in current and body.slug not in targets:
            raise Unprocessable(
                f"Cannot rename schedule from '{body.replaces}' to '{body.slug}': a schedule "
                f"with slug '{body.slug}' already exists."
            )


def _by_target(
    sent: Sequence[DeploymentScheduleUpdate], current: dict[str, Any]
) -> tuple[list[tuple[uuid.UUID, DeploymentScheduleUpdate]], list[DeploymentScheduleCreate]]:
    """The sent schedules that update an existing one (by ``replaces`` or slug), and those
    to create (which must carry a schedule)."""
    patches: list[tuple[uuid.UUID, DeploymentScheduleUpdate]] = []
    creates: list[DeploymentScheduleCreate] = []
    for body in sent:
        target = body.replaces or body.slug
        if target in current:
            patches.append((current[target], body))
        elif body.schedule is not None:
            creates.append(_as_create(body))
        else:
            raise Unprocessable(NO_SCHEDULE)
    return patches, creates


# --- the schedule routes ---------------------------------------------------------------


async def read_deployment_schedules(conn: Connection, deployment_id: uuid.UUID) -> list[Any]:
    """``GET /deployments/{id}/schedules``."""
    await _require_deployment(conn, deployment_id)
    return await read_schedules(conn, deployment_id)


async def create_deployment_schedules(
    conn: Connection,
    deployment_id: uuid.UUID,
    bodies: Sequence[DeploymentScheduleCreate],
    horizon: Horizon,
    *,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """``POST /deployments/{id}/schedules``: add schedules and create their runs."""
    await _lock_deployment(conn, deployment_id)
    rows = await add_schedules(conn, deployment_id, bodies, now=now)
    await replan(conn, deployment_id, horizon, now=now)
    return rows


async def update_deployment_schedule(
    conn: Connection,
    deployment_id: uuid.UUID,
    schedule_id: uuid.UUID,
    body: DeploymentScheduleUpdate,
    horizon: Horizon,
    *,
    now: dt.datetime,
) -> None:
    """``PATCH /deployments/{id}/schedules/{schedule_id}``: runs that no longer match are
    replaced."""
    await _lock_deployment(conn, deployment_id)
    if not await update_schedule(conn, deployment_id, body, schedule_id=schedule_id, now=now):
        raise NotFound(SCHEDULE_NOT_FOUND)
    await replan(conn, deployment_id, horizon, now=now)


async def delete_deployment_schedule(
    conn: Connection,
    deployment_id: uuid.UUID,
    schedule_id: uuid.UUID,
    horizon: Horizon,
    *,
    now: dt.datetime,
) -> None:
    """``DELETE /deployments/{id}/schedules/{schedule_id}``: as Prefect does, the
    auto-scheduled runs still waiting go too (then the other schedules' runs are planned
    again)."""
    await _lock_deployment(conn, deployment_id)
    if not await delete_schedule(conn, deployment_id, schedule_id):
        raise NotFound(SCHEDULE_NOT_FOUND)
    await replan(conn, deployment_id, horizon, clear_late=True, now=now)


async def _require_deployment(conn: Connection, deployment_id: uuid.UUID) -> None:
    found = await conn.execute(select(_deployment.id).where(_deployment.id == deployment_id))
    if found.first() is None:
        raise NotFound(DEPLOYMENT_NOT_FOUND)


async def _lock_deployment(conn: Connection, deployment_id: uuid.UUID) -> None:
    """Lock the deployment before touching its schedules. The scheduler pass locks a
    deployment, then writes its schedules; a schedule edit taking the schedule row first and
    the deployment second (in ``replan``) deadlocks with it on PostgreSQL."""
    if await lock_deployment(conn, deployment_id) is None:
        raise NotFound(DEPLOYMENT_NOT_FOUND)
