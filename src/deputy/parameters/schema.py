"""Validate flow-run and deployment parameters against a deployment's JSON schema.

Prefect 3.9.1 rules this module reproduces:

* Draft 2020-12 keywords, type checker and meta-schema; formats are annotations only.
* Schemas written by pydantic v1 are repaired first: an optional typed property without a
  default also accepts ``null``, a list-valued ``items`` means ``prefixItems``, and a
  definition describing a block also accepts ``{"$ref": <block document id>}``.
* Only the best error (``jsonschema.exceptions.best_match``) is reported, as
  ``Validation failed[ for field 'a.b[0]']. Failure reason: <jsonschema message>``.
* ``$ref`` is resolved inside the document only. Nothing is ever fetched: the registry is
  empty and cannot retrieve, so a remote ref is an ordinary validation failure.
* A schema whose refs loop forever is a 422, not a crash.
* A hydration failure left inside the values fails validation at its position.

Compiling a validator (meta-schema check, pydantic fixes) costs far more than using one,
so compiled validators are kept in an LRU keyed by the schema's exact JSON text.
``deputy.parameters.job_variables`` builds on the same machinery.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from deputy.errors import Conflict, Unprocessable
from deputy.parameters.hydration import HydrationFailed

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from referencing import Registry

__all__ = [
    "CIRCULAR_DETAIL",
    "MISSING_SCHEMA_DETAIL",
    "CircularSchema",
    "Compiled",
    "Mode",
    "all_errors",
    "compile_schema",
    "deployment_parameters_error",
    "enforce_flow_run_parameters",
    "ensure_schema_present",
    "failure_message",
    "schema_key",
    "validate_deployment_update_parameters",
    "validate_parameters",
]

CIRCULAR_DETAIL = "Invalid schema: Unable to validate schema with circular references."
MISSING_SCHEMA_DETAIL = (
    "Error updating deployment: Cannot update parameters because parameter schema "
    "enforcement is enabled and the deployment does not have a valid parameter schema."
)
_INVALID_OPENAPI = "The provided schema is not a valid json schema. Schema error: "
_CACHE_SIZE = 512


class CircularSchema(Exception):
    """Validation recursed without end, which in practice means a ``$ref`` cycle."""


# ----------------------------------------------------------------------- validator class

_PLACEHOLDER_KEYWORD = "__deputy_unhydrated"


def _reject_unhydrated(
    validator: Any, value: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if isinstance(instance, HydrationFailed):
        from jsonschema.exceptions import ValidationError

        yield ValidationError(instance.reason)


def _keywords_with_placeholder_check(schema: Any) -> Iterable[tuple[str, Any]]:
    # Applied to every (sub)schema, so a failed placeholder is caught wherever it sits,
    # without editing the schema.
    if not isinstance(schema, Mapping):
        return ()
    return (*schema.items(), (_PLACEHOLDER_KEYWORD, None))


# jsonschema is loaded when the first schema is compiled, not at server start (~60 ms, ~5 MiB).
@functools.cache
def _validator_class() -> Any:
    """Draft 2020-12 plus the placeholder check.

    Not registered under a version name: that would make jsonschema's `validator_for` hand
    this class out to unrelated code that asks for Draft 2020-12.
    """
    from jsonschema.validators import Draft202012Validator, create

    return create(
        meta_schema=Draft202012Validator.META_SCHEMA,
        validators={**Draft202012Validator.VALIDATORS, _PLACEHOLDER_KEYWORD: _reject_unhydrated},
        type_checker=Draft202012Validator.TYPE_CHECKER,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
        id_of=Draft202012Validator.ID_OF,
        applicable_validators=_keywords_with_placeholder_check,
    )


@functools.cache
def _registry() -> Registry[Any]:
    """Empty and without `retrieve`: in-document refs and the bundled meta-schemas resolve,
    anything else raises Unresolvable instead of touching the network."""
    from referencing import Registry

    return Registry()


# --------------------------------------------------------------------------- compilation


@dataclass(frozen=True, slots=True)
class Mode:
    """How a schema is turned into a validator; each Prefect call site uses one mode."""

    preprocess: bool = True
    allow_none_with_default: bool = False
    drop_required: bool = False
    #: Pick the validator class from the schema's ``$schema`` (plain ``jsonschema.validate``).
    auto_dialect: bool = False
    assert_formats: bool = False
    check_schema: bool = True


@dataclass(frozen=True, slots=True)
class Compiled:
    """A ready validator, or the meta-schema error that prevented building one."""

    validator: Any = None
    schema_error: str | None = None
    circular: bool = False


_RUN = Mode()
_UPDATE = Mode(drop_required=True)
_CREATE = Mode(preprocess=False, drop_required=True, auto_dialect=True)
_OPENAPI_CHECK = Mode(preprocess=False, auto_dialect=False)

_cache: OrderedDict[tuple[Mode, bytes], Compiled] = OrderedDict()
_cache_lock = threading.Lock()


def schema_key(schema: Any) -> bytes:
    """Exact, order-preserving JSON text of the schema (order can change the best error)."""
    try:
        return orjson.dumps(schema)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(schema, default=repr).encode()


def compile_schema(schema: Any, mode: Mode) -> Compiled:
    """Return the cached validator for ``schema`` under ``mode``, building it on a miss."""
    key = (mode, schema_key(schema))
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    built = _build(schema, mode)
    with _cache_lock:
        _cache[key] = built
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return built


def _build(schema: Any, mode: Mode) -> Compiled:
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import Draft202012Validator, validator_for

    # Private copy: the cache outlives the caller's dict, which may be mutated later.
    work = copy.deepcopy(schema)
    try:
        if mode.preprocess and isinstance(work, dict):
            _repair_pydantic_v1(work, mode.allow_none_with_default)
        if mode.drop_required:
            work = _without_required(work)
        cls: Any = _validator_class()
        if mode.auto_dialect:
            try:
                dialect_aware = isinstance(work, (dict, bool))
                cls = validator_for(work) if dialect_aware else Draft202012Validator
            except TypeError:  # an unhashable "$schema"
                cls = Draft202012Validator
        if mode.check_schema:
            cls.check_schema(work)
    except SchemaError as exc:
        return Compiled(schema_error=exc.message)
    except RecursionError:
        return Compiled(circular=True)
    checker = cls.FORMAT_CHECKER if mode.assert_formats else None
    return Compiled(validator=cls(work, registry=_registry(), format_checker=checker))


def _repair_pydantic_v1(fixed: dict[str, Any], allow_none_with_default: bool) -> None:
    """Make pydantic-v1 output valid Draft 2020-12 in place (see module doc)."""
    properties = fixed.get("properties")
    if isinstance(properties, dict):
        _repair_properties(properties, fixed.get("required", []), allow_none_with_default)
    definitions = fixed.get("definitions")
    if isinstance(definitions, dict):
        for definition in list(definitions.values()):
            if not isinstance(definition, dict):
                continue
            inner = definition.get("properties")
            if isinstance(inner, dict):
                _repair_properties(inner, definition.get("required", []), allow_none_with_default)
            title = definition.get("title")
            if "block_type_slug" in definition and isinstance(title, str):
                # Stored under the title (not the original key), as Prefect does.
                definitions[title] = {"oneOf": [definition, _block_reference_schema()]}


def _block_reference_schema() -> dict[str, Any]:
    """A block given by reference: ``{"$ref": "<uuid>"}`` or ``{"$ref": {"k": "v", ...}}``."""
    return {
        "type": "object",
        "properties": {
            "$ref": {
                "oneOf": [
                    {"type": "string", "format": "uuid"},
                    {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "minProperties": 1,
                    },
                ]
            }
        },
        "required": ["$ref"],
    }


def _listed(name: str, required: Any) -> bool:
    try:
        return name in required
    except TypeError:
        return False


def _repair_properties(
    properties: dict[str, Any], required: Any, allow_none_with_default: bool
) -> None:
    for name, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        if (
            not _listed(name, required)
            and "type" in sub
            and sub["type"] != "null"
            and ("default" not in sub or allow_none_with_default)
        ):
            sub["anyOf"] = [{"type": sub.pop("type")}, {"type": "null"}]
        items = sub.get("items")
        if items and isinstance(items, list) and not sub.get("prefixItems"):
            sub["prefixItems"] = copy.deepcopy(items)
            del sub["items"]
        nested = sub.get("properties")
        if isinstance(nested, dict):
            _repair_properties(nested, sub.get("required", []), allow_none_with_default)


def _without_required(obj: Any) -> Any:
    """Drop every ``required`` key reachable through objects (not through arrays).

    Prefect's "ignore required" mode works this way; it also removes a *property* named
    ``required`` and keeps ``required`` inside ``anyOf``/``allOf`` lists. Kept as is.
    """
    if not isinstance(obj, dict):
        return obj
    return {k: _without_required(v) for k, v in obj.items() if k != "required"}


# ----------------------------------------------------------------------------- checking


def _describe(error: ValidationError) -> str:
    path: str = error.json_path
    if path == "$":
        where = "Validation failed."
    else:
        where = f"Validation failed for field {path.replace('$.', '')!r}."
    return f"{where} Failure reason: {error.message}"


def failure_message(
    compiled: Compiled,
    instance: Any,
    skip: Callable[[ValidationError], bool] | None = None,
) -> str | None:
    """Prefect's text for the best error of ``instance``, or ``None`` if it is valid.

    ``skip`` drops errors before the best one is chosen. Raises :class:`CircularSchema`.
    An unresolvable ``$ref`` is reported as a failure.
    """
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    if compiled.circular:
        raise CircularSchema
    try:
        errors: Iterable[ValidationError] = compiled.validator.iter_errors(instance)
        if skip is not None:
            errors = (e for e in errors if not skip(e))
        error = best_match(errors)
    except RecursionError:
        raise CircularSchema from None
    except Unresolvable as exc:
        return f"Validation failed. Failure reason: {exc}"
    return None if error is None else _describe(error)


def all_errors(compiled: Compiled, instance: Any) -> list[ValidationError]:
    """Every error (Prefect's non-raising mode); same exceptions as :func:`failure_message`.

    Raises ``Unresolvable`` as is; callers decide how to word it.
    """
    if compiled.circular:
        raise CircularSchema
    try:
        return list(compiled.validator.iter_errors(instance))
    except RecursionError:
        raise CircularSchema from None


# ----------------------------------------------------------------------------- public API


def ensure_schema_present(schema: Any) -> dict[str, Any]:
    """With enforcement on, a deployment needs a dict schema; otherwise 409 (Prefect's text)."""
    if not isinstance(schema, dict):
        raise Conflict(MISSING_SCHEMA_DETAIL)
    return schema


def validate_parameters(parameters: Any, schema: dict[str, Any]) -> None:
    """Check merged, hydrated run parameters, ``required`` enforced (create_flow_run).

    Raises ``Conflict`` (409, ``Error creating flow run: ...``) for invalid parameters,
    ``Unprocessable`` (422) for a circular schema, and ``Unprocessable`` (422,
    ``Invalid schema: <meta-schema error>``) for a schema that is not valid JSON Schema,
    where Prefect answers 500.
    """
    if not schema:  # the default `{}` accepts everything
        return
    compiled = compile_schema(schema, _RUN)
    _raise_for(compiled, parameters, Conflict, "Error creating flow run: ")


def enforce_flow_run_parameters(parameters: Any, schema: Any, *, enforce: bool | None) -> None:
    """The whole step 3 of create_flow_run: nothing if not enforcing, else present + valid.

    ``enforce`` is the already-resolved flag (request's value, else the deployment's).
    """
    if not enforce:
        return
    validate_parameters(parameters, ensure_schema_present(schema))


def run_input_problem(run_input: Any, schema: Any) -> str | None:
    """Why the input a paused run is resumed with does not fit the schema it asked for, or
    ``None``: checked as run parameters are. Raises :class:`CircularSchema`."""
    compiled = compile_schema(schema, _RUN)
    if compiled.schema_error is not None:
        return f"Invalid schema: {compiled.schema_error}"
    return failure_message(compiled, run_input)


def validate_deployment_update_parameters(parameters: Any, schema: dict[str, Any]) -> None:
    """PATCH /deployments: types checked, ``required`` ignored.

    Raises ``Conflict`` (409, ``Error updating deployment: ...``) and the 422s of
    :func:`validate_parameters`.
    """
    if not schema:
        return
    compiled = compile_schema(schema, _UPDATE)
    _raise_for(compiled, parameters, Conflict, "Error updating deployment: ")


def deployment_parameters_error(parameters: Any, schema: Any) -> str | None:
    """Problem with a new deployment's default parameters, as Prefect's model validator words it.

    Call only when the request explicitly enables ``enforce_parameter_schema`` (Prefect
    checks the raw body). Types are checked and ``required`` is ignored, because runs may
    supply the rest. The schema itself must be valid JSON Schema. Returns the message for
    the 422 request-validation envelope (pydantic prefixes it with ``"Value error, "``),
    or ``None``. Raises ``Unprocessable`` for a circular schema (Prefect: 500).
    """
    if schema is None:
        return None
    if parameters is not None:
        compiled = compile_schema(schema, _CREATE)
        if compiled.schema_error is not None:
            return _INVALID_OPENAPI + compiled.schema_error
        try:
            message = failure_message(compiled, parameters)
        except CircularSchema:
            raise Unprocessable(CIRCULAR_DETAIL) from None
        if message is not None:
            return message
    checked = compile_schema(schema, _OPENAPI_CHECK)
    if checked.schema_error is not None:
        return _INVALID_OPENAPI + checked.schema_error
    return None


def _raise_for(
    compiled: Compiled,
    instance: Any,
    error_class: type[Conflict] | type[Unprocessable],
    prefix: str,
) -> None:
    if compiled.schema_error is not None:
        raise Unprocessable(f"Invalid schema: {compiled.schema_error}")
    try:
        message = failure_message(compiled, instance)
    except CircularSchema:
        raise Unprocessable(CIRCULAR_DETAIL) from None
    if message is not None:
        raise error_class(prefix + message)
