"""A submission's answers as expressions see them: typed values, relevance and calculated values,
scoped by repeat instance, computed lazily and remembered.

Reads the answers it is given and nothing else (the clock comes in as `today`/`now`); everything
static about the definition comes from its plan (`forms.plan`). Evaluation problems make a value
null or a field not relevant; they never escape as exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType

from forms.answer_types import AnswerProblem
from forms.definition import FieldType, FormDefinition
from forms.expressions import ExpressionError, NodeSet, Program, Value
from forms.expressions.values import to_boolean, to_date, to_number, to_string
from forms.plan import FieldPlan, ManyValues, OneValue, ScopePlan, plan_for

_NO_CHOICE: Mapping[str, Value] = MappingProxyType({})

# Reading an enum member is a descriptor call in Python 3.11 (about 0.1 µs): the paths taken for
# every field of every submission compare types with these constants instead.
_REPEAT = FieldType.REPEAT
_TEXT = FieldType.TEXT
_INTEGER = FieldType.INTEGER
_DECIMAL = FieldType.DECIMAL
_BOOLEAN = FieldType.BOOLEAN
_DATE = FieldType.DATE


class _Memo:
    """What has been worked out about one object of answers. Kept per object (by identity), not
    per place: an object that occurs twice in the answers (only Python callers can do that) is
    worked out once, with the environment of the place first evaluated in."""

    __slots__ = ("calculating", "environment", "judging", "parsed", "relevance", "values")

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self.relevance: dict[str, bool] = {}
        self.parsed: dict[str, Value | AnswerProblem] = {}
        # The relevance and calculations being evaluated right now, by field name: met again
        # while evaluating, they are a cycle (only a hand-built definition can have one).
        self.judging: set[str] = set()
        self.calculating: set[str] = set()
        self.environment: _Environment | None = None


class Frame:
    """One object of answers where it occurs: the top level (`data`) or one repeat instance
    (`data.members[2]`), with `chain` the frames from the top level down to it and `plan` its
    scope's plan. Its path is only spelled out when asked for (issues, updates)."""

    __slots__ = (
        "_index",
        "_name",
        "_parent",
        "_path",
        "chain",
        "children",
        "instance",
        "memo",
        "parsed",
        "plan",
        "relevance",
        "values",
    )

    def __init__(
        self,
        plan: ScopePlan,
        instance: Mapping[str, object],
        memo: _Memo,
        parent: Frame | None = None,
        name: str = "",
        index: int = 0,
    ) -> None:
        self.plan = plan
        self.instance = instance
        self.memo = memo
        self.values = memo.values
        self.relevance = memo.relevance
        self.parsed = memo.parsed
        self._parent = parent
        self._name = name
        self._index = index
        self._path: str | None = None if parent is not None else "data"
        self.chain: tuple[Frame, ...] = (self,) if parent is None else (*parent.chain, self)
        self.children: dict[str, list[Frame]] = {}
        """The instances of each repeat in this frame, once listed (relevant or not)."""

    @property
    def path(self) -> str:
        """`data`, or `data.members[2]` (the index counts every item of the list)."""
        path = self._path
        if path is None:
            assert self._parent is not None
            path = self._path = f"{self._parent.path}.{self._name}[{self._index}]"
        return path


