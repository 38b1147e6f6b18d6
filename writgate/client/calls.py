"""Every endpoint the client covers, as a transport-free description of its request.

:class:`Client` and :class:`AsyncClient` only differ in how they send a :class:`Call`; what a
method sends and how its answer is parsed is written once, here. Response models are the
server's own pydantic models, imported when a call is built (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

if TYPE_CHECKING:
    from judge.api import DecisionList, DecisionOut, RefreshOut, ReviewRunList, ReviewRunOut
    from pipelines.api import PipelineRunList, PipelineRunOut, ValidationOut
    from writer.api import ModelList
    from writer.lifecycle import Lifecycle
    from writer.models import CreateRunRequest, Run, RunList, RunStatus
    from writgate.app.passports_api import PassportList, PassportOut
    from writgate.sse import LedgerEventList
    from writgate.webhooks.models import (
        WebhookDelivery,
        WebhookDeliveryList,
        WebhookEndpoint,
        WebhookEndpointList,
        WebhookEndpointWithSecret,
        WebhookEventFamilyList,
    )

__all__ = ["CODING_AGENT", "Call"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

CODING_AGENT = "/api/v1/coding-agent"
PIPELINES = "/api/v1"
REVIEW_RUNS = "/api/v1/review-runs"
MERGE_GATE = "/api/v1/merge-gate"
PASSPORTS = "/api/v1/passports"
WEBHOOKS = "/api/v1/webhooks"

Params = list[tuple[str, str]]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request: what to send, whether it is safe to repeat, and how to read the answer."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    parse: Callable[[httpx.Response], T]
    params: Params = field(default_factory=list)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    safe: bool = False
    """Repeating the request cannot repeat an effect (a read, or a create with a key)."""


def segment(value: str | int) -> str:
    """``value`` as one path segment (ids are never allowed to add path levels)."""
    text = str(value)
    if not text:
        raise ValueError("an id must not be empty")
    return quote(text, safe="")


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: cls.model_validate(response.json())


def _json(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object from {response.request.url.path}")
    return body


def _text(response: httpx.Response) -> str:
    return response.text


def _add(params: Params, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        params.append((name, "true" if value else "false"))
    else:
        params.append((name, str(getattr(value, "value", value))))


def _body(value: BaseModel | Mapping[str, Any]) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return dict(value)


# --- coding-agent runs (DESIGN.md §4) -----------------------------------------------------------


def create_run(request: CreateRunRequest | Mapping[str, Any], *, idempotency_key: str) -> Call[Run]:
    """``POST /runs`` with an Idempotency-Key: safe to repeat."""
    from writer.models import Run

    return Call(
        "POST",
        f"{CODING_AGENT}/runs",
        _model(Run),
        json=_body(request),
        headers={"Idempotency-Key": idempotency_key},
        safe=True,
    )


def list_runs(
    *,
    tags: Iterable[str] = (),
    metadata: Mapping[str, str | int | float | bool] | None = None,
    lifecycle: Iterable[Lifecycle | str] = (),
    repository: str | None = None,
    intent: str | None = None,
    parent_run_id: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Call[RunList]:
    """``GET /runs`` with its filters."""
    from writer.models import RunList

    params: Params = []
    for tag in tags:
        _add(params, "tag", tag)
    for key, value in (metadata or {}).items():
        _add(params, f"metadata.{key}", value)
    for state in lifecycle:
        _add(params, "lifecycle", state)
    _add(params, "repository", repository)
    _add(params, "intent", intent)
    _add(params, "parentRunId", parent_run_id)
    _add(params, "cursor", cursor)
    _add(params, "limit", limit)
    return Call("GET", f"{CODING_AGENT}/runs", _model(RunList), params=params, safe=True)


def get_run(run_id: str) -> Call[Run]:
    """``GET /runs/{id}``."""
    from writer.models import Run

    return Call("GET", f"{CODING_AGENT}/runs/{segment(run_id)}", _model(Run), safe=True)


def get_run_status(run_id: str) -> Call[RunStatus]:
    """``GET /runs/{id}/status``."""
    from writer.models import RunStatus

    path = f"{CODING_AGENT}/runs/{segment(run_id)}/status"
    return Call("GET", path, _model(RunStatus), safe=True)


def list_run_events(
    run_id: str, *, after: int = 0, limit: int | None = None
) -> Call[LedgerEventList]:
    """``GET /runs/{id}/events``: events with ``seq > after``."""
    from writgate.sse import LedgerEventList

    params: Params = []
    _add(params, "after", after)
    _add(params, "limit", limit)
    path = f"{CODING_AGENT}/runs/{segment(run_id)}/events"
    return Call("GET", path, _model(LedgerEventList), params=params, safe=True)


def send_message(
    run_id: str, text: str, *, fallback: Literal["none", "chain"] = "none"
) -> Call[Run]:
    """``POST /runs/{id}/messages``: not repeatable (a second turn would run)."""
    from writer.models import FollowUpRequest, Run

    body = FollowUpRequest(text=text, fallback=fallback)
    path = f"{CODING_AGENT}/runs/{segment(run_id)}/messages"
    return Call("POST", path, _model(Run), json=_body(body))


def complete_run(run_id: str) -> Call[Run]:
    """``POST /runs/{id}/complete``."""
    from writer.models import Run

    return Call("POST", f"{CODING_AGENT}/runs/{segment(run_id)}/complete", _model(Run))


def cancel_run(run_id: str) -> Call[Run]:
    """``POST /runs/{id}/cancel``."""
    from writer.models import Run

    return Call("POST", f"{CODING_AGENT}/runs/{segment(run_id)}/cancel", _model(Run))


def list_models() -> Call[ModelList]:
    """``GET /models``: the model catalog."""
    from writer.api import ModelList

    return Call("GET", f"{CODING_AGENT}/models", _model(ModelList), safe=True)


def run_stream_path(run_id: str) -> str:
    """The SSE endpoint of a run."""
    return f"{CODING_AGENT}/runs/{segment(run_id)}/stream"


# --- pipelines (DESIGN.md §11) ----------------------------------------------------------------


def _pipeline_source(
    path: str | None, yaml: str | None, spec: Mapping[str, Any] | None, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    given = [name for name, value in (("path", path), ("yaml", yaml), ("spec", spec)) if value]
    if len(given) != 1:
        raise ValueError("give exactly one of path, yaml or spec")
    body: dict[str, Any] = {"inputs": dict(inputs)}
    if path is not None:
        body["path"] = path
    elif yaml is not None:
        body["yaml"] = yaml
    else:
        body["spec"] = dict(spec or {})
    return body


def start_pipeline(
    *,
    path: str | None = None,
    yaml: str | None = None,
    spec: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    idempotency_key: str,
) -> Call[PipelineRunOut]:
    """``POST /pipelines`` with an Idempotency-Key: safe to repeat."""
    from pipelines.api import PipelineRunOut

    body = _pipeline_source(path, yaml, spec, inputs or {})
    return Call(
        "POST",
        f"{PIPELINES}/pipelines",
        _model(PipelineRunOut),
        json=body,
        headers={"Idempotency-Key": idempotency_key},
        safe=True,
    )


def validate_pipeline(
    *, path: str | None = None, yaml: str | None = None, spec: Mapping[str, Any] | None = None
) -> Call[ValidationOut]:
    """``POST /pipelines/validate``: no effect, so safe to repeat."""
    from pipelines.api import ValidationOut

    body = _pipeline_source(path, yaml, spec, {})
    path_ = f"{PIPELINES}/pipelines/validate"
    return Call("POST", path_, _model(ValidationOut), json=body, safe=True)


def list_pipeline_runs(
    *, status: Iterable[str] = (), name: str | None = None, limit: int | None = None
) -> Call[PipelineRunList]:
    """``GET /pipeline-runs``."""
    from pipelines.api import PipelineRunList

    params: Params = []
    for value in status:
        _add(params, "status", value)
    _add(params, "name", name)
    _add(params, "limit", limit)
    path = f"{PIPELINES}/pipeline-runs"
    return Call("GET", path, _model(PipelineRunList), params=params, safe=True)


def get_pipeline_run(run_id: str) -> Call[PipelineRunOut]:
    """``GET /pipeline-runs/{id}``."""
    from pipelines.api import PipelineRunOut

    path = f"{PIPELINES}/pipeline-runs/{segment(run_id)}"
    return Call("GET", path, _model(PipelineRunOut), safe=True)


def cancel_pipeline_run(run_id: str, *, reason: str | None = None) -> Call[PipelineRunOut]:
    """``POST /pipeline-runs/{id}/cancel``."""
    from pipelines.api import PipelineRunOut

    body = {"reason": reason} if reason is not None else None
    path = f"{PIPELINES}/pipeline-runs/{segment(run_id)}/cancel"
    return Call("POST", path, _model(PipelineRunOut), json=body)


def list_pipeline_run_events(
    run_id: str, *, after: int = 0, limit: int | None = None
) -> Call[LedgerEventList]:
    """``GET /pipeline-runs/{id}/events``."""
    from writgate.sse import LedgerEventList

    params: Params = []
    _add(params, "after", after)
    _add(params, "limit", limit)
    path = f"{PIPELINES}/pipeline-runs/{segment(run_id)}/events"
    return Call("GET", path, _model(LedgerEventList), params=params, safe=True)


def pipeline_stream_path(run_id: str) -> str:
    """The SSE endpoint of a pipeline run."""
    return f"{PIPELINES}/pipeline-runs/{segment(run_id)}/stream"


# --- judge: review runs and the merge gate (DESIGN.md §10) --------------------------------------


def create_review_run(
    repository: str,
    *,
    pull_request: int | None = None,
    base: str | None = None,
    head: str | None = None,
    reviewers: Iterable[str] | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> Call[ReviewRunOut]:
    """``POST /review-runs``: not repeatable (each call stores a review run)."""
    from judge.api import ReviewRunOut

    body: dict[str, Any] = {"repository": repository}
    if pull_request is not None:
        body["pullRequest"] = pull_request
    if base is not None:
        body["base"] = base
    if head is not None:
        body["head"] = head
    if reviewers is not None:
        body["reviewers"] = list(reviewers)
    if config is not None:
        body["config"] = {name: dict(options) for name, options in config.items()}
    return Call("POST", REVIEW_RUNS, _model(ReviewRunOut), json=body)


def list_review_runs(
    *,
    repository: str | None = None,
    head_sha: str | None = None,
    pull_request: int | None = None,
    before: str | None = None,
    limit: int | None = None,
) -> Call[ReviewRunList]:
    """``GET /review-runs``: a page without findings (pass ``nextCursor`` as ``before``)."""
    from judge.api import ReviewRunList

    params: Params = []
    _add(params, "repository", repository)
    _add(params, "headSha", head_sha)
    _add(params, "pullRequest", pull_request)
    _add(params, "before", before)
    _add(params, "limit", limit)
    return Call("GET", REVIEW_RUNS, _model(ReviewRunList), params=params, safe=True)


def get_review_run(run_id: str) -> Call[ReviewRunOut]:
    """``GET /review-runs/{id}``: the run with its findings."""
    from judge.api import ReviewRunOut

    return Call("GET", f"{REVIEW_RUNS}/{segment(run_id)}", _model(ReviewRunOut), safe=True)


def export_review_run(run_id: str, *, format: Literal["rdjson", "sarif"]) -> Call[dict[str, Any]]:
    """``GET /review-runs/{id}?format=rdjson|sarif``: the findings as reviewdog rdjson or SARIF."""
    if format not in ("rdjson", "sarif"):
        raise ValueError("format must be rdjson or sarif")
    path = f"{REVIEW_RUNS}/{segment(run_id)}"
    return Call("GET", path, _json, params=[("format", format)], safe=True)


def evaluate_gate(
    policy: str,
    *,
    passport: Mapping[str, Any] | None = None,
    pr_state: Mapping[str, Any] | None = None,
    repository: str | None = None,
    pull_request: int | None = None,
    reviewers: Iterable[str] | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    publish: bool = False,
) -> Call[DecisionOut]:
    """``POST /merge-gate/evaluate``: not repeatable (stores, and may publish, a decision)."""
    from judge.api import DecisionOut

    body: dict[str, Any] = {"policy": policy, "publish": publish}
    if passport is not None:
        body["passport"] = dict(passport)
    if pr_state is not None:
        body["prState"] = dict(pr_state)
    if repository is not None:
        body["repository"] = repository
    if pull_request is not None:
        body["pullRequest"] = pull_request
    if reviewers is not None:
        body["reviewers"] = list(reviewers)
    if config is not None:
        body["config"] = {name: dict(options) for name, options in config.items()}
    return Call("POST", f"{MERGE_GATE}/evaluate", _model(DecisionOut), json=body)


def refresh_gate(repository: str, pull_request: int, *, publish: bool = True) -> Call[RefreshOut]:
    """``POST /merge-gate/refresh``: the new decision, or null when the head moved (stale)."""
    from judge.api import RefreshOut

    body = {"repository": repository, "pullRequest": pull_request, "publish": publish}
    return Call("POST", f"{MERGE_GATE}/refresh", _model(RefreshOut), json=body)


def list_gate_decisions(
    *,
    repository: str | None = None,
    pull_request: int | None = None,
    status: Literal["current", "superseded", "stale"] | None = None,
    limit: int | None = None,
) -> Call[DecisionList]:
    """``GET /merge-gate/decisions``: newest first."""
    from judge.api import DecisionList

    params: Params = []
    _add(params, "repository", repository)
    _add(params, "pullRequest", pull_request)
    _add(params, "status", status)
    _add(params, "limit", limit)
    return Call("GET", f"{MERGE_GATE}/decisions", _model(DecisionList), params=params, safe=True)


def get_gate_decision(decision_id: str) -> Call[DecisionOut]:
    """``GET /merge-gate/decisions/{id}``: with every rule's state and reasons."""
    from judge.api import DecisionOut

    path = f"{MERGE_GATE}/decisions/{segment(decision_id)}"
    return Call("GET", path, _model(DecisionOut), safe=True)


