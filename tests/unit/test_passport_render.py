"""Markdown and HTML rendering with Jinja2, truncation, escaping and user templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from passport import (
    COMMENT_MARKER,
    DiffFacts,
    FileStat,
    InvalidPassportError,
    Verification,
    render_html,
    render_markdown,
)
from tests.unit.passport_samples import sample_statement

FINDING = {
    "reviewer": "secrets",
    "rule": "aws-access-key",
    "severity": "error",
    "path": "src/a.py",
    "startLine": 3,
    "endLine": 3,
    "message": "AWS key <script>alert(1)</script> | pipe",
    "suggestion": None,
    "fingerprint": "f" * 16,
}


def test_markdown_has_totals_writer_validation_findings_and_state() -> None:
    statement = sample_statement(
        validation=[
            {
                "name": "tests",
                "result": "FAILED",
                "counts": {"passed": 3, "failed": 1},
                "command": "pytest -q",
            }
        ],
        reviews=[{"reviewer": "secrets", "findings": [FINDING, {**FINDING, "severity": "info"}]}],
        provenance_verified=True,
        provenance_reason="signed provenance verified",
    )
    text = render_markdown(
        statement, verification=Verification(signed=True, verified=True, keyids=("ab" * 32,))
    )
    assert text.startswith(COMMENT_MARKER)
    assert "**3** files changed · **+6** / **\u22123** (9 lines)" in text
    assert "| modified | src/module_0.py | 1 | 0 |" in text
    assert "run `run_01hx`" in text and "`ci`, `payments`" in text
    assert "`ticket`=`PAY-742`" in text
    assert "| tests | **FAILED** | 3 | 1 | 0 | 0 |" in text
    assert "1 error · 0 warnings · 1 info (secrets)" in text
    assert "✅ writer provenance verified" in text
    assert "signature verified (key abababababababab)" in text
    # Finding messages cannot break the table or inject HTML.
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| pipe" in text
    # Errors are listed before infos.
    assert text.index("| error | secrets") < text.index("| info | secrets")


def test_huge_prs_are_truncated_with_a_count() -> None:
    statement = sample_statement(files=1234)
    text = render_markdown(statement)
    assert text.count("| modified |") == 50
    assert "… and 1184 more files" in text
    assert "src/module_49.py" in text and "src/module_50.py" not in text
    assert "**1234** files changed" in text
    assert render_markdown(statement, max_files=5).count("| modified |") == 5
    html = render_html(statement)
    assert html.count('<tr class="modified">') == 500
    assert "… and 734 more files." in html


def test_markdown_escapes_paths_and_shows_renames_and_binaries() -> None:
    files = (
        FileStat("a|b.py", "old `name`.py", "renamed", 1, 1, False),
        FileStat("logo.png", None, "added", 0, 0, True),
    )
    statement = sample_statement(diff=DiffFacts(b"x", "0" * 64, files))
    text = render_markdown(statement)
    assert "| renamed | old `name`.py → a\\|b.py | 1 | 1 |" in text
    assert "| added | logo.png | binary |  |" in text
    assert "⚠️ writer provenance **not verified**" in text
    assert "passport unsigned" in text


def test_html_is_autoescaped() -> None:
    statement = sample_statement(
        reviews=[{"reviewer": "secrets", "findings": [FINDING]}],
        writer={"kind": "external", "title": "<img src=x onerror=alert(1)>", "tags": ["<b>"]},
    )
    html = render_html(statement)
    assert "<img" not in html and "<b>" not in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;" in html
    assert html.startswith('<section class="passport" data-passport-id="sha256:')


def test_user_templates_override_the_builtin_ones(tmp_path: Path) -> None:
    (tmp_path / "passport.md.j2").write_text(
        '{% extends "builtin/passport.md.j2" %}'
        "{% block writer %}\nWRITER BY {{ writer.kind | upper }}\n{% endblock %}"
    )
    text = render_markdown(sample_statement(), template_dir=tmp_path)
    assert "WRITER BY AGENT" in text
    assert "### Writer" not in text
    assert "files changed" in text  # the other blocks are the built-in ones
    # The HTML template was not overridden: the built-in one is used.
    assert "<h3>Writer</h3>" in render_html(sample_statement(), template_dir=tmp_path)


def test_missing_template_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidPassportError, match="nope: is not a directory"):
        render_markdown(sample_statement(), template_dir=tmp_path / "nope")


def test_broken_user_template_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "passport.md.j2").write_text("line one\n{% if %}\n")
    with pytest.raises(InvalidPassportError, match=r"passport.md.j2:2: template error"):
        render_markdown(sample_statement(), template_dir=tmp_path)


def test_sparse_statement_still_renders() -> None:
    statement = sample_statement()
    del statement["predicate"]["validation"]
    statement["predicate"]["writer"] = {"kind": "human"}
    assert "kind: **human**" in render_markdown(statement)
