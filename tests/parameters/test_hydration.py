"""Hydration of ``__prefect_kind`` placeholders.

Expected reason texts were produced by Prefect 3.9.1's own ``hydrate`` (raise_on_error,
render_jinja and render_workspace_variables on, as create_flow_run calls it); they are the
contract.
"""

from __future__ import annotations

from typing import Any

import pytest

from deputy.errors import BadRequest
from deputy.parameters.hydration import (
    DEPLOYMENT_PREFIX,
    HydrationFailed,
    has_placeholders,
    hydrate_parameters,
    referenced_variable_names,
    render_template,
)

PREFIX = "Error hydrating flow run parameters: "


def kind(k: str, **fields: Any) -> dict[str, Any]:
    return {"__prefect_kind": k, **fields}


def failure(values: dict[str, Any], variables: dict[str, Any] | None = None) -> str:
    with pytest.raises(HydrationFailed) as info:
        hydrate_parameters(values, variables or {})
    assert info.value.status_code == 400
    assert isinstance(info.value, BadRequest)
    assert info.value.message == PREFIX + info.value.reason
    assert info.value.body() == {"detail": info.value.message}
    return info.value.reason


# --- fast path ----------------------------------------------------------------------------


def test_values_without_placeholders_are_returned_as_is() -> None:
    values = {"a": 1, "b": [{"c": "__prefect_kind"}], "d": {"e": None}}
    assert hydrate_parameters(values, {}) is values


def test_marker_is_only_a_dict_key_never_a_string_value() -> None:
    assert not has_placeholders({"a": "__prefect_kind", "b": ['"__prefect_kind":']})
    assert has_placeholders({"a": [{"__prefect_kind": "none", "value": 1}]})


def test_marker_detection_survives_values_orjson_refuses() -> None:
    assert not has_placeholders({"big": 2**70})
    assert has_placeholders({"big": 2**70, "p": kind("none", value=1)})


# --- none ---------------------------------------------------------------------------------


def test_none_kind_unwraps_its_value_recursively() -> None:
    values = {"a": kind("none", value=kind("json", value="[1]")), "b": kind("none", value=2)}
    assert hydrate_parameters(values, {}) == {"a": [1], "b": 2}


def test_none_kind_without_value_is_a_400() -> None:
    assert failure({"a": kind("none")}) == "Missing 'value' key in __prefect object"


# --- json ---------------------------------------------------------------------------------


def test_json_kind_parses_a_json_string() -> None:
    values = {"a": kind("json", value='{"x": [1, 2.5, null, true]}')}
    assert hydrate_parameters(values, {}) == {"a": {"x": [1, 2.5, None, True]}}


def test_json_kind_invalid_json_reports_the_decoder_message() -> None:
    assert (
        failure({"a": kind("json", value="nope")})
        == "Invalid JSON: Expecting value: line 1 column 1 (char 0)"
    )
    assert (
        failure({"a": kind("json", value='{"x": 1,}')})
        == "Invalid JSON: Expecting property name enclosed in double quotes: line 1 column 9 "
        "(char 8)"
    )


def test_json_kind_without_value_disappears_from_its_parent() -> None:
    values = {"a": kind("json"), "b": [kind("json"), 1], "c": 3}
    assert hydrate_parameters(values, {}) == {"b": [1], "c": 3}


def test_json_kind_non_string_value_passes_through_unparsed() -> None:
    assert hydrate_parameters({"a": kind("json", value=5)}, {}) == {"a": 5}
    assert hydrate_parameters({"a": kind("json", value=None)}, {}) == {"a": None}


def test_json_kind_list_value_is_not_hydrated() -> None:
    inner = [kind("none", value=1)]
    assert hydrate_parameters({"a": kind("json", value=inner)}, {}) == {"a": inner}


def test_json_kind_object_value_is_hydrated_then_parsed() -> None:
    values = {"a": kind("json", value=kind("jinja", template="[{{ 1 }}]"))}
    assert hydrate_parameters(values, {}) == {"a": [1]}


def test_json_kind_parses_a_variable_holding_json_text() -> None:
    values = {"a": kind("json", value=kind("workspace_variable", variable_name="j"))}
    assert hydrate_parameters(values, {"j": "[1,2]"}) == {"a": [1, 2]}


# --- jinja --------------------------------------------------------------------------------


def test_jinja_kind_renders_an_expression_to_a_string() -> None:
    assert hydrate_parameters({"a": kind("jinja", template="{{ 1 + 2 }}")}, {}) == {"a": "3"}


def test_jinja_undefined_names_render_as_empty_text() -> None:
    values = {"a": kind("jinja", template="{{ foo.bar }}x{{ x.y.z }}")}
    assert hydrate_parameters(values, {}) == {"a": "x"}


