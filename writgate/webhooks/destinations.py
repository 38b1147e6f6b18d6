"""Where deliveries may go: http(s) URLs whose every resolved address is public.

Private, loopback, link-local, shared, multicast and reserved addresses are refused unless
``WRITGATE_WEBHOOKS_ALLOW_PRIVATE=1``. The check runs when an endpoint is saved and again before
each attempt, and the attempt connects to the address that was checked (the host name still
goes in ``Host`` and in TLS SNI/certificate checks), so DNS rebinding cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from writgate.errors import InputError

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "Destination",
    "DestinationError",
    "allow_private_from_env",
    "check_url",
    "resolve",
]

ALLOW_PRIVATE_ENV = "WRITGATE_WEBHOOKS_ALLOW_PRIVATE"
MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationError(InputError):
    """The webhook URL is not an allowed destination."""

    code = "webhook_destination_refused"


def allow_private_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``WRITGATE_WEBHOOKS_ALLOW_PRIVATE`` is ``1``/``true``/``yes``/``on``."""
    env = os.environ if environ is None else environ
    return env.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def connect_url(self) -> str:
        """``url`` with the host replaced by the checked address."""
        parts = urlsplit(self.url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        target = f"{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
        return f"{self.scheme}://{host}:{self.port}{target}"

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the name as written, with a non-default port."""
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def check_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a syntactically acceptable webhook URL."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationError(f"the URL is longer than {MAX_URL_LENGTH} characters", field="/url")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise DestinationError("the URL contains whitespace or control characters", field="/url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationError(f"the URL is invalid: {exc}", field="/url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DestinationError(
            f"only http and https URLs are allowed, not {scheme or 'no scheme'!r}", field="/url"
        )
    if parts.username is not None or parts.password is not None:
        raise DestinationError(
            "credentials in the URL are not allowed (they would show in listings and logs)",
            field="/url",
        )
    if parts.fragment:
        raise DestinationError("the URL must not have a #fragment", field="/url")
    host = (parts.hostname or "").lower()
    if not host:
        raise DestinationError("the URL has no host", field="/url")
    return scheme, host, port or (443 if scheme == "https" else 80)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (``None`` when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return label
    if not address.is_global:
        return "non-public"
    return None


async def resolve(url: str, *, allow_private: bool) -> Destination:
    """Check ``url`` and every address its host resolves to; the first address is used."""
    scheme, host, port = check_url(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise DestinationError(
                f"the host {host!r} does not resolve: {exc}", field="/url"
            ) from None
        addresses = []
        for info in infos:
            value = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if value not in addresses:
                addresses.append(value)
        if not addresses:
            raise DestinationError(f"the host {host!r} has no address", field="/url")
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise DestinationError(
                    f"the host {host!r} resolves to {address}, a {why} address; webhooks "
                    f"only go to public addresses unless {ALLOW_PRIVATE_ENV}=1",
                    field="/url",
                )
    return Destination(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))
