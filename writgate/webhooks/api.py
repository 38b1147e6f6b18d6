"""HTTP routes of the webhooks (DESIGN.md §4.6), and the payload documentation.

``router`` serves ``/api/v1/webhooks``; ``payload_router`` only documents what writgate POSTs to
receivers and is mounted as the OpenAPI 3.1 ``webhooks`` section.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Response
from fastapi.openapi.utils import get_openapi

from writgate.errors import NotFoundError
from writgate.web import request_org, service

from .events import EVENT_FAMILIES
from .models import (
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookDeliverySummary,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointDisabledPayload,
    WebhookEndpointList,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
    WebhookEventFamily,
    WebhookEventFamilyList,
    WebhookJudgePayload,
    WebhookPayload,
    WebhookRotateSecret,
    WebhookRunPayload,
)
from .service import WebhookService

__all__ = ["install_payload_docs", "payload_router", "router"]

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

Org = Annotated[str, Depends(request_org)]
Webhooks = Annotated[WebhookService, Depends(service("webhooks"))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (problem+json)."},
    404: {"description": "No such endpoint or delivery in the caller's org (problem+json)."},
    422: {
        "description": "Invalid request; `field` names the offending field, e.g. `/url` for a "
        "refused destination (problem+json)."
    },
}


def _with_secret(endpoint: Any, secret: str) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(
        **WebhookEndpoint.of(endpoint).model_dump(by_alias=False), secret=secret
    )


@router.get(
    "/event-types",
    response_model=WebhookEventFamilyList,
    operation_id="listWebhookEventTypes",
    summary="List the event families one can subscribe to",
    responses={401: _ERRORS[401]},
)
async def list_event_types(org: Org) -> WebhookEventFamilyList:
    """Families of event types; subscribe to ``<family>.*``, an exact type or ``*``."""
    del org
    families = [
        WebhookEventFamily(name=name, description=text) for name, text in EVENT_FAMILIES.items()
    ]
    return WebhookEventFamilyList(items=families)


@router.post(
    "",
    response_model=WebhookEndpointWithSecret,
    status_code=201,
    operation_id="createWebhookEndpoint",
    summary="Subscribe an endpoint to events",
    responses=_ERRORS,
)
async def create_endpoint(
    body: WebhookEndpointCreate, org: Org, webhooks: Webhooks
) -> WebhookEndpointWithSecret:
    """Create an endpoint; the response carries its signing secret, shown this once."""
    endpoint, secret = await webhooks.create(
        org, url=body.url, event_types=body.event_types, description=body.description
    )
    return _with_secret(endpoint, secret)


@router.get(
    "",
    response_model=WebhookEndpointList,
    operation_id="listWebhookEndpoints",
    summary="List endpoints",
    responses=_ERRORS,
)
async def list_endpoints(
    org: Org,
    webhooks: Webhooks,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WebhookEndpointList:
    """The caller's endpoints, newest first."""
    endpoints, next_cursor = await webhooks.store.list_endpoints(org, cursor=cursor, limit=limit)
    return WebhookEndpointList(
        items=[WebhookEndpoint.of(e) for e in endpoints], next_cursor=next_cursor
    )


@router.get(
    "/{webhook_id}",
    response_model=WebhookEndpoint,
    operation_id="getWebhookEndpoint",
    summary="Get an endpoint",
    responses=_ERRORS,
)
async def get_endpoint(webhook_id: str, org: Org, webhooks: Webhooks) -> WebhookEndpoint:
    """One endpoint, with its circuit state."""
    return WebhookEndpoint.of(await webhooks.store.get(org, webhook_id))


@router.patch(
    "/{webhook_id}",
    response_model=WebhookEndpoint,
    operation_id="updateWebhookEndpoint",
    summary="Change an endpoint (URL, event types, description, enabled)",
    responses=_ERRORS,
)
async def update_endpoint(
    webhook_id: str, body: WebhookEndpointUpdate, org: Org, webhooks: Webhooks
) -> WebhookEndpoint:
    """Change the given fields; ``enabled: true`` re-enables an endpoint its circuit disabled."""
    endpoint = await webhooks.update(
        org,
        webhook_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
    )
    return WebhookEndpoint.of(endpoint)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    operation_id="deleteWebhookEndpoint",
    summary="Delete an endpoint and its delivery log",
    responses=_ERRORS,
)
async def delete_endpoint(webhook_id: str, org: Org, webhooks: Webhooks) -> Response:
    """Delete the endpoint; its pending deliveries are dropped."""
    await webhooks.store.delete(org, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    operation_id="rotateWebhookSecret",
    summary="Replace the signing secret",
    responses=_ERRORS,
)
async def rotate_secret(
    webhook_id: str,
    org: Org,
    webhooks: Webhooks,
    body: WebhookRotateSecret | None = None,
) -> WebhookEndpointWithSecret:
    """A new secret, shown once; the old one also signs deliveries for ``graceSeconds``."""
    grace = (body or WebhookRotateSecret()).grace_seconds
    endpoint, secret = await webhooks.store.rotate_secret(org, webhook_id, grace_seconds=grace)
    return _with_secret(endpoint, secret)


@router.post(
    "/{webhook_id}/test",
    response_model=WebhookDelivery,
    operation_id="testWebhookEndpoint",
    summary="Send a webhook.test message now",
    responses=_ERRORS,
)
async def test_endpoint(webhook_id: str, org: Org, webhooks: Webhooks) -> WebhookDelivery:
    """POST one signed ``webhook.test`` message and return the attempt (no retries)."""
    return WebhookDelivery.of(await webhooks.send_test(org, webhook_id))


