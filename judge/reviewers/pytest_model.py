"""A model of a Python test module built with ``ast``: its tests, their assertions, skips and
tolerances — what the test-tampering reviewer compares between base and head.

Assertion strength (ordered): ``exact`` (``==``, ``is``, ``assertEqual``, ``pytest.raises``, an
``assert_*`` helper) > ``relational`` (``<``, ``>=``, ``!=``, ``in``, ``isinstance``) > ``weak``
(truthiness, ``is not None``) > ``vacuous`` (a constant, or swallowed by ``except``).
Helpers defined in the same module are followed, so moving assertions into a helper keeps them.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "EXACT",
    "RELATIONAL",
    "VACUOUS",
    "WEAK",
    "AssertionInfo",
    "TestInfo",
    "TestModule",
    "Tolerance",
    "default_tolerance",
    "parse_test_module",
]

EXACT, RELATIONAL, WEAK, VACUOUS = 3, 2, 1, 0
STRENGTH_NAMES = {EXACT: "exact", RELATIONAL: "relational", WEAK: "weak", VACUOUS: "vacuous"}

_EXACT_UNITTEST = {
    "assertEqual", "assertEquals", "assertIs", "assertIsNone", "assertAlmostEqual",
    "assertAlmostEquals", "assertCountEqual", "assertDictEqual", "assertListEqual",
    "assertSetEqual", "assertTupleEqual", "assertSequenceEqual", "assertMultiLineEqual",
    "assertRaises", "assertRaisesRegex", "assertWarns", "assertWarnsRegex", "assertRegex",
    "assertLogs",
}  # fmt: skip
_RELATIONAL_UNITTEST = {
    "assertNotEqual", "assertNotEquals", "assertGreater", "assertGreaterEqual", "assertLess",
    "assertLessEqual", "assertIn", "assertNotIn", "assertIsInstance", "assertNotIsInstance",
    "assertIsNot", "assertNotRegex", "assertNotAlmostEqual",
}  # fmt: skip
_WEAK_UNITTEST = {"assertTrue", "assertFalse", "assertIsNotNone", "assert_", "failUnless"}
_WEAK_MOCK = {"assert_called", "assert_called_once", "assert_not_called"}
_EXACT_CALLS = {"raises", "warns", "deprecated_call", "isclose", "allclose", "array_equal",
                "approx"}  # fmt: skip
_HELPER_PREFIXES = ("assert", "check_", "verify_", "expect_", "expect", "_assert", "_check")
_SKIP_DECORATOR = re.compile(r"(?:^|\.)(?:skip|skipif|skipIf|skipUnless|xfail|expectedFailure)\b")
_SKIP_CALL = re.compile(r"(?:^|\.)(?:skip|xfail|skipTest)$")
_BROAD = {"AssertionError", "Exception", "BaseException"}

# Tolerance keywords and their defaults per function (``None`` = that bound is absent).
_TOLERANCE_DEFAULTS: dict[str, dict[str, float]] = {
    "approx": {"rel": 1e-6, "abs": 1e-12},
    "isclose": {"rel_tol": 1e-9, "abs_tol": 0.0, "rtol": 1e-5, "atol": 1e-8},
    "allclose": {"rtol": 1e-5, "atol": 1e-8},
    "assert_allclose": {"rtol": 1e-7, "atol": 0.0},
    "assert_close": {"rtol": 1.3e-6, "atol": 1e-5},
    "assert_almost_equal": {"decimal": 7.0},
    "assert_array_almost_equal": {"decimal": 6.0},
    "assertAlmostEqual": {"places": 7.0, "delta": 0.0},
    "assertAlmostEquals": {"places": 7.0, "delta": 0.0},
}
# Keywords where a larger value means a TIGHTER check.
_INVERSE = {"places", "decimal"}
_POSITIONAL: dict[str, tuple[str, ...]] = {
    "approx": ("", "rel", "abs"),
    "assertAlmostEqual": ("", "", "places"),
    "assertAlmostEquals": ("", "", "places"),
    "assert_allclose": ("", "", "rtol", "atol"),
    "allclose": ("", "", "rtol", "atol"),
    "isclose": ("", ""),
    "assert_almost_equal": ("", "", "decimal"),
    "assert_array_almost_equal": ("", "", "decimal"),
}


@dataclass(frozen=True)
class AssertionInfo:
    """One assertion: its strength, source text, line and the functions it calls."""

    strength: int
    text: str
    line: int
    subjects: frozenset[str]


@dataclass(frozen=True)
class Tolerance:
    """A tolerance argument: ``function``, ``keyword``, its value (``None`` = not a literal)."""

    function: str
    keyword: str
    value: float | None
    explicit: bool
    line: int

    def looser_than(self, other: Tolerance) -> bool:
        """Whether this tolerance accepts more than ``other`` (same function and keyword)."""
        if self.value is None or other.value is None:
            return False
        if self.keyword in _INVERSE:
            return self.value < other.value - 1e-12
        return self.value > other.value * (1 + 1e-9) + 1e-300


@dataclass
class TestInfo:
    """One test function (``Class.test_name`` for methods)."""

    name: str
    line: int
    body_hash: str
    assertions: list[AssertionInfo] = field(default_factory=list)
    tolerances: list[Tolerance] = field(default_factory=list)
    skips: list[tuple[str, int]] = field(default_factory=list)
    cases: int = 1

    @property
    def strengths(self) -> list[int]:
        """Assertion strengths, strongest first."""
        return sorted((a.strength for a in self.assertions), reverse=True)

    @property
    def capacity(self) -> int:
        """Checks made: non-weak assertions times parametrized cases."""
        return sum(1 for a in self.assertions if a.strength >= RELATIONAL) * self.cases

    @property
    def subjects(self) -> frozenset[str]:
        """Functions called inside the assertions."""
        result: frozenset[str] = frozenset()
        for assertion in self.assertions:
            result |= assertion.subjects
        return result


@dataclass
class TestModule:
    """The tests of one module plus its module-level skips."""

    tests: dict[str, TestInfo]
    module_skips: list[tuple[str, int]]


def _name_of(node: ast.AST) -> str:
    """Dotted name of a call target (``pytest.mark.skip``), ``""`` when not a plain name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _name_of(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    return ""


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _number(node: ast.AST) -> float | None:
    """The value of a numeric literal expression (``1e-3``, ``-2``, ``10 ** -3``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        if isinstance(node.value, bool):
            return None
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand)
        if value is None:
            return None
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _number(node.left), _number(node.right)
        if left is None or right is None:
            return None
        try:
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                return left / right
            if isinstance(node.op, ast.Pow) and abs(right) < 400:
                return float(left**right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
        except (ZeroDivisionError, OverflowError):
            return None
    return None


def _subjects(node: ast.AST) -> frozenset[str]:
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            name = _last(_name_of(child.func))
            if name and name not in ("approx", "isinstance", "len", "bool", "str", "int", "float"):
                names.add(name)
    return frozenset(names)


def _compare_strength(node: ast.Compare) -> int:
    strengths = []
    for op, right in zip(node.ops, node.comparators, strict=True):
        if isinstance(op, ast.IsNot) and isinstance(right, ast.Constant) and right.value is None:
            strengths.append(WEAK)
        elif (
            isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value is None
        ) or isinstance(op, (ast.Eq, ast.Is)):
            strengths.append(EXACT)
        else:
            strengths.append(RELATIONAL)
    return max(strengths) if strengths else WEAK


def _expression_strength(node: ast.expr) -> int:
    """Strength of ``assert <node>``."""
    if isinstance(node, ast.Constant):
        return VACUOUS if node.value else EXACT  # ``assert False`` always fails
    if isinstance(node, ast.Compare):
        return _compare_strength(node)
    if isinstance(node, ast.BoolOp):
        parts = [_expression_strength(v) for v in node.values]
        return max(parts) if isinstance(node.op, ast.And) else min(min(parts), WEAK)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = node.operand
        if isinstance(inner, ast.Compare):
            return RELATIONAL
        return WEAK
    if isinstance(node, ast.Call):
        name = _last(_name_of(node.func))
        if name in _EXACT_CALLS or name.startswith(("assert", "equal", "array_equal")):
            return EXACT
        if name == "isinstance":
            return RELATIONAL
        if name in ("all", "any") and node.args:
            return max(RELATIONAL if _has_compare(node.args[0]) else WEAK, WEAK)
        return WEAK
    return WEAK


def _checks_in(test: ast.expr) -> int:
    """How many values one ``assert`` checks: ``(a, b) == (1, 2)`` checks two, ``a and b`` both."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return sum(_checks_in(value) for value in test.values)
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.left, (ast.Tuple, ast.List))
        and isinstance(test.comparators[0], (ast.Tuple, ast.List))
        and len(test.left.elts) == len(test.comparators[0].elts)
    ):
        return max(len(test.left.elts), 1)
    return 1


