"""What the gate publishes: status descriptions, annotations and the check run summary."""

from __future__ import annotations

from typing import Any

from judge import GateDecision, render_check_summary, status_description
from judge.publish import MAX_ANNOTATIONS, annotations_for


def _decision(decision: str, rules: list[dict[str, Any]]) -> GateDecision:
    return GateDecision(
        id="gd_test",
        decision=decision,
        status="current",
        rules=rules,
        policy_name="guard",
        policy_digest="sha256:" + "a" * 64,
        passport_id="sha256:" + "b" * 64,
        head_sha="c" * 40,
    )


def _statement(findings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "predicate": {
            "change": {"repository": "acme/web", "totals": {"files": 1, "additions": 2}},
            "writer": {"kind": "agent", "model": "m|x"},
            "reviews": [
                {
                    "reviewer": "secrets",
                    "counts": {"error": 1, "warning": 0, "info": 0},
                    "findings": findings,
                },
            ],
        }
    }


def test_description_is_the_decision_and_first_reason_within_140_characters() -> None:
    long_reason = "the approval of a payments engineer is missing " * 5
    block = _decision(
        "block",
        [
            {"name": "a", "kind": "warn", "state": "satisfied", "reasons": ["ignored"]},
            {"name": "no-secrets", "kind": "block", "state": "unsatisfied",
             "reasons": ["1 finding"], "message": "A secret was found."},
        ],
    )  # fmt: skip
    assert status_description(block) == "Blocked: A secret was found."
    pending = _decision(
        "pending",
        [{"name": "two", "kind": "require", "state": "pending", "reasons": [long_reason]}],
    )
    text = status_description(pending)
    assert len(text) <= 140 and text.startswith("Pending: the approval") and text.endswith("…")
    allow = _decision("allow", [])
    assert status_description(allow) == "Allowed by policy guard"


def test_annotations_from_findings_most_severe_first_and_capped() -> None:
    findings = [
        {"reviewer": "r", "rule": "i", "severity": "info", "path": "b.py", "startLine": 1,
         "endLine": None, "message": "m", "suggestion": None, "fingerprint": "f"},
        {"reviewer": "secrets", "rule": "github-token", "severity": "error", "path": "a.py",
         "startLine": 3, "endLine": 2, "message": "Possible token", "suggestion": "Revoke it.",
         "fingerprint": "f"},
        {"reviewer": "large-diff", "rule": "large-diff", "severity": "warning", "path": None,
         "startLine": None, "endLine": None, "message": "big", "suggestion": None,
         "fingerprint": "f"},
    ]  # fmt: skip
    annotations = annotations_for(_statement(findings))
    assert [
        (a.path, a.start_line, a.end_line, a.annotation_level, a.title) for a in annotations
    ] == [
        ("a.py", 3, 3, "failure", "secrets/github-token"),
        ("b.py", 1, 1, "notice", "r/i"),
    ]
    assert annotations[0].message == "Possible token\n\nSuggestion: Revoke it."
    many = [dict(findings[0], startLine=n) for n in range(1, MAX_ANNOTATIONS + 50)]
    assert len(annotations_for(_statement(many))) == MAX_ANNOTATIONS


def test_summary_escapes_table_cells() -> None:
    decision = _decision(
        "block",
        [{"name": "r|1", "kind": "block", "state": "unsatisfied",
          "reasons": ["a | b <script>", "line\nbreak"], "message": None}],
    )  # fmt: skip
    summary = render_check_summary(decision, _statement([]), url="http://x/gate/decisions/gd_test")
    row = next(line for line in summary.splitlines() if line.startswith("| r\\|1"))
    assert "a \\| b &lt;script&gt;; line break" in row
    assert "[decision gd_test](http://x/gate/decisions/gd_test)" in summary
    assert "`m\\|x`" in summary
    assert summary.startswith("## ⛔ Merge gate: **block**")
