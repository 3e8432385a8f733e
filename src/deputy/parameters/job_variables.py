"""Validate job variables against a work pool's ``base_job_template.variables`` schema.

Prefect 3.9.1 layers job variables: the template's property defaults, then the
deployment's ``job_variables``, then the flow run's (a shallow ``dict.update`` each time).
The result is checked with the same Draft 2020-12 machinery as parameters
(``deputy.parameters.schema``), with these job-variable rules:

* An empty template, or one without ``variables``, is not checked at all.
* A variables schema that is not valid JSON Schema is a 422 ``Invalid schema: ...``.
* A default that fails the schema is dropped; once any is dropped, ``required`` can no
  longer be trusted and is not enforced.
* A default ``{"$ref": {"block_document_id": ...}}`` stands for that block document's data.
* ``None`` is accepted for an optional variable that has a default.
* Only a flow run enforces ``required``: deployments may leave variables to their runs.

Everything that depends only on the template (meta-schema check, which defaults are valid,
compiled validators) is computed once per distinct schema and cached.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from deputy.errors import Conflict, NotFound, Unprocessable
from deputy.parameters.schema import (
    CIRCULAR_DETAIL,
    CircularSchema,
    Compiled,
    Mode,
    all_errors,
    compile_schema,
    failure_message,
    schema_key,
)

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

__all__ = [
    "BlockResolver",
    "check_deployment_update_job_variables",
    "referenced_block_document_ids",
    "validate_job_variables_for_deployment",
    "validate_job_variables_for_run",
]

#: Returns a block document's ``data`` for its id, or ``None`` if there is no such block.
BlockResolver = Callable[[UUID], Any]

BLOCK_NOT_FOUND = "Block not found."

# How each step compiles the variables schema (see Prefect's server/api/validation.py).
_TEMPLATE_CHECK = Mode(preprocess=False)
_DEFAULT_CHECK = Mode(preprocess=False, drop_required=True, assert_formats=True, check_schema=False)
_FINAL_ENFORCING = Mode(allow_none_with_default=True)
_FINAL_LENIENT = Mode(allow_none_with_default=True, drop_required=True)
_UPDATE_CONFIG = Mode(drop_required=True, assert_formats=True, check_schema=False)

_VALID = "valid"
_INVALID = "invalid"
_CIRCULAR = "circular"


@dataclass(frozen=True, slots=True)
class _Default:
    """One property default, in template order.

    ``block_id`` is set for a block reference (its value is resolved per call); for a
    plain value ``outcome`` is precomputed: valid, invalid, circular, or the text of an
    unresolvable ``$ref``.
    """

    name: str
    value: Any = None
    block_id: Any = None
    outcome: str = _VALID


@dataclass(slots=True)
class _Plan:
    """Everything about one variables schema that does not depend on the call.

    ``bare`` memoises the verdict for calls without any variables (the usual case: the
    deployment and the run set none), keyed by (enforce_required, prefix); only filled
    when no default is a block reference, whose data may change.
    """

    schema: Any
    schema_error: str | None
    defaults: tuple[_Default, ...]
    bare: dict[tuple[bool, str], str | None] = field(default_factory=dict)

    @property
    def has_block_defaults(self) -> bool:
        return any(d.block_id is not None for d in self.defaults)


_plans: OrderedDict[bytes, _Plan] = OrderedDict()
_plans_lock = threading.Lock()
_PLAN_CACHE_SIZE = 256


# ----------------------------------------------------------------------------- public API


def validate_job_variables_for_run(
    base_job_template: Mapping[str, Any] | None,
    deployment_job_variables: Mapping[str, Any] | None,
    run_job_variables: Mapping[str, Any] | None,
    *,
    resolve_block_document: BlockResolver | None = None,
    verb: str = "creating",
) -> None:
    """Check the layered job variables of a new (or updated) flow run, ``required`` enforced.

    Call only when the deployment has a work queue in a work pool; pass the pool's template.
    ``resolve_block_document`` loads block defaults; without one, a block default is
    taken to satisfy its variable. Nothing is returned: Prefect stores only the run's own
    variables, never the merge.

    Raises ``Unprocessable`` (422) ``Error {verb} flow run: Validation failed...`` (verb
    "creating", or "updating" for PATCH /flow_runs), ``Unprocessable`` ``Invalid schema:
    ...`` for a bad template, and ``NotFound`` ``Block not found.``.
    """
    prefix = f"Error {verb} flow run: "
    _validate_layers(
        base_job_template,
        (deployment_job_variables, run_job_variables),
        enforce_required=True,
        resolve=resolve_block_document,
        prefix=prefix,
    )


def validate_job_variables_for_deployment(
    base_job_template: Mapping[str, Any] | None,
    job_variables: Mapping[str, Any] | None,
    *,
    resolve_block_document: BlockResolver | None = None,
    verb: str = "creating",
) -> None:
    """Check a deployment's job variables at create time (Prefect calls it for POST only).

    Types are checked, ``required`` is not: a run may still supply the rest. No variables,
    no check. Raises ``Unprocessable`` ``Error {verb} deployment: ...``, plus the template
    errors of the run variant. PATCH in Prefect uses
    :func:`check_deployment_update_job_variables` instead (409, different text).
    """
    if not job_variables:
        return
    prefix = f"Error {verb} deployment: "
    _validate_layers(
        base_job_template,
        (job_variables,),
        enforce_required=False,
        resolve=resolve_block_document,
        prefix=prefix,
    )


def check_deployment_update_job_variables(
    base_job_template: Mapping[str, Any] | None, job_variables: Mapping[str, Any] | None
) -> None:
    """PATCH /deployments with ``work_pool_name``: the pool's schema against the new variables.

    Prefect uses a different, older check here: no defaults, ``required`` ignored, formats
    asserted, and the *first* error (not the best) reported as a 409 whose detail embeds
    the error's repr, e.g. ``Error creating deployment: <ValidationError: "None is not of
    type 'boolean'">`` (sic: "creating"). Raises ``Conflict``, or ``Unprocessable`` for a
    circular schema (Prefect: 500).
    """
    if base_job_template is None or job_variables is None:
        return
    variables = base_job_template.get("variables")
    if variables is None:
        return
    from referencing.exceptions import Unresolvable  # loaded with jsonschema, on first use

    compiled = compile_schema(variables, _UPDATE_CONFIG)
    try:
        errors = all_errors(compiled, job_variables)
    except CircularSchema:
        raise Unprocessable(CIRCULAR_DETAIL) from None
    except Unresolvable as exc:
        text = f"Validation failed. Failure reason: {exc}"
        raise Conflict(f"Error creating deployment: ValidationError({text!r})") from None
    if errors:
        raise Conflict(f"Error creating deployment: <ValidationError: {errors[0].message!r}>")


def referenced_block_document_ids(base_job_template: Mapping[str, Any] | None) -> set[UUID]:
    """Block documents that the template's defaults point at, so a caller can preload them."""
    ids: set[UUID] = set()
    variables = (base_job_template or {}).get("variables")
    if not isinstance(variables, dict) or not isinstance(variables.get("properties"), dict):
        return ids
    for attrs in variables["properties"].values():
        ref = _block_reference(attrs.get("default")) if isinstance(attrs, dict) else None
        if ref is not None and (parsed := _parse_uuid(ref)) is not None:
            ids.add(parsed)
    return ids


