"""Request and response models of the webhook API, and the documented delivery payloads."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from writgate.text import refuse_nul

from .store import Attempt, Delivery, Endpoint

__all__ = [
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookDeliverySummary",
    "WebhookEndpoint",
    "WebhookEndpointCreate",
    "WebhookEndpointDisabledPayload",
    "WebhookEndpointList",
    "WebhookEndpointUpdate",
    "WebhookEndpointWithSecret",
    "WebhookEventFamily",
    "WebhookEventFamilyList",
    "WebhookJudgePayload",
    "WebhookPayload",
    "WebhookRotateSecret",
    "WebhookRunPayload",
]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Request(_Model):
    """Base of request bodies: no NUL character in any text (PostgreSQL cannot store one)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


class WebhookEndpointCreate(_Request):
    """A new subscription."""

    url: str = Field(max_length=2048, description="http(s) URL receiving the POSTs.")
    event_types: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Event type patterns: `*`, `run.*`, `gate.decided`, …",
        examples=[["run.*", "gate.decided"]],
    )
    description: str = Field(default="", max_length=500)


class WebhookEndpointUpdate(_Request):
    """Fields to change; enabling a disabled endpoint closes its circuit."""

    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookRotateSecret(_Model):
    """How long the old secret keeps signing deliveries alongside the new one."""

    grace_seconds: int = Field(default=86400, ge=0, le=604800)


class WebhookEndpoint(_Model):
    """A subscription (its secret is only shown on create and rotate)."""

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why the endpoint is disabled (by a user or by its failure circuit)."
    )
    disabled_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until when deliveries are also signed with the secret before the rotation."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookEndpoint:
        """The API view of ``endpoint``."""
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=endpoint.event_types,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            disabled_at=endpoint.disabled_at,
            consecutive_failures=endpoint.consecutive_failures,
            failing_since=endpoint.failing_since,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint with its signing secret, returned once."""

    secret: str = Field(description="`whsec_` + base64; store it now, it is not shown again.")


class WebhookEndpointList(_Model):
    """A page of endpoints."""

    items: list[WebhookEndpoint]
    next_cursor: str | None = None


class WebhookAttempt(_Model):
    """One HTTP attempt."""

    number: int
    at: datetime
    trigger: str = Field(description="`scheduled`, `manual` (redelivery) or `test`.")
    outcome: str = Field(description="`succeeded` or `failed`.")
    status_code: int | None
    error: str | None
    latency_ms: float
    response_body: str | None = Field(description="The start of the response body (truncated).")

    @classmethod
    def of(cls, attempt: Attempt) -> WebhookAttempt:
        """The API view of ``attempt``."""
        return cls(
            number=attempt.number,
            at=attempt.at,
            trigger=attempt.trigger,
            outcome=attempt.outcome,
            status_code=attempt.status_code,
            error=attempt.error,
            latency_ms=attempt.latency_ms,
            response_body=attempt.response_body,
        )


class WebhookDeliverySummary(_Model):
    """One message to one endpoint; ``id`` is the ``webhook-id`` header."""

    id: str
    endpoint_id: str
    event_type: str
    subject_id: str | None
    seq: int | None
    status: str = Field(description="`pending`, `succeeded` or `failed` (retries exhausted).")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def fields_of(cls, delivery: Delivery) -> dict[str, Any]:
        """The summary fields of ``delivery``."""
        return {
            "id": delivery.id,
            "endpoint_id": delivery.endpoint_id,
            "event_type": delivery.event_type,
            "subject_id": delivery.subject_id,
            "seq": delivery.seq,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at,
            "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
            "created_at": delivery.created_at,
            "finished_at": delivery.finished_at,
        }

    @classmethod
    def of(cls, delivery: Delivery) -> WebhookDeliverySummary:
        """The API view of ``delivery``."""
        return cls(**cls.fields_of(delivery))


class WebhookDelivery(WebhookDeliverySummary):
    """A delivery with its payload and every attempt."""

    payload: dict[str, Any] = Field(description="The JSON body as sent.")
    attempt_log: list[WebhookAttempt]

    @classmethod
    def of(cls, delivery: Delivery) -> WebhookDelivery:
        """The API view of ``delivery`` with its attempts."""
        return cls(
            **cls.fields_of(delivery),
            payload=json.loads(delivery.body),
            attempt_log=[WebhookAttempt.of(a) for a in delivery.attempt_log],
        )


class WebhookDeliveryList(_Model):
    """A page of deliveries."""

    items: list[WebhookDeliverySummary]
    next_cursor: str | None = None


class WebhookEventFamily(_Model):
    """A family of event types (subscribe with ``<name>.*``)."""

    name: str
    description: str


class WebhookEventFamilyList(_Model):
    """Every event family."""

    items: list[WebhookEventFamily]
    next_cursor: str | None = None


# -- payloads (documented in the OpenAPI ``webhooks`` section) ---------------------------------


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class WebhookEventData(_Payload):
    """Every payload's ``data`` starts with the event's subject and sequence number."""

    subjectId: str = Field(description="The run, review, endpoint … the event is about.")
    seq: int = Field(description="The event's position in its subject's ledger (from 1).")


class WebhookRunEventData(WebhookEventData):
    """A run event's data: the run's lifecycle fields, tags, metadata, title and intent."""

    runId: str
    repository: str | None = None
    title: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    intent: str | None = None
    parentRunId: str | None = None
    lifecycle: str = Field(
        description="queued, starting, running, awaiting_follow_up, succeeded, failed, "
        "cancelled or expired."
    )
    terminal: bool
    awaitingFollowUp: bool
    canFollowUp: bool
    nextActions: list[str]
    failure: dict[str, Any] | None = None


class WebhookPayload(_Payload):
    """The body of every delivery (Standard Webhooks): ``{type, timestamp, data}``."""

    type: str = Field(examples=["run.succeeded"])
    timestamp: datetime = Field(description="When the event happened (UTC).")
    data: WebhookEventData


class WebhookRunPayload(WebhookPayload):
    """A ``run.*`` event."""

    data: WebhookRunEventData


class WebhookJudgePayload(WebhookPayload):
    """A ``gate.decided`` / ``gate.stale`` / ``review.completed`` event (the judge's data)."""


class WebhookEndpointDisabledData(WebhookEventData):
    """Why an endpoint was disabled."""

    endpointId: str
    url: str
    reason: str
    consecutiveFailures: int


class WebhookEndpointDisabledPayload(WebhookPayload):
    """``webhook.endpoint_disabled``: an endpoint's circuit opened."""

    data: WebhookEndpointDisabledData
