"""Test tampering: the ways an agent can make CI green without making the code right.

Python test files are compared at base and head with ``ast`` (:mod:`.pytest_model`): tests or
test files removed, assertions deleted or weakened (``assert x == y`` → ``assert x``), tolerances
loosened, ``skip``/``xfail`` added, parametrized cases dropped. Honest refactors are recognised:
a renamed or moved test (same body, or same name in another changed file), assertions moved into
a helper, several tests folded into one parametrized test that checks at least as much.

Other files are checked with diff patterns: coverage thresholds lowered, CI steps disabled
(``continue-on-error: true``, ``if: false``, ``|| true``), test commands removed from CI,
tests deselected, and skips, focused tests and removed tests in JavaScript, Go, Java and Ruby.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..change import Change, ChangedFile
from ..findings import Finding, Severity
from .base import Options, check_known, is_test_path, path_matcher, suffix
from .pytest_model import TestInfo, TestModule, Tolerance, default_tolerance, parse_test_module

__all__ = ["TestTamperingReviewer"]

_CI_FILES = path_matcher(
    [
        ".github/workflows/*.yml",
        ".github/workflows/*.yaml",
        ".github/actions/**",
        ".gitlab-ci.yml",
        ".gitlab/**/*.yml",
        ".circleci/**",
        "azure-pipelines.yml",
        "Jenkinsfile",
        "bitbucket-pipelines.yml",
        ".buildkite/**",
        ".ci/**",
    ]
)
_TEST_CONFIG_FILES = path_matcher(
    [
        "pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini", ".coveragerc", "noxfile.py",
        "Makefile", "package.json", "jest.config.*", "vitest.config.*", "karma.conf.*",
        "codecov.yml", ".codecov.yml", "scripts/**",
    ]
)  # fmt: skip
_COVERAGE = re.compile(
    r"(?i)(?:fail[_-]under|cov-fail-under|minimum[_-]coverage|coverage[_-]?threshold|"
    r"min[_-]?coverage|target)\b[\"']?\s*(?:[:=]|\s)\s*[\"']?(?P<value>\d+(?:\.\d+)?)%?"
)
_COVERAGE_CONTEXT = re.compile(r"(?i)cov|fail[_-]under|codecov|threshold")
# (regex on an added line, what it does, severity): a bare ``exit 0`` can be honest.
_DISABLED_STEP: tuple[tuple[re.Pattern[str], str, Severity], ...] = (
    (re.compile(r"^\s*-?\s*continue-on-error\s*:\s*true\b"), "continue-on-error: true", "error"),
    (re.compile(r"^\s*-?\s*if\s*:\s*(?:false|\$\{\{\s*false\s*\}\}|['\"]false['\"])\s*$"),
     "if: false", "error"),
    (re.compile(r"\|\|\s*(?:true|:|exit\s+0)\b"), "|| true", "error"),
    (re.compile(r"^\s*allow_failure\s*:\s*true\b"), "allow_failure: true", "error"),
    (re.compile(r"(?:^|[;&|]\s*)exit\s+0\s*$"), "exit 0", "warning"),
)  # fmt: skip
_TEST_COMMAND = re.compile(
    r"\b(?:pytest|py\.test|tox|nox|unittest|(?:npm|yarn|pnpm|bun)\s+(?:run\s+)?test\b|go\s+test"
    r"|cargo\s+(?:test|nextest)|mvn\b.*\b(?:test|verify)\b|gradlew?\b.*\b(?:test|check)\b"
    r"|make\s+(?:test|check)\b|rspec|jest|vitest|phpunit|ctest|scripts/test)"
)
_DESELECT = re.compile(
    r"--deselect\b|--ignore(?:-glob)?[= ]\S*test|(?:^|\s)-k\s+[\"']?not\b|testPathIgnorePatterns"
    r"|--exclude[= ]\S*test|--skip\b|-run\s+['\"]?\^?\(?\?!"
)
_COMMENT = re.compile(r"^\s*(?:#|//)")

# (suffix pattern, rule, severity, regex on added lines, what)
_ADDED_PATTERNS: tuple[tuple[re.Pattern[str], str, Severity, re.Pattern[str], str], ...] = (
    (re.compile(r"\.[cm]?[jt]sx?$"), "skip-added", "error",
     re.compile(r"\b(?:it|test|describe|context|suite)\.(?:skip|todo)\s*\(|\bx(?:it|test|describe)\s*\("),
     "a skipped test"),
    (re.compile(r"\.[cm]?[jt]sx?$"), "focused-test", "error",
     re.compile(r"\b(?:it|test|describe|context|suite)\.only\s*\(|\bf(?:it|describe)\s*\("),
     "a focused test (.only) that silently disables the others"),
    (re.compile(r"_test\.go$"), "skip-added", "error", re.compile(r"\bt\.Skip(?:f|Now)?\s*\("),
     "t.Skip()"),
    (re.compile(r"\.(?:java|kt)$"), "skip-added", "error", re.compile(r"@(?:Disabled|Ignore)\b"),
     "@Disabled/@Ignore"),
    (re.compile(r"_spec\.rb$|_test\.rb$"), "skip-added", "error",
     re.compile(r"^\s*(?:skip|pending|xit|xdescribe)\b"), "skip/pending"),
)  # fmt: skip
_REMOVED_TESTS = (
    (re.compile(r"\.[cm]?[jt]sx?$"), re.compile(r"^\s*(?:it|test)\s*\(\s*([\"'`])(?P<name>.+?)\1")),
    (re.compile(r"_test\.go$"), re.compile(r"^func\s+(?P<name>Test\w+)\s*\(")),
    (re.compile(r"\.(?:java|kt)$"),
     re.compile(r"^\s*(?:public\s+)?(?:void|fun)\s+(?P<name>test\w*)\s*\(")),
    (re.compile(r"_spec\.rb$"), re.compile(r"^\s*it\s+([\"'])(?P<name>.+?)\1")),
)  # fmt: skip
_ASSERTION_LINE = re.compile(
    r"\b(?:expect|assert\w*|should|require\.\w+|t\.(?:Error|Fatal)f?|Assert\.\w+)\s*[\(.]"
)


@dataclass
class _PyFile:
    changed: ChangedFile
    base: TestModule | None
    head: TestModule | None


def _is_python_test(path: str | None) -> bool:
    if not path or suffix(path) != ".py":
        return False
    name = path.rpartition("/")[2]
    return is_test_path(path) and name != "conftest.py" and not name.startswith("__")


class TestTamperingReviewer:
    """Detects weakened, deleted and skipped tests, lowered coverage and disabled CI steps."""

    __test__ = False  # not a pytest test class despite its name
    name = "test-tampering"

    def __init__(self, options: Options | None = None):
        check_known(options or {}, self.name, ())

    async def review(self, change: Change) -> list[Finding]:
        findings: list[Finding] = []
        python_files = []
        for changed in change:
            if _is_python_test(changed.path) or _is_python_test(changed.base_path):
                base_text = await change.base_text(changed) if changed.base_path else None
                head_text = await change.head_text(changed)
                base = parse_test_module(base_text) if base_text is not None else None
                head = parse_test_module(head_text) if head_text is not None else None
                if (base_text is not None and base is None) or (
                    head_text is not None and head is None
                ):
                    continue  # not valid Python: the ruff reviewer and CI report it
                python_files.append(_PyFile(changed, base, head))
            findings.extend(self._diff_patterns(changed))
        findings.extend(self._python(python_files))
        return findings

    # -- Python, with ast -------------------------------------------------------------------

    def _python(self, files: list[_PyFile]) -> list[Finding]:
        findings: list[Finding] = []
        head_by_hash: dict[str, tuple[str, TestInfo]] = {}
        head_by_name: dict[str, list[tuple[str, TestInfo]]] = {}
        for file in files:
            if file.head is None:
                continue
            for test in file.head.tests.values():
                head_by_hash.setdefault(test.body_hash, (file.changed.path, test))
                head_by_name.setdefault(_short(test.name), []).append((file.changed.path, test))
        matched_head: set[tuple[str, str]] = set()
        unexplained: list[tuple[_PyFile, TestInfo]] = []
        pairs: list[tuple[_PyFile, TestInfo, str, TestInfo, bool]] = []

        for file in files:
            if file.base is None:
                continue
            head_tests = file.head.tests if file.head is not None else {}
            for name, base_test in file.base.tests.items():
                if name in head_tests:
                    pairs.append((file, base_test, file.changed.path, head_tests[name], True))
                    matched_head.add((file.changed.path, name))
                    continue
                if base_test.body_hash in head_by_hash:
                    path, moved = head_by_hash[base_test.body_hash]
                    matched_head.add((path, moved.name))
                    continue  # renamed or moved, unchanged
                others = [
                    (path, t) for path, t in head_by_name.get(_short(name), [])
                    if (path, t.name) not in matched_head
                ]  # fmt: skip
                if others:
                    path, moved = others[0]
                    pairs.append((file, base_test, path, moved, False))
                    matched_head.add((path, moved.name))
                    continue
                unexplained.append((file, base_test))

        for file, base_test, head_path, head_test, same_file in pairs:
            findings.extend(self._compare(file, base_test, head_path, head_test, same_file))

        new_tests = [
            test
            for file in files
            if file.head is not None
            for test in file.head.tests.values()
            if (file.changed.path, test.name) not in matched_head
        ]
        # Checks added elsewhere in the change can absorb removed tests (parametrization).
        extra_capacity = sum(test.capacity for test in new_tests) + sum(
            max(0, head.capacity - base.capacity) for _f, base, _p, head, _s in pairs
        )
        extra_subjects: frozenset[str] = frozenset()
        for test in new_tests:
            extra_subjects |= test.subjects
        for _f, base, _p, head, _s in pairs:
            if head.capacity > base.capacity:
                extra_subjects |= head.subjects
        findings.extend(self._removed(unexplained, extra_capacity, extra_subjects))

        for file in files:
            if file.head is None:
                continue
            base_module_skips = {text for text, _ in file.base.module_skips} if file.base else set()
            for text, line in file.head.module_skips:
                if text not in base_module_skips:
                    findings.append(self._finding(
                        "skip-added", "error", file.changed.path, line,
                        "A module-level skip was added: every test in this file is skipped.", text,
                    ))  # fmt: skip
            for test in file.head.tests.values():
                if (file.changed.path, test.name) in matched_head or file.base is None:
                    continue
                # A new test that is skipped from the start.
                for text, line in test.skips:
                    findings.append(self._finding(
                        "skip-added", "warning", file.changed.path, line,
                        f"New test {test.name} is skipped or expected to fail.", text,
                    ))  # fmt: skip
        return findings

    def _compare(
        self, file: _PyFile, base: TestInfo, head_path: str, head: TestInfo, same_file: bool
    ) -> list[Finding]:
        findings: list[Finding] = []
        where = head.name if same_file else f"{head.name} (moved to {head_path})"
        base_strengths, head_strengths = base.strengths, head.strengths
        if len(head_strengths) < len(base_strengths) and head.capacity < base.capacity:
            lost = len(base_strengths) - len(head_strengths)
            missing = _missing(base, head)
            findings.append(self._finding(
                "assertion-removed", "error", head_path, head.line,
                f"{lost} assertion(s) removed from {where}"
                + (f", e.g. `{missing}`." if missing else "."),
                f"{head.name} {missing}",
            ))  # fmt: skip
        elif (
            any(h < b for b, h in zip(base_strengths, head_strengths, strict=False))
            and head.capacity <= base.capacity
        ):
            weakened = _weakened(base, head)
            findings.append(self._finding(
                "assertion-weakened", "error", head_path, weakened[1] if weakened else head.line,
                f"An assertion in {where} was weakened"
                + (f": `{weakened[0]}` is now `{weakened[2]}`." if weakened else "."),
                f"{head.name} {weakened[2] if weakened else ''}",
            ))  # fmt: skip
        base_skips = {text for text, _ in base.skips}
        for text, line in head.skips:
            if text not in base_skips and len(head.skips) > len(base.skips):
                findings.append(self._finding(
                    "skip-added", "error", head_path, line,
                    f"{where} is now skipped or expected to fail: `{text}`.", f"{head.name} {text}",
                ))  # fmt: skip
                break
        if head.cases < base.cases:
            findings.append(self._finding(
                "test-cases-removed", "warning", head_path, head.line,
                f"{where} now runs {head.cases} parametrized case(s) instead of {base.cases}.",
                f"{head.name} cases",
            ))  # fmt: skip
        for loosened in _loosened(base, head):
            findings.append(self._finding(
                "tolerance-loosened", "error", head_path, loosened.line,
                f"A tolerance in {where} was loosened: {loosened.function}({loosened.keyword}="
                f"{loosened.value:g}).",
                f"{head.name} {loosened.function} {loosened.keyword} {loosened.value}",
            ))  # fmt: skip
        return findings

    def _removed(
        self,
        unexplained: list[tuple[_PyFile, TestInfo]],
        extra_capacity: int,
        extra_subjects: frozenset[str],
    ) -> list[Finding]:
        if not unexplained:
            return []
        # Tests folded into parametrized ones: accepted when the checks added elsewhere in the
        # change call what the removed tests called and check at least as many cases.
        removed_capacity = sum(test.capacity for _file, test in unexplained)
        if (
            extra_capacity > 0
            and extra_capacity >= removed_capacity
            and all(test.subjects <= extra_subjects for _file, test in unexplained)
        ):
            return []
        findings = []
        by_file: dict[str, list[TestInfo]] = {}
        files: dict[str, _PyFile] = {}
        for file, test in unexplained:
            key = file.changed.base_path or file.changed.path
            by_file.setdefault(key, []).append(test)
            files[key] = file
        for key, tests in by_file.items():
            file = files[key]
            names = ", ".join(t.name for t in tests[:5]) + (" …" if len(tests) > 5 else "")
            if file.changed.status == "removed" or file.head is None:
                findings.append(self._finding(
                    "test-file-removed", "error", key, None,
                    f"Test file {key} was removed with {len(tests)} test(s): {names}.", key,
                ))  # fmt: skip
                continue
            for test in tests:
                findings.append(self._finding(
                    "test-removed", "error", file.changed.path, None,
                    f"Test {test.name} was removed from {file.changed.path}.", test.name,
                ))  # fmt: skip
        return findings

    # -- Everything else, with diff patterns ---------------------------------------------------

    def _diff_patterns(self, changed: ChangedFile) -> list[Finding]:
        if changed.binary:
            return []
        findings: list[Finding] = []
        path = changed.path
        ci_file = _CI_FILES.match_file(path)
        config_file = ci_file or _TEST_CONFIG_FILES.match_file(path)
        findings.extend(self._coverage(changed))
        if ci_file:
            for number, line in changed.added_lines.items():
                if _COMMENT.match(line):
                    continue
                for regex, what, severity in _DISABLED_STEP:
                    if regex.search(line) and not any(
                        regex.search(old) for old in changed.removed_lines.values()
                    ):
                        findings.append(self._finding(
                            "ci-step-disabled", severity, path, number,
                            f"A CI step was made unable to fail (`{what}`).", line,
                        ))  # fmt: skip
                        break
            kept = {
                _normal(line) for line in changed.added_lines.values() if not _COMMENT.match(line)
            }
            kept_commands = {m.group(0) for line in kept for m in _TEST_COMMAND.finditer(line)}
            for number, line in changed.removed_lines.items():
                if _COMMENT.match(line):
                    continue
                for match in _TEST_COMMAND.finditer(line):
                    if _normal(line) not in kept and match.group(0) not in kept_commands:
                        findings.append(self._finding(
                            "ci-step-removed", "warning", path, None,
                            f"A test command was removed from CI (`{match.group(0)}`, "
                            f"base line {number}).", line,
                        ))  # fmt: skip
                        break
        if config_file:
            for number, line in changed.added_lines.items():
                if _DESELECT.search(line) and not _COMMENT.match(line):
                    findings.append(self._finding(
                        "tests-deselected", "warning", path, number,
                        "Tests are deselected or ignored by the test command.", line,
                    ))  # fmt: skip
        if not _is_python_test(path) and is_test_path(path):
            findings.extend(self._other_language_tests(changed))
        return findings

    def _coverage(self, changed: ChangedFile) -> list[Finding]:
        in_coverage_file = any(word in changed.path.lower() for word in ("coverage", "codecov"))

        def values(lines: Iterable[str]) -> list[float]:
            found: list[float] = []
            for line in lines:
                lowered = line.lower()
                if not in_coverage_file and not (
                    "cov" in lowered or "under" in lowered or "threshold" in lowered
                ):
                    continue  # cheap first look before the regexes
                if _COMMENT.match(line) and "=" not in line:
                    continue
                if not (in_coverage_file or _COVERAGE_CONTEXT.search(line)):
                    continue
                found.extend(float(m.group("value")) for m in _COVERAGE.finditer(line))
            return found

        before = values(changed.removed_lines.values())
        after = values(changed.added_lines.values())
        if not before:
            return []
        line = next((n for n, text in changed.added_lines.items() if _COVERAGE.search(text)), None)
        if after and min(after) < max(before):
            return [self._finding(
                "coverage-threshold-lowered", "error", changed.path, line,
                f"The coverage threshold was lowered from {max(before):g} to {min(after):g}.",
                f"{max(before)}->{min(after)}",
            )]  # fmt: skip
        if not after and changed.status != "removed":
            return [self._finding(
                "coverage-threshold-lowered", "warning", changed.path, None,
                f"The coverage threshold ({max(before):g}) was removed.", f"{max(before)}->none",
            )]  # fmt: skip
        return []

    def _other_language_tests(self, changed: ChangedFile) -> list[Finding]:
        findings: list[Finding] = []
        path = changed.path
        for suffix_pattern, rule, severity, regex, what in _ADDED_PATTERNS:
            if not suffix_pattern.search(path):
                continue
            for number, line in changed.added_lines.items():
                if regex.search(line) and not _COMMENT.match(line):
                    findings.append(self._finding(
                        rule, severity, path, number, f"{what.capitalize()} was added.", line,
                    ))  # fmt: skip
        for suffix_pattern, regex in _REMOVED_TESTS:
            if not suffix_pattern.search(path):
                continue
            added = [m.group("name") for line in changed.added_lines.values()
                     if (m := regex.search(line))]  # fmt: skip
            removed = [(m.group("name"), line) for line in changed.removed_lines.values()
                       if (m := regex.search(line))]  # fmt: skip
            gone = [(name, line) for name, line in removed if name not in added]
            # As many tests declared as removed: renamed in place, not removed.
            if len(removed) > len(added):
                for name, line in gone[: len(removed) - len(added)]:
                    findings.append(self._finding(
                        "test-removed", "error", path, None, f"Test `{name}` was removed.", line,
                    ))  # fmt: skip
        removed_asserts = sum(1 for line in changed.removed_lines.values()
                              if _ASSERTION_LINE.search(line))  # fmt: skip
        added_asserts = sum(1 for line in changed.added_lines.values()
                            if _ASSERTION_LINE.search(line))  # fmt: skip
        if removed_asserts > added_asserts:
            findings.append(self._finding(
                "assertion-removed", "warning", path, None,
                f"{removed_asserts - added_asserts} assertion line(s) removed from {path}.",
                f"{path} assertions",
            ))  # fmt: skip
        return findings

    def _finding(
        self, rule: str, severity: Severity, path: str, line: int | None, message: str, snippet: str
    ) -> Finding:
        return Finding.create(
            reviewer=self.name,
            rule=rule,
            severity=severity,
            path=path,
            start_line=line,
            message=message,
            snippet=snippet,
            suggestion="Fix the code under test instead of weakening the test.",
        )


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _normal(line: str) -> str:
    return " ".join(line.split())


def _missing(base: TestInfo, head: TestInfo) -> str:
    head_texts = {a.text for a in head.assertions}
    for assertion in sorted(base.assertions, key=lambda a: -a.strength):
        if assertion.text not in head_texts:
            return assertion.text
    return ""


def _weakened(base: TestInfo, head: TestInfo) -> tuple[str, int, str] | None:
    """``(base assertion, head line, head assertion)`` of one weakened assertion."""
    head_texts = {a.text for a in head.assertions}
    base_texts = {a.text for a in base.assertions}
    lost = [a for a in base.assertions if a.text not in head_texts]
    gained = [a for a in head.assertions if a.text not in base_texts]
    if not lost or not gained:
        return None
    strongest_lost = max(lost, key=lambda a: a.strength)
    weakest_gained = min(gained, key=lambda a: a.strength)
    return strongest_lost.text, weakest_gained.line, weakest_gained.text


def _loosened(base: TestInfo, head: TestInfo) -> list[Tolerance]:
    """Head tolerances looser than their base counterpart, or newly added and looser than the
    function's default."""

    def grouped(test: TestInfo) -> dict[tuple[str, str], list[Tolerance]]:
        groups: dict[tuple[str, str], list[Tolerance]] = {}
        for tolerance in test.tolerances:
            groups.setdefault((tolerance.function, tolerance.keyword), []).append(tolerance)
        return groups

    before, after = grouped(base), grouped(head)
    loosened: list[Tolerance] = []
    for key, head_values in after.items():
        base_values = before.get(key, [])
        for index, tolerance in enumerate(head_values):
            if index < len(base_values):
                if tolerance.looser_than(base_values[index]):
                    loosened.append(tolerance)
            elif tolerance.explicit and tolerance.looser_than(default_tolerance(tolerance)):
                loosened.append(tolerance)
    return loosened
