"""``writgate.client``: a typed Python client of a writgate server's HTTP API.

::

    from writgate.client import Client

    with Client("http://127.0.0.1:8321", api_key="wg_…") as client:
        run = client.create_run({"repository": "acme/web", "prompt": "…", "modelId": "…"})
        for event in client.follow(run.id):
            print(event.seq, event.type)
        status = client.wait(run.id, until={"succeeded", "failed"}, timeout=900)

Results are the server's own pydantic models (``writer.models.Run``, ``RunStatus``, …): one
source of truth for the wire format. Layering (DESIGN.md §2): this package lives in the kernel's
namespace so that ``import writgate.client`` stays cheap and is what users type, but the kernel
must not import domain packages — so nothing here imports ``writer``/``pipelines`` at import
time. Those models are imported when a call is built (``calls.py``) and only named in
annotations under ``TYPE_CHECKING``. Importing this package loads httpx, pydantic and the
kernel only (a test checks that no domain package, FastAPI or ``writgate.app`` is loaded); the
domain models load on first use. It is not placed under ``writgate/app/`` because it is no part
of the application shell: it is what other programs import to talk to one.

Safety: every request is retried only when repeating it cannot repeat an effect
(:mod:`writgate.client.retry`); ``create_run`` and ``start_pipeline`` always send an
Idempotency-Key (generated when none is given) and reuse it across their retries, so a lost
answer never creates a second run.
"""

from __future__ import annotations

from .async_client import AsyncClient
from .errors import (
    ApiAuthError,
    ApiConflictError,
    ApiConnectionError,
    ApiError,
    ApiInputError,
    ApiNotFoundError,
    ApiRateLimitError,
    ApiServerError,
    WaitTimeout,
)
from .retry import RetryPolicy
from .sse import ServerSentEvent
from .sync_client import Client

__all__ = [
    "ApiAuthError",
    "ApiConflictError",
    "ApiConnectionError",
    "ApiError",
    "ApiInputError",
    "ApiNotFoundError",
    "ApiRateLimitError",
    "ApiServerError",
    "AsyncClient",
    "Client",
    "RetryPolicy",
    "ServerSentEvent",
    "WaitTimeout",
]