class SubmissionContext:
    """Answers of one submission, read against one definition.

    `relevant` and `value` answer for a field in a given frame; values of fields that are not
    relevant are null, as in ODK. Each is computed at most once per object of answers.
    """

    def __init__(
        self,
        definition: FormDefinition,
        data: Mapping[str, object],
        *,
        today: date,
        now: datetime,
    ) -> None:
        self.definition = definition
        self.plan = plan_for(definition)
        self.today = today
        self.now = now
        self._memos: dict[int, _Memo] = {}
        self.root = Frame(self.plan.root, data, self._memo(data))

    def relevant(self, frame: Frame, f: FieldPlan) -> bool:
        """Whether `f` is relevant in `frame` (false on errors)."""
        relevant = f.relevant
        if relevant is None:
            return True
        known = frame.relevance.get(f.name)
        if known is not None:
            return known
        name = f.name
        judging = frame.memo.judging
        if name in judging:
            frame.relevance[name] = False
            return False
        judging.add(name)
        try:
            try:
                result = relevant(frame.memo.environment or self.environment(frame))
            except ExpressionError:
                result = False
        finally:
            judging.discard(name)
        frame.relevance[name] = result
        return result

    def value(self, frame: Frame, f: FieldPlan) -> Value:
        """The typed value of `f` in `frame`; null when unanswered, invalid or not relevant; for a
        calculation, its computed value."""
        values = frame.values
        name = f.name
        if name in values:
            return values[name]
        result: Value = None
        if f.relevant is None or self.relevant(frame, f):
            calculation = f.calculation
            if calculation is not None:
                result = self._calculate(frame, f, calculation)
            else:
                parsed = frame.parsed
                answer = parsed[name] if name in parsed else self.answer(frame, f)
                if not isinstance(answer, AnswerProblem):
                    result = answer
        values[name] = result
        return result

    def answer(self, frame: Frame, f: FieldPlan) -> Value | AnswerProblem:
        """The answer to `f` in `frame` read as its type (or the problem with it), whatever its
        relevance (see `parse_answer`)."""
        parsed = frame.parsed
        name = f.name
        if name in parsed:
            return parsed[name]
        raw = frame.instance.get(name)
        reader = f.reader
        result = None if raw is None or raw == "" or reader is None else reader(raw)
        parsed[name] = result
        return result

    def instances(self, frame: Frame, repeat: FieldPlan) -> list[Frame]:
        """The instances (objects) of `repeat` in `frame`; none when the repeat is not relevant or
        not a list. Items that are not objects are skipped. The list is shared: do not change it."""
        if repeat.relevant is not None and not self.relevant(frame, repeat):
            return []
        listed = frame.children.get(repeat.name)
        if listed is None:
            listed = frame.children[repeat.name] = self._list_instances(frame, repeat)
        return listed

    def environment(
        self, frame: Frame, *, current: Value = None, choice: Mapping[str, Value] | None = None
    ) -> _Environment:
        """What an expression evaluated in `frame` sees (`current` is `.`, `choice` the columns of
        the choice being filtered)."""
        if current is not None or choice:
            return _Environment(self, frame, current, choice or _NO_CHOICE)
        # The plain environment of an object of answers is the same every time: kept, not
        # rebuilt. It stays bound to the frame it was first asked for.
        memo = frame.memo
        environment = memo.environment
        if environment is None:
            environment = memo.environment = _Environment(self, frame, None, _NO_CHOICE)
        return environment

    def many(self, frame: Frame, reference: ManyValues) -> NodeSet:
        """The values a many-valued `${name}` stands for, seen from `frame`."""
        frames = [frame.chain[reference.common]]
        for step in reference.steps:
            frames = [child for parent in frames for child in self.instances(parent, step)]
        target = reference.field
        if target.type is _REPEAT:
            return NodeSet(tuple(True for parent in frames for _ in self.instances(parent, target)))
        return NodeSet(tuple(self.value(parent, target) for parent in frames))

    def _calculate(self, frame: Frame, f: FieldPlan, calculation: Program) -> Value:
        name = f.name
        calculating = frame.memo.calculating
        if name in calculating:
            return None
        calculating.add(name)
        try:
            try:
                computed = calculation(frame.memo.environment or self.environment(frame))
            except ExpressionError:
                return None
            return coerce_to(f.field.value_type, computed)
        finally:
            calculating.discard(name)

    def _list_instances(self, frame: Frame, repeat: FieldPlan) -> list[Frame]:
        raw = frame.instance.get(repeat.name)
        if not isinstance(raw, list):
            return []
        # A field that is not a repeat only gets here from a hand-built definition.
        plan = repeat.children or self.plan.scope(repeat.path)
        return [
            Frame(plan, item, self._memo(item), frame, repeat.name, index)
            for index, item in enumerate(raw)
            if isinstance(item, dict)
        ]

    def _memo(self, instance: Mapping[str, object]) -> _Memo:
        memo = self._memos.get(id(instance))
        if memo is None:
            memo = self._memos[id(instance)] = _Memo()
        return memo

    def __enter__(self) -> SubmissionContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of everything worked out. Frames point at each other (a repeat instance at its
        parent and back, each at itself in its chain) and memos at their environments, which
        point back at the context: left alone, a submission's answers would wait for the cyclic
        garbage collector instead of being freed at once — a push holds thousands of them.
        `with SubmissionContext(...) as context:` closes it at the end of the block."""
        stack = [self.root]
        while stack:
            frame = stack.pop()
            for listed in frame.children.values():
                stack.extend(listed)
            frame.children = {}
            frame.chain = ()
        for memo in self._memos.values():
            memo.environment = None
        self._memos.clear()


def coerce_to(value_type: FieldType | None, value: Value) -> Value:
    """A calculated value converted to its declared `value_type` (null when it does not fit)."""
    if value is None or value_type is None:
        return value
    # What the conversions below come to for plain numbers, without them.
    kind = type(value)
    if kind is int and (value_type is _INTEGER or value_type is _DECIMAL):
        return value
    if kind is float and value_type is _DECIMAL:
        return value
    if kind is bool and value_type is _BOOLEAN:
        return value
    if value_type is _TEXT:
        return to_string(value) or None
    if value_type is _BOOLEAN:
        return to_boolean(value)
    if value_type is _DATE:
        return to_date(value)
    number = to_number(value)
    if value_type is _INTEGER:
        return int(number) if number is not None and number == int(number) else None
    return number


class _Environment:
    """The Environment of expressions evaluated in one frame."""

    __slots__ = ("choice", "context", "current", "frame", "now", "references", "today")

    def __init__(
        self,
        context: SubmissionContext,
        frame: Frame,
        current: Value,
        choice: Mapping[str, Value],
    ) -> None:
        self.context = context
        self.frame = frame
        self.references = frame.plan.references
        self.today = context.today
        self.now = context.now
        self.current = current
        self.choice = choice

    def current_value(self) -> Value:
        return self.current

    def choice_property(self, name: str) -> Value:
        return self.choice.get(name)

    def value_of(self, name: str) -> Value | NodeSet:
        reference = self.references[name]
        if reference is None:
            return None
        if isinstance(reference, OneValue):
            frame = self.frame.chain[reference.depth]
            # Most references are to values already known: read them here, as `value` would.
            values = frame.values
            target = reference.field
            if target.name in values:
                return values[target.name]
            return self.context.value(frame, target)
        return self.context.many(self.frame, reference)