def test_jinja_sandbox_escape_attempt_is_a_400() -> None:
    template = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    assert failure({"a": kind("jinja", template=template)}) == (
        "Invalid jinja: Failed to render template due to the following error: "
        "SecurityError(\"access to attribute '__class__' of 'str' object is unsafe.\")"
    )


def test_jinja_sandbox_is_immutable() -> None:
    assert failure({"a": kind("jinja", template="{{ [1].append(2) }}")}) == (
        "Invalid jinja: Failed to render template due to the following error: "
        "SecurityError(\"access to attribute 'append' of 'list' object is unsafe.\")"
    )


def test_jinja_range_is_capped_at_one_hundred() -> None:
    reason = (
        "Invalid jinja: Failed to render template due to the following error: OverflowError("
        "'Range too big. The sandbox blocks ranges larger than MAX_TEMPLATE_RANGE=100.')"
    )
    assert failure({"a": kind("jinja", template="{{ range(1000) | list }}")}) == reason
    ok = {"a": kind("jinja", template="{% for i in range(100) %}.{% endfor %}")}
    assert hydrate_parameters(ok, {}) == {"a": "." * 100}


def test_jinja_syntax_error_reports_the_parser_message() -> None:
    assert failure({"a": kind("jinja", template="{{ 1 + }}")}) == (
        "Invalid jinja: unexpected 'end of print statement'"
    )


def test_jinja_runtime_error_is_a_400() -> None:
    assert failure({"a": kind("jinja", template="{{ 1/0 }}")}) == (
        "Invalid jinja: Failed to render template due to the following error: "
        "ZeroDivisionError('division by zero')"
    )


def test_jinja_unknown_filter_is_a_400() -> None:
    assert failure({"a": kind("jinja", template="{{ x | nofilter }}")}) == (
        "Invalid jinja: Failed to render template due to the following error: "
        "TemplateAssertionError(\"No filter named 'nofilter'.\")"
    )


def test_jinja_more_than_ten_for_loops_is_a_400() -> None:
    loop = "{% for a in [1] %}{% endfor %}"
    assert failure({"a": kind("jinja", template=loop * 11)}) == (
        "Invalid jinja: Contains 11 for loops. Templates can contain no more than 10 for loops."
    )
    assert hydrate_parameters({"a": kind("jinja", template=loop * 10)}, {}) == {"a": ""}


def test_jinja_loops_nested_three_deep_is_a_400() -> None:
    template = (
        "{% for a in [1] %}{% for b in [1] %}{% for c in [1] %}{% endfor %}{% endfor %}{% endfor %}"
    )
    assert failure({"a": kind("jinja", template=template)}) == (
        "Invalid jinja: Contains nested for loops at a depth of 3. Templates can nest for "
        "loops no more than 2 loops deep."
    )


def test_jinja_text_without_expression_markers_is_returned_verbatim() -> None:
    values = {"a": kind("jinja", template="{# c #}"), "b": kind("jinja", template="plain")}
    assert hydrate_parameters(values, {}) == {"a": "{# c #}", "b": "plain"}


def test_jinja_without_template_is_a_400() -> None:
    assert failure({"a": kind("jinja")}) == "Missing 'template' key in __prefect object"


def test_jinja_object_template_is_hydrated_first() -> None:
    values = {"a": kind("jinja", template=kind("none", value="{{ 2 * 3 }}"))}
    assert hydrate_parameters(values, {}) == {"a": "6"}
    gone = {"a": kind("jinja", template=kind("json")), "b": 1}
    assert hydrate_parameters(gone, {}) == {"b": 1}


def test_jinja_non_string_template_is_a_400_not_a_crash() -> None:
    # Prefect 3.9.1 answers 500 here (TypeError); deputy reports it.
    assert failure({"a": kind("jinja", template=5)}) == (
        "Invalid jinja: template must be a string, not int"
    )


def test_render_template_is_usable_on_its_own() -> None:
    assert render_template("{{ 'a' * 3 }}") == "aaa"
    with pytest.raises(HydrationFailed):
        render_template("{{ 1 + }}")


# --- workspace_variable -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["text", 3, 1.5, True, False, None, {"k": [1, None, {"n": "x"}]}, [1, "two", [3]]],
)
def test_workspace_variable_resolves_every_json_type(value: Any) -> None:
    values = {"p": kind("workspace_variable", variable_name="v"), "q": [1]}
    assert hydrate_parameters(values, {"v": value}) == {"p": value, "q": [1]}