def _has_compare(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Compare) for child in ast.walk(node))


class _Collector:
    """Walks one function body collecting assertions, tolerances and skip calls."""

    def __init__(
        self,
        source: str,
        helpers: dict[str, ast.FunctionDef | ast.AsyncFunctionDef],
        imported_helpers: set[str],
    ):
        self.source = source
        self.helpers = helpers
        self.imported_helpers = imported_helpers

    def collect(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, info: TestInfo, depth: int = 0,
        seen: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        for statement in node.body:
            self._statement(statement, info, depth, seen | {node.name}, swallowed=False)

    def _text(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        return " ".join(text.split())[:200]

    def _statement(
        self, node: ast.stmt, info: TestInfo, depth: int, seen: frozenset[str], swallowed: bool
    ) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return  # nested definitions run only when called
        if isinstance(node, ast.Assert):
            strength = VACUOUS if swallowed else _expression_strength(node.test)
            for _ in range(_checks_in(node.test)):
                info.assertions.append(
                    AssertionInfo(strength, self._text(node), node.lineno, _subjects(node.test))
                )
            self._expressions(node.test, info, depth, seen, swallowed, record_calls=False)
            return
        if isinstance(node, ast.Try) or (hasattr(ast, "TryStar") and isinstance(node, ast.TryStar)):
            swallows = any(self._swallows(handler) for handler in node.handlers)  # type: ignore[attr-defined]
            for child in node.body:  # type: ignore[attr-defined]
                self._statement(child, info, depth, seen, swallowed or swallows)
            for block in (node.orelse, node.finalbody):  # type: ignore[attr-defined]
                for child in block:
                    self._statement(child, info, depth, seen, swallowed)
            for handler in node.handlers:  # type: ignore[attr-defined]
                for child in handler.body:
                    self._statement(child, info, depth, seen, swallowed)
            return
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self._expressions(
                    item.context_expr, info, depth, seen, swallowed, record_calls=True
                )
            for child in node.body:
                self._statement(child, info, depth, seen, swallowed)
            return
        for child_field in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, child_field, None) or ():
                if isinstance(child, ast.stmt):
                    self._statement(child, info, depth, seen, swallowed)
                elif hasattr(child, "body"):  # except handlers, match cases
                    for grandchild in child.body:
                        self._statement(grandchild, info, depth, seen, swallowed)
        for value in ast.iter_child_nodes(node):
            if isinstance(value, ast.expr):
                self._expressions(value, info, depth, seen, swallowed, record_calls=True)

    @staticmethod
    def _swallows(handler: ast.ExceptHandler) -> bool:
        caught = handler.type
        names = set()
        if caught is None:
            names.add("BaseException")
        elif isinstance(caught, ast.Tuple):
            names.update(_last(_name_of(e)) for e in caught.elts)
        else:
            names.add(_last(_name_of(caught)))
        if not names & _BROAD:
            return False
        return not any(isinstance(child, ast.Raise) for child in ast.walk(handler))

    def _expressions(
        self, node: ast.expr, info: TestInfo, depth: int, seen: frozenset[str], swallowed: bool,
        record_calls: bool,
    ) -> None:  # fmt: skip
        for child in ast.walk(node):
            if not isinstance(child, ast.Call):
                continue
            dotted = _name_of(child.func)
            name = _last(dotted)
            self._tolerance(child, name, info)
            if not record_calls:
                continue
            if _SKIP_CALL.search(dotted) and (
                dotted.startswith(("pytest.", "self.")) or name == "skipTest"
            ):
                info.skips.append((self._text(child), child.lineno))
                continue
            strength = self._call_strength(child, dotted, name)
            if strength is not None:
                if swallowed:
                    strength = VACUOUS
                info.assertions.append(
                    AssertionInfo(strength, self._text(child), child.lineno, _subjects(child))
                )
                continue
            helper = self._helper(child, dotted)
            if helper is not None and depth < 3 and helper.name not in seen:
                before = len(info.assertions)
                self.collect(helper, info, depth + 1, seen)
                if swallowed:
                    for i in range(before, len(info.assertions)):
                        a = info.assertions[i]
                        info.assertions[i] = AssertionInfo(VACUOUS, a.text, a.line, a.subjects)

    def _call_strength(self, call: ast.Call, dotted: str, name: str) -> int | None:
        if name in _EXACT_UNITTEST:
            return EXACT
        if name in _RELATIONAL_UNITTEST:
            return RELATIONAL
        if name in _WEAK_UNITTEST:
            if call.args and isinstance(call.args[0], ast.Compare):
                return _compare_strength(call.args[0])
            return WEAK
        if name in _WEAK_MOCK:
            return WEAK
        if name in ("raises", "warns", "deprecated_call") and dotted.startswith("pytest"):
            return EXACT
        if dotted in self.helpers or (dotted.startswith("self.") and name in self.helpers):
            return None  # followed as a helper
        if name.startswith(_HELPER_PREFIXES) or name in self.imported_helpers:
            return EXACT
        return None

    def _helper(self, call: ast.Call, dotted: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        if dotted in self.helpers:
            return self.helpers[dotted]
        if dotted.startswith(("self.", "cls.")):
            return self.helpers.get(_last(dotted))
        return None

    def _tolerance(self, call: ast.Call, name: str, info: TestInfo) -> None:
        defaults = _TOLERANCE_DEFAULTS.get(name)
        if defaults is None:
            return
        given: dict[str, ast.expr] = {}
        for index, arg in enumerate(call.args):
            positional = _POSITIONAL.get(name, ())
            if index < len(positional) and positional[index]:
                given[positional[index]] = arg
        for keyword in call.keywords:
            if keyword.arg:
                given[keyword.arg] = keyword.value
        for key, default in defaults.items():
            if key in given:
                info.tolerances.append(Tolerance(name, key, _number(given[key]), True, call.lineno))
            else:
                info.tolerances.append(Tolerance(name, key, default, False, call.lineno))


def default_tolerance(tolerance: Tolerance) -> Tolerance:
    """The same tolerance with the function's default value."""
    value = _TOLERANCE_DEFAULTS.get(tolerance.function, {}).get(tolerance.keyword)
    return Tolerance(tolerance.function, tolerance.keyword, value, False, tolerance.line)


def _decorator_skips(decorators: list[ast.expr], collector: _Collector) -> list[tuple[str, int]]:
    return [
        (collector._text(d), d.lineno) for d in decorators if _SKIP_DECORATOR.search(_name_of(d))
    ]


def _parametrize(decorators: list[ast.expr], collector: _Collector, info: TestInfo) -> int:
    cases = 1
    for decorator in decorators:
        if not isinstance(decorator, ast.Call) or _last(_name_of(decorator.func)) != "parametrize":
            continue
        values: ast.expr | None = decorator.args[1] if len(decorator.args) > 1 else None
        for keyword in decorator.keywords:
            if keyword.arg == "argvalues":
                values = keyword.value
        if isinstance(values, (ast.List, ast.Tuple, ast.Set)):
            cases *= max(len(values.elts), 1)
            for element in values.elts:
                if isinstance(element, ast.Call) and _last(_name_of(element.func)) == "param":
                    for keyword in element.keywords:
                        if keyword.arg == "marks" and any(
                            _SKIP_DECORATOR.search(_name_of(n)) for n in ast.walk(keyword.value)
                            if isinstance(n, (ast.Attribute, ast.Call))
                        ):  # fmt: skip
                            info.skips.append((collector._text(element), element.lineno))
    return cases


def _body_hash(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    shape = ast.dump(ast.Module(body=node.body, type_ignores=[]))
    decorators = "|".join(ast.dump(d) for d in node.decorator_list)
    return hashlib.sha256(f"{ast.dump(node.args)}\n{decorators}\n{shape}".encode()).hexdigest()


def _is_test_class(node: ast.ClassDef) -> bool:
    if node.name.startswith("Test"):
        return True
    return any(_last(_name_of(base)).endswith("TestCase") for base in node.bases)


def _imported_helpers(tree: ast.Module) -> set[str]:
    """Names imported from test-support modules (``tests.helpers``, ``conftest``…)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and re.search(r"test|helper|assert|check|conftest|fixture", node.module, re.I)
        ):
            found.update(alias.asname or alias.name for alias in node.names)
    return found


def _module_skips(tree: ast.Module, collector: _Collector) -> list[tuple[str, int]]:
    skips = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
                value = node.value
                if value is not None and any(
                    _SKIP_DECORATOR.search(_name_of(n))
                    for n in ast.walk(value)
                    if isinstance(n, (ast.Attribute, ast.Call))
                ):
                    skips.append((collector._text(node), node.lineno))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            dotted = _name_of(node.value.func)
            if dotted in ("pytest.skip", "pytest.xfail"):
                skips.append((collector._text(node), node.lineno))
        elif isinstance(node, ast.If):
            for child in ast.walk(node):
                if isinstance(child, ast.Call) and _name_of(child.func) in ("pytest.skip",):
                    skips.append((collector._text(child), child.lineno))
    return skips


def _functions(
    tree: ast.Module,
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, list[ast.expr], bool]]:
    """``(qualified name, node, inherited decorators, is_test)`` of functions and methods."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node, [], node.name.startswith("test")
        elif isinstance(node, ast.ClassDef):
            test_class = _is_test_class(node)
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield (
                        f"{node.name}.{child.name}",
                        child,
                        list(node.decorator_list),
                        test_class and child.name.startswith("test"),
                    )


def parse_test_module(source: str) -> TestModule | None:
    """The test model of ``source`` (``None`` when it is not valid Python)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    helpers: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    entries = list(_functions(tree))
    for qualified, node, _inherited, is_test in entries:
        if not is_test:
            helpers.setdefault(node.name, node)
            helpers.setdefault(qualified, node)
    collector = _Collector(source, helpers, _imported_helpers(tree))
    tests: dict[str, TestInfo] = {}
    for qualified, node, inherited, is_test in entries:
        if not is_test:
            continue
        info = TestInfo(name=qualified, line=node.lineno, body_hash=_body_hash(node))
        decorators = [*inherited, *node.decorator_list]
        info.skips.extend(_decorator_skips(decorators, collector))
        info.cases = _parametrize(decorators, collector, info)
        collector.collect(node, info)
        tests[qualified] = info
    return TestModule(tests=tests, module_skips=_module_skips(tree, collector))
