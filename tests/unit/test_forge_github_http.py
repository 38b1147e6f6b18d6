"""The GitHub client's retry, back-off and error rules, over httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from forge.errors import (
    ForgeAuthError,
    ForgeConflict,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    GitHubValidationError,
    RateLimited,
)
from forge.github_http import GitHubClient, TokenAuth, _next_link

pytestmark = pytest.mark.anyio

TOKEN = "ghp_unitTESTtoken000000000000000000000"
API = "https://ghe.example/api/v3"


class Script:
    """Answers requests from a list, records them and the waits."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.waits: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def client(self, **options: object) -> GitHubClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        return GitHubClient(
            auth=TokenAuth(TOKEN),
            base_url=API,
            http=http,
            sleep=self.sleep,
            clock=lambda: 1_000_000.0,
            **options,  # type: ignore[arg-type]
        )


def ok(body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {}, headers=headers)


def fail(status: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message}, headers=headers)


async def test_sends_githubs_headers_and_the_token_only_in_authorization() -> None:
    script = Script(ok({"a": 1}))
    assert await script.client().request("GET", "/repos/acme/web") == {"a": 1}
    sent = script.requests[0]
    assert str(sent.url) == f"{API}/repos/acme/web"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert TOKEN not in str(sent.url)


async def test_retry_after_then_success() -> None:
    script = Script(fail(429, "slow down", **{"Retry-After": "12"}), ok())
    await script.client().request("POST", "/x")
    assert script.waits == [12.0] and len(script.requests) == 2


async def test_primary_limit_waits_until_reset() -> None:
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(1_000_000 + 40)}
    script = Script(fail(403, "API rate limit exceeded", **reset), ok())
    await script.client().request("GET", "/x")
    assert script.waits == [41.0]


async def test_secondary_limit_without_headers_waits_a_minute_then_doubles() -> None:
    message = "You have exceeded a secondary rate limit"
    script = Script(fail(403, message), fail(403, message), ok())
    await script.client().request("GET", "/x")
    assert script.waits == [60.0, 120.0]


async def test_waits_are_capped() -> None:
    script = Script(fail(403, "x", **{"Retry-After": "301"}))
    with pytest.raises(RateLimited) as info:
        await script.client(max_wait=300).request("GET", "/x")
    assert script.waits == [] and info.value.details["retry_after"] == 301
    message = "You have exceeded a secondary rate limit"
    script = Script(*[fail(403, message) for _ in range(4)])
    with pytest.raises(RateLimited):
        await script.client(max_wait=300).request("GET", "/x")
    assert script.waits == [60.0, 120.0]  # the next (240 s) would pass the 300 s total


async def test_server_errors_are_retried_only_for_idempotent_requests() -> None:
    script = Script(httpx.Response(502), httpx.Response(503), ok({"done": True}))
    assert await script.client().request("GET", "/x") == {"done": True}
    assert script.waits == [1.0, 2.0]
    script = Script(httpx.Response(502))
    with pytest.raises(ForgeUnavailable, match="502"):
        await script.client().request("POST", "/x")
    assert len(script.requests) == 1


async def test_network_failures_are_translated() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    script = Script(refuse, refuse)
    with pytest.raises(ForgeUnavailable, match="cannot reach GitHub for POST /api/v3/x"):
        await script.client().request("POST", "/x")
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ForgeAuthError),
        (403, ForgeAuthError),
        (404, ForgeNotFound),
        (405, ForgeConflict),
        (409, ForgeConflict),
        (422, GitHubValidationError),
        (500, ForgeUnavailable),
        (418, ForgeError),
    ],
)
async def test_statuses_map_to_forge_errors(status: int, error: type[ForgeError]) -> None:
    body = {"message": f"nope {TOKEN}", "errors": [{"field": "head", "code": "invalid"}]}
    script = Script(*[httpx.Response(status, json=body) for _ in range(6)])
    with pytest.raises(error) as info:
        await script.client().request("PATCH" if status != 500 else "POST", "/x")
    assert f"GitHub answered {status}" in str(info.value)
    assert TOKEN not in str(info.value)
    if status == 422:
        assert info.value.field == "head"  # type: ignore[attr-defined]


def test_next_link_parsing() -> None:
    header = (
        '<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; '
        'rel="last"'
    )
    assert _next_link(header) == "https://api.github.com/x?page=2"
    assert _next_link('<https://api.github.com/x?page=1>; rel="prev"') is None
    assert _next_link(None) is None


async def test_pages_follow_links_only_within_the_api() -> None:
    script = Script(
        ok([1, 2], link=f'<{API}/items?page=2>; rel="next"'),
        ok([3]),
    )
    assert await script.client().get_all("/items") == [1, 2, 3]
    assert script.requests[0].url.params["per_page"] == "100"
    assert str(script.requests[1].url) == f"{API}/items?page=2"
    script = Script(ok([1], link='<https://ghe.example/elsewhere?page=2>; rel="next"'))
    with pytest.raises(ForgeError, match="outside"):
        await script.client().get_all("/items")
    assert len(script.requests) == 1


def test_bad_api_url_and_empty_token() -> None:
    with pytest.raises(ForgeError, match="not an http"):
        GitHubClient(auth=TokenAuth(TOKEN), base_url="ftp://x")
    with pytest.raises(ForgeAuthError):
        TokenAuth("  ")
    assert TOKEN not in repr(TokenAuth(TOKEN))


def test_graphql_endpoint_of_github_and_enterprise_server() -> None:
    auth = TokenAuth(TOKEN)
    assert GitHubClient(auth=auth).graphql_url == "https://api.github.com/graphql"
    assert GitHubClient(auth=auth, base_url=API).graphql_url == "https://ghe.example/api/graphql"


async def test_graphql_errors_are_forge_errors() -> None:
    script = Script(ok({"data": None, "errors": [{"message": "Could not resolve to a node"}]}))
    with pytest.raises(ForgeError, match="Could not resolve to a node"):
        await script.client().graphql("query { x }", {})
    assert str(script.requests[0].url) == "https://ghe.example/api/graphql"
