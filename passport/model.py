"""The passport statement: an in-toto Statement v1 whose predicate describes one change.

:func:`build_statement` assembles it from facts already gathered (diff facts, writer provenance,
validation results, reviews); :mod:`passport.builder` gathers them from a repository. Every
section is normalized here so two passports of the same change are byte-identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from .diff import DiffFacts
from .errors import InvalidPassportError

__all__ = [
    "NO_PROVENANCE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "WRITER_KINDS",
    "build_statement",
    "normalize_writer",
    "writer_from_run",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://writgate.dev/change-passport/v1"
WRITER_KINDS = ("agent", "human", "external")
NO_PROVENANCE = "no signed provenance block"

_VALIDATION_RESULTS = ("PASSED", "WARNED", "FAILED")
_SEVERITIES = ("error", "warning", "info")
_OPTIONAL_TEXT = ("runId", "agent", "model", "promptSha256", "title", "startedAt", "finishedAt")


def _fail(field: str, message: str) -> InvalidPassportError:
    return InvalidPassportError(message, field=field)


def _text_or_none(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(f"{where}.{key}", f"must be a string or null, not {type(value).__name__}")
    return value


def _strings(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"{where}.{key}", "must be a list of strings")
    return list(value)


def _object_or_none(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise _fail(f"{where}.{key}", "must be an object or null")
    return dict(value) if value is not None else None


def normalize_writer(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``predicate.writer`` section from camelCase input, every key present.

    ``None`` means nothing is known about the writer: a human with no run.
    """
    data = data or {"kind": "human"}
    if not isinstance(data, Mapping):
        raise _fail("writer", "must be an object")
    kind = data.get("kind", "agent" if data.get("runId") else "external")
    if kind not in WRITER_KINDS:
        raise _fail("writer.kind", f"must be one of {', '.join(WRITER_KINDS)}, not {kind!r}")
    writer: dict[str, Any] = {"kind": kind}
    for key in _OPTIONAL_TEXT:
        writer[key] = _text_or_none(data, key, "writer")
    writer["chain"] = _strings(data, "chain", "writer")
    writer["tags"] = _strings(data, "tags", "writer")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping) or any(
        isinstance(v, (dict, list)) for v in metadata.values()
    ):
        raise _fail("writer.metadata", "must be a flat object")
    writer["metadata"] = dict(metadata)
    for key in ("intent", "usage", "sandbox"):
        writer[key] = _object_or_none(data, key, "writer")
    ordered = ("kind", "runId", "chain", "agent", "model", "promptSha256", "title", "tags",
               "metadata", "intent", "usage", "sandbox", "startedAt", "finishedAt")  # fmt: skip
    return {key: writer[key] for key in ordered}


def writer_from_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """The writer section of a writgate writer run, from its API JSON (DESIGN.md §4.3).

    The prompt is reduced to its SHA-256; the sandbox network policy comes from ``safety``.
    """
    if not isinstance(run, Mapping) or not isinstance(run.get("id"), str):
        raise _fail("run.id", "must be a string (a writer run's JSON)")
    prompt = run.get("prompt")
    agent = run.get("agent") or {}
    usage = run.get("usage")
    network = ((run.get("safety") or {}).get("network") or {}).get("mode")
    sandbox = run.get("sandbox") or {}
    return normalize_writer(
        {
            "kind": "agent",
            "runId": run["id"],
            "chain": list(run.get("chain") or []),  # ancestors, oldest first
            "agent": agent.get("driver") if isinstance(agent, Mapping) else None,
            "model": run.get("modelId"),
            "promptSha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest()
            if isinstance(prompt, str)
            else None,
            "title": run.get("title"),
            "tags": run.get("tags") or [],
            "metadata": run.get("metadata") or {},
            "intent": run.get("intent"),
            "usage": {
                key: usage.get(key, 0)
                for key in ("turns", "credits", "inputTokens", "outputTokens")
            }
            if isinstance(usage, Mapping)
            else None,
            "sandbox": {"provider": sandbox.get("provider") or "local", "network": network}
            if network
            else None,
            "startedAt": run.get("startedAt"),
            "finishedAt": run.get("finishedAt"),
        }
    )


def _counts(counts: Mapping[str, Any], where: str) -> dict[str, int]:
    result = {}
    for key in ("passed", "failed", "skipped", "errors"):
        value = counts.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(f"{where}.{key}", "must be a non-negative integer")
        result[key] = value
    return result


def _validation(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(entries):
        where = f"validation[{i}]"
        if not isinstance(entry, Mapping):
            raise _fail(where, "must be an object")
        result = entry.get("result")
        if result not in _VALIDATION_RESULTS:
            raise _fail(f"{where}.result", f"must be one of {', '.join(_VALIDATION_RESULTS)}")
        counts = entry.get("counts") or {}
        if not isinstance(counts, Mapping):
            raise _fail(f"{where}.counts", "must be an object")
        out.append(
            {
                "name": str(entry.get("name") or "validation"),
                "result": result,
                "counts": _counts(counts, f"{where}.counts"),
                "command": _text_or_none(entry, "command", where),
            }
        )
    return out


def _reviews(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(entries):
        where = f"reviews[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("reviewer"), str):
            raise _fail(f"{where}.reviewer", "must be a string")
        findings = entry.get("findings") or []
        if not isinstance(findings, list) or not all(isinstance(f, Mapping) for f in findings):
            raise _fail(f"{where}.findings", "must be a list of objects")
        counts = dict.fromkeys(_SEVERITIES, 0)
        for j, finding in enumerate(findings):
            severity = finding.get("severity")
            if severity not in _SEVERITIES:
                raise _fail(f"{where}.findings[{j}].severity", "must be error, warning or info")
            counts[severity] += 1
        out.append({"reviewer": entry["reviewer"], "counts": counts,
                    "findings": [dict(f) for f in findings]})  # fmt: skip
    return out


def _pull_request(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data.get("number"), int):
        raise _fail("pullRequest.number", "must be an integer")
    labels = data.get("labels") or []
    return {
        "number": data["number"],
        "url": data.get("url"),
        "draft": bool(data.get("draft", False)),
        "title": data.get("title"),
        "author": data.get("author"),
        "labels": sorted(str(label) for label in labels),
    }


def build_statement(
    *,
    repository: str,
    base_sha: str,
    head_sha: str,
    diff: DiffFacts,
    base_ref: str | None = None,
    head_ref: str | None = None,
    pull_request: Mapping[str, Any] | None = None,
    writer: Mapping[str, Any] | None = None,
    validation: Sequence[Mapping[str, Any]] = (),
    reviews: Sequence[Mapping[str, Any]] = (),
    provenance_verified: bool = False,
    provenance_reason: str = NO_PROVENANCE,
) -> dict[str, Any]:
    """The in-toto Statement v1 of a change (contract 1), as a JSON-ready dict."""
    if not repository:
        raise _fail("repository", "must not be empty")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": f"git+{repository}@{head_sha}", "digest": {"gitCommit": head_sha}},
            {"name": "diff", "digest": {"sha256": diff.sha256}},
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "change": {
                "repository": repository,
                "base": {"ref": base_ref, "sha": base_sha},
                "head": {"ref": head_ref, "sha": head_sha},
                "pullRequest": _pull_request(pull_request),
                "totals": diff.totals(),
                "files": [f.to_json() for f in diff.files],
            },
            "writer": normalize_writer(writer),
            "validation": _validation(validation),
            "reviews": _reviews(reviews),
            "provenanceVerified": bool(provenance_verified),
            "provenanceReason": provenance_reason,
        },
    }
