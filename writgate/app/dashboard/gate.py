"""Gate decisions (the page status checks link to) and passports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from judge.gate import MergeGate
from passport import (
    PassportError,
    PublicKey,
    StoredPassport,
    Verification,
    load_public_key,
    render_html,
    verify_envelope,
)
from writgate.web import app_state

from .pages import HtmlRoute, Viewer, page, viewer

__all__ = ["router", "trusted_keys", "verification_of"]

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

LoggedIn = Annotated[Viewer, Depends(viewer)]


def _gate(request: Request) -> MergeGate:
    gate: MergeGate = app_state(request).services["judge.gate"]
    return gate


def trusted_keys(environ: dict[str, str] | None = None) -> list[PublicKey]:
    """Keys a passport signature is checked against: the server's signing key
    (``WRITGATE_SIGNING_KEY``) and ``WRITGATE_TRUST_KEYS`` (PEM files, ``os.pathsep``-separated).
    """
    env = os.environ if environ is None else environ
    paths = [env.get("WRITGATE_SIGNING_KEY", "")]
    paths += env.get("WRITGATE_TRUST_KEYS", "").split(os.pathsep)
    keys = []
    for path in filter(None, (p.strip() for p in paths)):
        try:
            keys.append(load_public_key(Path(path)))
        except (OSError, PassportError):
            continue  # an unreadable key only means the signature cannot be checked with it
    return keys


def verification_of(stored: StoredPassport, keys: list[PublicKey]) -> Verification:
    """What is known about a stored passport's signature."""
    envelope = stored.envelope
    if envelope is None:
        return Verification(signed=False)
    offered = tuple(
        str(s.get("keyid") or "") for s in envelope.get("signatures") or [] if isinstance(s, dict)
    )
    if not keys:
        return Verification(signed=True, verified=None, keyids=offered, detail="no trusted key")
    try:
        verified = verify_envelope(envelope, keys)
    except PassportError as exc:
        return Verification(signed=True, verified=False, keyids=offered, detail=exc.message)
    return Verification(signed=True, verified=True, keyids=verified.keyids)


@router.get("/gate/decisions")
async def decisions_list(
    request: Request,
    who: LoggedIn,
    repository: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    """Merge-gate decisions, newest first."""
    found = await _gate(request).decisions.list(
        who.org, repository=(repository or "").strip() or None, limit=100
    )
    return page(request, "decisions.html", {"decisions": found, "repository": repository or ""})


@router.get("/gate/decisions/{decision_id}")
async def decision_page(decision_id: str, request: Request, who: LoggedIn) -> HTMLResponse:
    """A decision: every rule's state and reasons, the policy and its digest, staleness and the
    status that was published."""
    gate = _gate(request)
    decision = await gate.get(who.org, decision_id)
    others = []
    if decision.repository and decision.pr_number is not None:
        others = [
            d
            for d in await gate.decisions.list(
                who.org, repository=decision.repository, pr_number=decision.pr_number, limit=20
            )
            if d.id != decision.id
        ]
    policy = dict(decision.policy)
    descriptions = {
        str(rule.get("name")): rule.get("description")
        for rule in policy.get("rules") or []
        if isinstance(rule, dict)
    }
    context: dict[str, Any] = {
        "decision": decision,
        "json": decision.to_json(),
        "descriptions": descriptions,
        "policy_yaml": yaml.safe_dump(policy, sort_keys=False, allow_unicode=True)
        if policy
        else "",
        "others": others,
        "pr_link": (
            f"/forge/{decision.repository}/pulls/{decision.pr_number}"
            if decision.repository and decision.pr_number is not None
            else None
        ),
    }
    return page(request, "decision.html", context)


@router.get("/passports/{passport_id}")
async def passport_page(passport_id: str, request: Request, who: LoggedIn) -> HTMLResponse:
    """A stored passport, rendered, with its signature's verification state."""
    stored = await _gate(request).passports.get(who.org, passport_id)
    verification = verification_of(stored, trusted_keys())
    # render_html autoescapes every value of the statement; its output is a trusted fragment.
    rendered = Markup(render_html(stored.statement, verification=verification))
    predicate = stored.statement.get("predicate") or {}
    return page(
        request,
        "passport.html",
        {
            "stored": stored,
            "rendered": rendered,
            "verification": verification,
            "provenance_verified": bool(predicate.get("provenanceVerified")),
        },
    )
