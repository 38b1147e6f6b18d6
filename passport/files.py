"""Passport files: a bare statement JSON or a DSSE envelope around it; both are accepted."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .digest import canonical_json
from .errors import InvalidPassportError
from .model import PREDICATE_TYPE, STATEMENT_TYPE

__all__ = [
    "PAYLOAD_TYPE",
    "LoadedPassport",
    "check_statement",
    "decode_base64",
    "dump_passport",
    "load_passport",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class LoadedPassport:
    """A passport read from a file: the statement, and the envelope when the file was signed.

    Loading does not verify the signature: use :func:`passport.verify_passport` for that.
    """

    statement: dict[str, Any]
    envelope: dict[str, Any] | None

    @property
    def signed(self) -> bool:
        return self.envelope is not None


def _parse_json(data: bytes, source: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPassportError("is not UTF-8 text", file=source) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPassportError(
            f"is not valid JSON: {exc.msg}", file=source, line=exc.lineno, column=exc.colno
        ) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise InvalidPassportError(f"is not valid JSON: {exc}", file=source) from exc
    except RecursionError as exc:
        raise InvalidPassportError("is not valid JSON: nested too deeply", file=source) from exc


def check_statement(statement: Any, source: str = "<passport>") -> dict[str, Any]:
    """Check that ``statement`` has the shape of a Change Passport statement; return it."""

    def fail(field: str, message: str) -> InvalidPassportError:
        return InvalidPassportError(message, file=source, field=field)

    if not isinstance(statement, dict):
        raise fail("statement", "must be a JSON object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise fail("_type", f"must be {STATEMENT_TYPE!r}, not {statement.get('_type')!r}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise fail("predicateType", f"must be {PREDICATE_TYPE!r}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise fail("subject", "must be a non-empty list")
    for i, subject in enumerate(subjects):
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), dict):
            raise fail(f"subject[{i}]", "must be an object with a digest")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise fail("predicate", "must be an object")
    change = predicate.get("change")
    if not isinstance(change, dict):
        raise fail("predicate.change", "must be an object")
    if not isinstance(change.get("files"), list):
        raise fail("predicate.change.files", "must be a list")
    if not isinstance(change.get("totals"), dict):
        raise fail("predicate.change.totals", "must be an object")
    for key in ("base", "head"):
        if not isinstance(change.get(key), dict) or not isinstance(change[key].get("sha"), str):
            raise fail(f"predicate.change.{key}.sha", "must be a string")
    if not isinstance(predicate.get("writer"), dict):
        raise fail("predicate.writer", "must be an object")
    for key in ("validation", "reviews"):
        if not isinstance(predicate.get(key, []), list):
            raise fail(f"predicate.{key}", "must be a list")
    for i, review in enumerate(predicate.get("reviews", [])):
        # Gates and renderers read findings and counts: their shape is part of the contract.
        if not isinstance(review, dict):
            raise fail(f"predicate.reviews[{i}]", "must be an object")
        findings = review.get("findings", [])
        if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
            raise fail(f"predicate.reviews[{i}].findings", "must be a list of objects")
        counts = review.get("counts", {})
        if not isinstance(counts, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values()
        ):
            raise fail(f"predicate.reviews[{i}].counts", "must map severities to counts")
    try:  # its id must be computable: no NaN, no integers past 2**53, no lone surrogates
        canonical_json(statement)
    except InvalidPassportError as exc:
        raise fail("statement", exc.message) from exc
    return statement


def decode_base64(text: str) -> bytes:
    """DSSE base64: standard or URL-safe alphabet, padding optional (as the spec allows)."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9+/_-]*={0,2}", text):
        raise ValueError("not base64")
    padded = text.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    alphabet = b"-_" if ("-" in text or "_" in text) else None
    return base64.b64decode(padded, altchars=alphabet, validate=True)


def _check_envelope(envelope: Mapping[str, Any], source: str) -> bytes:
    """The decoded payload of a DSSE envelope, after checking its shape and payload type."""
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise InvalidPassportError(
            f"must be {PAYLOAD_TYPE!r}, not {envelope.get('payloadType')!r}",
            file=source,
            field="payloadType",
        )
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not all(
        isinstance(s, dict) and isinstance(s.get("sig"), str) for s in signatures
    ):
        raise InvalidPassportError(
            "must be a list of {keyid, sig} objects", file=source, field="signatures"
        )
    payload = envelope.get("payload")
    if not isinstance(payload, str):
        raise InvalidPassportError("must be a base64 string", file=source, field="payload")
    try:
        return decode_base64(payload)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPassportError("is not valid base64", file=source, field="payload") from exc


def load_passport(path_or_bytes: str | Path | bytes) -> LoadedPassport:
    """Read a passport file (a path) or passport bytes: a bare statement or a DSSE envelope."""
    if isinstance(path_or_bytes, bytes):
        source, data = "<passport>", path_or_bytes
    else:
        source = str(path_or_bytes)
        try:
            data = Path(path_or_bytes).read_bytes()
        except OSError as exc:
            raise InvalidPassportError(f"cannot read: {exc.strerror or exc}", file=source) from exc
    document = _parse_json(data, source)
    if isinstance(document, dict) and "payloadType" in document:
        payload = _check_envelope(document, source)
        statement = _parse_json(payload, f"{source} (payload)")
        return LoadedPassport(check_statement(statement, f"{source} (payload)"), document)
    return LoadedPassport(check_statement(document, source), None)


def dump_passport(statement: Mapping[str, Any], envelope: Mapping[str, Any] | None = None) -> bytes:
    """The file form of a passport: the envelope when given, else the statement (indented)."""
    document = envelope if envelope is not None else statement
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