@router.get(
    "/{webhook_id}/deliveries",
    response_model=WebhookDeliveryList,
    operation_id="listWebhookDeliveries",
    summary="List an endpoint's deliveries",
    responses=_ERRORS,
)
async def list_deliveries(
    webhook_id: str,
    org: Org,
    webhooks: Webhooks,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WebhookDeliveryList:
    """Deliveries to the endpoint, newest first."""
    deliveries, next_cursor = await webhooks.store.list_deliveries(
        org, webhook_id, status=status, cursor=cursor, limit=limit
    )
    return WebhookDeliveryList(
        items=[WebhookDeliverySummary.of(d) for d in deliveries], next_cursor=next_cursor
    )


async def _delivery(webhooks: WebhookService, org: str, webhook_id: str, delivery_id: str) -> Any:
    delivery = await webhooks.store.get_delivery(org, delivery_id)
    if delivery.endpoint_id != webhook_id:
        raise NotFoundError(f"no webhook delivery {delivery_id!r}", field="deliveryId")
    return delivery


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    response_model=WebhookDelivery,
    operation_id="getWebhookDelivery",
    summary="Get a delivery with its payload and attempts",
    responses=_ERRORS,
)
async def get_delivery(
    webhook_id: str, delivery_id: str, org: Org, webhooks: Webhooks
) -> WebhookDelivery:
    """The delivery log of one message: every attempt with status, latency and response."""
    return WebhookDelivery.of(await _delivery(webhooks, org, webhook_id, delivery_id))


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=WebhookDelivery,
    status_code=202,
    operation_id="redeliverWebhook",
    summary="Deliver a message again",
    responses={**_ERRORS, 409: {"description": "The endpoint is disabled (problem+json)."}},
)
async def redeliver(
    webhook_id: str, delivery_id: str, org: Org, webhooks: Webhooks
) -> WebhookDelivery:
    """Queue the message again now, with a fresh retry schedule and the same ``webhook-id``."""
    await _delivery(webhooks, org, webhook_id, delivery_id)
    return WebhookDelivery.of(await webhooks.store.redeliver(org, delivery_id))


# -- the OpenAPI ``webhooks`` section ------------------------------------------------------------

payload_router = APIRouter()

_SIGNATURE_DOC = (
    "Every delivery is a POST of the JSON payload with the Standard Webhooks headers "
    "`webhook-id` (the message id; the same on every retry: deduplicate by it), "
    "`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature` "
    '(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the base64-decoded part of the '
    "`whsec_` secret; two signatures separated by a space while a rotated secret is in its "
    "grace period). Answer 2xx within 15 s; anything else is retried with exponential backoff "
    "for more than 24 hours. 410 Gone disables the endpoint."
)
_RECEIVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx acknowledges the delivery."},
    410: {"description": "Disables the endpoint."},
}


def _document(name: str, model: type[WebhookPayload], summary: str) -> None:
    async def receive(
        body: WebhookPayload,
        webhook_id: Annotated[str, Header(alias="webhook-id")],
        webhook_timestamp: Annotated[str, Header(alias="webhook-timestamp")],
        webhook_signature: Annotated[str, Header(alias="webhook-signature")],
    ) -> None:
        del body, webhook_id, webhook_timestamp, webhook_signature

    # Annotations are strings here (PEP 563) and ``model`` is local: give FastAPI the class.
    receive.__annotations__["body"] = model

    payload_router.add_api_route(
        name,
        receive,
        methods=["POST"],
        summary=summary,
        description=_SIGNATURE_DOC,
        operation_id=f"webhook_{name.replace('.', '_').replace('*', 'any')}",
        responses=_RECEIVER_RESPONSES,
    )


_document("run.*", WebhookRunPayload, "A run changed state (run.queued … run.expired)")
_document("gate.decided", WebhookJudgePayload, "The merge gate decided on a pull request")
_document("gate.stale", WebhookJudgePayload, "A gate decision went stale (new head)")
_document("review.completed", WebhookJudgePayload, "A review run completed")
_document(
    "webhook.endpoint_disabled",
    WebhookEndpointDisabledPayload,
    "An endpoint's failure circuit disabled it",
)
_document("webhook.test", WebhookPayload, "A test message (sent on request)")
_document("*", WebhookPayload, "Any other event (turn.*, pipeline.*, stage.*, …)")


def install_payload_docs(app: FastAPI) -> None:
    """Document the payloads in the app's OpenAPI ``webhooks`` section (call it last).

    It wraps whatever builds the app's document, so a custom builder that leaves out FastAPI's
    ``webhooks`` still serves them.
    """
    if not any(route.path == "run.*" for route in app.webhooks.routes if hasattr(route, "path")):
        app.webhooks.include_router(payload_router)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        for item in document.get("webhooks", {}).values():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)  # receivers validate, not us
        if not document.get("webhooks"):
            extra = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                routes=[],
                webhooks=app.webhooks.routes,
            )
            document["webhooks"] = extra.get("webhooks", {})
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in extra.get("components", {}).get("schemas", {}).items():
                if name not in ("HTTPValidationError", "ValidationError"):
                    schemas.setdefault(name, schema)
            for item in document["webhooks"].values():
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