# --- passports (DESIGN.md §8) ------------------------------------------------------------------


def list_passports(
    *, since: str | None = None, cursor: str | None = None, limit: int | None = None
) -> Call[PassportList]:
    """``GET /passports``: stored passports, newest first (``since``: 30d, 12h or a date)."""
    from writgate.app.passports_api import PassportList

    params: Params = []
    _add(params, "since", since)
    _add(params, "cursor", cursor)
    _add(params, "limit", limit)
    return Call("GET", PASSPORTS, _model(PassportList), params=params, safe=True)


def get_passport(passport: str) -> Call[PassportOut]:
    """``GET /passports/{id}``: by stored id (pp_…) or passport id (sha256:…)."""
    from writgate.app.passports_api import PassportOut

    return Call("GET", f"{PASSPORTS}/{segment(passport)}", _model(PassportOut), safe=True)


def get_passport_markdown(passport: str) -> Call[str]:
    """``GET /passports/{id}/markdown``: the passport as the PR comment renders it."""
    path = f"{PASSPORTS}/{segment(passport)}/markdown"
    return Call("GET", path, _text, headers={"Accept": "text/markdown"}, safe=True)


# --- webhooks (DESIGN.md §4.6) -----------------------------------------------------------------


def _none(_response: httpx.Response) -> None:
    return None


