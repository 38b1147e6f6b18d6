"""Validation after a turn (DESIGN.md §4.5): the repository's own commands, else detected ones."""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import yaml

from writer.sandbox import Sandbox, SandboxError
from writgate.redact import redact

from .models import ValidationOutcome

__all__ = ["ValidationCommand", "commands_for", "output_tail", "run_validation"]

JUNIT_PATH = "/tmp/writgate-junit.xml"
_PYTEST = re.compile(r"(\d+) (passed|failed|skipped|error|errors)\b")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests?", re.M)
_UNITTEST_FAILED = re.compile(r"^FAILED \((.*)\)", re.M)


@dataclass(frozen=True)
class ValidationCommand:
    """One validation command (argv) and what it checks (``tests`` or ``lint``)."""

    kind: str
    argv: tuple[str, ...]


async def _exists(sandbox: Sandbox, path: str) -> bool:
    try:
        await sandbox.read_file(path)
    except (SandboxError, OSError):
        return False
    return True


async def commands_for(sandbox: Sandbox, mode: str) -> list[ValidationCommand]:
    """The commands for ``mode`` from ``.writgate.yml`` ``validate:``, else detected."""
    kinds = {"tests": ["tests"], "lint": ["lint"], "tests_and_lint": ["tests", "lint"]}.get(
        mode, []
    )
    if not kinds:
        return []
    configured: list[ValidationCommand] = []
    try:
        config = yaml.safe_load(await sandbox.read_file(".writgate.yml")) or {}
    except (SandboxError, OSError, yaml.YAMLError):
        config = {}
    section = config.get("validate") if isinstance(config, dict) else None
    if isinstance(section, dict):
        for kind in kinds:
            for command in section.get(kind) or []:
                argv = shlex.split(command) if isinstance(command, str) else list(command)
                configured.append(ValidationCommand(kind, tuple(str(a) for a in argv)))
        return configured
    if isinstance(section, list) and "tests" in kinds:
        for command in section:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            configured.append(ValidationCommand("tests", tuple(str(a) for a in argv)))
        return configured
    detected: list[ValidationCommand] = []
    if "tests" in kinds:
        if await _exists(sandbox, "pyproject.toml") or await _exists(sandbox, "setup.py"):
            detected.append(
                ValidationCommand(
                    "tests", ("python3", "-m", "pytest", "-q", f"--junitxml={JUNIT_PATH}")
                )
            )
        elif await _exists(sandbox, "package.json"):
            detected.append(ValidationCommand("tests", ("npm", "test", "--silent")))
        elif await _exists(sandbox, "go.mod"):
            detected.append(ValidationCommand("tests", ("go", "test", "./...")))
        elif await _exists(sandbox, "Cargo.toml"):
            detected.append(ValidationCommand("tests", ("cargo", "test", "--quiet")))
    if "lint" in kinds and (
        await _exists(sandbox, "pyproject.toml") or await _exists(sandbox, "ruff.toml")
    ):
        detected.append(ValidationCommand("lint", ("ruff", "check", ".")))
    return detected


def _counts_from_output(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    ran = _UNITTEST_RAN.search(text)
    if ran:
        total = int(ran.group(1))
        failed = errors = skipped = 0
        summary = _UNITTEST_FAILED.search(text)
        if summary:
            for part in summary.group(1).split(","):
                name, _, value = part.strip().partition("=")
                if value.isdigit():
                    failed += int(value) if name == "failures" else 0
                    errors += int(value) if name == "errors" else 0
                    skipped += int(value) if name == "skipped" else 0
        skip_match = re.search(r"skipped=(\d+)", text)
        if skip_match:
            skipped = int(skip_match.group(1))
        counts = {
            "passed": total - failed - errors - skipped,
            "failed": failed,
            "skipped": skipped,
            "errors": errors,
        }
        return counts
    for number, word in _PYTEST.findall(text):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def _counts_from_junit(data: bytes) -> dict[str, int]:
    root = ET.fromstring(data)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) for s in suites)
    errors = sum(int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return {
        "passed": total - failed - errors - skipped,
        "failed": failed,
        "skipped": skipped,
        "errors": errors,
    }


def output_tail(output: str, limit: int = 2000) -> str:
    """The end of a command's output, redacted before it is cut (a cut could split a secret;
    a private key block is hidden whole when its BEGIN line is within the redacted window)."""
    return redact(output[-10 * limit :])[-limit:]


async def run_validation(
    sandbox: Sandbox, mode: str, *, command_timeout: float = 900
) -> ValidationOutcome | None:
    """Run the validation commands for ``mode``; ``None`` when there is nothing to run."""
    commands = await commands_for(sandbox, mode)
    if not commands:
        return None
    totals: dict[str, int] = {}
    failed_command: ValidationCommand | None = None
    last_exit = 0
    tail = ""
    for command in commands:
        result = await sandbox.exec(list(command.argv), timeout=command_timeout)
        output = result.stdout + result.stderr
        tail = output_tail(output)
        counts: dict[str, int] = {}
        if command.kind == "tests":
            try:
                counts = _counts_from_junit(await sandbox.read_file(JUNIT_PATH))
            except (SandboxError, OSError, ET.ParseError):
                counts = _counts_from_output(output)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        last_exit = result.exit_code
        if result.exit_code != 0 or result.timed_out:
            failed_command = command
            break
    command_text = " && ".join(shlex.join(c.argv) for c in commands)
    return ValidationOutcome(
        result="FAILED" if failed_command else "PASSED",
        command=shlex.join(failed_command.argv) if failed_command else command_text,
        exit_code=last_exit,
        passed=totals.get("passed"),
        failed=totals.get("failed"),
        skipped=totals.get("skipped"),
        errors=totals.get("errors"),
        output_tail=tail,
    )
