"""Which fields of a block document are secret, hiding them, and keeping them on update.

A block schema names its secret fields in ``fields["secret_fields"]``, dotted paths the
Prefect SDK computes from the block class: ``"password"`` (a ``SecretStr``), ``"child.token"``
(a secret of a nested block or model), ``"headers.*"`` (a ``SecretDict``: everything under
the key). The server trusts that list, as Prefect's does. A schema without the key (written by
hand, not by the SDK) gets the list derived from its JSON schema: ``format: password``
strings, through ``$ref`` definitions, unions, arrays and nested blocks. A ``SecretDict`` or a
``Secret[int]`` cannot be told from a plain dict or int by its JSON schema alone.

Answers show each secret as ``********`` unless secrets are asked for; a PATCH that sends
``********`` back for a secret keeps the stored value, as Prefect does.

Prefect walks the data as a flat ``{("a", "b"): leaf}`` mapping (non-empty objects are
descended into, everything else is a leaf) and so does this module, with one deliberate
difference: a secret whose value is a non-empty object (``Secret[dict]``) is hidden whole,
where Prefect would answer it in clear because no leaf sits exactly at its path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: What a hidden secret reads as (Prefect's ``obfuscate``, which shows no tail on blocks).
OBFUSCATED = "********"

FlatKey = tuple[str, ...]


def secret_fields(fields: Mapping[str, Any] | None) -> list[str]:
    """The dotted secret paths of a block schema's ``fields``."""
    if not isinstance(fields, Mapping):
        return []
    declared = fields.get("secret_fields")
    if isinstance(declared, list):
        return [path for path in declared if isinstance(path, str)]
    return derive_secret_fields(fields)


def derive_secret_fields(schema: Mapping[str, Any]) -> list[str]:
    """The secret paths a JSON schema shows, as the SDK would have listed them."""
    definitions = _definitions(schema)
    found: list[str] = []
    for name, node in _properties(schema):
        _collect(name, node, definitions, found, frozenset())
    return list(dict.fromkeys(found))


def _definitions(schema: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        table = schema.get(key)
        if isinstance(table, Mapping):
            out.update(table)
    return out


def _properties(schema: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        yield from ((str(name), node) for name, node in properties.items())


def _collect(
    path: str, node: Any, definitions: dict[str, Any], found: list[str], seen: frozenset[str]
) -> None:
    if not isinstance(node, Mapping):
        return
    reference = node.get("$ref")
    if isinstance(reference, str):
        _collect_reference(path, reference, definitions, found, seen)
        return
    if node.get("format") == "password":
        found.append(path)
        return
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        branches = node.get(key)
        for branch in branches if isinstance(branches, list) else ():
            _collect(path, branch, definitions, found, seen)
    for key in ("items", "additionalProperties"):
        _collect(path, node.get(key), definitions, found, seen)
    for name, child in _properties(node):
        _collect(f"{path}.{name}", child, definitions, found, seen)


def _collect_reference(
    path: str, reference: str, definitions: dict[str, Any], found: list[str], seen: frozenset[str]
) -> None:
    name = reference.rsplit("/", 1)[-1]
    target = definitions.get(name)
    if name in seen or not isinstance(target, Mapping):
        return
    if "block_type_slug" in target:
        # A nested block: its own secret paths, under this field's name.
        declared = target.get("secret_fields")
        if isinstance(declared, list):
            found.extend(f"{path}.{inner}" for inner in declared if isinstance(inner, str))
            return
    for child_name, child in _properties(target):
        _collect(f"{path}.{child_name}", child, definitions, found, seen | {name})


# --- the flat view of data -----------------------------------------------------------------


def flatten(data: Mapping[str, Any]) -> dict[FlatKey, Any]:
    """``{"a": {"b": 1}, "c": {}}`` -> ``{("a", "b"): 1, ("c",): {}}``."""
    flat: dict[FlatKey, Any] = {}
    _flatten_into(data, (), flat)
    return flat


def _flatten_into(data: Mapping[str, Any], parent: FlatKey, flat: dict[FlatKey, Any]) -> None:
    for key, value in data.items():
        path = (*parent, key)
        if isinstance(value, dict) and value:
            _flatten_into(value, path, flat)
        else:
            flat[path] = value


def unflatten(flat: Mapping[FlatKey, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten`."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        current = out
        for key in path[:-1]:
            current = current.setdefault(key, {})
        current[path[-1]] = value
    return out


def _under(flat: Mapping[FlatKey, Any], prefix: FlatKey) -> list[FlatKey]:
    """The leaves strictly below ``prefix``."""
    size = len(prefix)
    return [key for key in flat if len(key) > size and key[:size] == prefix]


# --- hiding and keeping ----------------------------------------------------------------------


def obfuscate(data: Mapping[str, Any], paths: list[str]) -> dict[str, Any]:
    """``data`` with every secret at ``paths`` shown as ``********`` (a null stays null)."""
    if not paths:
        return dict(data)
    flat = flatten(data)
    for path in paths:
        key = tuple(path.split("."))
        if flat.get(key) is not None:
            flat[key] = OBFUSCATED
        elif "*" in key:
            cut = key.index("*")
            for leaf in flat:
                if leaf[:cut] == key[:cut]:
                    flat[leaf] = OBFUSCATED
        elif below := _under(flat, key):
            _replace_subtree(flat, key, below, OBFUSCATED)
    return unflatten(flat)


def keep_stored_secrets(
    sent: Mapping[str, Any], stored: Mapping[str, Any], paths: list[str]
) -> dict[str, Any]:
    """``sent`` with each ``********`` sent for a stored secret replaced by that secret.

    Someone saving a whole document they read without secrets sends the obfuscated values
    back; those mean "unchanged", as in Prefect.
    """
    if not paths:
        return dict(sent)
    flat_sent = flatten(sent)
    flat_stored = flatten(stored)
    for path in paths:
        key = tuple(path.split("."))
        stored_secret = flat_stored.get(key)
        if stored_secret is not None:
            if flat_sent.get(key) == OBFUSCATED:
                flat_sent[key] = stored_secret
        elif "*" in key:
            cut = key.index("*")
            for leaf in flat_sent:
                if (
                    leaf[:cut] == key[:cut]
                    and flat_sent[leaf] == OBFUSCATED
                    and leaf in flat_stored
                ):
                    flat_sent[leaf] = flat_stored[leaf]
        elif flat_sent.get(key) == OBFUSCATED and (below := _under(flat_stored, key)):
            del flat_sent[key]
            flat_sent.update((leaf, flat_stored[leaf]) for leaf in below)
    return unflatten(flat_sent)


def _replace_subtree(
    flat: dict[FlatKey, Any], key: FlatKey, below: list[FlatKey], value: Any
) -> None:
    for leaf in below:
        del flat[leaf]
    flat[key] = value