def list_webhook_event_types() -> Call[WebhookEventFamilyList]:
    """``GET /webhooks/event-types``."""
    from writgate.webhooks.models import WebhookEventFamilyList

    path = f"{WEBHOOKS}/event-types"
    return Call("GET", path, _model(WebhookEventFamilyList), safe=True)


def create_webhook_endpoint(
    url: str, event_types: Iterable[str], *, description: str = ""
) -> Call[WebhookEndpointWithSecret]:
    """``POST /webhooks``: not repeatable (each call subscribes a new endpoint)."""
    from writgate.webhooks.models import WebhookEndpointWithSecret

    body = {"url": url, "eventTypes": list(event_types), "description": description}
    return Call("POST", WEBHOOKS, _model(WebhookEndpointWithSecret), json=body)


def list_webhook_endpoints(
    *, cursor: str | None = None, limit: int | None = None
) -> Call[WebhookEndpointList]:
    """``GET /webhooks``."""
    from writgate.webhooks.models import WebhookEndpointList

    params: Params = []
    _add(params, "cursor", cursor)
    _add(params, "limit", limit)
    return Call("GET", WEBHOOKS, _model(WebhookEndpointList), params=params, safe=True)


def get_webhook_endpoint(webhook_id: str) -> Call[WebhookEndpoint]:
    """``GET /webhooks/{id}``."""
    from writgate.webhooks.models import WebhookEndpoint

    return Call("GET", f"{WEBHOOKS}/{segment(webhook_id)}", _model(WebhookEndpoint), safe=True)


