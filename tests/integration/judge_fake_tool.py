"""A linter stand-in for the command reviewer tests: prints rdjson, rdjsonl or SARIF.

Usage: judge_fake_tool.py FORMAT FILE...  Flags every line equal to ``one`` (warning,
``no-one``), ``three`` (error, ``no-three``) or ``new`` (info, ``no-new``), plus one diagnostic
on a file that is not part of the change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RULES = {"one": ("no-one", "WARNING"), "three": ("no-three", "ERROR"), "new": ("no-new", "INFO")}


def main() -> None:
    fmt, files = sys.argv[1], sys.argv[2:]
    found = [("elsewhere/other.py", 1, "no-other", "ERROR")]
    for name in files:
        for number, line in enumerate(Path(name).read_text().splitlines(), 1):
            if line in RULES:
                rule, severity = RULES[line]
                found.append((name, number, rule, severity))
    if fmt == "sarif":
        level = {"ERROR": "error", "WARNING": "warning", "INFO": "note"}
        results = [
            {
                "ruleId": rule,
                "level": level[severity],
                "message": {"text": f"{rule} here"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": Path(path).absolute().as_uri()},
                            "region": {"startLine": line},
                        }
                    }
                ],
            }
            for path, line, rule, severity in found
        ]
        print(
            json.dumps(
                {
                    "version": "2.1.0",
                    "runs": [{"tool": {"driver": {"name": "fake"}}, "results": results}],
                }
            )
        )
        return
    diagnostics = [
        {
            "message": f"{rule} here",
            "location": {"path": path, "range": {"start": {"line": line}}},
            "severity": severity,
            "code": {"value": rule},
        }
        for path, line, rule, severity in found
    ]
    if fmt == "rdjsonl":
        for diagnostic in diagnostics:
            print(json.dumps(diagnostic))
    else:
        print(json.dumps({"source": {"name": "fake"}, "diagnostics": diagnostics}))


if __name__ == "__main__":
    main()
