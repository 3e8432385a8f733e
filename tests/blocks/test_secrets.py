"""Secret fields of block schemas, hiding them, and keeping them on update (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from deputy.blocks.secrets import (
    OBFUSCATED,
    derive_secret_fields,
    flatten,
    keep_stored_secrets,
    obfuscate,
    secret_fields,
    unflatten,
)

PASSWORD = {"format": "password", "type": "string", "writeOnly": True}

#: The JSON schema the Prefect 3.9.1 SDK writes for a block class with a nested block
#: (``child: Child``, ``maybe_child: Child | None``), a ``SecretDict`` (``creds``), a nested
#: model (``inner``), ``list[SecretStr]``, ``SecretStr | int``, ``Secret[int]`` and
#: ``list[Inner]``; ``SDK_SECRET_FIELDS`` is what the SDK listed for it.
SDK_SCHEMA: dict[str, Any] = {
    "title": "Parent",
    "type": "object",
    "block_type_slug": "parent",
    "properties": {
        "child": {"$ref": "#/definitions/Child"},
        "maybe_child": {"anyOf": [{"$ref": "#/definitions/Child"}, {"type": "null"}]},
        "creds": {"title": "Creds", "type": "object"},
        "inner": {"$ref": "#/definitions/Inner"},
        "tokens": {"type": "array", "items": PASSWORD},
        "union": {"anyOf": [PASSWORD, {"type": "integer"}]},
        "sb": {"type": "integer"},
        "inners": {"type": "array", "items": {"$ref": "#/definitions/Inner"}},
    },
    "definitions": {
        "Child": {
            "block_type_slug": "child",
            "properties": {"password": PASSWORD, "user": {"type": "string"}},
            "secret_fields": ["password"],
            "title": "Child",
            "type": "object",
        },
        "Inner": {
            "properties": {"token": PASSWORD, "plain": {"type": "string"}},
            "title": "Inner",
            "type": "object",
        },
    },
}
SDK_SECRET_FIELDS = [
    "child.password",
    "maybe_child.password",
    "creds.*",
    "inner.token",
    "tokens",
    "union",
    "sb",
    "inners.token",
]


def test_the_declared_list_is_trusted_as_prefect_does() -> None:
    assert secret_fields({**SDK_SCHEMA, "secret_fields": SDK_SECRET_FIELDS}) == SDK_SECRET_FIELDS
    assert secret_fields({**SDK_SCHEMA, "secret_fields": []}) == []
    assert secret_fields({"secret_fields": ["a", 3, None, "b.c"]}) == ["a", "b.c"]


def test_without_a_list_the_json_schema_shows_what_it_can() -> None:
    """All but the ``SecretDict`` and the ``Secret[int]``, which a JSON schema cannot tell
    from a plain object and integer."""
    derived = derive_secret_fields(SDK_SCHEMA)
    assert derived == [s for s in SDK_SECRET_FIELDS if s not in ("creds.*", "sb")]
    assert secret_fields(SDK_SCHEMA) == derived


def test_derivation_follows_defs_and_stops_at_recursive_models() -> None:
    schema = {
        "properties": {
            "node": {"$ref": "#/$defs/Node"},
            "inline": {"type": "object", "properties": {"key": {"format": "password"}}},
            "mapping": {"type": "object", "additionalProperties": PASSWORD},
        },
        "$defs": {
            "Node": {
                "properties": {"secret": PASSWORD, "next": {"$ref": "#/$defs/Node"}},
            }
        },
    }
    assert derive_secret_fields(schema) == ["node.secret", "inline.key", "mapping"]
    # A nested block without its own list is derived too.
    nested_block = {
        "properties": {"child": {"$ref": "#/definitions/C"}},
        "definitions": {"C": {"block_type_slug": "c", "properties": {"pw": PASSWORD}}},
    }
    assert derive_secret_fields(nested_block) == ["child.pw"]
    assert secret_fields(None) == []
    assert secret_fields({"properties": "not an object"}) == []


def test_flatten_and_unflatten_are_prefects_flat_view() -> None:
    data = {"a": {"b": 1, "c": {"d": None}}, "e": {}, "f": [1, {"g": 2}]}
    flat = flatten(data)
    assert flat == {("a", "b"): 1, ("a", "c", "d"): None, ("e",): {}, ("f",): [1, {"g": 2}]}
    assert unflatten(flat) == data


def test_obfuscation_hides_each_kind_of_secret() -> None:
    data = {
        "password": "hunter2",
        "user": "me",
        "empty": None,  # a null secret stays null, as in Prefect
        "child": {"password": "x", "user": "u"},
        "creds": {"a": 1, "b": {"c": None}},
        "tokens": ["t1", "t2"],  # a list is one value
        "number": 0,
    }
    paths = ["password", "empty", "child.password", "creds.*", "tokens", "number", "absent"]
    assert obfuscate(data, paths) == {
        "password": OBFUSCATED,
        "user": "me",
        "empty": None,
        "child": {"password": OBFUSCATED, "user": "u"},
        "creds": {"a": OBFUSCATED, "b": {"c": OBFUSCATED}},
        "tokens": OBFUSCATED,
        "number": OBFUSCATED,
    }
    assert data["password"] == "hunter2"  # the input is left alone
    assert obfuscate(data, []) == data


def test_a_wildcard_hides_a_plain_value_at_its_key_too() -> None:
    assert obfuscate({"creds": "text", "other": 1}, ["creds.*"]) == {
        "creds": OBFUSCATED,
        "other": 1,
    }


def test_a_secret_holding_an_object_is_hidden_whole() -> None:
    """Deliberately stricter than Prefect, which would answer ``Secret[dict]`` in clear."""
    assert obfuscate({"sb": {"k": "v", "n": {"m": 1}}, "x": 1}, ["sb"]) == {
        "sb": OBFUSCATED,
        "x": 1,
    }


STORED = {
    "password": "hunter2",
    "child": {"password": "x", "user": "u"},
    "creds": {"a": 1, "b": 2},
    "sb": {"k": "v"},
    "nothing": None,
}
PATHS = ["password", "child.password", "creds.*", "sb", "nothing"]


def test_sending_the_obfuscated_form_back_keeps_each_stored_secret() -> None:
    sent = obfuscate(STORED, PATHS)
    assert keep_stored_secrets(sent, STORED, PATHS) == STORED


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ({"password": "new"}, {"password": "new"}),
        ({"child": {"password": "new", "user": "v"}}, {"child": {"password": "new", "user": "v"}}),
        ({"creds": {"a": OBFUSCATED, "b": 3}}, {"creds": {"a": 1, "b": 3}}),
        # A wildcard key the stored data lacks keeps what was sent (Prefect fails there).
        ({"creds": {"z": OBFUSCATED}}, {"creds": {"z": OBFUSCATED}}),
        # ``********`` for a secret stored as null is taken literally.
        ({"nothing": OBFUSCATED}, {"nothing": OBFUSCATED}),
        ({"user": OBFUSCATED}, {"user": OBFUSCATED}),
    ],
)
def test_only_obfuscated_secrets_are_restored(
    sent: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert keep_stored_secrets(sent, STORED, PATHS) == expected
    assert keep_stored_secrets(sent, STORED, []) == sent
