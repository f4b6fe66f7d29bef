"""The expression language of form definitions (relevance, constraints, calculations, choice
filters): a close relative of the XPath subset XLSForm uses, parsed and evaluated here.

Never uses eval, exec, compile or any other Python code execution, and never raises anything but
ExpressionError from parsing or evaluation.
"""

from __future__ import annotations

from forms.expressions.errors import EvaluationError, ExpressionError, ExpressionSyntaxError
from forms.expressions.evaluator import (
    Condition,
    Environment,
    MappingEnvironment,
    Program,
    compile_condition,
    compile_expression,
    evaluate,
    evaluate_boolean,
)
from forms.expressions.parser import Expression, parse_expression
from forms.expressions.values import NodeSet, Value

__all__ = [
    "Condition",
    "Environment",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "MappingEnvironment",
    "NodeSet",
    "Program",
    "Value",
    "compile_condition",
    "compile_expression",
    "evaluate",
    "evaluate_boolean",
    "parse_expression",
]
