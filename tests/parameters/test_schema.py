"""Parameter schema enforcement.

Expected messages were produced by Prefect 3.9.1's ``validate(..., raise_on_error=True)``
(run and update paths) and ``DeploymentCreate``'s validators (create path); they are the
contract.
"""

from __future__ import annotations

import copy
import socket
import time
from typing import Any

import pytest

from deputy.errors import Conflict, Unprocessable
from deputy.parameters import schema as ps
from deputy.parameters.hydration import HydrationFailed

RUN = "Error creating flow run: "

X_STRING = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}
PERSON = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "person": {"title": "person", "allOf": [{"$ref": "#/definitions/Person"}], "position": 0}
    },
    "required": ["person"],
    "definitions": {
        "Person": {
            "title": "Person",
            "type": "object",
            "properties": {
                "name": {"title": "Name", "type": "string"},
                "greeting": {"title": "Greeting", "default": "Hello", "type": "string"},
            },
            "required": ["name"],
        }
    },
}
BLOCK = {
    "type": "object",
    "properties": {"b": {"$ref": "#/definitions/S3"}},
    "required": ["b"],
    "definitions": {
        "S3": {
            "title": "S3",
            "type": "object",
            "block_type_slug": "s3",
            "properties": {"bucket": {"type": "string"}},
            "required": ["bucket"],
        }
    },
}
CIRCULAR = {
    "type": "object",
    "properties": {"x": {"$ref": "#/definitions/A"}},
    "definitions": {"A": {"$ref": "#/definitions/B"}, "B": {"$ref": "#/definitions/A"}},
}


