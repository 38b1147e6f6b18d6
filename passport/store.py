"""Stored passports: one row per (org, passport id), saved idempotently."""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from writgate import db
from writgate.errors import NotFoundError
from writgate.ids import new_id

from .digest import canonical_json, passport_id
from .errors import InvalidPassportError, PassportError
from .files import PAYLOAD_TYPE, check_statement, decode_base64
from .tables import passports

__all__ = ["PassportNotFound", "PassportStore", "StoredPassport"]

_MAX_LIMIT = 1000


class PassportNotFound(PassportError, NotFoundError):
    """The passport was not found."""

    code = "passport_not_found"


@dataclass(frozen=True)
class StoredPassport:
    """A passport in the database (contract 1)."""

    id: str
    passport_id: str
    repository: str
    head_sha: str
    created_at: datetime
    statement: dict[str, Any]
    envelope: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The API form: camelCase keys, ISO timestamps."""
        return {
            "id": self.id,
            "passportId": self.passport_id,
            "repository": self.repository,
            "headSha": self.head_sha,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "statement": self.statement,
            "envelope": self.envelope,
        }


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _from_row(row: Row[Any]) -> StoredPassport:
    return StoredPassport(
        id=row.id,
        passport_id=row.passport_id,
        repository=row.repository,
        head_sha=row.head_sha,
        created_at=_aware(row.created_at),
        statement=row.statement,
        envelope=row.envelope,
    )


def _check_envelope_matches(statement: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
    """The envelope must carry exactly this statement (its signature is checked elsewhere)."""
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise InvalidPassportError(f"must be {PAYLOAD_TYPE!r}", field="envelope.payloadType")
    try:
        payload = decode_base64(str(envelope.get("payload", "")))
    except (binascii.Error, ValueError) as exc:
        raise InvalidPassportError("is not valid base64", field="envelope.payload") from exc
    try:
        carried = json.loads(payload)
    except ValueError as exc:
        raise InvalidPassportError("is not JSON", field="envelope.payload") from exc
    if canonical_json(carried) != canonical_json(statement):
        raise InvalidPassportError(
            "the envelope's payload is not this statement", field="envelope.payload"
        )


class PassportStore:
    """Passports in the database, per org."""

    def __init__(self, *, engine: AsyncEngine):
        self.engine = engine

    async def save(
        self,
        org_id: str,
        statement: Mapping[str, Any],
        envelope: Mapping[str, Any] | None = None,
    ) -> StoredPassport:
        """Store a passport; saving the same statement again returns the stored one.

        A signed copy (``envelope``) saved after an unsigned one is attached to the stored row.
        """
        statement = check_statement(dict(statement), "statement")
        if envelope is not None:
            _check_envelope_matches(statement, envelope)
        digest = passport_id(statement)
        head = statement["predicate"]["change"]["head"]["sha"]
        repository = str(statement["predicate"]["change"].get("repository") or "")
        async with db.write(self.engine) as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            await conn.execute(
                dialect.insert(passports)
                .values(
                    id=new_id("pp"),
                    org_id=org_id,
                    passport_id=digest,
                    repository=repository,
                    head_sha=head,
                    created_at=datetime.now(UTC),
                    statement=statement,
                    envelope=dict(envelope) if envelope is not None else None,
                )
                .on_conflict_do_nothing(index_elements=["org_id", "passport_id"])
            )
            where = (passports.c.org_id == org_id) & (passports.c.passport_id == digest)
            if envelope is not None:
                await conn.execute(
                    passports.update()
                    .where(where & passports.c.envelope.is_(None))
                    .values(envelope=dict(envelope))
                )
            row = (await conn.execute(select(passports).where(where))).one()
        return _from_row(row)

    async def get(self, org_id: str, id_or_passport_id: str) -> StoredPassport:
        """A stored passport by its row id (``pp_…``) or passport id (``sha256:…``)."""
        column = (
            passports.c.passport_id if id_or_passport_id.startswith("sha256:") else passports.c.id
        )
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(passports).where(
                        passports.c.org_id == org_id, column == id_or_passport_id
                    )
                )
            ).first()
        if row is None:
            raise PassportNotFound(f"passport {id_or_passport_id} not found")
        return _from_row(row)

    async def list(
        self,
        org_id: str,
        since: datetime | None = None,
        limit: int = 50,
        *,
        before: str | None = None,
    ) -> list[StoredPassport]:
        """The org's passports, newest first; ``since`` keeps those created at or after it.

        ``before`` (a stored id, ``pp_…``) continues a listing after that passport.
        """
        if not 1 <= limit <= _MAX_LIMIT:
            raise InvalidPassportError(f"must be between 1 and {_MAX_LIMIT}", field="limit")
        query = select(passports).where(passports.c.org_id == org_id)
        if since is not None:
            if since.tzinfo is None:
                raise InvalidPassportError("must be timezone-aware", field="since")
            query = query.where(passports.c.created_at >= since.astimezone(UTC))
        if before is not None:
            query = query.where(passports.c.id < before)
        query = query.order_by(passports.c.id.desc()).limit(limit)
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [_from_row(row) for row in rows]
