"""Prefixed, time-sortable identifiers: ``run_01j9…`` (ULID-style, lower-case Crockford base32)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from datetime import datetime

__all__ = ["derived_id", "is_id", "new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_ID = re.compile(r"^[a-z]{1,8}_[0-9a-hjkmnp-tv-z]{26}$")
_lock = threading.Lock()
_last = (0, 0)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id with ``prefix``; ids made later in one process sort after earlier ones."""
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_rand = _last
        if ms <= last_ms:
            ms, rand = last_ms, last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last = (ms, rand)
    return f"{prefix}_{_encode(ms, 10)}{_encode(rand, 16)}"


def derived_id(prefix: str, key: str, *, at: datetime) -> str:
    """The id with ``prefix`` that ``key`` always gives (sorting by ``at``): an idempotency key
    turned into a primary key, so a second insert for the same ``key`` collides."""
    ms = int(at.timestamp() * 1000)
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:10], "big")
    return f"{prefix}_{_encode(ms, 10)}{_encode(digest, 16)}"


def is_id(value: str, prefix: str | None = None) -> bool:
    """Whether ``value`` looks like an id (with ``prefix`` when given)."""
    if not _ID.match(value):
        return False
    return prefix is None or value.startswith(prefix + "_")
