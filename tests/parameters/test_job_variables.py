"""Job-variable validation against a work pool's base job template.

Cases follow Prefect's ``TestInfraOverrides``; expected texts were produced by Prefect
3.9.1's ``server/api/validation.py`` functions (and ``DeploymentUpdate``'s check for PATCH);
they are the contract.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from deputy.errors import Conflict, NotFound, Unprocessable
from deputy.parameters import job_variables as jv

RUN = "Error creating flow run: "

STRICT = {
    "job_configuration": {
        "thing_one": "{{ expected_variable_1 }}",
        "thing_two": "{{ expected_variable_2 }}",
    },
    "variables": {
        "properties": {"expected_variable_1": {}, "expected_variable_2": {}},
        "required": ["expected_variable_1", "expected_variable_2"],
        "additionalProperties": False,
    },
}
TYPED = {
    "variables": {
        "properties": {
            "expected_variable_1": {"title": "e1", "default": 0, "type": "integer"},
            "expected_variable_2": {"title": "e2", "default": "0", "type": "string"},
        },
        "required": ["expected_variable_1", "expected_variable_2"],
    }
}
REQUIRED_NO_DEFAULT = {
    "variables": {
        "properties": {"expected_variable_1": {"title": "e1", "type": "integer"}},
        "required": ["expected_variable_1"],
    }
}
REQUIRED_WITH_DEFAULT = {
    "variables": {
        "properties": {"expected_variable_1": {"title": "e1", "default": 0, "type": "integer"}},
        "required": ["expected_variable_1"],
    }
}
# The "process" worker's template variables, as Prefect 3.9.1 generates them (abridged).
PROCESS = {
    "job_configuration": {"command": "{{ command }}", "env": "{{ env }}"},
    "variables": {
        "type": "object",
        "properties": {
            "name": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "env": {
                "type": "object",
                "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "command": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "stream_output": {"type": "boolean", "default": True},
            "working_dir": {
                "anyOf": [{"type": "string", "format": "path"}, {"type": "null"}],
                "default": None,
            },
        },
    },
}
BLOCK_ID = uuid.UUID("11111111-1111-1111-1111-111111111111")
BAD_BLOCK_ID = uuid.UUID("22222222-2222-2222-2222-222222222222")
BLOCKS = {
    BLOCK_ID: {"context_name": "default", "config": {}},
    BAD_BLOCK_ID: {"context_name": 5},
}


def block_template(block_document_id: Any) -> dict[str, Any]:
    return {
        "variables": {
            "type": "object",
            "required": ["k8s_credentials"],
            "properties": {
                "k8s_credentials": {
                    "allOf": [{"$ref": "#/definitions/k8s_credentials"}],
                    "title": "K8s Credentials",
                    "default": {"$ref": {"block_document_id": block_document_id}},
                }
            },
            "definitions": {
                "k8s_credentials": {
                    "type": "object",
                    "title": "k8s_credentials",
                    "required": ["context_name", "config"],
                    "properties": {
                        "context_name": {"type": "string"},
                        "config": {"type": "object"},
                    },
                    "block_type_slug": "k8s-credentials",
                }
            },
        },
        "job_configuration": {"k8s_credentials": "{{ k8s_credentials }}"},
    }


def resolve(block_id: uuid.UUID) -> Any:
    return copy.deepcopy(BLOCKS.get(block_id))


def run_error(template: Any, deployment_vars: Any, run_vars: Any, **kwargs: Any) -> str:
    with pytest.raises(Unprocessable) as info:
        jv.validate_job_variables_for_run(template, deployment_vars, run_vars, **kwargs)
    assert info.value.status_code == 422
    return info.value.message


# --- TestInfraOverrides -------------------------------------------------------------------


def test_unexpected_variable_on_strict_pool_reports_the_missing_required_one() -> None:
    assert run_error(STRICT, {}, {"x": 1}) == (
        RUN + "Validation failed. Failure reason: 'expected_variable_1' is a required property"
    )


def test_mismatched_variable_type_names_the_field() -> None:
    vars_ = {"expected_variable_1": 1, "expected_variable_2": 2}
    assert run_error(TYPED, {}, vars_) == (
        RUN + "Validation failed for field 'expected_variable_2'. Failure reason: 2 is not of "
        "type 'string'"
    )


@pytest.mark.parametrize(
    "template",
    [
        {},
        None,
        {"variables": {"properties": {"expected_variable_1": {}, "expected_variable_2": {}}}},
        {"job_configuration": {"a": "b"}},
        {"variables": {}},
    ],
)
def test_lax_empty_or_missing_template_accepts_any_variables(template: Any) -> None:
    jv.validate_job_variables_for_run(template, {}, {"x": 1})


def test_run_variables_override_deployment_variables() -> None:
    jv.validate_job_variables_for_run(
        TYPED,
        {"expected_variable_1": "wrong", "expected_variable_2": 2},
        {"expected_variable_1": -1, "expected_variable_2": "-2"},
    )
    assert run_error(TYPED, {"expected_variable_2": 3}, {"expected_variable_1": 1}) == (
        RUN + "Validation failed for field 'expected_variable_2'. Failure reason: 3 is not of "
        "type 'string'"
    )


def test_required_variable_without_default_or_override_is_a_422() -> None:
    assert run_error(REQUIRED_NO_DEFAULT, {}, {}) == (
        RUN + "Validation failed. Failure reason: 'expected_variable_1' is a required property"
    )
    jv.validate_job_variables_for_run(REQUIRED_NO_DEFAULT, {"expected_variable_1": 1}, None)


def test_required_variable_is_satisfied_by_the_template_default() -> None:
    jv.validate_job_variables_for_run(REQUIRED_WITH_DEFAULT, {}, {})
    jv.validate_job_variables_for_run(REQUIRED_WITH_DEFAULT, None, None)


# --- defaults -----------------------------------------------------------------------------


def test_invalid_default_is_dropped_and_required_is_no_longer_enforced() -> None:
    template = {
        "variables": {
            "properties": {"a": {"type": "integer", "default": "x"}, "b": {"type": "string"}},
            "required": ["a", "b"],
        }
    }
    jv.validate_job_variables_for_run(template, {}, {})
    assert run_error(template, {}, {"b": 1}) == (
        RUN + "Validation failed for field 'b'. Failure reason: 1 is not of type 'string'"
    )


def test_default_failing_its_format_counts_as_invalid() -> None:
    template = {
        "variables": {
            "properties": {"u": {"type": "string", "format": "uuid", "default": "not-a-uuid"}},
            "required": ["u"],
        }
    }
    jv.validate_job_variables_for_run(template, {}, {})
    jv.validate_job_variables_for_run(template, {}, {"u": "nope"})  # formats not asserted


def test_none_is_allowed_for_optional_variables_with_a_default() -> None:
    template = {
        "variables": {
            "properties": {"a": {"type": "integer", "default": 3}, "b": {"type": "integer"}}
        }
    }
    jv.validate_job_variables_for_run(template, {}, {"a": None})
    jv.validate_job_variables_for_run(template, {}, {"b": None})
    jv.validate_job_variables_for_run(PROCESS, {}, {"stream_output": None})


# --- the process worker's template --------------------------------------------------------


def test_process_template_accepts_its_usual_variables() -> None:
    jv.validate_job_variables_for_run(PROCESS, {"env": {"A": "b"}}, {"command": "x"})
    jv.validate_job_variables_for_run(PROCESS, {}, {"env": {"A": None}, "unknown": 1})


def test_process_template_rejects_a_non_boolean_stream_output() -> None:
    assert run_error(PROCESS, {}, {"stream_output": "notabool"}) == (
        RUN + "Validation failed for field 'stream_output'. Failure reason: 'notabool' is not "
        "valid under any of the given schemas"
    )


def test_process_template_reports_nested_field_paths() -> None:
    assert run_error(PROCESS, {}, {"env": {"A": 1}}) == (
        RUN + "Validation failed for field 'env.A'. Failure reason: 1 is not valid under any "
        "of the given schemas"
    )


def test_layers_are_merged_shallowly() -> None:
    assert run_error(PROCESS, {"env": {"A": "x"}}, {"env": []}) == (
        RUN + "Validation failed for field 'env'. Failure reason: [] is not valid under any of "
        "the given schemas"
    )


# --- block references ---------------------------------------------------------------------


def test_block_default_is_resolved_for_validation() -> None:
    jv.validate_job_variables_for_run(
        block_template(str(BLOCK_ID)), {}, {}, resolve_block_document=resolve
    )


def test_block_default_with_invalid_data_is_dropped_like_any_invalid_default() -> None:
    jv.validate_job_variables_for_run(
        block_template(str(BAD_BLOCK_ID)), {}, {}, resolve_block_document=resolve
    )


@pytest.mark.parametrize("block_id", ["33333333-3333-3333-3333-333333333333", "nope", 5])
def test_missing_or_malformed_block_is_a_404(block_id: Any) -> None:
    with pytest.raises(NotFound) as info:
        jv.validate_job_variables_for_run(
            block_template(block_id), {}, {}, resolve_block_document=resolve
        )
    assert info.value.status_code == 404
    assert info.value.message == "Block not found."


def test_block_reference_without_an_id_contributes_nothing() -> None:
    assert run_error(block_template(None), {}, {}, resolve_block_document=resolve) == (
        RUN + "Validation failed. Failure reason: 'k8s_credentials' is a required property"
    )


def test_without_a_resolver_a_block_default_counts_as_satisfied() -> None:
    jv.validate_job_variables_for_run(block_template(str(BLOCK_ID)), {}, {})
    with pytest.raises(NotFound):  # a malformed id is known bad without any lookup
        jv.validate_job_variables_for_run(block_template("nope"), {}, {})


def test_an_override_replaces_a_block_default() -> None:
    assert run_error(
        block_template(str(BLOCK_ID)), {}, {"k8s_credentials": {"context_name": 1}}
    ) == (
        RUN + "Validation failed for field 'k8s_credentials.context_name'. Failure reason: 1 "
        "is not of type 'string'"
    )


def test_block_defaults_are_resolved_on_every_call() -> None:
    calls: list[uuid.UUID] = []

    def counting(block_id: uuid.UUID) -> Any:
        calls.append(block_id)
        return resolve(block_id)

    for _ in range(2):
        jv.validate_job_variables_for_run(
            block_template(str(BLOCK_ID)), {}, {}, resolve_block_document=counting
        )
    assert calls == [BLOCK_ID, BLOCK_ID]


def test_referenced_block_document_ids_lists_well_formed_ids() -> None:
    assert jv.referenced_block_document_ids(block_template(str(BLOCK_ID))) == {BLOCK_ID}
    assert jv.referenced_block_document_ids(block_template("nope")) == set()
    assert jv.referenced_block_document_ids(PROCESS) == set()
    assert jv.referenced_block_document_ids(None) == set()


# --- bad templates ------------------------------------------------------------------------


def test_invalid_variables_schema_is_a_422_without_prefix() -> None:
    template = {"variables": {"properties": {"a": {"type": "nope"}}}}
    assert run_error(template, {}, {"a": 1}) == (
        "Invalid schema: 'nope' is not valid under any of the given schemas"
    )


def test_circular_variables_schema_is_a_422() -> None:
    template = {
        "variables": {
            "properties": {"a": {"$ref": "#/definitions/A"}},
            "definitions": {"A": {"$ref": "#/definitions/A"}},
        }
    }
    assert run_error(template, {}, {"a": 1}) == (
        "Invalid schema: Unable to validate schema with circular references."
    )


def test_remote_ref_in_variables_schema_is_a_validation_error() -> None:
    template = {"variables": {"properties": {"a": {"$ref": "https://example.com/x.json"}}}}
    assert run_error(template, {}, {"a": 1}) == (
        RUN + "Validation failed. Failure reason: Unresolvable: https://example.com/x.json"
    )


def test_updating_a_flow_run_uses_its_own_prefix() -> None:
    assert run_error(REQUIRED_NO_DEFAULT, {}, {}, verb="updating") == (
        "Error updating flow run: Validation failed. Failure reason: 'expected_variable_1' is "
        "a required property"
    )


def test_repeated_calls_without_variables_give_the_same_answer() -> None:
    for _ in range(3):
        jv.validate_job_variables_for_run(PROCESS, {}, {})
        with pytest.raises(Unprocessable):
            jv.validate_job_variables_for_run(REQUIRED_NO_DEFAULT, None, {})


# --- deployments --------------------------------------------------------------------------


def test_deployment_variables_are_type_checked_without_required() -> None:
    jv.validate_job_variables_for_deployment(REQUIRED_NO_DEFAULT, {"other": 1})
    with pytest.raises(Unprocessable) as info:
        jv.validate_job_variables_for_deployment(TYPED, {"expected_variable_2": 2})
    assert info.value.message == (
        "Error creating deployment: Validation failed for field 'expected_variable_2'. "
        "Failure reason: 2 is not of type 'string'"
    )


def test_deployment_strict_pool_still_rejects_unknown_variables() -> None:
    with pytest.raises(Unprocessable) as info:
        jv.validate_job_variables_for_deployment(STRICT, {"x": 1}, verb="updating")
    assert info.value.message == (
        "Error updating deployment: Validation failed. Failure reason: Additional properties "
        "are not allowed ('x' was unexpected)"
    )


def test_deployment_without_variables_is_not_checked() -> None:
    bad_template = {"variables": {"properties": {"a": {"type": "nope"}}}}
    jv.validate_job_variables_for_deployment(bad_template, {})
    jv.validate_job_variables_for_deployment(bad_template, None)


def test_deployment_patch_reports_the_first_error_repr_as_409() -> None:
    with pytest.raises(Conflict) as info:
        jv.check_deployment_update_job_variables(PROCESS, {"stream_output": None})
    assert info.value.status_code == 409
    assert info.value.message == (
        "Error creating deployment: <ValidationError: \"None is not of type 'boolean'\">"
    )
    with pytest.raises(Conflict) as info:
        jv.check_deployment_update_job_variables(PROCESS, {"env": {"A": 1}})
    assert info.value.message == (
        "Error creating deployment: <ValidationError: '1 is not valid under any of the given "
        "schemas'>"
    )


def test_deployment_patch_asserts_formats_and_ignores_required() -> None:
    template = {
        "variables": {
            "properties": {"u": {"type": "string", "format": "uuid"}},
            "required": ["u", "v"],
        }
    }
    jv.check_deployment_update_job_variables(template, {})
    with pytest.raises(Conflict) as info:
        jv.check_deployment_update_job_variables(template, {"u": "nope"})
    assert info.value.message == (
        "Error creating deployment: <ValidationError: \"'nope' is not a 'uuid'\">"
    )


def test_deployment_patch_unresolvable_ref_uses_prefects_error_repr() -> None:
    template = {"variables": {"properties": {"a": {"$ref": "https://example.com/x.json"}}}}
    with pytest.raises(Conflict) as info:
        jv.check_deployment_update_job_variables(template, {"a": 1})
    assert info.value.message == (
        "Error creating deployment: ValidationError('Validation failed. Failure reason: "
        "Unresolvable: https://example.com/x.json')"
    )


def test_deployment_patch_without_variables_or_schema_is_not_checked() -> None:
    jv.check_deployment_update_job_variables(PROCESS, None)
    jv.check_deployment_update_job_variables({}, {"a": 1})
    jv.check_deployment_update_job_variables({"variables": {}}, {"a": 1})
