"""Wiring: one :class:`WebhookStore` per ledger, and the service the HTTP routes use."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from writgate.ledger import Ledger

from .delivery import Deliverer, parse_duration
from .destinations import allow_private_from_env, resolve
from .signing import SecretBox
from .store import Delivery, Endpoint, WebhookStore

__all__ = ["WebhookService", "attach", "deliverer_for"]

_CACHE_ENV = "WRITGATE_WEBHOOKS_SUBSCRIPTION_CACHE"
_STORES: weakref.WeakKeyDictionary[Ledger, WebhookStore] = weakref.WeakKeyDictionary()


def attach(ledger: Ledger, *, home: Path) -> WebhookStore:
    """The webhook store of ``ledger``, installed as its append hook on first call."""
    store = _STORES.get(ledger)
    if store is None:
        options = {}
        cache = os.environ.get(_CACHE_ENV)
        if cache:
            options["subscription_cache_seconds"] = parse_duration(cache, name=_CACHE_ENV)
        store = WebhookStore(
            engine=ledger.engine, ledger=ledger, box=SecretBox.from_env(home), **options
        )
        store.install()
        _STORES[ledger] = store
    return store


class WebhookService:
    """Endpoint management with destination checks, redelivery and test deliveries."""

    def __init__(
        self,
        *,
        store: WebhookStore,
        deliverer: Deliverer,
        allow_private: Callable[[], bool] = allow_private_from_env,
    ):
        self.store = store
        self.deliverer = deliverer
        self.allow_private = allow_private

    async def _check(self, url: str) -> None:
        await resolve(url, allow_private=self.allow_private())

    async def create(
        self, org_id: str, *, url: str, event_types: Sequence[str], description: str = ""
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (shown once)."""
        await self._check(url)
        return await self.store.create(
            org_id, url=url, event_types=event_types, description=description
        )

    async def update(
        self,
        org_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> Endpoint:
        """Change an endpoint; a new URL is checked like a new endpoint's."""
        await self.store.get(org_id, endpoint_id)  # 404 before a 422 about the URL
        if url is not None:
            await self._check(url)
        return await self.store.update(
            org_id,
            endpoint_id,
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
        )

    async def send_test(self, org_id: str, endpoint_id: str) -> Delivery:
        """Send a ``webhook.test`` message now and return its delivery with the attempt."""
        return await self.deliverer.send_test(org_id, endpoint_id)


def deliverer_for(ledger: Ledger, *, home: Path, **options: Any) -> Deliverer:
    """A deliverer over ``ledger``'s database, configured by ``WRITGATE_WEBHOOKS_*``."""
    return Deliverer.from_env(attach(ledger, home=home), **options)
