"""The body of a run's pull request (DESIGN.md §4.5): summary, validation, usage, provenance.

The body is rendered with Jinja2 and ends with the run's provenance block
(:func:`passport.render_provenance_block`): the writer section of the run — run id, chain,
agent, model, prompt SHA-256, title, tags, metadata, intent, usage, sandbox — and the PR's head
SHA, signed with the instance key (``WRITGATE_SIGNING_KEY``: a PKCS#8 PEM file, or the PEM
itself; ``WRITGATE_SIGNING_KEY_PASSWORD`` if it is encrypted). The judge trusts the block only
when it verifies (:func:`passport.recover_provenance`). Without a key the block is rendered
*unsigned* and says so; the judge then finds no signed provenance, as it should.

Every value a run's creator chose (title, tags, metadata) is escaped, so none can smuggle a
second provenance block or markup into the body.
"""

from __future__ import annotations

import base64
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from passport import SigningKey, canonical_json, load_signing_key, render_provenance_block
from passport.errors import PassportError
from passport.model import normalize_writer, writer_from_run
from passport.provenance import PROVENANCE_TYPE
from writgate.errors import ConfigError

from .store import RunRecord

__all__ = [
    "SIGNING_KEY_ENV",
    "render_pr_body",
    "render_unsigned_block",
    "run_writer_section",
    "signing_key_from_env",
]

SIGNING_KEY_ENV = "WRITGATE_SIGNING_KEY"
PASSWORD_ENV = "WRITGATE_SIGNING_KEY_PASSWORD"
UNSIGNED_MARKER = "writgate-provenance v1 unsigned"


_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _safe_text(value: Any) -> str:
    """Plain text for Markdown: no HTML (and so no comment or provenance block), one line."""
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


_ENV.filters["safe_text"] = _safe_text
_BODY = _ENV.from_string(Path(__file__).with_name("pr_body.md.j2").read_text("utf-8"))


def signing_key_from_env(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The instance's provenance signing key from ``WRITGATE_SIGNING_KEY``, if set.

    The value is a path to a PKCS#8 PEM private key (ed25519 or ECDSA P-256) or the PEM text
    itself. A key that cannot be loaded is a :class:`ConfigError` (found at start-up, not at
    the first publish).
    """
    environ = os.environ if environ is None else environ
    source = (environ.get(SIGNING_KEY_ENV) or "").strip()
    if not source:
        return None
    password = environ.get(PASSWORD_ENV)
    key_source: bytes | Path = (
        source.encode() if source.startswith("-----BEGIN") else Path(source).expanduser()
    )
    try:
        return load_signing_key(key_source, password.encode() if password else None)
    except PassportError as exc:
        where = "its PEM value" if isinstance(key_source, bytes) else str(key_source)
        raise ConfigError(
            f"{SIGNING_KEY_ENV} ({where}) is not a usable signing key: {exc}"
        ) from exc


def run_writer_section(
    record: RunRecord, *, driver: str, usage: Mapping[str, Any], sandbox_provider: str
) -> dict[str, Any]:
    """The passport writer section of ``record`` (what the provenance block signs)."""
    request = record.request
    return writer_from_run(
        {
            "id": record.id,
            "chain": record.chain,
            "agent": {"driver": driver},
            "modelId": request.get("modelId"),
            "prompt": request.get("prompt"),
            "title": record.title,
            "tags": request.get("tags", []),
            "metadata": request.get("metadata", {}),
            "intent": record.intent or None,
            "usage": dict(usage),
            "safety": request.get("safety"),
            "sandbox": {"provider": sandbox_provider},
            "startedAt": record.started_at.isoformat().replace("+00:00", "Z")
            if record.started_at
            else None,
        }
    )


def render_unsigned_block(writer: Mapping[str, Any], *, head_sha: str, run_id: str) -> str:
    """The provenance payload without a signature, marked as such (no key is configured).

    Its marker differs from the signed block's, so no verifier mistakes it for one.
    """
    section = normalize_writer(writer)
    payload = {"_type": PROVENANCE_TYPE, "runId": run_id, "headSha": head_sha, "writer": section}
    encoded = base64.b64encode(canonical_json(payload)).decode("ascii")
    body = "\n".join(textwrap.wrap(encoded, 76))
    return (
        f"> writgate run `{run_id}` · provenance **unsigned** (no {SIGNING_KEY_ENV} is "
        f"configured on this instance)\n<!-- {UNSIGNED_MARKER}\n{body}\n-->\n"
    )


def render_pr_body(
    record: RunRecord,
    *,
    head_sha: str,
    driver: str,
    usage: Mapping[str, Any],
    validation: Mapping[str, Any] | None,
    key: SigningKey | None,
    sandbox_provider: str = "local",
    summary: str | None = None,
) -> str:
    """The PR body of ``record`` at ``head_sha``, ending with its provenance block."""
    request = record.request
    text = _BODY.render(
        title=record.title,
        run_id=record.id,
        parent=record.parent_run_id,
        agent=driver,
        model=request.get("modelId"),
        intent=record.intent or {},
        tags=request.get("tags", []),
        metadata=request.get("metadata", {}),
        usage={"turns": 0, "credits": 0, "inputTokens": 0, "outputTokens": 0, **usage},
        validation=validation,
        validation_mode=request.get("validationMode", "none"),
        summary=summary,
    )
    writer = run_writer_section(
        record, driver=driver, usage=usage, sandbox_provider=sandbox_provider
    )
    if key is None:
        block = render_unsigned_block(writer, head_sha=head_sha, run_id=record.id)
    else:
        block = render_provenance_block(writer, head_sha=head_sha, key=key, run_id=record.id)
    return text + block
