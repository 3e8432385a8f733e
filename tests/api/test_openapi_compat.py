"""deputy's OpenAPI document, compared mechanically with Prefect 3.9.1's.

For every (method, path) deputy serves, this checks against Prefect's document:

* the path exists there (apart from ``DELIBERATE_EXTRAS``);
* path and query parameters agree by name, location, requiredness and type;
* the request body agrees: present or not, required or not, and, recursively through every
  object, the same property names, the same required set, compatible types and the same enum
  values;
* the success status and response agree: the declared status code, and recursively the same
  property names, compatible types and enum values (requiredness of response fields is not
  compared: the server always answers every field).

Schemas are compared by structure, never by component name (deputy's ``FlowFilterBody`` is
Prefect's ``Body_read_flows_flows_filter_post``). Types are compared loosely: the set of
JSON-schema types a value may take (``anyOf`` branches unioned, ``$ref`` resolved, formats
ignored), where an unconstrained schema matches anything. An object with declared properties
on one side and an open object (``dict[str, Any]``) on the other is a difference.

Prefect's ``Body_*`` bodies are assembled by FastAPI from several parameters, and an explicit
``null`` for an optional one means "not sent"; so the nullability of their top-level keys is
not compared, and ``test_optional_body_keys_accept_null`` checks the behaviour instead.

Every difference must be listed in ``DELIBERATE_DIFFERENCES`` with its reason, and every entry
there must still occur, so the list stays honest. Prefect lists an ``x-prefect-api-version``
header on almost every route; deputy checks that header in middleware rather than per route,
so header parameters named in ``IGNORED_HEADERS`` are not compared.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

PREFECT_OPENAPI = Path(
    os.environ.get("DEPUTY_PREFECT_OPENAPI", "/work/shared/reference/prefect-3.9.1-openapi.json")
)

HTTP_METHODS = ("get", "put", "post", "patch", "delete")

#: Header parameters Prefect declares per route that deputy handles in middleware.
IGNORED_HEADERS = frozenset({"x-prefect-api-version"})

#: How deep nested objects are compared; Prefect's deepest request bodies are well within it.
MAX_DEPTH = 12

#: (METHOD, path) deputy serves that Prefect 3.9.1 does not, with the reason.
DELIBERATE_EXTRAS: dict[tuple[str, str], str] = {}

_CREATED_STATUS = (
    "deputy declares the 201 it answers for a new object; Prefect's handler also answers 201 "
    "(200 for an existing one) but its OpenAPI declares only 200."
)
_CSRF = (
    "CSRF protection is off, as on a default Prefect server: the endpoint always answers 422 "
    "and never a CsrfToken, so no response model is declared."
)
_NO_AUTOMATIONS = (
    "deputy stores no automations, so the list is always empty and no Automation model is "
    "declared for its items."
)

#: (METHOD, path, aspect) -> why deputy differs from Prefect there on purpose.
#: ``aspect`` is the ``Mismatch.aspect`` a failing run prints.
DELIBERATE_DIFFERENCES: dict[tuple[str, str, str], str] = {
    ("POST", "/flows/", "status"): _CREATED_STATUS,
    ("POST", "/deployments/", "status"): _CREATED_STATUS,
    ("POST", "/deployments/{id}/create_flow_run", "status"): _CREATED_STATUS,
    ("POST", "/flow_runs/", "status"): _CREATED_STATUS,
    ("POST", "/artifacts/", "status"): _CREATED_STATUS,
    ("GET", "/csrf-token", "response: properties"): _CSRF,
    ("GET", "/automations/related-to/{resource_id}", "response[]: properties"): _NO_AUTOMATIONS,
}


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """An OpenAPI document, able to resolve its own ``#/components/...`` references."""

    spec: dict[str, Any]

    def resolve(self, schema: Any) -> Any:
        """Follow ``$ref`` (and single-element ``allOf`` wrappers) to the schema itself."""
        for _ in range(50):
            if not isinstance(schema, dict):
                return schema
            if "$ref" in schema:
                schema = self._lookup(schema["$ref"])
            elif len(schema.get("allOf", ())) == 1 and not schema.get("properties"):
                schema = schema["allOf"][0]
            else:
                return schema
        raise AssertionError(f"reference cycle while resolving {schema!r}")

    def _lookup(self, ref: str) -> Any:
        assert ref.startswith("#/"), f"external reference {ref}"
        node: Any = self.spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def operations(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every operation, keyed by (METHOD, path)."""
        return {
            (method.upper(), path): operation
            for path, item in self.spec.get("paths", {}).items()
            for method, operation in item.items()
            if method in HTTP_METHODS
        }


def load_prefect() -> Document:
    if not PREFECT_OPENAPI.is_file():
        pytest.skip(f"Prefect's OpenAPI document is not at {PREFECT_OPENAPI}")
    return Document(json.loads(PREFECT_OPENAPI.read_text()))


async def load_deputy(client: httpx.AsyncClient) -> Document:
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return Document(response.json())


# --- mismatches ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Mismatch:
    """One difference: where it is (``key``) and what it is (``detail``)."""

    method: str
    path: str
    aspect: str
    detail: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.path, self.aspect)

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.aspect}]: {self.detail}"


def report(title: str, lines: list[str]) -> str:
    return f"{title} ({len(lines)}):\n" + "\n".join(f"  - {line}" for line in lines)


# --- types --------------------------------------------------------------------------------


def type_set(doc: Document, schema: Any) -> frozenset[str]:
    """The JSON types a schema admits, loosely: ``{"any"}`` when it does not say."""
    schema = doc.resolve(schema)
    if not isinstance(schema, dict):
        return frozenset({"any"})
    branches = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if branches:
        return frozenset().union(*(type_set(doc, branch) for branch in branches))
    if "type" in schema:
        declared = schema["type"]
        return frozenset(declared if isinstance(declared, list) else [declared])
    if "const" in schema:
        return frozenset({json_type(schema["const"])})
    if "enum" in schema:
        return frozenset(json_type(value) for value in schema["enum"])
    if "properties" in schema or "additionalProperties" in schema:
        return frozenset({"object"})
    if "items" in schema:
        return frozenset({"array"})
    return frozenset({"any"})


def json_type(value: Any) -> str:
    """The JSON-schema type name of a Python value from a JSON document."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def types_compatible(ours: frozenset[str], theirs: frozenset[str]) -> bool:
    return ours == theirs or "any" in ours or "any" in theirs


def show_types(types: frozenset[str]) -> str:
    return "|".join(sorted(types))


def branches_with(doc: Document, schema: Any, key: str) -> list[dict[str, Any]]:
    """The resolved branches of a (possibly ``anyOf``) schema that declare ``key``."""
    schema = doc.resolve(schema)
    if not isinstance(schema, dict):
        return []
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return [found for branch in branches for found in branches_with(doc, branch, key)]
    return [schema] if key in schema else []


def single_branch(doc: Document, schema: Any, key: str) -> dict[str, Any] | None:
    """The one branch declaring ``key``, or None when there is none or several."""
    found = branches_with(doc, schema, key)
    return found[0] if len(found) == 1 else None


# --- schema comparison --------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a schema and the document its references resolve in."""

    doc: Document
    schema: Any


def compare_schemas(
    ours: Side, theirs: Side, where: str, *, check_required: bool, depth: int = 0
) -> Iterator[tuple[str, str]]:
    """Yield ``(aspect, detail)`` for each structural difference, recursing into children."""
    our_types, their_types = type_set(ours.doc, ours.schema), type_set(theirs.doc, theirs.schema)
    if not types_compatible(our_types, their_types):
        yield (
            f"{where}: type",
            f"deputy {show_types(our_types)}, Prefect {show_types(their_types)}",
        )
        return
    yield from compare_enums(ours, theirs, where)
    if depth >= MAX_DEPTH:
        return
    yield from compare_objects(ours, theirs, where, check_required=check_required, depth=depth)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        our_child = single_branch(ours.doc, ours.schema, key)
        their_child = single_branch(theirs.doc, theirs.schema, key)
        if our_child is None or their_child is None:
            continue
        our_value, their_value = our_child[key], their_child[key]
        if isinstance(our_value, bool) or isinstance(their_value, bool):
            continue
        yield from compare_schemas(
            Side(ours.doc, our_value),
            Side(theirs.doc, their_value),
            where + suffix,
            check_required=check_required,
            depth=depth + 1,
        )


def compare_enums(ours: Side, theirs: Side, where: str) -> Iterator[tuple[str, str]]:
    """The allowed values of two enumerations (an open string on either side matches)."""
    our_enum = single_branch(ours.doc, ours.schema, "enum")
    their_enum = single_branch(theirs.doc, theirs.schema, "enum")
    if our_enum is None or their_enum is None:
        return
    our_values, their_values = set(our_enum["enum"]), set(their_enum["enum"])
    if our_values != their_values:
        yield (
            f"{where}: enum",
            describe_sets(
                missing=sorted(their_values - our_values, key=str),
                extra=sorted(our_values - their_values, key=str),
            ),
        )


def compare_objects(
    ours: Side, theirs: Side, where: str, *, check_required: bool, depth: int
) -> Iterator[tuple[str, str]]:
    """Property names, required set, then each shared property, of two object schemas."""
    our_objects = branches_with(ours.doc, ours.schema, "properties")
    their_objects = branches_with(theirs.doc, theirs.schema, "properties")
    if bool(our_objects) != bool(their_objects):
        declared = sorted((our_objects or their_objects)[0]["properties"])
        who = "deputy" if our_objects else "Prefect"
        yield (f"{where}: properties", f"open object; only {who} declares {declared}")
        return
    if len(our_objects) != 1 or len(their_objects) != 1:
        return
    our_object, their_object = our_objects[0], their_objects[0]
    our_props, their_props = our_object["properties"], their_object["properties"]
    missing = sorted(set(their_props) - set(our_props))
    extra = sorted(set(our_props) - set(their_props))
    if missing or extra:
        yield (f"{where}: properties", describe_sets(missing=missing, extra=extra))
    if check_required:
        our_required = set(our_object.get("required", ())) & set(their_props)
        their_required = set(their_object.get("required", ())) & set(our_props)
        if our_required != their_required:
            yield (
                f"{where}: required",
                describe_sets(
                    **{
                        "required only by deputy": sorted(our_required - their_required),
                        "required only by Prefect": sorted(their_required - our_required),
                    }
                ),
            )
    for name in sorted(set(our_props) & set(their_props)):
        yield from compare_schemas(
            Side(ours.doc, our_props[name]),
            Side(theirs.doc, their_props[name]),
            f"{where}.{name}",
            check_required=check_required,
            depth=depth + 1,
        )


def describe_sets(**groups: list[str]) -> str:
    """``missing: [a, b]; extra: [c]``, leaving out empty groups."""
    return "; ".join(f"{label}: {values}" for label, values in groups.items() if values)


# --- operation comparison -----------------------------------------------------------------


def parameters(doc: Document, operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Declared parameters by (location, name), leaving out ``IGNORED_HEADERS``."""
    found = {}
    for parameter in operation.get("parameters", ()):
        parameter = doc.resolve(parameter)
        name, location = parameter["name"], parameter["in"]
        if location == "header" and name.lower() in IGNORED_HEADERS:
            continue
        found[(location, name)] = parameter
    return found


def compare_parameters(
    ours: Document, our_op: dict[str, Any], theirs: Document, their_op: dict[str, Any]
) -> Iterator[tuple[str, str]]:
    """Same parameter names and locations, each equally required and of a compatible type."""
    our_params, their_params = parameters(ours, our_op), parameters(theirs, their_op)
    missing = sorted(f"{loc}:{name}" for loc, name in set(their_params) - set(our_params))
    extra = sorted(f"{loc}:{name}" for loc, name in set(our_params) - set(their_params))
    if missing or extra:
        yield ("parameters", describe_sets(missing=missing, extra=extra))
    for key in sorted(set(our_params) & set(their_params)):
        label = f"parameter {key[0]}:{key[1]}"
        ours_p, theirs_p = our_params[key], their_params[key]
        if bool(ours_p.get("required")) != bool(theirs_p.get("required")):
            yield (
                f"{label}: required",
                f"deputy {bool(ours_p.get('required'))}, Prefect {bool(theirs_p.get('required'))}",
            )
        yield from compare_schemas(
            Side(ours, ours_p.get("schema", {})),
            Side(theirs, theirs_p.get("schema", {})),
            label,
            check_required=True,
        )


def json_schema_of(doc: Document, holder: dict[str, Any] | None) -> Any:
    """The ``application/json`` schema of a request body or response, if any."""
    if holder is None:
        return None
    content = doc.resolve(holder).get("content", {})
    media = content.get("application/json")
    return None if media is None else media.get("schema", {})


def compare_request_bodies(
    ours: Document, our_op: dict[str, Any], theirs: Document, their_op: dict[str, Any]
) -> Iterator[tuple[str, str]]:
    """Presence and requiredness of the JSON body, then its structure."""
    our_body, their_body = our_op.get("requestBody"), their_op.get("requestBody")
    our_schema, their_schema = json_schema_of(ours, our_body), json_schema_of(theirs, their_body)
    if (our_schema is None) != (their_schema is None):
        yield (
            "request body",
            f"deputy {'takes' if our_schema is not None else 'takes no'} JSON body, "
            f"Prefect {'takes' if their_schema is not None else 'takes no'} JSON body",
        )
        return
    if our_schema is None:
        return
    our_required = bool(ours.resolve(our_body).get("required"))
    their_required = bool(theirs.resolve(their_body).get("required"))
    if our_required != their_required:
        yield ("request body: required", f"deputy {our_required}, Prefect {their_required}")
    our_schema, their_schema = without_null(ours, our_schema), without_null(theirs, their_schema)
    if is_embedded_body(their_schema):
        our_schema = with_non_null_properties(ours, our_schema)
        their_schema = with_non_null_properties(theirs, their_schema)
    yield from compare_schemas(
        Side(ours, our_schema), Side(theirs, their_schema), "request", check_required=True
    )


def is_embedded_body(schema: Any) -> bool:
    """Whether a body is FastAPI's ``Body_<operation>``, assembled from several parameters.

    Each of its top-level keys is a parameter of its own, and Prefect treats an explicit
    ``null`` for an optional one as "not sent", whatever its schema says (its own client
    sends ``"sort": null``, ``"limit": null``...). Nullability of those keys is therefore not
    compared here but exercised by ``test_optional_body_keys_accept_null``.
    """
    ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
    return ref.startswith("#/components/schemas/Body_")


def with_non_null_properties(doc: Document, schema: Any) -> Any:
    """An object schema whose top-level properties no longer admit ``null``."""
    resolved = doc.resolve(schema)
    if not isinstance(resolved, dict) or "properties" not in resolved:
        return schema
    properties = {name: non_null(doc, prop) for name, prop in resolved["properties"].items()}
    return {**resolved, "properties": properties}


def non_null(doc: Document, schema: Any) -> Any:
    """``schema`` without its ``null`` alternative (``anyOf`` branch or ``type`` list entry)."""
    resolved = doc.resolve(schema)
    if not isinstance(resolved, dict):
        return schema
    if isinstance(resolved.get("type"), list):
        return {**resolved, "type": [t for t in resolved["type"] if t != "null"]}
    branches = resolved.get("anyOf")
    if branches:
        kept = [b for b in branches if type_set(doc, b) != frozenset({"null"})]
        return kept[0] if len(kept) == 1 else {**resolved, "anyOf": kept}
    return schema


def without_null(doc: Document, schema: Any) -> Any:
    """``X | None`` at the top of an optional body is just X (absence is the null)."""
    resolved = doc.resolve(schema)
    branches = resolved.get("anyOf") if isinstance(resolved, dict) else None
    if branches:
        kept = [b for b in branches if type_set(doc, b) != frozenset({"null"})]
        if len(kept) == 1:
            return kept[0]
    return schema


def success_status(operation: dict[str, Any]) -> str | None:
    """The lowest 2xx status an operation declares."""
    codes = sorted(code for code in operation.get("responses", {}) if code.startswith("2"))
    return codes[0] if codes else None


def compare_responses(
    ours: Document, our_op: dict[str, Any], theirs: Document, their_op: dict[str, Any]
) -> Iterator[tuple[str, str]]:
    """The declared success status, then the structure of its JSON body."""
    our_status, their_status = success_status(our_op), success_status(their_op)
    if our_status != their_status:
        yield ("status", f"deputy declares {our_status}, Prefect declares {their_status}")
    our_schema = json_schema_of(ours, our_op.get("responses", {}).get(our_status))
    their_schema = json_schema_of(theirs, their_op.get("responses", {}).get(their_status))
    if (our_schema is None) != (their_schema is None):
        yield (
            "response",
            f"deputy {'has' if our_schema is not None else 'has no'} JSON body, "
            f"Prefect {'has' if their_schema is not None else 'has no'} JSON body",
        )
        return
    if our_schema is None:
        return
    yield from compare_schemas(
        Side(ours, our_schema), Side(theirs, their_schema), "response", check_required=False
    )


def compare_documents(ours: Document, theirs: Document) -> list[Mismatch]:
    """Every difference between the operations deputy serves and Prefect's, sorted."""
    their_ops = theirs.operations()
    found: list[Mismatch] = []
    for (method, path), our_op in sorted(ours.operations().items()):
        their_op = their_ops.get((method, path))
        if their_op is None:
            if (method, path) not in DELIBERATE_EXTRAS:
                found.append(Mismatch(method, path, "path", "not in Prefect's API"))
            continue
        for compare in (compare_parameters, compare_request_bodies, compare_responses):
            for aspect, detail in compare(ours, our_op, theirs, their_op):
                found.append(Mismatch(method, path, aspect, detail))
    return sorted(found)


# --- tests --------------------------------------------------------------------------------


async def test_served_paths_exist_in_prefect(client: httpx.AsyncClient) -> None:
    ours, theirs = await load_deputy(client), load_prefect()
    their_ops = theirs.operations()
    extras = [
        f"{method} {path}"
        for method, path in sorted(ours.operations())
        if (method, path) not in their_ops and (method, path) not in DELIBERATE_EXTRAS
    ]
    assert not extras, report("served but not in Prefect 3.9.1", extras)


async def test_deliberate_extras_are_still_served(client: httpx.AsyncClient) -> None:
    served = (await load_deputy(client)).operations()
    stale = [f"{m} {p}" for m, p in sorted(DELIBERATE_EXTRAS) if (m, p) not in served]
    assert not stale, report("DELIBERATE_EXTRAS no longer served (remove them)", stale)


async def test_schemas_match_prefect(client: httpx.AsyncClient) -> None:
    mismatches = compare_documents(await load_deputy(client), load_prefect())
    unexpected = [str(m) for m in mismatches if m.key not in DELIBERATE_DIFFERENCES]
    assert not unexpected, report(
        "differences from Prefect 3.9.1 (fix them, or list them in DELIBERATE_DIFFERENCES)",
        unexpected,
    )


async def test_deliberate_differences_still_occur(client: httpx.AsyncClient) -> None:
    occurring = {m.key for m in compare_documents(await load_deputy(client), load_prefect())}
    stale = [
        f"{method} {path} [{aspect}]"
        for method, path, aspect in sorted(DELIBERATE_DIFFERENCES)
        if (method, path, aspect) not in occurring
    ]
    assert not stale, report("DELIBERATE_DIFFERENCES that no longer occur (remove them)", stale)


def embedded_body(doc: Document, operation: dict[str, Any]) -> dict[str, Any] | None:
    """The resolved ``Body_<operation>`` schema of an operation, if its body is one."""
    schema = json_schema_of(doc, operation.get("requestBody"))
    if schema is None or not is_embedded_body(schema):
        return None
    resolved: dict[str, Any] = doc.resolve(schema)
    return resolved


def example_url(path: str) -> str:
    """``path`` with every ``{parameter}`` filled: a random UUID for ids, a name otherwise."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            part = str(uuid.uuid4()) if name == "id" or name.endswith("_id") else "no-such-name"
        parts.append(part)
    return "/".join(parts)


async def test_optional_body_keys_accept_null(client: httpx.AsyncClient) -> None:
    """An explicit ``null`` for an optional key of a ``Body_*`` body means "not sent".

    Prefect's client sends ``null`` for every argument left unset (``read_flow_runs()``
    posts ``"sort": null, "limit": null, "flows": null, ...``) and Prefect's server takes it
    as the default. Checked on each served operation whose Prefect body is such a
    ``Body_*`` object with no required key: every optional key set to null must not be
    refused (a 404 for the made-up path parameters is fine: validation came first).
    """
    ours, theirs = await load_deputy(client), load_prefect()
    their_ops = theirs.operations()
    refused = []
    for method, path in sorted(ours.operations()):
        body = embedded_body(theirs, their_ops.get((method, path), {}))
        if body is None or body.get("required"):
            continue
        payload = dict.fromkeys(body.get("properties", {}))
        response = await client.request(method, example_url(path), json=payload)
        if response.status_code == 422 or response.status_code >= 500:
            refused.append(f"{method} {path} -> {response.status_code}: {rejected_keys(response)}")
    assert not refused, report("explicit nulls refused for optional body keys", refused)


def rejected_keys(response: httpx.Response) -> str:
    """The body keys a 422 names, or the start of the response text."""
    try:
        detail = response.json().get("exception_detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):
        return ", ".join(sorted({".".join(map(str, e.get("loc", ())[1:])) for e in detail}))
    return response.text[:200]


def test_comparison_finds_differences() -> None:
    """The comparison itself: names, required sets and types are told apart through $refs."""
    theirs = Document(
        {
            "components": {
                "schemas": {
                    "Body": {
                        "type": "object",
                        "properties": {
                            "a": {"type": "string"},
                            "b": {
                                "anyOf": [{"$ref": "#/components/schemas/Inner"}, {"type": "null"}]
                            },
                            "c": {"type": "integer"},
                        },
                        "required": ["a"],
                    },
                    "Inner": {"type": "object", "properties": {"x": {"type": "boolean"}}},
                }
            }
        }
    )
    ours = Document(
        {
            "components": {
                "schemas": {
                    "Other": {
                        "type": "object",
                        "properties": {
                            "a": {"type": "string"},
                            "b": {"anyOf": [{"$ref": "#/components/schemas/In"}, {"type": "null"}]},
                            "d": {},
                        },
                        "required": ["a", "d"],
                    },
                    "In": {"type": "object", "properties": {"x": {"type": "string"}}},
                }
            }
        }
    )
    found = list(
        compare_schemas(
            Side(ours, {"$ref": "#/components/schemas/Other"}),
            Side(theirs, {"$ref": "#/components/schemas/Body"}),
            "request",
            check_required=True,
        )
    )
    assert found == [
        ("request: properties", "missing: ['c']; extra: ['d']"),
        ("request.b.x: type", "deputy string, Prefect boolean"),
    ]