def props(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def run_error(parameters: Any, schema: dict[str, Any]) -> str:
    with pytest.raises(Conflict) as info:
        ps.validate_parameters(parameters, schema)
    assert info.value.status_code == 409
    assert info.value.message.startswith(RUN)
    return info.value.message.removeprefix(RUN)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("schema validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# --- flow-run path: messages --------------------------------------------------------------


def test_wrong_type_names_the_field_and_jsonschema_reason() -> None:
    assert run_error({"x": 1}, X_STRING) == (
        "Validation failed for field 'x'. Failure reason: 1 is not of type 'string'"
    )


def test_conflict_body_is_the_prefect_detail_shape() -> None:
    with pytest.raises(Conflict) as info:
        ps.validate_parameters({"x": 1}, X_STRING)
    assert info.value.body() == {
        "detail": "Error creating flow run: Validation failed for field 'x'. "
        "Failure reason: 1 is not of type 'string'"
    }


def test_missing_required_parameter_is_reported_at_the_root() -> None:
    assert run_error({}, X_STRING) == (
        "Validation failed. Failure reason: 'x' is a required property"
    )


def test_nested_ref_allof_object_missing_required_field_names_the_parameter() -> None:
    message = run_error({"person": {"greeting": "hi"}}, PERSON)
    assert message == (
        "Validation failed for field 'person'. Failure reason: 'name' is a required property"
    )
    ps.validate_parameters({"person": {"name": "x"}}, PERSON)


def test_array_index_appears_in_the_field_path() -> None:
    schema = props(a={"type": "array", "items": {"type": "integer"}})
    assert run_error({"a": [1, "x"]}, schema) == (
        "Validation failed for field 'a[1]'. Failure reason: 'x' is not of type 'integer'"
    )


def test_field_needing_brackets_keeps_the_json_path_form() -> None:
    assert run_error({"a b": 1}, props(**{"a b": {"type": "string"}})) == (
        "Validation failed for field \"$['a b']\". Failure reason: 1 is not valid under any of "
        "the given schemas"
    )


def test_additional_properties_error_is_at_the_root() -> None:
    schema = {**props(x={"type": "string"}), "additionalProperties": False}
    assert run_error({"zz": 1}, schema) == (
        "Validation failed. Failure reason: Additional properties are not allowed "
        "('zz' was unexpected)"
    )


def test_only_the_best_error_is_reported() -> None:
    schema = props(a={"type": "string"}, b={"type": "string"})
    assert run_error({"a": 1, "b": 2}, schema) == (
        "Validation failed for field 'b'. Failure reason: 2 is not valid under any of the "
        "given schemas"
    )


def test_enum_and_anyof_messages() -> None:
    assert run_error({"c": "z"}, props(c={"enum": ["a", "b"]})) == (
        "Validation failed for field 'c'. Failure reason: 'z' is not one of ['a', 'b']"
    )
    assert run_error(
        {"c": "z"}, props(c={"anyOf": [{"type": "integer"}, {"type": "boolean"}]})
    ) == (
        "Validation failed for field 'c'. Failure reason: 'z' is not valid under any of the "
        "given schemas"
    )


def test_formats_are_annotations_only() -> None:
    ps.validate_parameters({"u": "nope"}, props(u={"type": "string", "format": "uuid"}))


def test_empty_schema_accepts_anything() -> None:
    ps.validate_parameters({"anything": [1, {"x": None}]}, {})


def test_dialect_is_2020_12_even_if_the_schema_names_another() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **props(x={"type": "string"}),
    }
    assert run_error({"x": 1}, schema) == (
        "Validation failed for field 'x'. Failure reason: 1 is not valid under any of the "
        "given schemas"
    )


# --- pydantic v1 repairs ------------------------------------------------------------------


def test_optional_property_without_default_accepts_null() -> None:
    ps.validate_parameters({"y": None}, props(y={"type": "string"}))


def test_optional_property_with_default_rejects_null() -> None:
    assert run_error({"y": None}, props(y={"type": "string", "default": "a"})) == (
        "Validation failed for field 'y'. Failure reason: None is not of type 'string'"
    )


def test_required_property_rejects_null() -> None:
    assert run_error({"x": None}, X_STRING) == (
        "Validation failed for field 'x'. Failure reason: None is not of type 'string'"
    )


def test_list_items_are_read_as_prefix_items() -> None:
    schema = props(t={"type": "array", "items": [{"type": "integer"}, {"type": "integer"}]})
    assert run_error({"t": [1, "a"]}, schema) == (
        "Validation failed for field 't[1]'. Failure reason: 'a' is not of type 'integer'"
    )


def test_nested_properties_are_repaired_too() -> None:
    schema = props(a=props(b=props(c={"type": "string"})))
    assert run_error({"a": {"b": {"c": 5}}}, schema) == (
        "Validation failed for field 'a.b.c'. Failure reason: 5 is not valid under any of the "
        "given schemas"
    )
    ps.validate_parameters({"a": {"b": {"c": None}}}, schema)


def test_definitions_are_repaired_but_dollar_defs_are_not() -> None:
    age = {"type": "object", "properties": {"age": {"type": "integer"}}}
    ps.validate_parameters(
        {"p": {"age": None}},
        {**props(p={"$ref": "#/definitions/P"}), "definitions": {"P": age}},
    )
    assert run_error(
        {"p": {"age": None}}, {**props(p={"$ref": "#/$defs/P"}), "$defs": {"P": age}}
    ) == ("Validation failed for field 'p.age'. Failure reason: None is not of type 'integer'")


def test_block_definition_also_accepts_a_reference_by_id() -> None:
    ps.validate_parameters({"b": {"$ref": "1d4a3b4c-0a3e-4e2e-9f0b-123456789abc"}}, BLOCK)
    ps.validate_parameters({"b": {"bucket": "x"}}, BLOCK)
    assert run_error({"b": {"$ref": 5}}, BLOCK) == (
        "Validation failed for field \"b['$ref']\". Failure reason: 5 is not valid under any "
        "of the given schemas"
    )


# --- refs: no network, cycles -------------------------------------------------------------


def test_remote_ref_is_a_validation_error_without_any_network_call(no_network: None) -> None:
    schema = props(x={"$ref": "https://example.com/x.json"})
    assert run_error({"x": 1}, schema) == (
        "Validation failed. Failure reason: Unresolvable: https://example.com/x.json"
    )
    assert run_error({"x": 1}, {"$ref": "https://example.com/x.json"}) == (
        "Validation failed. Failure reason: Unresolvable: https://example.com/x.json"
    )


def test_missing_local_ref_is_a_validation_error() -> None:
    schema = props(x={"$ref": "#/definitions/Nope"})
    assert run_error({"x": 1}, schema) == (
        "Validation failed. Failure reason: PointerToNowhere: '/definitions/Nope' does not "
        "exist within {'type': 'object', 'properties': {'x': {'$ref': '#/definitions/Nope'}}}"
    )


def test_bundled_meta_schema_ref_resolves_offline(no_network: None) -> None:
    schema = props(x={"$ref": "https://json-schema.org/draft/2020-12/schema"})
    assert run_error({"x": 1}, schema) == (
        "Validation failed for field 'x'. Failure reason: 1 is not of type 'object', 'boolean'"
    )


def test_circular_ref_is_a_422() -> None:
    for schema in (CIRCULAR, {"$ref": "#"}):
        with pytest.raises(Unprocessable) as info:
            ps.validate_parameters({"x": 1}, schema)
        assert info.value.status_code == 422
        assert info.value.message == (
            "Invalid schema: Unable to validate schema with circular references."
        )


def test_invalid_schema_is_a_422_instead_of_prefects_500() -> None:
    with pytest.raises(Unprocessable) as info:
        ps.validate_parameters({"x": 1}, props(x={"type": 5}))
    assert info.value.message == "Invalid schema: 5 is not valid under any of the given schemas"


# --- leftover placeholders ----------------------------------------------------------------


def test_leftover_hydration_failure_fails_validation_at_its_position() -> None:
    failed = HydrationFailed("Invalid JSON: Expecting value: line 1 column 1 (char 0)")
    assert run_error({"x": failed}, props(x={"type": "string"})) == (
        "Validation failed for field 'x'. Failure reason: Invalid JSON: Expecting value: "
        "line 1 column 1 (char 0)"
    )


# --- enforcement switch -------------------------------------------------------------------


def test_ensure_schema_present_requires_a_dict() -> None:
    assert ps.ensure_schema_present({"type": "object"}) == {"type": "object"}
    not_dicts: list[Any] = [None, [], "x"]
    for schema in not_dicts:
        with pytest.raises(Conflict) as info:
            ps.ensure_schema_present(schema)
        assert info.value.message == (
            "Error updating deployment: Cannot update parameters because parameter schema "
            "enforcement is enabled and the deployment does not have a valid parameter schema."
        )


def test_enforcement_off_skips_everything() -> None:
    ps.enforce_flow_run_parameters({"x": 1}, None, enforce=False)
    ps.enforce_flow_run_parameters({"x": 1}, X_STRING, enforce=None)
    with pytest.raises(Conflict):
        ps.enforce_flow_run_parameters({"x": 1}, None, enforce=True)
    with pytest.raises(Conflict):
        ps.enforce_flow_run_parameters({"x": 1}, X_STRING, enforce=True)


# --- deployment update (PATCH) ------------------------------------------------------------


def test_deployment_update_checks_types_but_not_required() -> None:
    ps.validate_deployment_update_parameters({}, X_STRING)
    ps.validate_deployment_update_parameters({"person": {"greeting": "hi"}}, PERSON)
    with pytest.raises(Conflict) as info:
        ps.validate_deployment_update_parameters({"x": 1}, X_STRING)
    assert info.value.message == (
        "Error updating deployment: Validation failed for field 'x'. Failure reason: 1 is not "
        "of type 'string'"
    )


def test_ignoring_required_also_drops_a_property_named_required() -> None:
    schema = {**props(required={"type": "string"}), "required": ["required"]}
    ps.validate_deployment_update_parameters({"required": 5}, schema)
    assert run_error({"required": 5}, schema) == (
        "Validation failed for field 'required'. Failure reason: 5 is not of type 'string'"
    )


# --- deployment create --------------------------------------------------------------------


def test_deployment_create_reports_type_errors() -> None:
    schema = props(x={"type": "integer"})
    assert ps.deployment_parameters_error({"x": "str"}, schema) == (
        "Validation failed for field 'x'. Failure reason: 'str' is not of type 'integer'"
    )


def test_deployment_create_allows_missing_required_parameters() -> None:
    assert ps.deployment_parameters_error({}, X_STRING) is None
    assert ps.deployment_parameters_error({"person": {}}, PERSON) is None


def test_deployment_create_does_not_repair_pydantic_v1_schemas() -> None:
    assert ps.deployment_parameters_error({"y": None}, props(y={"type": "string"})) == (
        "Validation failed for field 'y'. Failure reason: None is not of type 'string'"
    )
    schema = props(t={"type": "array", "items": [{"type": "integer"}]})
    assert ps.deployment_parameters_error({"t": [1]}, schema) == (
        "The provided schema is not a valid json schema. Schema error: [{'type': 'integer'}] "
        "is not of type 'object', 'boolean'"
    )


def test_deployment_create_honours_the_schema_dialect() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **props(x={"type": "string"}),
    }
    assert ps.deployment_parameters_error({"x": 1}, schema) == (
        "Validation failed for field 'x'. Failure reason: 1 is not of type 'string'"
    )


