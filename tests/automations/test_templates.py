"""Jinja templates of automation actions: what parses, what is refused and how it is said.

Expected lines and messages were recorded from Prefect 3.9.1 (``POST /templates/validate``,
``prefect.server.utilities.user_templates``); ``test_same_answers_as_prefect`` asks Prefect's
own route function for the same templates.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from deputy.automations.templates import (
    KIND_KEY,
    TemplateProblem,
    check_parameters,
    check_template,
    environment,
    maybe_template,
    parameter_problems,
    template_problem,
    upgrade_v1_templates,
    validation_error_body,
)
from prefect_models import run_prefect

LOOP = "{% for a in b %}{% endfor %}"
NESTED_3 = "{% for a in b %}{% for c in d %}{% for e in f %}{% endfor %}{% endfor %}{% endfor %}"
NESTED_2 = "{% for a in b %}{% for c in d %}{% endfor %}{% endfor %}"

#: Templates with what Prefect answers for each: (line, message), or None for a 204.
TEMPLATES: list[tuple[str, tuple[int, str] | None]] = [
    ("", None),
    ("plain text", None),
    ("hello {{ flow_run.name }}", None),
    ("{{ x | nofilter }}", None),  # filters are looked up when rendering
    ("{{ x.__class__ }}", None),  # the sandbox refuses it when rendering
    ("{% include 'other' %}", None),
    ("{% raw %}", None),
    (LOOP * 10, None),
    (NESTED_2, None),
    ("{{ x", (1, "unexpected end of template, expected 'end of print statement'.")),
    ("line1\n{% if %}", (2, "Expected an expression, got 'end of statement block'")),
    ("{# unclosed", (1, "Missing end of comment tag")),
    ("{% endfor %}", (1, "Encountered unknown tag 'endfor'.")),
    ("{{ x }", (1, "unexpected '}'")),
    (
        "{% for a in b %}",
        (
            1,
            "Unexpected end of template. Jinja was looking for the following tags: 'endfor' "
            "or 'else'. The innermost block that needs to be closed is 'for'.",
        ),
    ),
    ("a\nb\n{{ x | }}", (3, "expected token 'name', got 'end of print statement'")),
    (
        LOOP * 11,
        (0, "Contains 11 for loops. Templates can contain no more than 10 for loops."),
    ),
    (
        NESTED_3,
        (
            0,
            "Contains nested for loops at a depth of 3. Templates can nest for loops no more "
            "than 2 loops deep.",
        ),
    ),
]


@pytest.mark.parametrize(("source", "expected"), TEMPLATES)
def test_template_problem(source: str, expected: tuple[int, str] | None) -> None:
    problem = template_problem(source)
    assert problem == (None if expected is None else TemplateProblem(*expected))


@pytest.mark.parametrize(("source", "expected"), TEMPLATES)
def test_validation_error_body(source: str, expected: tuple[int, str] | None) -> None:
    body = validation_error_body(source)
    if expected is None:
        assert body is None
    else:
        line, message = expected
        assert body == {"error": {"line": line, "message": message, "source": source}}


def test_same_answers_as_prefect() -> None:
    """Prefect's own ``/templates/validate`` handler, called with the same templates."""
    sources = [source for source, _ in TEMPLATES]
    answers = run_prefect(
        """
        import json, sys
        from prefect.server.api.templates import validate_template

        answers = []
        for source in json.load(sys.stdin):
            response = validate_template(source)
            answers.append([response.status_code, response.body.decode() or None])
        print(json.dumps(answers))
        """,
        json.dumps(sources),
    )
    for source, (status, body) in zip(sources, answers, strict=True):
        ours = validation_error_body(source)
        assert status == (204 if ours is None else 422), source
        assert (None if body is None else json.loads(body)) == ours, source


def test_check_template_names_the_field() -> None:
    assert check_template("Run {{ flow_run.name }} failed", "body") == (
        "Run {{ flow_run.name }} failed"
    )
    with pytest.raises(ValueError, match=r"^'subject' is not a valid template: ") as caught:
        check_template("{% if %}", "subject")
    assert str(caught.value) == (
        "'subject' is not a valid template: Expected an expression, got 'end of statement block'"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{ x }}", True), ("{% if a %}{% endif %}", True), ("{# c #}", False), ("{ {", False)],
)
def test_maybe_template(text: str, expected: bool) -> None:
    assert maybe_template(text) is expected


def test_environment_is_a_bounded_sandbox() -> None:
    env = environment()
    assert isinstance(env, ImmutableSandboxedEnvironment)
    assert env is environment()
    assert env.from_string("[{{ missing.name }}]").render() == "[]"
    assert env.from_string("{{ range(3) | list }}").render() == "[0, 1, 2]"
    with pytest.raises(OverflowError, match="MAX_TEMPLATE_RANGE=100"):
        env.from_string("{% for i in range(101) %}{% endfor %}").render()
    with pytest.raises(SecurityError):
        env.from_string("{{ items.append(1) }}").render(items=[])


# --- run-deployment parameters -----------------------------------------------------------


