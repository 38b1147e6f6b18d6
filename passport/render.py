"""Rendering a passport with Jinja2: Markdown for the PR comment, HTML for the dashboard.

Templates live in ``passport/templates/`` (``passport.md.j2``, ``passport.html.j2``). A user
template directory, when given, is searched first, so a file of the same name there replaces
the built-in one (and may ``{% extends "builtin/passport.md.j2" %}`` to change one block).
HTML is autoescaped; Markdown values are escaped for table cells and inline code by filters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .digest import passport_id
from .errors import InvalidPassportError

__all__ = ["COMMENT_MARKER", "Verification", "render_html", "render_markdown"]

COMMENT_MARKER = "<!-- writgate-passport -->"
_BUILTIN = Path(__file__).parent / "templates"
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Verification:
    """What is known about the passport's own signature, for display."""

    signed: bool
    verified: bool | None = None  # None: signed but not checked here
    keyids: tuple[str, ...] = ()
    detail: str | None = None

    @property
    def label(self) -> str:
        if not self.signed:
            return "unsigned"
        if self.verified is None:
            return "signed (signature not checked)"
        if self.verified:
            return "signed, signature verified (key " + ", ".join(k[:16] for k in self.keyids) + ")"
        return "signed, signature INVALID" + (f": {self.detail}" if self.detail else "")


def _md_cell(value: Any) -> str:
    """A value safe inside a Markdown table cell."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"[\r\n]+", " ", text)


def _md_code(value: Any) -> str:
    """A value as inline code, whatever backticks it contains."""
    text = re.sub(r"[\r\n]+", " ", "" if value is None else str(value))
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_text(value: Any) -> str:
    """Free text on one line with Markdown/HTML control characters escaped."""
    text = re.sub(r"[\r\n]+", " ", "" if value is None else str(value))
    text = re.sub(r"([\\`*_{}\[\]#|!])", r"\\\1", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


@lru_cache(maxsize=16)
def _environment(template_dir: str | None, autoescape: bool) -> jinja2.Environment:
    builtin = jinja2.FileSystemLoader(str(_BUILTIN))
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(builtin)
    loader = jinja2.PrefixLoader({"builtin": builtin})
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([*loaders, loader]),
        autoescape=autoescape,
        undefined=jinja2.ChainableUndefined,  # render any passport, even sparse
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md_cell=_md_cell, md_code=_md_code, md_text=_md_text)
    return env


def _context(
    statement: Mapping[str, Any],
    verification: Verification | None,
    max_files: int,
    max_findings: int,
) -> dict[str, Any]:
    predicate = statement.get("predicate") or {}
    change = predicate.get("change") or {}
    files = list(change.get("files") or [])
    findings = [
        {
            "reviewer": finding.get("reviewer") or review.get("reviewer"),
            "severity": finding.get("severity"),
            "rule": finding.get("rule"),
            "path": finding.get("path"),
            "startLine": finding.get("startLine"),
            "message": finding.get("message"),
        }
        for review in predicate.get("reviews") or []
        for finding in review.get("findings") or []
    ]
    findings.sort(key=lambda f: (_SEVERITY_ORDER.get(str(f["severity"]), 3), str(f["path"] or "")))
    severity_totals = dict.fromkeys(_SEVERITY_ORDER, 0)
    for review in predicate.get("reviews") or []:
        for severity, count in (review.get("counts") or {}).items():
            severity_totals[severity] = severity_totals.get(severity, 0) + int(count)
    return {
        "statement": statement,
        "passport_id": passport_id(statement),
        "change": change,
        "totals": change.get("totals") or {},
        "files": files[:max_files],
        "hidden_files": max(0, len(files) - max_files),
        "writer": predicate.get("writer") or {},
        "validation": predicate.get("validation") or [],
        "reviews": predicate.get("reviews") or [],
        "findings": findings[:max_findings],
        "hidden_findings": max(0, len(findings) - max_findings),
        "severity_totals": severity_totals,
        "provenance_verified": bool(predicate.get("provenanceVerified")),
        "provenance_reason": predicate.get("provenanceReason"),
        "verification": verification or Verification(signed=False),
        "marker": COMMENT_MARKER,
    }


def _render(
    name: str,
    autoescape: bool,
    statement: Mapping[str, Any],
    verification: Verification | None,
    template_dir: str | Path | None,
    max_files: int,
    max_findings: int,
) -> str:
    if max_files < 1 or max_findings < 0:
        raise ValueError("max_files must be >= 1 and max_findings >= 0")
    if template_dir is not None and not Path(template_dir).is_dir():
        raise InvalidPassportError("is not a directory", file=str(template_dir))
    env = _environment(str(template_dir) if template_dir is not None else None, autoescape)
    try:
        template = env.get_template(name)
        return template.render(_context(statement, verification, max_files, max_findings))
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidPassportError(
            f"template error: {exc.message}", file=exc.filename or name, line=exc.lineno
        ) from exc
    except jinja2.TemplateError as exc:
        raise InvalidPassportError(f"template error: {exc}", file=name) from exc


def render_markdown(
    statement: Mapping[str, Any],
    *,
    verification: Verification | None = None,
    template_dir: str | Path | None = None,
    max_files: int = 50,
    max_findings: int = 30,
) -> str:
    """The PR-comment Markdown of a passport (starts with :data:`COMMENT_MARKER`)."""
    return _render(
        "passport.md.j2", False, statement, verification, template_dir, max_files, max_findings
    )


def render_html(
    statement: Mapping[str, Any],
    *,
    verification: Verification | None = None,
    template_dir: str | Path | None = None,
    max_files: int = 500,
    max_findings: int = 200,
) -> str:
    """A self-contained, autoescaped HTML fragment of a passport for the dashboard."""
    return _render(
        "passport.html.j2", True, statement, verification, template_dir, max_files, max_findings
    )