def test_deployment_create_rejects_an_invalid_schema_even_without_parameters() -> None:
    expected = (
        "The provided schema is not a valid json schema. Schema error: 5 is not valid under "
        "any of the given schemas"
    )
    assert ps.deployment_parameters_error({"x": 1}, props(x={"type": 5})) == expected
    assert ps.deployment_parameters_error(None, props(x={"type": 5})) == expected
    assert ps.deployment_parameters_error({"x": 1}, None) is None


def test_deployment_create_unresolvable_ref_is_an_error(no_network: None) -> None:
    schema = props(x={"$ref": "https://example.com/x.json"})
    assert ps.deployment_parameters_error({"x": 1}, schema) == (
        "Validation failed. Failure reason: Unresolvable: https://example.com/x.json"
    )


def test_deployment_create_circular_schema_is_a_422() -> None:
    with pytest.raises(Unprocessable):
        ps.deployment_parameters_error({"x": 1}, CIRCULAR)


# --- caching and speed --------------------------------------------------------------------


def test_validators_are_compiled_once_per_distinct_schema() -> None:
    first = ps.compile_schema(copy.deepcopy(PERSON), ps.Mode())
    second = ps.compile_schema(copy.deepcopy(PERSON), ps.Mode())
    assert first is second
    assert ps.compile_schema(PERSON, ps.Mode(drop_required=True)) is not first


def test_cached_validator_ignores_later_changes_to_the_callers_dict() -> None:
    schema: dict[str, Any] = props(z={"type": "string", "default": "a"})
    ps.validate_parameters({"z": "ok"}, schema)
    schema["properties"]["z"]["type"] = "integer"  # a new schema from now on
    ps.validate_parameters({"z": 1}, schema)
    with pytest.raises(Conflict):
        ps.validate_parameters({"z": "ok"}, schema)


def test_validating_against_a_cached_schema_is_fast() -> None:
    ps.validate_parameters({"person": {"name": "a"}}, PERSON)
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        ps.validate_parameters({"person": {"name": "a"}}, PERSON)
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 500e-6  # about 30 µs here; generous for slow CI machines