def test_workspace_variable_missing_is_a_400() -> None:
    values = {"a": kind("workspace_variable", variable_name="missing")}
    assert failure(values) == "Variable 'missing' not found in workspace."


def test_workspace_variable_non_string_name_is_never_found() -> None:
    assert failure({"a": kind("workspace_variable", variable_name=None)}) == (
        "Variable 'None' not found in workspace."
    )
    assert failure({"a": kind("workspace_variable", variable_name=5)}, {"5": 1}) == (
        "Variable '5' not found in workspace."
    )


def test_workspace_variable_without_name_disappears_from_its_parent() -> None:
    values = {"a": kind("workspace_variable"), "b": 1}
    assert hydrate_parameters(values, {}) == {"b": 1}


def test_workspace_variable_name_can_be_computed() -> None:
    pointer = {"a": kind("workspace_variable", variable_name=kind("jinja", template="{{ 'o' }}"))}
    assert hydrate_parameters(pointer, {"o": 1}) == {"a": 1}
    chained = {
        "a": kind(
            "workspace_variable",
            variable_name=kind("workspace_variable", variable_name="ptr"),
        )
    }
    assert hydrate_parameters(chained, {"ptr": "s", "s": "str"}) == {"a": "str"}


def test_variables_may_come_from_a_callable() -> None:
    store = {"v": 7}

    def lookup(name: str) -> Any:
        return store[name]  # KeyError means "no such variable"

    assert hydrate_parameters({"a": kind("workspace_variable", variable_name="v")}, lookup) == {
        "a": 7
    }
    with pytest.raises(HydrationFailed):
        hydrate_parameters({"a": kind("workspace_variable", variable_name="w")}, lookup)


# --- other kinds, top level, ordering -----------------------------------------------------


def test_unknown_kind_returns_its_value_without_hydrating_it() -> None:
    values = {
        "a": kind("weird", value=kind("json", value="x")),
        "b": kind("weird"),
        "c": {"__prefect_kind": None, "value": 3},
    }
    assert hydrate_parameters(values, {}) == {
        "a": {"__prefect_kind": "json", "value": "x"},
        "b": None,
        "c": 3,
    }


def test_top_level_placeholder_hydrates_to_its_object() -> None:
    values = kind("none", value={"b": kind("json", value="1")})
    assert hydrate_parameters(values, {}) == {"b": 1}
    assert hydrate_parameters(kind("json"), {}) == {}


def test_top_level_placeholder_giving_a_non_object_is_a_400() -> None:
    # Prefect 3.9.1 carries on with 5 and fails later with a 500.
    assert failure(kind("none", value=5)) == "Parameters must hydrate to an object, not int"


def test_first_failure_in_document_order_wins() -> None:
    values = {
        "first": kind("json", value="bad"),
        "second": kind("workspace_variable", variable_name="missing"),
    }
    assert failure(values) == "Invalid JSON: Expecting value: line 1 column 1 (char 0)"


def test_deployment_prefix_is_available() -> None:
    with pytest.raises(HydrationFailed) as info:
        hydrate_parameters({"a": kind("none")}, {}, prefix=DEPLOYMENT_PREFIX)
    assert info.value.message == (
        "Error hydrating deployment parameters: Missing 'value' key in __prefect object"
    )


def test_input_is_not_mutated() -> None:
    values = {"a": kind("json", value="[1]"), "b": [kind("json")]}
    snapshot = {"a": kind("json", value="[1]"), "b": [kind("json")]}
    hydrate_parameters(values, {})
    assert values == snapshot


# --- referenced_variable_names ------------------------------------------------------------


def test_referenced_variable_names_lists_static_names_only_where_hydration_looks() -> None:
    values = {
        "a": kind("workspace_variable", variable_name="one"),
        "b": [kind("none", value=kind("workspace_variable", variable_name="two"))],
        "c": kind("json", value=kind("workspace_variable", variable_name="three")),
        "hidden_by_unknown_kind": kind("x", value=kind("workspace_variable", variable_name="n1")),
        "json_list_not_hydrated": kind(
            "json", value=[kind("workspace_variable", variable_name="n2")]
        ),
        "computed": kind("workspace_variable", variable_name=kind("jinja", template="{{ 'fo' }}o")),
    }
    assert referenced_variable_names(values) == {"one", "two", "three", "foo"}


def test_referenced_variable_names_is_none_when_a_name_needs_a_variable() -> None:
    values = {
        "a": kind(
            "workspace_variable", variable_name=kind("workspace_variable", variable_name="ptr")
        )
    }
    assert referenced_variable_names(values) is None


def test_referenced_variable_names_is_empty_without_variables() -> None:
    assert referenced_variable_names({"a": 1, "b": kind("json", value="1")}) == set()
