"""A block schema's checksum, and the rules about ``definitions`` it depends on.

The Prefect SDK looks a schema up by a checksum it computes itself, so the server's must be
the same to the byte: SHA-256 of the standard library's JSON (sorted keys, default
separators, ASCII escapes) of ``[[fields], {}]``, after two changes to ``fields``:

- every ``secret_fields`` key, at any depth of nested objects (not inside arrays), is left
  out;
- ``definitions`` keeps only the definitions that are not blocks (no ``block_type_slug``)
  and that something in the fields refers to (``{"$ref": "#/definitions/Name"}``), directly
  or through another such definition; with none left, the key is dropped.

Blocks nested in a schema are registered as schemas of their own, so their definitions do
not count towards the parent's checksum. Prefect recurses without end on definitions that
refer to each other in a cycle; here each is visited once, which gives the same answer
wherever Prefect gives one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

CHECKSUM_PREFIX = "sha256:"
DEFINITIONS_PREFIX = "#/definitions/"


class InvalidSchemaFields(ValueError):
    """The fields cannot be processed as Prefect processes them (it would fail with a 500)."""


def schema_checksum(fields: dict[str, Any]) -> str:
    """``sha256:<hex>``, exactly as ``Block._calculate_schema_checksum(fields)`` computes it.

    Raises :class:`InvalidSchemaFields` when ``definitions`` must be looked into and is not
    an object of objects.
    """
    cleaned = without_keys(fields, "secret_fields")
    if cleaned.get("definitions"):
        kept = non_block_definitions(cleaned, cleaned["definitions"])
        if kept:
            cleaned["definitions"] = kept
        else:
            del cleaned["definitions"]
    text = json.dumps([[cleaned], {}], sort_keys=True)
    return CHECKSUM_PREFIX + hashlib.sha256(text.encode()).hexdigest()


def without_keys(value: Any, key: str) -> Any:
    """A copy of ``value`` without ``key`` in any object reached through objects only."""
    if not isinstance(value, dict):
        return value
    return {k: without_keys(v, key) for k, v in value.items() if k != key}


def references(value: Any) -> list[Any]:
    """Every truthy ``$ref`` value found in ``value`` (objects and arrays, any depth), in
    document order, duplicates kept."""
    found: list[Any] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref:
                found.append(ref)
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def definition_key(reference: str) -> str:
    """``#/definitions/Name`` -> ``Name`` (Prefect removes the prefix wherever it occurs)."""
    return reference.replace(DEFINITIONS_PREFIX, "")


def non_block_definitions(value: Any, definitions: Any) -> dict[str, Any]:
    """The definitions that ``value`` refers to, directly or through each other, that are not
    blocks themselves."""
    kept: dict[str, Any] = {}
    pending: list[Any] = references(value)
    while pending:
        reference = pending.pop(0)
        if not isinstance(reference, str):
            continue
        key = definition_key(reference)
        definition = _definition(definitions, key)
        if not definition or key in kept:
            continue
        if not isinstance(definition, dict):
            raise InvalidSchemaFields(f"The definition {key!r} is not an object.")
        if definition.get("block_type_slug") is None:
            kept[key] = definition
            pending.extend(references(definition))
    return kept


def _definition(definitions: Any, key: str) -> Any:
    if not isinstance(definitions, dict):
        raise InvalidSchemaFields("The schema's definitions must be an object.")
    return definitions.get(key)


# --- nested block schemas -----------------------------------------------------------------


def reference_entries(references_by_name: Any) -> list[tuple[str, dict[str, str]]]:
    """``block_schema_references`` as (field name, {block_type_slug, block_schema_checksum})
    pairs, a union field's entries one after the other.

    Raises :class:`InvalidSchemaFields` for anything but an object of such entries or of
    arrays of them.
    """
    if not isinstance(references_by_name, dict):
        raise InvalidSchemaFields("block_schema_references must be an object.")
    pairs: list[tuple[str, dict[str, str]]] = []
    for name, value in references_by_name.items():
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if not _is_reference(entry):
                raise InvalidSchemaFields(
                    f"The block schema reference {name!r} must hold a block_type_slug and a "
                    "block_schema_checksum, both strings."
                )
            pairs.append((name, entry))
    return pairs


def _is_reference(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("block_type_slug"), str)
        and isinstance(entry.get("block_schema_checksum"), str)
    )


def child_fields(
    definitions: Any, parent_fields: dict[str, Any], name: str, block_type_slug: str
) -> dict[str, Any]:
    """The fields of the block nested under ``name``, taken from the root's ``definitions``.

    A field with a single ``$ref`` uses that definition; a union picks the definition whose
    ``block_type_slug`` is the nested block's. Raises :class:`InvalidSchemaFields` when no
    definition is found.
    """
    properties = parent_fields.get("properties")
    if not isinstance(properties, dict) or name not in properties:
        raise InvalidSchemaFields(f"The block schema reference {name!r} names no property.")
    found = _pick_definition(definitions, references(properties[name]), block_type_slug)
    if not isinstance(found, dict):
        raise InvalidSchemaFields(
            f"Unable to create nested block schema for block type {block_type_slug!r} due "
            "to missing definition."
        )
    return found


def _pick_definition(definitions: Any, refs: Iterable[Any], block_type_slug: str) -> Any:
    refs = list(refs)
    if not all(isinstance(ref, str) for ref in refs):
        raise InvalidSchemaFields("A $ref must be a string.")
    if len(refs) == 1:
        return _definition(definitions, definition_key(refs[0]))
    for ref in refs:
        candidate = _definition(definitions, definition_key(ref))
        if not isinstance(candidate, dict):
            raise InvalidSchemaFields(f"The definition {definition_key(ref)!r} is missing.")
        if candidate.get("block_type_slug") == block_type_slug:
            return candidate
    return None
