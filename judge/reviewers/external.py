"""External tools as reviewers: ruff, and any command that prints rdjson, rdjsonl or SARIF.

Tools run on the head tree written to a temporary directory (never on the user's working tree)
and their diagnostics are filtered like reviewdog's ``added`` filter: only those that start on a
line the change added are kept (``filter: file`` keeps any line of a changed file, ``nofilter``
keeps everything).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from ..change import Change
from ..errors import ReviewConfigError, ReviewerError, ReviewerSkipped
from ..findings import Finding, Severity
from .base import Options, check_known, option_bool, option_int, option_str_list, suffix

__all__ = [
    "CommandReviewer",
    "Diagnostic",
    "RuffReviewer",
    "filter_diagnostics",
    "parse_diagnostics",
]

_FILTERS = ("added", "file", "nofilter")
_OUTPUT_LIMIT = 20 * 1024 * 1024


class Diagnostic:
    """A tool diagnostic before filtering (paths relative to the repository root)."""

    __slots__ = ("end_line", "line", "message", "path", "rule", "severity", "source", "suggestion")

    def __init__(
        self,
        *,
        path: str | None,
        line: int | None,
        end_line: int | None,
        rule: str,
        severity: Severity,
        message: str,
        source: str | None = None,
        suggestion: str | None = None,
    ):
        self.path, self.line, self.end_line = path, line, end_line
        self.rule, self.severity, self.message = rule, severity, message
        self.source, self.suggestion = source, suggestion


def _severity(value: Any, default: Severity = "warning") -> Severity:
    text = str(value or "").lower()
    if text in ("error", "1", "fatal", "critical", "high"):
        return "error"
    if text in ("warning", "2", "warn", "medium"):
        return "warning"
    if text in ("info", "3", "note", "none", "low", "hint"):
        return "info"
    return default


def _relative(path: str | None, root: Path) -> str | None:
    if not path:
        return None
    if path.startswith("file://"):
        path = path[len("file://") :]
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return candidate.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return candidate.as_posix()
    return candidate.as_posix().removeprefix("./")


def _rdjson_diagnostic(item: Any, root: Path, where: str, default: Severity) -> Diagnostic:
    if not isinstance(item, Mapping) or not isinstance(item.get("message"), str):
        raise ReviewerError(f"{where}: a diagnostic needs a string 'message'")
    location = item.get("location") or {}
    start = (
        ((location.get("range") or {}).get("start") or {}) if isinstance(location, Mapping) else {}
    )
    end = ((location.get("range") or {}).get("end") or {}) if isinstance(location, Mapping) else {}
    code = item.get("code") or {}
    source = item.get("source") or {}
    line = start.get("line") if isinstance(start, Mapping) else None
    end_line = end.get("line") if isinstance(end, Mapping) else None
    suggestions = item.get("suggestions") or []
    return Diagnostic(
        path=_relative(location.get("path") if isinstance(location, Mapping) else None, root),
        line=line if isinstance(line, int) and line > 0 else None,
        end_line=end_line if isinstance(end_line, int) and end_line > 0 else None,
        rule=str(code.get("value") if isinstance(code, Mapping) else "") or "diagnostic",
        severity=_severity(item.get("severity"), default),
        message=item["message"],
        source=source.get("name") if isinstance(source, Mapping) else None,
        suggestion=(
            suggestions[0].get("text")
            if suggestions
            and isinstance(suggestions[0], Mapping)
            and isinstance(suggestions[0].get("text"), str)
            else None
        ),
    )


def _sarif_diagnostics(data: Mapping[str, Any], root: Path) -> list[Diagnostic]:
    found = []
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise ReviewerError("SARIF output has no 'runs' array")
    for run in runs:
        if not isinstance(run, Mapping):
            continue
        driver = (
            ((run.get("tool") or {}).get("driver") or {})
            if isinstance(run.get("tool"), Mapping)
            else {}
        )
        rules = driver.get("rules") or []
        default_levels = {
            r.get("id"): ((r.get("defaultConfiguration") or {}).get("level"))
            for r in rules
            if isinstance(r, Mapping)
        }
        for result in run.get("results") or []:
            if not isinstance(result, Mapping):
                continue
            message = result.get("message") or {}
            text = message.get("text") or message.get("markdown") or ""
            rule = result.get("ruleId") or (result.get("rule") or {}).get("id") or "diagnostic"
            level = result.get("level") or default_levels.get(rule) or "warning"
            path = line = end_line = None
            locations = result.get("locations") or []
            if locations and isinstance(locations[0], Mapping):
                physical = locations[0].get("physicalLocation") or {}
                path = (physical.get("artifactLocation") or {}).get("uri")
                region = physical.get("region") or {}
                line = region.get("startLine")
                end_line = region.get("endLine") or line
            found.append(
                Diagnostic(
                    path=_relative(path, root),
                    line=line if isinstance(line, int) else None,
                    end_line=end_line if isinstance(end_line, int) else None,
                    rule=str(rule),
                    severity=_severity(level),
                    message=str(text),
                    source=driver.get("name"),
                )
            )
    return found


def parse_diagnostics(
    output: str, format: str, *, root: Path, default_severity: Severity = "warning"
) -> list[Diagnostic]:
    """Parse a tool's rdjson, rdjsonl or SARIF output (``format="auto"`` guesses)."""
    text = output.strip()
    if not text:
        return []
    if format == "auto":
        if "\n" in text and text.lstrip().startswith("{") and not _is_json(text):
            format = "rdjsonl"
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                format = "rdjsonl"
            else:
                format = "sarif" if isinstance(data, dict) and "runs" in data else "rdjson"
    if format == "rdjsonl":
        found = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReviewerError(f"rdjsonl line {number} is not JSON: {exc.msg}") from exc
            found.append(_rdjson_diagnostic(item, root, f"rdjsonl line {number}", default_severity))
        return found
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReviewerError(
            f"{format} output is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if format == "sarif":
        if not isinstance(data, Mapping):
            raise ReviewerError("SARIF output is not a JSON object")
        return _sarif_diagnostics(data, root)
    if format == "rdjson":
        if not isinstance(data, Mapping) or not isinstance(data.get("diagnostics", []), list):
            raise ReviewerError("rdjson output needs a 'diagnostics' array")
        result_default = _severity(data.get("severity"), default_severity)
        return [
            _rdjson_diagnostic(item, root, f"rdjson diagnostics[{i}]", result_default)
            for i, item in enumerate(data.get("diagnostics", []))
        ]
    raise ReviewerError(f"unknown output format {format!r}")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def filter_diagnostics(
    diagnostics: Sequence[Diagnostic], change: Change, mode: str = "added"
) -> list[Diagnostic]:
    """Keep diagnostics on added lines (``added``), in changed files (``file``) or all."""
    if mode == "nofilter":
        return list(diagnostics)
    kept = []
    for diagnostic in diagnostics:
        changed = change.file(diagnostic.path) if diagnostic.path else None
        if changed is None or changed.status == "removed":
            continue
        if mode == "file":
            kept.append(diagnostic)
            continue
        if diagnostic.line is None:
            continue
        last = max(diagnostic.end_line or diagnostic.line, diagnostic.line)
        if any(number in changed.added_lines for number in range(diagnostic.line, last + 1)):
            kept.append(diagnostic)
    return kept


async def _run(
    argv: Sequence[str], *, cwd: Path, timeout: float, env: Mapping[str, str] | None, tool: str
) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    environment.update(env or {})
    try:
        with anyio.fail_after(timeout):
            result = await anyio.run_process(list(argv), cwd=cwd, env=environment, check=False)
    except TimeoutError as exc:
        raise ReviewerError(f"{tool} did not finish within {timeout:g} s") from exc
    except (FileNotFoundError, PermissionError) as exc:
        raise ReviewerError(f"{tool}: cannot run {argv[0]!r}: {exc.strerror}") from exc
    stdout = result.stdout[:_OUTPUT_LIMIT].decode("utf-8", "replace")
    stderr = result.stderr[-4000:].decode("utf-8", "replace")
    return result.returncode, stdout, stderr


def _to_findings(reviewer: str, diagnostics: Sequence[Diagnostic], change: Change) -> list[Finding]:
    findings = []
    for d in diagnostics:
        snippet = ""
        changed = change.file(d.path) if d.path else None
        if changed is not None and d.line is not None:
            snippet = changed.added_lines.get(d.line, "")
        findings.append(
            Finding.create(
                reviewer=reviewer,
                rule=d.rule,
                severity=d.severity,
                path=d.path,
                start_line=d.line,
                end_line=d.end_line if d.end_line and d.line and d.end_line >= d.line else d.line,
                message=d.message,
                snippet=f"{snippet}\x00{d.message}",
                suggestion=d.suggestion,
            )
        )
    return findings


async def _tree_files(change: Change, names: Sequence[str]) -> set[str]:
    """Paths at head whose file name is one of ``names``."""
    wanted = set(names)
    return {path for path in await change.tree(change.head) if path.rpartition("/")[2] in wanted}


def find_ruff() -> str | None:
    """The ruff executable: on PATH, or next to the running Python."""
    found = shutil.which("ruff")
    if found:
        return found
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else None


_RUFF_CONFIGS = ("pyproject.toml", "ruff.toml", ".ruff.toml")
_RUFF_ERRORS = ("E9", "F63", "F7", "F82", "invalid-syntax")


class RuffReviewer:
    """Runs ``ruff check`` at head on the changed Python files; keeps what is on added lines."""

    name = "ruff"

    def __init__(self, options: Options | None = None):
        options = options or {}
        check_known(options, self.name, ("executable", "args", "timeout", "filter", "required"))
        executable = options.get("executable")
        if executable is not None and not isinstance(executable, str):
            raise ReviewConfigError("must be a path", field="reviewers.ruff.executable")
        self.executable = executable
        self.args = option_str_list(options, self.name, "args", ())
        self.timeout = float(option_int(options, self.name, "timeout", 120))
        self.filter = options.get("filter", "added")
        if self.filter not in _FILTERS:
            raise ReviewConfigError(
                f"must be one of {', '.join(_FILTERS)}", field="reviewers.ruff.filter"
            )
        self.required = option_bool(options, self.name, "required", False)

    async def review(self, change: Change) -> list[Finding]:
        paths = [
            f.path
            for f in change
            if f.status != "removed" and not f.binary and suffix(f.path) in (".py", ".pyi")
        ]
        if not paths:
            return []
        executable = self.executable or find_ruff()
        if executable is None:
            message = "ruff is not installed (pip install ruff)"
            # Only a reviewer the configuration requires fails the review closed.
            raise ReviewerError(message) if self.required else ReviewerSkipped(message)
        configs = {
            str(Path(parent, name).as_posix()).removeprefix("./")
            for path in paths
            for parent in [*Path(path).parents]
            for name in _RUFF_CONFIGS
        }
        with tempfile.TemporaryDirectory(prefix="writgate-ruff-") as tmp:
            root = Path(tmp)
            present = sorted(configs & await _tree_files(change, _RUFF_CONFIGS))
            await change.materialize_head(root, [*paths, *present])
            # Without a configuration of its own, ruff must not pick one up around the temp dir.
            isolated = [] if present else ["--isolated"]
            argv = [
                executable, "check", "--output-format=json", "--no-cache", "--exit-zero",
                "--force-exclude", *isolated, *self.args, "--", *paths,
            ]  # fmt: skip
            code, stdout, stderr = await _run(
                argv, cwd=root, timeout=self.timeout, env=None, tool="ruff"
            )
            if code != 0:
                last = stderr.strip().splitlines()[-1:] or [f"exit code {code}"]
                raise ReviewerError(f"ruff failed: {last[0]}")
            try:
                items = json.loads(stdout or "[]")
            except json.JSONDecodeError as exc:
                raise ReviewerError(f"ruff printed invalid JSON: {exc.msg}") from exc
            diagnostics = []
            for item in items:
                location = item.get("location") or {}
                end = item.get("end_location") or {}
                rule = item.get("code") or "invalid-syntax"
                fix = item.get("fix") or {}
                diagnostics.append(
                    Diagnostic(
                        path=_relative(item.get("filename"), root),
                        line=location.get("row"),
                        end_line=end.get("row") or location.get("row"),
                        rule=rule,
                        severity="error" if str(rule).startswith(_RUFF_ERRORS) else "warning",
                        message=f"{rule}: {item.get('message', '')}".strip(),
                        source="ruff",
                        suggestion=fix.get("message") if isinstance(fix, Mapping) else None,
                    )
                )
        return _to_findings(self.name, filter_diagnostics(diagnostics, change, self.filter), change)


class CommandReviewer:
    """Runs a command that prints rdjson, rdjsonl or SARIF on stdout, in a head checkout.

    ``argv`` may contain ``{files}`` (expanded to the changed files), ``{base}``, ``{head}``.
    """

    def __init__(self, options: Options | None = None, *, name: str = "command"):
        options = options or {}
        self.name = str(options.get("name", name))
        check_known(
            options,
            self.name,
            ("name", "argv", "format", "filter", "timeout", "env", "severity", "okExitCodes"),
        )
        argv = options.get("argv")
        if not argv or isinstance(argv, str) or not all(isinstance(a, str) for a in argv):
            raise ReviewConfigError(
                "must be a non-empty list of strings", field=f"reviewers.{self.name}.argv"
            )
        self.argv = list(argv)
        self.format = options.get("format", "auto")
        if self.format not in ("auto", "rdjson", "rdjsonl", "sarif"):
            raise ReviewConfigError(
                "must be auto, rdjson, rdjsonl or sarif", field=f"reviewers.{self.name}.format"
            )
        self.filter = options.get("filter", "added")
        if self.filter not in _FILTERS:
            raise ReviewConfigError(
                f"must be one of {', '.join(_FILTERS)}", field=f"reviewers.{self.name}.filter"
            )
        self.timeout = float(option_int(options, self.name, "timeout", 300))
        env = options.get("env", {})
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ReviewConfigError("must map names to strings", field=f"reviewers.{self.name}.env")
        self.env = dict(env)
        self.severity: Severity = _severity(options.get("severity"), "warning")
        codes = options.get("okExitCodes", [0, 1])
        if not isinstance(codes, list) or not all(isinstance(c, int) for c in codes):
            raise ReviewConfigError(
                "must be a list of integers", field=f"reviewers.{self.name}.okExitCodes"
            )
        self.ok_exit_codes = set(codes)

    def _argv(self, change: Change) -> list[str]:
        files = [f.path for f in change if f.status != "removed"]
        argv: list[str] = []
        for arg in self.argv:
            if arg == "{files}":
                argv.extend(files)
            else:
                argv.append(arg.replace("{base}", change.base).replace("{head}", change.head))
        return argv

    async def review(self, change: Change) -> list[Finding]:
        with tempfile.TemporaryDirectory(prefix="writgate-command-") as tmp:
            root = Path(tmp)
            await change.materialize_head(root)
            code, stdout, stderr = await _run(
                self._argv(change), cwd=root, timeout=self.timeout, env=self.env, tool=self.name
            )
            if code not in self.ok_exit_codes:
                last = stderr.strip().splitlines()[-1:] or [f"exit code {code}"]
                raise ReviewerError(f"{self.name} exited with code {code}: {last[0]}")
            diagnostics = parse_diagnostics(
                stdout, self.format, root=root, default_severity=self.severity
            )
        return _to_findings(self.name, filter_diagnostics(diagnostics, change, self.filter), change)
