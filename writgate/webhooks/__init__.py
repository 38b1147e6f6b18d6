"""Webhooks: signed, durable, retried delivery of ledger events (DESIGN.md §4.6).

Endpoints subscribe to event type patterns (``run.*``, ``gate.decided``, ``*``). A ledger
append hook writes one outbox row per matching endpoint in the event's own transaction; the
:class:`Deliverer` POSTs them signed per Standard Webhooks, retries with exponential backoff and
jitter for more than a day, and disables an endpoint whose failures persist (saying why).
"""

from __future__ import annotations

from .delivery import DEFAULT_RETRY_DELAYS, CircuitPolicy, Deliverer, RetrySchedule
from .destinations import ALLOW_PRIVATE_ENV, DestinationError, allow_private_from_env
from .events import EVENT_FAMILIES, matches, normalize_patterns
from .service import WebhookService, attach, deliverer_for
from .signing import SecretBox, generate_secret, sign
from .store import Attempt, AttemptResult, Claim, Delivery, Endpoint, WebhookStore

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "DEFAULT_RETRY_DELAYS",
    "EVENT_FAMILIES",
    "Attempt",
    "AttemptResult",
    "CircuitPolicy",
    "Claim",
    "Deliverer",
    "Delivery",
    "DestinationError",
    "Endpoint",
    "RetrySchedule",
    "SecretBox",
    "WebhookService",
    "WebhookStore",
    "allow_private_from_env",
    "attach",
    "deliverer_for",
    "generate_secret",
    "matches",
    "normalize_patterns",
    "sign",
]
