"""HTTP routes for stored Change Passports (the passport package itself does no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from passport import PassportStore, StoredPassport, render_markdown
from writgate.errors import InputError
from writgate.web import app_state, request_org

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/passports", tags=["passports"])
Org = Annotated[str, Depends(request_org)]
PassportRef = Annotated[str, Path(description="A stored id (pp_…) or a passport id (sha256:…).")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (problem+json)."},
    404: {"description": "No such passport in the caller's org (problem+json)."},
    422: {"description": "Invalid request; `field` names the offending field (problem+json)."},
}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PassportSummary(_Model):
    """A stored passport without its statement."""

    id: str = Field(description="Stored id (pp_…).")
    passport_id: str = Field(description="sha256 of the canonical statement.")
    repository: str = Field(description="The repository of the change.")
    head_sha: str = Field(description="The head commit of the change.")
    created_at: datetime = Field(description="When it was stored.")
    signed: bool = Field(description="Whether a DSSE envelope is stored with it.")


class PassportOut(PassportSummary):
    """A stored passport: the in-toto statement and, when signed, its DSSE envelope."""

    statement: dict[str, Any] = Field(description="The in-toto Statement v1.")
    envelope: dict[str, Any] | None = Field(description="The DSSE envelope, when signed.")


class PassportList(_Model):
    """A page of passports, newest first."""

    items: list[PassportSummary] = Field(description="Passports, newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )


def _store(request: Request) -> PassportStore:
    return PassportStore(engine=app_state(request).engine)


def _summary(stored: StoredPassport) -> dict[str, Any]:
    return {
        "id": stored.id,
        "passport_id": stored.passport_id,
        "repository": stored.repository,
        "head_sha": stored.head_sha,
        "created_at": stored.created_at,
        "signed": stored.envelope is not None,
    }


@router.get(
    "",
    response_model=PassportList,
    operation_id="listPassports",
    summary="List stored passports",
    responses=_ERRORS,
)
async def list_passports(
    request: Request,
    org: Org,
    since: Annotated[
        str | None, Query(description="A duration such as 30d, or an ISO date.")
    ] = None,
    cursor: Annotated[
        str | None, Query(description="The `nextCursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
) -> PassportList:
    """The org's passports, newest first."""
    start = _since(since) if since else None
    if cursor is not None and not cursor.startswith("pp_"):
        raise InputError("cursor is not valid", field="cursor", code="invalid_cursor")
    page = await _store(request).list(org, since=start, limit=limit + 1, before=cursor)
    items = page[:limit]
    next_cursor = items[-1].id if len(page) > limit and items else None
    return PassportList(
        items=[PassportSummary(**_summary(p)) for p in items], next_cursor=next_cursor
    )


@router.get(
    "/{passport}",
    response_model=PassportOut,
    operation_id="getPassport",
    summary="Get a passport",
    responses=_ERRORS,
)
async def get_passport(passport: PassportRef, request: Request, org: Org) -> PassportOut:
    """A passport by stored id (pp_…) or by passport id (sha256:…)."""
    stored = await _store(request).get(org, passport)
    return PassportOut(**_summary(stored), statement=stored.statement, envelope=stored.envelope)


@router.get(
    "/{passport}/markdown",
    operation_id="renderPassportMarkdown",
    summary="The passport rendered as Markdown",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}, **_ERRORS},
)
async def passport_markdown(passport: PassportRef, request: Request, org: Org) -> PlainTextResponse:
    """The Markdown that writgate posts as the PR comment."""
    stored = await _store(request).get(org, passport)
    return PlainTextResponse(render_markdown(stored.statement), media_type="text/markdown")


def _since(text: str) -> datetime:
    units = {"d": 86400, "h": 3600, "m": 60}
    amount = text[:-1]
    try:
        if amount.isascii() and amount.isdigit() and text[-1] in units:
            return datetime.now(UTC) - timedelta(seconds=int(amount) * units[text[-1]])
        value = datetime.fromisoformat(text)
        # In UTC, as stored: a date at the edge of the calendar cannot be, and is refused here.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # "99999999999d" is past the calendar too
        raise InputError(
            "since must be a duration (30d, 12h) or an ISO date", field="since"
        ) from exc