def test_v1_templates_become_placeholders() -> None:
    parameters: dict[str, Any] = {
        "id": "{{ event.id }}",
        "spaced": "  {{ event.occurred }}  ",
        "text": "Run {{ flow_run.name }}",
        "statement": "{% if x %}y{% endif %}",
        "two": "{{ a }}{{ b }}",
        "plain": "no template",
        "number": 5,
        "nested": {"deep": ["{{ x }}", {"y": "{{ y }}"}, 1]},
        "placeholder": {KIND_KEY: "jinja", "template": "{{ kept }}"},
    }
    before = copy.deepcopy(parameters)
    upgraded = upgrade_v1_templates(parameters)
    assert parameters == before  # a copy, not changed in place

    def typed(expression: str) -> dict[str, Any]:
        return {KIND_KEY: "json", "value": {KIND_KEY: "jinja", "template": expression}}

    assert upgraded == {
        "id": typed("{{ event.id | tojson }}"),
        "spaced": typed("{{ event.occurred | tojson }}"),
        "text": {KIND_KEY: "jinja", "template": "Run {{ flow_run.name }}"},
        "statement": {KIND_KEY: "jinja", "template": "{% if x %}y{% endif %}"},
        "two": {KIND_KEY: "jinja", "template": "{{ a }}{{ b }}"},
        "plain": "no template",
        "number": 5,
        "nested": {"deep": [typed("{{ x | tojson }}"), {"y": typed("{{ y | tojson }}")}, 1]},
        "placeholder": {KIND_KEY: "jinja", "template": "{{ kept }}"},
    }


@pytest.mark.parametrize(
    ("parameters", "problems"),
    [
        ({}, []),
        ({"a": "{{ event.id }}", "b": {"c": "Hi {{ x }}"}}, []),
        ({"a": {KIND_KEY: "workspace_variable", "variable_name": "not-yet-created"}}, []),
        ({"a": {KIND_KEY: "workspace_variable"}}, []),  # removed, as in Prefect
        ({"a": {KIND_KEY: "json"}}, []),  # removed too
        ({"a": {KIND_KEY: "mystery", "value": {KIND_KEY: "none"}}}, []),  # taken as it is
        ({"a": {KIND_KEY: "json", "value": '{"x": 1}'}}, []),
        ({"a": {KIND_KEY: "none", "value": "{{ x }}"}}, []),
        (
            {"a": {KIND_KEY: "none"}},
            [("a", "Missing 'value' key in __prefect object")],
        ),
        (
            {"a": {"b": {KIND_KEY: "jinja"}}},
            [("a.b", "Missing 'template' key in __prefect object")],
        ),
        (
            {"a": {KIND_KEY: "json", "value": "{bad"}},
            [
                (
                    "a",
                    "Invalid JSON: Expecting property name enclosed in double quotes: "
                    "line 1 column 2 (char 1)",
                )
            ],
        ),
        (
            {"a": {KIND_KEY: "json", "value": {"x": {KIND_KEY: "none"}}}},
            [("a.x", "Missing 'value' key in __prefect object")],
        ),
        (
            {"a": {KIND_KEY: "json", "value": {KIND_KEY: "jinja"}}},
            [("a", "Missing 'template' key in __prefect object")],
        ),
        (
            {KIND_KEY: "jinja", "template": "{{ x"},
            [("", "Invalid jinja: unexpected end of template, expected 'end of print statement'.")],
        ),
        (
            {"a": "{{ x + }}", "b": "hello {{ y"},
            [
                # checked as Prefect renders it: "{{ x + | tojson }}"
                ("a", "Invalid jinja: unexpected '|'"),
                (
                    "b",
                    "Invalid jinja: unexpected end of template, expected 'end of print statement'.",
                ),
            ],
        ),
        # deputy looks into lists, and wants templates to be text (stricter than Prefect)
        (
            {"a": ["ok", "{{ x", {"b": {KIND_KEY: "none"}}]},
            [
                (
                    "a[1]",
                    "Invalid jinja: unexpected end of template, expected 'end of print statement'.",
                ),
                ("a[2].b", "Missing 'value' key in __prefect object"),
            ],
        ),
        (
            {"a": {KIND_KEY: "jinja", "template": 5}},
            [("a", "Invalid jinja: template must be a string, not int")],
        ),
        (
            {"a": NESTED_3},
            [
                (
                    "a",
                    "Invalid jinja: Contains nested for loops at a depth of 3. Templates can "
                    "nest for loops no more than 2 loops deep.",
                )
            ],
        ),
    ],
)
def test_parameter_problems(parameters: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    assert parameter_problems(parameters) == problems


def test_check_parameters_message() -> None:
    assert check_parameters(None) is None
    assert check_parameters({}) == {}
    good = {"a": "{{ event.id }}"}
    assert check_parameters(good) is good
    with pytest.raises(ValueError, match=r"^Invalid parameters: \n") as caught:
        check_parameters({"b": {KIND_KEY: "jinja", "template": "{{ x"}, "d": {"e": "{% for %}"}})
    assert str(caught.value) == (
        "Invalid parameters: \n"
        "b: Invalid jinja: unexpected end of template, expected 'end of print statement'.\n"
        "  d.e: Invalid jinja: Expected an expression, got 'end of statement block'"
    )
    with pytest.raises(ValueError, match="template must be a string") as caught:
        check_parameters({KIND_KEY: "jinja", "template": 1.5})
    # the parameters themselves have no path: Prefect writes a space instead
    assert str(caught.value) == (
        "Invalid parameters: \n Invalid jinja: template must be a string, not float"
    )
