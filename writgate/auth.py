"""API keys: ``wg_…`` bearer tokens, stored hashed, each bound to one org (DESIGN.md §5)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from . import db
from .errors import InputError, WritgateError
from .ids import new_id

__all__ = ["ApiKey", "KeyStore", "Unauthorized", "metadata"]

metadata = db.new_metadata()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_api_keys_org_id", "org_id"),
)

_ORG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Unauthorized(WritgateError):
    """A valid API key is required."""

    code = "unauthorized"


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret)."""

    id: str
    org_id: str
    name: str
    prefix: str
    created_at: datetime


def _key(row: Any) -> ApiKey:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return ApiKey(
        id=row.id, org_id=row.org_id, name=row.name, prefix=row.prefix, created_at=created
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    """Creates and checks API keys."""

    def __init__(self, *, engine: AsyncEngine):
        self.engine = engine

    async def create(self, org_id: str, *, name: str = "") -> tuple[ApiKey, str]:
        """A new key for ``org_id``: the record and the secret token (shown once)."""
        if not _ORG.match(org_id):
            raise InputError(
                f"org {org_id!r} is invalid: use lower-case letters, digits, '.', '_' or '-'",
                field="--org",
            )
        token = "wg_" + secrets.token_urlsafe(32)
        key = ApiKey(
            id=new_id("key"),
            org_id=org_id,
            name=name or "default",
            prefix=token[:10],
            created_at=datetime.now(UTC),
        )
        async with db.write(self.engine) as conn:
            await conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    org_id=org_id,
                    name=key.name,
                    key_hash=_hash(token),
                    prefix=key.prefix,
                    created_at=key.created_at,
                    revoked_at=None,
                )
            )
        return key, token

    async def authenticate(self, token: str) -> str:
        """The org of ``token``; :class:`Unauthorized` when it is unknown or revoked."""
        return (await self.identify(token)).org_id

    async def identify(self, token: str) -> ApiKey:
        """The active key of ``token``; :class:`Unauthorized` when it is unknown or revoked."""
        if not token.startswith("wg_"):
            raise Unauthorized("the API key is not valid")
        digest = _hash(token)
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(
                        api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
                    )
                )
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            raise Unauthorized("the API key is not valid")
        return _key(row)

    async def active(self, key_id: str) -> ApiKey | None:
        """The key ``key_id`` unless it is unknown or revoked (dashboard sessions re-check it)."""
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                )
            ).first()
        return _key(row) if row is not None else None

    async def revoke(self, key_id: str) -> None:
        """Revoke a key by id."""
        async with db.write(self.engine) as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=datetime.now(UTC))
            )
