"""Resolve ``__prefect_kind`` placeholders in flow-run parameters.

Prefect clients (the UI most of all) send parameter values as small tagged objects,
``{"__prefect_kind": K, ...}``, that the server replaces before schema validation:

=====================  ==================================================================
kind                   replaced by
=====================  ==================================================================
``none``               its ``value``, itself hydrated
``json``               ``value`` parsed as JSON (a dict ``value`` is hydrated first);
                       an object without ``value`` disappears from its parent
``jinja``              ``template`` rendered in a sandbox with an empty context
``workspace_variable`` the value of the variable called ``variable_name``; an object
                       without ``variable_name`` disappears from its parent
anything else          its ``value`` as is (``None`` when absent), not hydrated further
=====================  ==================================================================

The first failure stops hydration and becomes a 400 whose reason text matches Prefect
3.9.1's. This module is pure: the caller loads the variables, and
:func:`referenced_variable_names` tells it which ones, so it never reads the whole table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from deputy.errors import BadRequest

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.environment import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "DEPLOYMENT_PREFIX",
    "FLOW_RUN_PREFIX",
    "KIND_KEY",
    "HydrationFailed",
    "VariableSource",
    "has_placeholders",
    "hydrate_parameters",
    "referenced_variable_names",
    "render_template",
]

KIND_KEY = "__prefect_kind"
FLOW_RUN_PREFIX = "Error hydrating flow run parameters: "
DEPLOYMENT_PREFIX = "Error hydrating deployment parameters: "

# The marker can only appear in compact JSON as an object key followed by a colon: inside
# a string value its quotes would be escaped. Finding it this way is exact and fast.
_MARKER = b'"' + KIND_KEY.encode() + b'":'

#: A name -> value mapping, or a callable that returns the value and raises ``KeyError``.
VariableSource = Mapping[str, Any] | Callable[[str], Any]

# Sandbox limits, the same as Prefect's so that the same templates pass and fail.
_MAX_RANGE = 100
_MAX_FOR_LOOPS = 10
_MAX_LOOP_NESTING = 2


class HydrationFailed(BadRequest):
    """A 400 whose ``reason`` is the Prefect-compatible text without the endpoint prefix.

    It is also the "leftover placeholder" that schema validation reports if one ever
    reaches it (see ``deputy.parameters.schema``).
    """

    def __init__(self, reason: str, prefix: str = FLOW_RUN_PREFIX) -> None:
        super().__init__(prefix + reason)
        self.reason = reason


class _Failure(Exception):
    """Internal: carries a reason up the recursion without building a response message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NeedsVariables(Exception):
    """Internal: a variable name depends on another variable's value."""


class _Remove:
    """Sentinel for "drop this entry from the parent container"."""


_REMOVE = _Remove()
_NESTED_FIELD = {"json": "value", "jinja": "template", "workspace_variable": "variable_name"}
_MISSING = object()


# --------------------------------------------------------------------------- public API


def has_placeholders(values: Any) -> bool:
    """True when some dict inside ``values`` has a ``__prefect_kind`` key.

    Called on every run creation, so it serialises with orjson (C speed) and searches the
    bytes, falling back to a Python walk for values orjson refuses (huge ints, non-str keys).
    """
    try:
        return _MARKER in orjson.dumps(values)
    except (TypeError, orjson.JSONEncodeError):
        return any(True for _ in _marked_dicts(values))


def hydrate_parameters(
    values: dict[str, Any],
    variables: VariableSource | None = None,
    *,
    prefix: str = FLOW_RUN_PREFIX,
) -> dict[str, Any]:
    """Return ``values`` with every placeholder replaced (recursively).

    ``variables`` resolves ``workspace_variable`` names; load it with
    :func:`referenced_variable_names`. Without placeholders ``values`` itself is returned
    (not a copy). When ``values`` is itself a placeholder, its result must be an object;
    one that vanishes gives ``{}``.

    Raises :class:`HydrationFailed` (400, ``prefix + reason``) on the first failure.
    """
    if not has_placeholders(values):
        return values
    lookup = _lookup_function(variables)
    try:
        result = _hydrate(values, lookup)
    except _Failure as exc:
        raise HydrationFailed(exc.reason, prefix) from None
    if result is _REMOVE:
        return {}
    if not isinstance(result, dict):
        # Prefect goes on with a non-object and fails later with a 500.
        raise HydrationFailed(
            f"Parameters must hydrate to an object, not {type(result).__name__}", prefix
        )
    return result


