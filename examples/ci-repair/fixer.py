"""An example coding agent for the ci-repair demo: finds the failing test and repairs the code.

writgate runs it as a ``command`` agent inside the sandbox, in the repository's checkout, with the
instruction as its first argument. A real pipeline would use claude-code, codex, opencode or aider;
this script keeps the demo deterministic and offline. Everything it prints is recorded as
``agent.message`` events.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TEST_COMMAND = [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."]


def run_tests() -> subprocess.CompletedProcess[str]:
    # No bytecode: a fix that keeps the file's size within the same second would otherwise be
    # hidden behind the stale .pyc of the first run.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(TEST_COMMAND, capture_output=True, text=True, check=False, env=env)


def main() -> int:
    instruction = sys.argv[1] if len(sys.argv) > 1 else "(none)"
    print(f"instruction: {instruction}")
    before = run_tests()
    failing = sorted(set(re.findall(r"^(?:FAIL|ERROR): (\w+)", before.stderr, re.M)))
    print(f"tests before: exit {before.returncode}; failing: {', '.join(failing) or 'none'}")
    if before.returncode == 0:
        print("nothing to repair")
        return 0
    source = Path("calc/__init__.py")
    text = source.read_text()
    fixed = text.replace("return a - b", "return a + b")
    if fixed == text:
        print("no known fix applies", file=sys.stderr)
        return 1
    source.write_text(fixed)
    print("calc/__init__.py: add() subtracted instead of adding; fixed")
    test_file = Path("tests/test_calc.py")
    tests = test_file.read_text()
    if "test_add_negative" not in tests:
        tests = tests.replace(
            "    def test_mean(self) -> None:",
            "    def test_add_negative(self) -> None:\n"
            "        self.assertEqual(add(-2, 5), 3)\n\n"
            "    def test_mean(self) -> None:",
        )
        test_file.write_text(tests)
        print("tests/test_calc.py: added a regression test for add()")
    after = run_tests()
    print(f"tests after: exit {after.returncode}")
    return 0 if after.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