# ----------------------------------------------------------------------------- internals


def _validate_layers(
    base_job_template: Mapping[str, Any] | None,
    layers: tuple[Mapping[str, Any] | None, ...],
    *,
    enforce_required: bool,
    resolve: BlockResolver | None,
    prefix: str,
) -> None:
    if not base_job_template:
        return
    variables = base_job_template.get("variables")
    if not variables:
        return
    plan = _plan_for(variables)
    if any(layers) or plan.has_block_defaults:
        _check_layers(plan, variables, layers, enforce_required, resolve, prefix)
        return
    memo_key = (enforce_required, prefix)
    if memo_key not in plan.bare:
        try:
            _check_layers(plan, variables, layers, enforce_required, resolve, prefix)
        except Unprocessable as exc:
            plan.bare[memo_key] = exc.message
        else:
            plan.bare[memo_key] = None
    detail = plan.bare[memo_key]
    if detail is not None:
        raise Unprocessable(detail)


def _check_layers(
    plan: _Plan,
    variables: Any,
    layers: tuple[Mapping[str, Any] | None, ...],
    enforce_required: bool,
    resolve: BlockResolver | None,
    prefix: str,
) -> None:
    if plan.schema_error is not None:
        raise Unprocessable(f"Invalid schema: {plan.schema_error}")
    if not isinstance(variables, dict):
        return  # `true` is a valid schema accepting anything (Prefect crashes here)

    merged, satisfied, any_invalid = _merge_defaults(plan, resolve, prefix)
    for layer in layers:
        if isinstance(layer, Mapping):
            merged.update(layer)

    lenient = not enforce_required or any_invalid
    compiled = compile_schema(variables, _FINAL_LENIENT if lenient else _FINAL_ENFORCING)
    if compiled.schema_error is not None:
        raise Unprocessable(f"Invalid schema: {compiled.schema_error}")
    unmet = satisfied.difference(merged) if not lenient else set()
    try:
        message = failure_message(compiled, merged, _skip_required(unmet))
    except CircularSchema:
        raise Unprocessable(CIRCULAR_DETAIL) from None
    if message is not None:
        raise Unprocessable(prefix + message)


