"""The ``passport`` stage: the Change Passport of the upstream change, stored and written to a file.

The writer section comes from the upstream writer stage of this very deployment, so its
provenance is verified by construction. ``with.signKey`` (or ``WRITGATE_SIGNING_KEY``) names a
PKCS#8 PEM key: the file is then a DSSE envelope, else the bare statement.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from passport import (
    PassportStore,
    build_passport,
    dump_passport,
    load_signing_key,
    passport_id,
    sign_statement,
)
from writgate.settings import Settings

from ..context import StageContext
from ..errors import StageFailure
from . import register
from ._change import resolve_change

__all__ = ["run_passport"]


def _validation(run_validation: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not run_validation or run_validation.get("result") not in ("PASSED", "WARNED", "FAILED"):
        return []
    counts = {k: int(run_validation.get(k) or 0) for k in ("passed", "failed", "skipped", "errors")}
    return [
        {
            "name": "tests",
            "result": run_validation["result"],
            "counts": counts,
            "command": run_validation.get("command") or "",
        }
    ]


async def run_passport(ctx: StageContext) -> Mapping[str, Any]:
    """Build, sign (optionally), store and write the passport."""
    change = await resolve_change(ctx)
    review = next(
        (s for s in ctx.upstream.values() if s.kind == "review" and s.status == "succeeded"), None
    )
    reviews = list(review.outputs.get("reviews", [])) if review else []
    writer = change.writer
    statement = await build_passport(
        change.repo,
        change.base,
        change.head,
        repository=change.repository,
        pull_request=change.pull_request,
        writer=writer,
        validation=_validation(change.validation),
        reviews=reviews,
        provenance_verified=writer is not None,
        provenance_reason=(
            f"built from writer run {writer['runId']} of this deployment"
            if writer
            else "no writer provenance"
        ),
    )
    key_path = ctx.params.get("signKey") or os.environ.get("WRITGATE_SIGNING_KEY")
    envelope = None
    if key_path:
        try:
            envelope = sign_statement(statement, load_signing_key(ctx.resolve_path(str(key_path))))
        except Exception as exc:  # the passport package's errors name the key problem
            raise StageFailure(f"signing the passport failed: {exc}", retryable=False) from exc
    if ctx.engine is None:
        raise StageFailure("the passport stage needs a database", retryable=False)
    stored = await PassportStore(engine=ctx.engine).save(ctx.org_id, statement, envelope)
    settings = ctx.settings or Settings.from_env()
    out = ctx.params.get("out")
    path = ctx.resolve_path(str(out)) if out else settings.home / "passports" / f"{stored.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dump_passport(statement, envelope))
    totals = statement["predicate"]["change"]["totals"]
    return {
        "passportId": passport_id(statement),
        "id": stored.id,
        "path": str(path),
        "signed": envelope is not None,
        "totals": totals,
    }


register("passport", run_passport)
