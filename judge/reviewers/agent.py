"""The agent reviewer: a Jinja2 prompt over the change, sent to an agent driver, whose answer is
parsed as structured findings.

The driver is pluggable (:class:`AgentDriver`): the built-in :class:`CommandDriver` pipes the
prompt to a command on stdin and reads its stdout; ``driver: "package.module:factory"`` loads
another one by dotted path (``factory(options) -> AgentDriver``). The answer is JSON — an array of
findings, or ``{"findings": [...]}``, optionally inside a fenced code block — each with ``rule``,
``severity``, ``path``, ``line``/``startLine``, ``endLine``, ``message`` and ``suggestion``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
import jinja2
import jinja2.sandbox

from ..change import Change
from ..errors import ReviewConfigError, ReviewerError
from ..findings import Finding, Severity
from .base import Options, check_known, option_int
from .secrets import redact, secret_values

__all__ = [
    "DEFAULT_PROMPT",
    "AgentDriver",
    "AgentReviewer",
    "CommandDriver",
    "parse_agent_findings",
]

DEFAULT_PROMPT = """\
You are reviewing a code change in {{ repository or "a git repository" }}.
Base {{ base }}, head {{ head }}: {{ totals.files }} files, \
+{{ totals.additions }} -{{ totals.deletions }}.

Report only real problems: bugs, security issues, missing error handling, tests that do not test.
Answer with JSON only: {"findings": [{"rule": "short-id", "severity": "error|warning|info",
"path": "file", "line": 1, "message": "what and why", "suggestion": "how to fix or null"}]}.
Lines are head line numbers of added lines. Answer {"findings": []} when the change is fine.

{% for file in files %}### {{ file.path }} ({{ file.status }})
{% endfor %}
```diff
{{ diff | truncate_lines(max_diff_lines) }}
```
"""
_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.S)


class AgentDriver(Protocol):
    """Sends a prompt to an agent and returns its text answer."""

    async def complete(self, prompt: str) -> str:
        """The agent's answer to ``prompt``."""
        ...


