"""An agent stand-in for the agent reviewer tests: saves the prompt it reads on stdin to the file
given as its argument and answers with one finding on the first added ``/ 0``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def main() -> None:
    prompt = sys.stdin.read()
    Path(sys.argv[1]).write_text(prompt)
    findings = []
    line = 0
    path = None
    for text in prompt.splitlines():
        if text.startswith("+++ b/"):
            path = text[6:]
        elif text.startswith("@@"):
            match = re.search(r"\+(\d+)", text)
            line = int(match.group(1)) - 1 if match else 0
        elif text.startswith("+"):
            line += 1
            if "/ 0" in text:
                findings.append(
                    {
                        "rule": "division-by-zero",
                        "severity": "error",
                        "path": path,
                        "line": line,
                        "message": "This always raises ZeroDivisionError.",
                        "suggestion": None,
                    }
                )
        elif text.startswith(" "):
            line += 1
    print(json.dumps({"findings": findings}))


if __name__ == "__main__":
    main()