def _merge_defaults(
    plan: _Plan, resolve: BlockResolver | None, prefix: str
) -> tuple[dict[str, Any], set[str], bool]:
    """The valid defaults by name, the names a block default stands in for without being
    resolved, and whether any default was invalid (which makes the final check lenient)."""
    merged: dict[str, Any] = {}
    satisfied: set[str] = set()
    any_invalid = False
    for default in plan.defaults:
        if default.block_id is None:
            value, outcome = default.value, default.outcome
        else:
            block_id = _parse_uuid(default.block_id)
            if block_id is None:
                raise NotFound(BLOCK_NOT_FOUND)
            if resolve is None:
                satisfied.add(default.name)
                continue
            value = resolve(block_id)
            if value is None:
                raise NotFound(BLOCK_NOT_FOUND)
            outcome = _default_outcome(plan.schema, default.name, value)
        if outcome == _VALID:
            merged[default.name] = value
        elif outcome == _INVALID:
            any_invalid = True
        elif outcome == _CIRCULAR:
            raise Unprocessable(CIRCULAR_DETAIL)
        else:
            raise Unprocessable(prefix + outcome)
    return merged, satisfied, any_invalid


def _skip_required(names: set[str]) -> Callable[[ValidationError], bool] | None:
    """Filter for root ``required`` errors about variables a block default stands in for."""
    if not names:
        return None
    texts = {f"{name!r} is a required property" for name in names}

    def skip(error: ValidationError) -> bool:
        return error.validator == "required" and not error.path and error.message in texts

    return skip


def _plan_for(variables: Any) -> _Plan:
    key = schema_key(variables)
    with _plans_lock:
        found = _plans.get(key)
        if found is not None:
            _plans.move_to_end(key)
            return found
    plan = _make_plan(variables)
    with _plans_lock:
        _plans[key] = plan
        if len(_plans) > _PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return plan


def _make_plan(variables: Any) -> _Plan:
    variables = copy.deepcopy(variables)  # defaults are kept; the caller's dict may change
    checked = compile_schema(variables, _TEMPLATE_CHECK)
    if checked.schema_error is not None or not isinstance(variables, dict):
        return _Plan(variables, checked.schema_error, ())
    properties = variables.get("properties")
    defaults: list[_Default] = []
    for name, attrs in (properties if isinstance(properties, dict) else {}).items():
        if not isinstance(attrs, dict) or "default" not in attrs:
            continue
        value = attrs["default"]
        if isinstance(value, dict) and "$ref" in value:
            block_id = _block_reference(value)
            if block_id is not None:  # an unusable reference contributes nothing
                defaults.append(_Default(name, block_id=block_id))
            continue
        defaults.append(_Default(name, value, outcome=_default_outcome(variables, name, value)))
    return _Plan(variables, None, tuple(defaults))


def _default_outcome(variables: Any, name: str, value: Any) -> str:
    """Check one default alone against the schema (formats asserted, ``required`` ignored)."""
    from referencing.exceptions import Unresolvable  # loaded with jsonschema, on first use

    compiled: Compiled = compile_schema(variables, _DEFAULT_CHECK)
    try:
        return _INVALID if all_errors(compiled, {name: value}) else _VALID
    except CircularSchema:
        return _CIRCULAR
    except Unresolvable as exc:
        return f"Validation failed. Failure reason: {exc}"


def _block_reference(default: Any) -> Any:
    """The ``block_document_id`` of a ``{"$ref": {...}}`` default, else ``None``."""
    if not isinstance(default, dict):
        return None
    ref = default.get("$ref")
    return ref.get("block_document_id") if isinstance(ref, dict) else None


def _parse_uuid(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None
