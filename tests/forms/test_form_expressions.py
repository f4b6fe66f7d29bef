"""Specification of the expression language: syntax, operators, functions, null rules, limits."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from forms.expressions import (
    EvaluationError,
    ExpressionSyntaxError,
    MappingEnvironment,
    Value,
    evaluate,
    parse_expression,
)
from forms.expressions.limits import MAX_EXPRESSION_LENGTH, MAX_NESTING_DEPTH
from forms.expressions.values import compare, to_boolean

TODAY = date(2024, 11, 20)


def value(source: str, **values: object) -> Value:
    environment = MappingEnvironment(
        values, today=TODAY, now=datetime(2024, 11, 20, 8, 0, tzinfo=UTC)
    )
    return evaluate(parse_expression(source, allow_current=True), environment)


def syntax_error(source: str, **flags: bool) -> ExpressionSyntaxError:
    with pytest.raises(ExpressionSyntaxError) as caught:
        parse_expression(source, **flags)
    return caught.value


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 div 2", 3.5),
        ("8 / 2", 4),
        ("-7 mod 3", -1),
        ("7 mod -3", 1),
        ("2 - 3 - 4", -5),
        ("- - 3", 3),
        ("1 < 2 and 2 <= 2", True),
        ("1 > 2 or 3 >= 4", False),
        ("'abc' = \"abc\"", True),
        ("'10' < '9'", False),
        ("'b' > 'a'", True),
        ("not(1 = 2)", True),
        ("true() and not(false())", True),
        ("1.5 * 2", 3.0),
        (".5 + .5", 1.0),
    ],
)
def test_operators_follow_xpath_precedence_and_semantics(source: str, expected: Value) -> None:
    assert value(source) == expected


def test_division_and_modulo_by_zero_give_null_not_an_exception() -> None:
    assert value("1 div 0") is None
    assert value("5 mod 0") is None
    assert value("${x} div ${y}", x=3, y=0) is None


def test_null_equals_the_empty_string_and_nothing_else() -> None:
    assert value("${missing} = ''") is True
    assert value("${missing} != ''") is False
    assert value("'' = ${missing}") is True
    assert value("${missing} = ${other}") is True
    assert value("${missing} != 'x'") is True


def test_comparisons_of_null_with_numbers_dates_or_booleans_are_false_both_ways() -> None:
    for source in ("${m} = 0", "${m} != 0", "${m} < 5", "${m} >= 5", "${m} = true()"):
        assert value(source) is False, source
    assert value("${m} < today()") is False


def test_arithmetic_with_null_gives_null() -> None:
    assert value("${m} + 1") is None
    assert value("-${m}") is None
    assert value("'abc' * 2") is None


def test_numbers_compare_with_numeric_strings() -> None:
    assert value("${n} = '5'", n=5) is True
    assert value("${n} = 'five'", n=5) is False


def test_references_read_the_environment() -> None:
    assert value("${income} div ${size}", income=19800, size=3) == 6600


def test_selected_and_count_selected_work_on_selections() -> None:
    selection = ("illness", "water")
    assert value("selected(${r}, 'water')", r=selection) is True
    assert value("selected(${r}, 'housing')", r=selection) is False
    assert value("count-selected(${r})", r=selection) == 2
    assert value("count-selected(${r})") == 0
    assert value("selected(${s}, 'a')", s="a") is True


def test_count_and_sum_aggregate_node_sets_skipping_nulls() -> None:
    assert value("count(${kids})", kids=[True, True, True]) == 3
    assert value("sum(${income})", income=[100, None, 250.5]) == 350.5
    assert value("count(${income})", income=[100, None, 3]) == 2
    assert value("sum(${income})", income=[]) == 0


def test_a_node_set_outside_count_or_sum_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError):
        value("${income} + 1", income=[1, 2])


def test_dates_today_age_and_date_arithmetic() -> None:
    assert value("today()") == TODAY
    assert value("date('2020-02-29')") == date(2020, 2, 29)
    assert value("date('2021-02-29')") is None
    assert value("age(${b})", b=date(2012, 11, 21)) == 11
    assert value("age(${b})", b=date(2012, 11, 20)) == 12
    assert value("age('2030-01-01')") is None
    assert value("today() - date('2024-11-10')") == 10
    assert value("date('2024-02-28') + 2") == date(2024, 3, 1)
    assert value("date('2020-01-01') < today()") is True
    assert value("${d} >= '2024-01-01'", d=date(2024, 5, 1)) is True


def test_now_is_the_supplied_clock() -> None:
    assert value("now()") == datetime(2024, 11, 20, 8, 0, tzinfo=UTC)


def test_if_is_lazy_and_coalesce_skips_empty_values() -> None:
    assert value("if(${x} > 1, 'big', 1 div 0)", x=5) == "big"
    assert value("if(${x} > 1, 'big', 'small')") == "small"
    assert value("coalesce(${a}, '', ${b}, 'x')", b=7) == 7


def test_string_functions() -> None:
    assert value("string-length('防返贫')") == 3
    assert value("concat('户', 3, '人')") == "户3人"
    assert value("regex('13907711234', '^1[3-9][0-9]{9}$')") is True
    assert value("regex(., '^[0-9]+$')", **{}) is False


def test_number_conversions_and_rounding() -> None:
    assert value("int(7.9)") == 7
    assert value("int(-7.9)") == -7
    assert value("number('12.5')") == 12.5
    assert value("number('twelve')") is None
    assert value("round(2.5)") == 3
    assert value("round(-2.5)") == -3
    assert value("round(6600.456, 2)") == 6600.46


def test_the_current_value_is_what_dot_stands_for() -> None:
    environment = MappingEnvironment(current=42)
    assert evaluate(parse_expression(". > 40", allow_current=True), environment) is True


def test_choice_filters_read_choice_columns_as_bare_names() -> None:
    expression = parse_expression("township = ${township}", allow_choice_properties=True)
    environment = MappingEnvironment({"township": "t101"}, choice={"township": "t101"})

    assert expression.choice_properties == ("township",)
    assert evaluate(expression, environment) is True


def test_references_are_listed_once_in_order() -> None:
    expression = parse_expression("${a} + ${b} * ${a}")

    assert expression.references == ("a", "b")


@pytest.mark.parametrize(
    ("source", "position"),
    [
        ("1 +", 3),
        ("${a} = = 1", 7),
        ("foo(1)", 0),
        ("count-selected(1, 2)", 0),
        ("'unterminated", 0),
        ("${bad name}", 0),
        ("1 # 2", 2),
        ("(1 + 2", 6),
        ("1 2", 2),
        ("concat()", 0),
        ("jr:choice-name(${a}, 'x')", 2),
    ],
)
def test_every_syntax_error_carries_its_character_position(source: str, position: int) -> None:
    assert syntax_error(source).position == position


def test_unknown_bare_names_are_syntax_errors_outside_choice_filters() -> None:
    error = syntax_error("township = 'x'")

    assert "unknown name" in error.message
    assert error.position == 0


def test_dot_is_refused_unless_allowed() -> None:
    assert syntax_error(". > 1").position == 0


def test_count_needs_a_reference() -> None:
    assert "count()" in syntax_error("count(1 + 2)").message


def test_regex_needs_a_safe_literal_pattern() -> None:
    assert "literal" in syntax_error("regex(., ${p})", allow_current=True).message
    assert "repeated group" in syntax_error("regex(., '(a*)*b')", allow_current=True).message
    assert "backreferences" in syntax_error("regex(., '(a)\\1')", allow_current=True).message


def test_deep_nesting_is_refused_with_a_position() -> None:
    fine = "(" * MAX_NESTING_DEPTH + "1" + ")" * MAX_NESTING_DEPTH
    too_deep = "(" * (MAX_NESTING_DEPTH + 1) + "1" + ")" * (MAX_NESTING_DEPTH + 1)

    assert value(fine) == 1
    assert syntax_error(too_deep).position == MAX_NESTING_DEPTH
    assert "nested" in syntax_error("not(" * 40 + "1" + ")" * 40).message
    assert "nested" in syntax_error("-" * 40 + "1").message


def test_long_flat_chains_are_not_nesting() -> None:
    source = " + ".join(["1"] * 400)

    assert value(source) == 400


def test_very_long_expressions_are_refused() -> None:
    error = syntax_error("1" + " + 1" * MAX_EXPRESSION_LENGTH)

    assert "longer than" in error.message


def test_huge_number_literals_are_refused() -> None:
    assert "number literal" in syntax_error("1" + "0" * 400).message


def test_results_out_of_range_are_evaluation_errors() -> None:
    source = " * ".join(["999999999999999999999"] * 3)

    with pytest.raises(EvaluationError):
        value(source)


def test_strings_built_by_concat_are_bounded() -> None:
    with pytest.raises(EvaluationError):
        value("concat(" + ", ".join(["${s}"] * 20) + ")", s="x" * 1000)


def test_regex_on_very_long_text_is_refused() -> None:
    with pytest.raises(EvaluationError):
        value("regex(${s}, 'a')", s="a" * 20_000)


# Values of every kind, for the comparisons the compiled evaluator takes a short way through.
KINDS_OF_VALUE: list[Value] = [
    None,
    True,
    False,
    0,
    1,
    12,
    -3,
    2.5,
    12.0,
    "",
    "12",
    "9",
    " 3.5 ",
    "y",
    date(2010, 1, 1),
    date(2024, 2, 29),
    datetime(2010, 1, 1, 8, 0, tzinfo=UTC),
    ("x", "y"),
    (),
]
CONSTANTS = ["12", "9", "2.5", "'12'", "'9'", "'y'", "''"]


@pytest.mark.parametrize("operator", ["=", "!=", "<", "<=", ">", ">="])
def test_comparisons_compare_every_kind_of_value_as_the_null_and_type_rules_say(
    operator: str,
) -> None:
    for left in KINDS_OF_VALUE:
        for right in KINDS_OF_VALUE:
            found = value(f"${{l}} {operator} ${{r}}", l=left, r=right)
            assert found is compare(operator, left, right), (left, right)
        for constant in CONSTANTS:
            literal = evaluate(parse_expression(constant), MappingEnvironment())
            found = value(f"${{l}} {operator} {constant}", l=left)
            assert found is compare(operator, left, literal), (left, constant)
            found = value(f"{constant} {operator} ${{l}}", l=left)
            assert found is compare(operator, literal, left), (constant, left)


def test_and_or_and_if_give_what_their_rules_say_whatever_their_operands_are() -> None:
    for left in KINDS_OF_VALUE:
        for right in KINDS_OF_VALUE:
            truths = (to_boolean(left), to_boolean(right))
            assert value("${l} and ${r}", l=left, r=right) is (truths[0] and truths[1])
            assert value("${l} or ${r}", l=left, r=right) is (truths[0] or truths[1])
            assert value("(${l} = ${r}) or ${r} > 1", l=left, r=right) is (
                compare("=", left, right) or compare(">", right, 1)
            )
        assert value("if(${l}, 1, 'no')", l=left) == (1 if to_boolean(left) else "no")
        assert value("if(${l} != '', ${l}, 0)", l=left) == (left if compare("!=", left, "") else 0)
