"""The passport id: SHA-256 over the RFC 8785 (JCS) canonical JSON of the statement."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from .errors import InvalidPassportError

__all__ = ["canonical_json", "passport_id"]


def canonical_json(value: Any) -> bytes:
    """``value`` as RFC 8785 canonical JSON bytes (sorted keys, no whitespace, JCS numbers)."""
    try:
        return rfc8785.dumps(value)
    except (ValueError, TypeError) as exc:  # rfc8785.CanonicalizationError is a ValueError
        # Lone surrogates, integers outside the I-JSON range, NaN, non-JSON types.
        raise InvalidPassportError(f"not canonicalizable as JSON: {exc}") from exc


def passport_id(statement: Mapping[str, Any]) -> str:
    """``"sha256:" + hex`` of the canonical JSON of ``statement``."""
    return "sha256:" + hashlib.sha256(canonical_json(statement)).hexdigest()