class CommandDriver:
    """Runs ``argv`` with the prompt on stdin; the answer is its stdout."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 600,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.argv = list(argv)
        self.timeout = timeout
        self.env = dict(env or {})
        self.cwd = cwd

    async def complete(self, prompt: str) -> str:
        environment = {
            k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")
        }
        environment.update(self.env)
        try:
            with anyio.fail_after(self.timeout):
                result = await anyio.run_process(
                    self.argv, input=prompt.encode(), env=environment, cwd=self.cwd, check=False
                )
        except TimeoutError as exc:
            raise ReviewerError(f"the agent did not answer within {self.timeout:g} s") from exc
        except (FileNotFoundError, PermissionError) as exc:
            raise ReviewerError(f"cannot run the agent {self.argv[0]!r}: {exc.strerror}") from exc
        if result.returncode != 0:
            last = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise ReviewerError(
                f"the agent exited with code {result.returncode}"
                + (f": {last[0][:300]}" if last else "")
            )
        return result.stdout.decode("utf-8", "replace")


def parse_agent_findings(answer: str, *, reviewer: str, change: Change) -> list[Finding]:
    """Findings from an agent's JSON answer; findings on files outside the change are dropped."""
    text = answer.strip()
    fenced = _FENCE.search(text)
    if fenced and not text.startswith(("{", "[")):
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReviewerError(
            f"the agent's answer is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    items = data.get("findings") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise ReviewerError("the agent's answer needs a 'findings' array")
    findings = []
    for index, item in enumerate(items):
        where = f"findings[{index}]"
        if not isinstance(item, Mapping):
            raise ReviewerError(f"the agent's {where} is not an object")
        message = item.get("message")
        if not isinstance(message, str) or not message.strip():
            raise ReviewerError(f"the agent's {where}.message must be a non-empty string")
        path = item.get("path")
        if path is not None and not isinstance(path, str):
            raise ReviewerError(f"the agent's {where}.path must be a string")
        if path is not None and change.file(path) is None:
            continue  # not part of this change
        line = item.get("startLine", item.get("line"))
        line = line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else None
        end = item.get("endLine")
        end = (
            end
            if isinstance(end, int) and not isinstance(end, bool) and line and end >= line
            else line
        )
        severity = str(item.get("severity", "warning")).lower()
        if severity not in ("error", "warning", "info"):
            severity = "warning"
        suggestion = item.get("suggestion")
        changed = change.file(path) if path else None
        snippet = changed.added_lines.get(line, "") if changed and line else ""
        findings.append(
            Finding.create(
                reviewer=reviewer,
                rule=str(item.get("rule") or "agent"),
                severity=_as_severity(severity),
                path=path,
                start_line=line,
                end_line=end,
                message=message.strip(),
                snippet=f"{snippet}\x00{message.strip()}",
                suggestion=suggestion if isinstance(suggestion, str) else None,
            )
        )
    return findings


def _as_severity(value: str) -> Severity:
    return "error" if value == "error" else "info" if value == "info" else "warning"


def _truncate_lines(text: str, limit: int) -> str:
    lines = text.splitlines()
    if len(lines) <= limit:
        return text
    return "\n".join(lines[:limit]) + f"\n… ({len(lines) - limit} more lines)"


class AgentReviewer:
    """Asks an agent to review the change with a Jinja2 prompt template."""

    def __init__(self, options: Options | None = None, *, driver: AgentDriver | None = None):
        options = options or {}
        self.name = str(options.get("name", "agent"))
        check_known(
            options,
            self.name,
            ("name", "argv", "driver", "driverOptions", "prompt", "promptFile", "timeout",
             "env", "maxDiffLines", "repository"),
        )  # fmt: skip
        self.max_diff_lines = option_int(options, self.name, "maxDiffLines", 2000)
        self.repository = options.get("repository")
        template = options.get("prompt")
        if options.get("promptFile") is not None:
            prompt_file = Path(str(options["promptFile"]))
            try:
                template = prompt_file.read_text()
            except OSError as exc:
                raise ReviewConfigError(
                    f"cannot read the prompt template: {exc.strerror}",
                    file=str(prompt_file),
                    field=f"reviewers.{self.name}.promptFile",
                ) from exc
        environment = jinja2.sandbox.SandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        environment.filters["truncate_lines"] = _truncate_lines
        try:
            self.template = environment.from_string(template or DEFAULT_PROMPT)
        except jinja2.TemplateSyntaxError as exc:
            raise ReviewConfigError(
                f"invalid prompt template: {exc.message}",
                line=exc.lineno,
                field=f"reviewers.{self.name}.prompt",
            ) from exc
        self.driver = driver or self._driver(options)

    def _driver(self, options: Options) -> AgentDriver:
        timeout = float(option_int(options, self.name, "timeout", 600))
        dotted = options.get("driver")
        if dotted is not None:
            if not isinstance(dotted, str) or ":" not in dotted:
                raise ReviewConfigError(
                    "must be 'package.module:factory'", field=f"reviewers.{self.name}.driver"
                )
            module_name, _, attribute = dotted.partition(":")
            try:
                factory = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError) as exc:
                raise ReviewConfigError(
                    f"cannot load {dotted!r}: {exc}", field=f"reviewers.{self.name}.driver"
                ) from exc
            driver: AgentDriver = factory(dict(options.get("driverOptions") or {}))
            return driver
        argv = options.get("argv")
        if not argv or isinstance(argv, str) or not all(isinstance(a, str) for a in argv):
            raise ReviewConfigError(
                "the agent reviewer needs 'argv' (a command) or 'driver' (a dotted path)",
                field=f"reviewers.{self.name}.argv",
            )
        env = options.get("env") or {}
        if not isinstance(env, Mapping):
            raise ReviewConfigError("must be a mapping", field=f"reviewers.{self.name}.env")
        return CommandDriver(argv, timeout=timeout, env={str(k): str(v) for k, v in env.items()})

    def render(self, change: Change) -> str:
        """The prompt for ``change``; secret values found in it are redacted first."""
        secrets = secret_values(change)
        context: dict[str, Any] = {
            "repository": self.repository,
            "base": change.base,
            "head": change.head,
            "base_ref": change.base_ref,
            "head_ref": change.head_ref,
            "totals": change.totals,
            "files": [
                {
                    **f.to_json(),
                    "added_lines": {n: redact(t, secrets) for n, t in f.added_lines.items()},
                }
                for f in change
            ],
            "diff": redact(change.diff_text, secrets),
            "max_diff_lines": self.max_diff_lines,
        }
        try:
            return self.template.render(context)
        except jinja2.TemplateError as exc:
            raise ReviewConfigError(
                f"the prompt template failed: {exc}", field=f"reviewers.{self.name}.prompt"
            ) from exc

    async def review(self, change: Change) -> list[Finding]:
        answer = await self.driver.complete(self.render(change))
        return parse_agent_findings(answer, reviewer=self.name, change=change)