def referenced_variable_names(values: Any) -> set[str] | None:
    """Names of the workspace variables hydrating ``values`` may look up.

    Lets the service load just these rows. ``None`` means a variable name is itself
    computed from another variable, so the caller must load every variable. Names are a
    superset: a reference that hydration would never reach is still listed.
    """
    names: set[str] = set()
    for obj in _marked_dicts(values):
        if obj.get(KIND_KEY) == "workspace_variable" and "variable_name" in obj:
            name = obj["variable_name"]
            if isinstance(name, str):
                names.add(name)
            elif isinstance(name, dict):
                computed = _static_name(name)
                if computed is _MISSING:
                    return None
                if isinstance(computed, str):
                    names.add(computed)
    return names


def render_template(template: Any) -> str:
    """Render a user template in the sandbox with an empty context.

    Raises :class:`HydrationFailed` with Prefect's ``Invalid jinja: ...`` reason (and the
    flow-run prefix); used by hydration and reusable wherever Prefect renders user jinja.
    """
    try:
        return _render(template)
    except _Failure as exc:
        raise HydrationFailed(exc.reason) from None


# ----------------------------------------------------------------------------- internals


def _marked_dicts(obj: Any) -> Iterator[dict[str, Any]]:
    """Every dict carrying the kind key that hydration may visit, outermost first."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if KIND_KEY in item:
                yield item
                kind = item[KIND_KEY]
                if kind == "none":
                    if "value" in item:
                        stack.append(item["value"])
                elif kind in _NESTED_FIELD:
                    # these hydrate their field only when it is an object
                    nested = item.get(_NESTED_FIELD[kind])
                    if isinstance(nested, dict):
                        stack.append(nested)
                # unknown kinds return their value untouched: nothing below is visited
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _static_name(obj: dict[str, Any]) -> Any:
    """Hydrate a computed variable name without variables; ``_MISSING`` if it needs one."""

    def refuse(name: str) -> Any:
        raise _NeedsVariables

    try:
        return _hydrate(obj, refuse)
    except _NeedsVariables:
        return _MISSING
    except _Failure:
        # Hydration proper meets the same failure at the same place and reports it.
        return None


def _lookup_function(variables: VariableSource | None) -> Callable[[str], Any]:
    """Normalise the variable source to ``name -> value``, raising ``KeyError`` if absent."""
    if variables is None:
        return _no_variables
    if isinstance(variables, Mapping):
        return variables.__getitem__
    return variables


def _no_variables(name: str) -> Any:
    raise KeyError(name)


def _hydrate(obj: Any, lookup: Callable[[str], Any]) -> Any:
    if isinstance(obj, dict):
        if KIND_KEY in obj:
            return _hydrate_placeholder(obj, lookup)
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            hydrated = _hydrate(value, lookup)
            if hydrated is not _REMOVE:
                out[key] = hydrated
        return out
    if isinstance(obj, list):
        return [h for item in obj if (h := _hydrate(item, lookup)) is not _REMOVE]
    return obj


def _hydrate_none(obj: dict[str, Any], lookup: Callable[[str], Any]) -> Any:
    if "value" not in obj:
        raise _Failure("Missing 'value' key in __prefect object")
    return _hydrate(obj["value"], lookup)


def _hydrate_json(obj: dict[str, Any], lookup: Callable[[str], Any]) -> Any:
    if "value" not in obj:
        return _REMOVE
    raw = obj["value"]
    if isinstance(raw, dict):
        raw = _hydrate(raw, lookup)
    if not isinstance(raw, str):  # also passes a _REMOVE through to the parent
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Failure(f"Invalid JSON: {exc}") from None


def _hydrate_jinja(obj: dict[str, Any], lookup: Callable[[str], Any]) -> Any:
    if "template" not in obj:
        raise _Failure("Missing 'template' key in __prefect object")
    template = obj["template"]
    if isinstance(template, dict):
        template = _hydrate(template, lookup)
        if template is _REMOVE:
            return _REMOVE
    return _render(template)


def _hydrate_workspace_variable(obj: dict[str, Any], lookup: Callable[[str], Any]) -> Any:
    if "variable_name" not in obj:
        return _REMOVE
    name = obj["variable_name"]
    if isinstance(name, dict):
        name = _hydrate(name, lookup)
        if name is _REMOVE:
            return _REMOVE
    if isinstance(name, str):
        try:
            return lookup(name)
        except KeyError:
            pass
    raise _Failure(f"Variable '{name}' not found in workspace.")


#: One handler per ``__prefect_kind``; an unknown kind answers its ``value`` as Prefect does.
_KIND_HANDLERS: dict[str, Callable[[dict[str, Any], Callable[[str], Any]], Any]] = {
    "none": _hydrate_none,
    "json": _hydrate_json,
    "jinja": _hydrate_jinja,
    "workspace_variable": _hydrate_workspace_variable,
}


def _hydrate_placeholder(obj: dict[str, Any], lookup: Callable[[str], Any]) -> Any:
    handler = _KIND_HANDLERS.get(obj[KIND_KEY])
    return obj.get("value") if handler is None else handler(obj, lookup)


# ------------------------------------------------------------------------------- jinja


def _bounded_range(*args: int) -> range:
    """``range`` for templates, refusing sizes that would let a template spin the CPU."""
    rng = range(*args)
    if len(rng) > _MAX_RANGE:
        raise OverflowError(
            f"Range too big. The sandbox blocks ranges larger than MAX_TEMPLATE_RANGE={_MAX_RANGE}."
        )
    return rng


# Built on the first template, not at server start: loading jinja2 costs ~15 ms and ~2 MiB.
@cache
def _environment() -> ImmutableSandboxedEnvironment:
    from jinja2 import ChainableUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # Immutable sandbox: no attribute access to dunders and no mutating methods.
    # ChainableUndefined: unknown names render as "" instead of failing, as in Prefect.
    env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined)
    env.globals["range"] = _bounded_range
    return env


@dataclass(frozen=True, slots=True)
class _Compiled:
    """Outcome of preparing one template source; cached because compiling is slow."""

    template: Template | None = None
    literal: str | None = None
    failure: str | None = None


def _loop_depth(node: nodes.Node) -> int:
    """Deepest chain of nested ``for`` loops under ``node`` (counting ``node``)."""
    from jinja2 import nodes

    below = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return below + 1 if isinstance(node, nodes.For) else below


@lru_cache(maxsize=512)
def _compile(source: str) -> _Compiled:
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError

    env = _environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return _Compiled(failure=f"Invalid jinja: {exc}")
    loops = list(tree.find_all(nodes.For))
    if len(loops) > _MAX_FOR_LOOPS:
        return _Compiled(
            failure=f"Invalid jinja: Contains {len(loops)} for loops. Templates can "
            f"contain no more than {_MAX_FOR_LOOPS} for loops."
        )
    if loops:
        depth = _loop_depth(tree)
        if depth > _MAX_LOOP_NESTING:
            return _Compiled(
                failure=f"Invalid jinja: Contains nested for loops at a depth of {depth}. "
                f"Templates can nest for loops no more than {_MAX_LOOP_NESTING} loops deep."
            )
    if "{{" not in source and "{%" not in source:
        return _Compiled(literal=source)
    try:
        return _Compiled(template=env.from_string(source))
    except Exception as exc:  # e.g. an unknown filter is found at compile time
        return _Compiled(failure=_render_failure(exc))


def _render_failure(exc: Exception) -> str:
    return f"Invalid jinja: Failed to render template due to the following error: {exc!r}"


def _render(template: Any) -> str:
    if not isinstance(template, str):
        # Prefect fails with a 500 here; a 400 naming the problem is more useful.
        raise _Failure(f"Invalid jinja: template must be a string, not {type(template).__name__}")
    compiled = _compile(template)
    if compiled.failure is not None:
        raise _Failure(compiled.failure)
    if compiled.template is None:
        return compiled.literal or ""
    try:
        return compiled.template.render({})
    except Exception as exc:  # any render error is the user's template's fault
        raise _Failure(_render_failure(exc)) from None
