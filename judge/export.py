"""Exports of findings: reviewdog's rdjson (DiagnosticResult) and SARIF 2.1.0."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .findings import Finding

__all__ = ["SARIF_SCHEMA", "to_rdjson", "to_rdjsonl", "to_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_RDJSON_SEVERITY = {"error": "ERROR", "warning": "WARNING", "info": "INFO"}
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _rdjson_diagnostic(finding: Finding) -> dict[str, Any]:
    diagnostic: dict[str, Any] = {
        "message": finding.message,
        "severity": _RDJSON_SEVERITY[finding.severity],
        "source": {"name": f"writgate/{finding.reviewer}"},
        "code": {"value": finding.rule},
    }
    if finding.path:
        location: dict[str, Any] = {"path": finding.path}
        if finding.start_line:
            location["range"] = {
                "start": {"line": finding.start_line},
                "end": {"line": finding.end_line or finding.start_line},
            }
        diagnostic["location"] = location
    else:
        diagnostic["location"] = {"path": "."}
    return diagnostic


def to_rdjson(findings: Iterable[Finding]) -> dict[str, Any]:
    """A reviewdog ``DiagnosticResult`` (rdjson)."""
    return {
        "source": {"name": "writgate", "url": "https://writgate.dev"},
        "diagnostics": [_rdjson_diagnostic(finding) for finding in findings],
    }


def to_rdjsonl(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """reviewdog ``Diagnostic`` objects, one per line of rdjsonl."""
    return [_rdjson_diagnostic(finding) for finding in findings]


def to_sarif(
    findings: Sequence[Finding],
    *,
    tool_version: str = "0.1.0",
    reviewers: Iterable[str] = (),
    base: str | None = None,
    head: str | None = None,
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run; rules are ``reviewer/rule``."""
    rule_ids: list[str] = []
    rule_index: dict[str, int] = {}
    rule_meta: dict[str, Finding] = {}
    for finding in findings:
        rule_id = f"{finding.reviewer}/{finding.rule}"
        if rule_id not in rule_index:
            rule_index[rule_id] = len(rule_ids)
            rule_ids.append(rule_id)
            rule_meta[rule_id] = finding
    rules = [
        {
            "id": rule_id,
            "name": _pascal(rule_meta[rule_id].rule),
            "shortDescription": {
                "text": f"{rule_meta[rule_id].reviewer}: {rule_meta[rule_id].rule}"
            },
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule_meta[rule_id].severity]},
            "properties": {"reviewer": rule_meta[rule_id].reviewer},
        }
        for rule_id in rule_ids
    ]
    results = []
    for finding in findings:
        rule_id = f"{finding.reviewer}/{finding.rule}"
        result: dict[str, Any] = {
            "ruleId": rule_id,
            "ruleIndex": rule_index[rule_id],
            "level": _SARIF_LEVEL[finding.severity],
            "message": {"text": finding.message},
            "partialFingerprints": {"writgateFingerprint/v1": finding.fingerprint},
        }
        if finding.path:
            physical: dict[str, Any] = {
                "artifactLocation": {"uri": finding.path, "uriBaseId": "%SRCROOT%"}
            }
            if finding.start_line:
                physical["region"] = {
                    "startLine": finding.start_line,
                    "endLine": max(finding.end_line or finding.start_line, finding.start_line),
                }
            result["locations"] = [{"physicalLocation": physical}]
        if finding.suggestion:
            result["properties"] = {"suggestion": finding.suggestion}
        results.append(result)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "writgate",
                "informationUri": "https://writgate.dev",
                "semanticVersion": tool_version,
                "rules": rules,
            }
        },
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    properties: dict[str, Any] = {}
    if reviewers:
        properties["reviewers"] = list(reviewers)
    if base:
        properties["base"] = base
    if head:
        properties["head"] = head
    if properties:
        run["properties"] = properties
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _pascal(rule: str) -> str:
    return (
        "".join(part.capitalize() for part in rule.replace("_", "-").split("-") if part) or "Rule"
    )
