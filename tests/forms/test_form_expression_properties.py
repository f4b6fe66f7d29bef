"""Property tests of the expression language and of validation: garbage never escapes as anything
but a syntax error, well-formed expressions evaluate or fail cleanly, compiled expressions give
what walking the tree gives, integer arithmetic matches a reference, and arbitrary answers never
make validation raise."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from forms.bindings import derive_register_updates
from forms.bundled import load_bundled_form
from forms.expressions import (
    ExpressionError,
    ExpressionSyntaxError,
    MappingEnvironment,
    compile_condition,
    compile_expression,
    evaluate,
    parse_expression,
)
from forms.expressions.limits import MAX_NESTING_DEPTH
from forms.expressions.values import to_boolean
from forms.validation import validate_submission
from tests.forms import reference_checker

ENVIRONMENT = MappingEnvironment(
    {"a": 3, "b": None, "c": "text", "d": date(2010, 1, 1), "s": ("x", "y"), "r": [1, None, 2]},
    current=5,
    today=date(2024, 11, 20),
    now=datetime(2024, 11, 20, tzinfo=UTC),
)

ALPHABET = "0123456789.${}()'\",+-*/=<>!abcdrstnoivmdx ._-\n"


@settings(max_examples=400)
@given(st.text(alphabet=ALPHABET, max_size=80) | st.text(max_size=80))
def test_garbage_input_only_ever_raises_a_syntax_error(source: str) -> None:
    try:
        parse_expression(source, allow_current=True, allow_choice_properties=True)
    except ExpressionSyntaxError as err:
        assert 0 <= err.position <= max(len(source), 2000)


leaves = st.sampled_from(
    ["1", "0", "2.5", "'x'", "''", "${a}", "${b}", "${c}", "${d}", "${s}", ".", "today()", "now()"]
)


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(
        children,
        st.sampled_from(["+", "-", "*", "div", "mod", "=", "!=", "<", ">=", "and", "or"]),
        children,
    ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    unary = children.map(lambda c: f"-{c}")
    calls = st.one_of(
        children.map(lambda c: f"not({c})"),
        children.map(lambda c: f"int({c})"),
        children.map(lambda c: f"number({c})"),
        children.map(lambda c: f"round({c}, 1)"),
        children.map(lambda c: f"string-length({c})"),
        children.map(lambda c: f"age({c})"),
        children.map(lambda c: f"date({c})"),
        st.tuples(children, children).map(lambda t: f"coalesce({t[0]}, {t[1]})"),
        st.tuples(children, children).map(lambda t: f"concat({t[0]}, {t[1]})"),
        st.tuples(children, children, children).map(lambda t: f"if({t[0]}, {t[1]}, {t[2]})"),
        children.map(lambda c: f"selected(${{s}}, {c})"),
        st.just("count(${r})"),
        st.just("sum(${r})"),
    )
    return st.one_of(binary, unary, calls)


expressions = st.recursive(leaves, combine, max_leaves=12)


@settings(max_examples=400)
@given(expressions)
def test_well_formed_expressions_evaluate_or_raise_only_expression_errors(source: str) -> None:
    try:
        expression = parse_expression(source, allow_current=True)
    except ExpressionSyntaxError as err:
        assert "nested" in err.message or "longer" in err.message
        return
    try:
        result = evaluate(expression, ENVIRONMENT)
    except ExpressionError as err:
        assert err.message
        return
    assert result is None or isinstance(result, bool | int | float | str | date | tuple)


# Longer chains (`a + b - c`, `x and y and z`), more kinds of value and constants on either side:
# the shapes the compiled evaluator treats specially.
richer_leaves = leaves | st.sampled_from(
    [
        *("'12'", "'9'", "'3.5'", "'2010-01-01'", "'y'", "true()", "false()", "12.5"),
        *("${e}", "${t}", "${n}", "${dt}"),
    ]
)
CHAIN_OPERATORS = ["+", "-", "*", "div", "mod", "=", "!=", "<", "<=", ">", ">=", "and", "or"]


def longer_chains(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    links = st.lists(st.tuples(st.sampled_from(CHAIN_OPERATORS), children), min_size=2, max_size=3)
    return st.tuples(children, links).map(
        lambda t: "(" + t[0] + "".join(f" {operator} {operand}" for operator, operand in t[1]) + ")"
    )


richer_expressions = st.recursive(
    richer_leaves, lambda children: combine(children) | longer_chains(children), max_leaves=12
)
RICHER_ENVIRONMENT = MappingEnvironment(
    {
        **ENVIRONMENT.values,
        "e": 2.5,
        "t": True,
        "n": "12",
        "dt": datetime(2010, 1, 1, 8, tzinfo=UTC),
    },
    current="y",
    today=date(2024, 11, 20),
    now=datetime(2024, 11, 20, tzinfo=UTC),
)


def result_of(run: Callable[[], object]) -> tuple[str, object]:
    """The value with its type (so that 1, 1.0 and True differ), or the error raised."""
    try:
        value = run()
    except ExpressionError as err:
        return "raised", (type(err).__name__, str(err))
    return "returned", (type(value), value)


@settings(max_examples=1000)
@given(richer_expressions)
def test_compiled_expressions_give_what_walking_the_tree_gives(source: str) -> None:
    try:
        expression = parse_expression(source, allow_current=True)
    except ExpressionSyntaxError:
        return
    expected = result_of(lambda: reference_checker.evaluate(expression, RICHER_ENVIRONMENT))

    assert result_of(lambda: evaluate(expression, RICHER_ENVIRONMENT)) == expected
    assert result_of(lambda: compile_expression(expression)(RICHER_ENVIRONMENT)) == expected
    truth = result_of(
        lambda: to_boolean(reference_checker.evaluate(expression, RICHER_ENVIRONMENT))
    )
    assert result_of(lambda: compile_condition(expression)(RICHER_ENVIRONMENT)) == truth


@given(st.integers(min_value=MAX_NESTING_DEPTH + 1, max_value=300), st.sampled_from(["(", "not("]))
def test_nesting_beyond_the_limit_is_always_refused(depth: int, opener: str) -> None:
    source = opener * depth + "1" + ")" * depth
    try:
        parse_expression(source)
    except ExpressionSyntaxError as err:
        assert "nested" in err.message
    else:
        raise AssertionError("deep nesting was accepted")


small = st.integers(min_value=-1000, max_value=1000)


@settings(max_examples=300)
@given(
    st.lists(small, min_size=1, max_size=8),
    st.lists(st.sampled_from(["+", "-", "*"]), min_size=7, max_size=7),
)
def test_integer_arithmetic_matches_python(numbers: list[int], operators: list[str]) -> None:
    # Negative numbers are parenthesised (a literal is unsigned; the sign is unary minus).
    source = f"({numbers[0]})"
    for operator, number in zip(operators, numbers[1:], strict=False):
        source += f" {operator} ({number})"

    assert evaluate(parse_expression(source), ENVIRONMENT) == reference(numbers, operators)


def reference(numbers: list[int], operators: list[str]) -> int:
    """Plain Python arithmetic with * binding tighter than + and -."""
    terms = [numbers[0]]
    signs: list[str] = []
    for operator, number in zip(operators, numbers[1:], strict=False):
        if operator == "*":
            terms[-1] *= number
        else:
            signs.append(operator)
            terms.append(number)
    total = terms[0]
    for sign, term in zip(signs, terms[1:], strict=True):
        total = total + term if sign == "+" else total - term
    return total


@given(small, small.filter(lambda n: n != 0))
def test_integer_div_and_mod_match_xpath(a: int, b: int) -> None:
    quotient = evaluate(parse_expression(f"({a}) div ({b})"), ENVIRONMENT)
    remainder = evaluate(parse_expression(f"({a}) mod ({b})"), ENVIRONMENT)

    assert quotient == a / b
    assert remainder == (abs(a) % abs(b)) * (1 if a >= 0 else -1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
visit_keys = st.sampled_from(
    [
        "household_id",
        "visit_date",
        "household_size",
        "annual_income",
        "members",
        "risk_causes",
        "sudden_events",
        "house_photo",
        "location",
        "water_status",
        "birth_date",
        "insured",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(visit_keys, json_values, max_size=8) | json_values)
def test_validation_never_raises_on_arbitrary_answers(data: object) -> None:
    definition = load_bundled_form("household_visit")

    found = validate_submission(definition, data, today=date(2024, 11, 20))

    assert all(issue.path.startswith("data") for issue in found)
    if isinstance(data, dict) and not found:
        derive_register_updates(definition, data, today=date(2024, 11, 20))