def update_webhook_endpoint(
    webhook_id: str,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> Call[WebhookEndpoint]:
    """``PATCH /webhooks/{id}``: sets the given fields, so repeating it changes nothing more."""
    from writgate.webhooks.models import WebhookEndpoint

    body: dict[str, Any] = {}
    if url is not None:
        body["url"] = url
    if event_types is not None:
        body["eventTypes"] = list(event_types)
    if description is not None:
        body["description"] = description
    if enabled is not None:
        body["enabled"] = enabled
    path = f"{WEBHOOKS}/{segment(webhook_id)}"
    return Call("PATCH", path, _model(WebhookEndpoint), json=body, safe=True)


def delete_webhook_endpoint(webhook_id: str) -> Call[None]:
    """``DELETE /webhooks/{id}`` (a repeat would answer 404: not retried blindly)."""
    return Call("DELETE", f"{WEBHOOKS}/{segment(webhook_id)}", _none)


def rotate_webhook_secret(
    webhook_id: str, *, grace_seconds: int | None = None
) -> Call[WebhookEndpointWithSecret]:
    """``POST /webhooks/{id}/rotate-secret``: not repeatable (each call makes a new secret)."""
    from writgate.webhooks.models import WebhookEndpointWithSecret

    body = {"graceSeconds": grace_seconds} if grace_seconds is not None else None
    path = f"{WEBHOOKS}/{segment(webhook_id)}/rotate-secret"
    return Call("POST", path, _model(WebhookEndpointWithSecret), json=body)


def test_webhook_endpoint(webhook_id: str) -> Call[WebhookDelivery]:
    """``POST /webhooks/{id}/test``: sends one ``webhook.test`` message now."""
    from writgate.webhooks.models import WebhookDelivery

    path = f"{WEBHOOKS}/{segment(webhook_id)}/test"
    return Call("POST", path, _model(WebhookDelivery))


def list_webhook_deliveries(
    webhook_id: str,
    *,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Call[WebhookDeliveryList]:
    """``GET /webhooks/{id}/deliveries``."""
    from writgate.webhooks.models import WebhookDeliveryList

    params: Params = []
    _add(params, "status", status)
    _add(params, "cursor", cursor)
    _add(params, "limit", limit)
    path = f"{WEBHOOKS}/{segment(webhook_id)}/deliveries"
    return Call("GET", path, _model(WebhookDeliveryList), params=params, safe=True)


def get_webhook_delivery(webhook_id: str, delivery_id: str) -> Call[WebhookDelivery]:
    """``GET /webhooks/{id}/deliveries/{delivery_id}``: with its attempt log."""
    from writgate.webhooks.models import WebhookDelivery

    path = f"{WEBHOOKS}/{segment(webhook_id)}/deliveries/{segment(delivery_id)}"
    return Call("GET", path, _model(WebhookDelivery), safe=True)


def redeliver_webhook(webhook_id: str, delivery_id: str) -> Call[WebhookDelivery]:
    """``POST /webhooks/{id}/deliveries/{delivery_id}/redeliver``: sends it again."""
    from writgate.webhooks.models import WebhookDelivery

    path = f"{WEBHOOKS}/{segment(webhook_id)}/deliveries/{segment(delivery_id)}/redeliver"
    return Call("POST", path, _model(WebhookDelivery))


def openapi() -> Call[dict[str, Any]]:
    """``GET /openapi.json``."""
    return Call("GET", "/openapi.json", _json, safe=True)
