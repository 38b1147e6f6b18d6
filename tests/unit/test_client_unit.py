"""writgate.client without a server: retry rules, backoff, SSE decoding, error mapping."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

import writgate.client
from writgate.client import (
    ApiConnectionError,
    ApiInputError,
    ApiRateLimitError,
    ApiServerError,
    Client,
    RetryPolicy,
)
from writgate.client.retry import parse_retry_after
from writgate.client.sse import SSEDecoder
from writgate.errors import ConfigError

NO_WAIT = RetryPolicy(attempts=4, initial_delay=0.0, max_delay=0.0)
RUN_BODY = {"repository": "acme/app", "prompt": "x", "agent": {"driver": "command", "argv": ["t"]}}


def test_all_is_sorted_and_importable() -> None:
    assert writgate.client.__all__ == sorted(writgate.client.__all__)
    for name in writgate.client.__all__:
        assert getattr(writgate.client, name) is not None


def test_importing_the_client_loads_no_domain_or_server_module() -> None:
    import subprocess

    code = (
        "import sys, writgate.client\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('writer', 'judge', 'pipelines', 'forge', 'passport', 'policies', 'fastapi')"
        " or m.startswith('writgate.app')]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0)
    for retry, ceiling in ((0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (9, 4.0)):
        delays = [policy.backoff(retry) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not a constant
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30


def _client(handler: Any, **kwargs: Any) -> Client:
    return Client(
        "http://writgate.test", api_key="wg_k", retry=kwargs.pop("retry", NO_WAIT),
        transport=httpx.MockTransport(handler), **kwargs,
    )  # fmt: skip


def _run_json() -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": "run_1", "lifecycle": "queued", "terminal": False, "awaitingFollowUp": False,
        "canFollowUp": False, "nextActions": ["cancel"], "failure": None,
        "session": {"keepWarmSeconds": 0}, "updatedAt": now, "created": True,
        "repository": "acme/app", "title": "x", "tags": [], "metadata": {}, "prompt": "x",
        "modelId": None, "agent": {"driver": "command", "argv": ["t"]},
        "billing": {"mode": "managed"}, "publish": {"mode": "none"}, "validationMode": "none",
        "safety": {}, "intent": {"label": "chore", "ruleset": "intent/v1", "matched": []},
        "usage": {}, "turns": [], "result": {}, "chain": [], "createdAt": now,
    }  # fmt: skip


def test_create_run_generates_one_key_and_reuses_it_across_retries() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ReadError("connection reset", request=request)
        if len(seen) == 2:
            return httpx.Response(503)
        if len(seen) == 3:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return httpx.Response(200, json=_run_json() | {"created": False})

    with _client(handler, retry=RetryPolicy(attempts=5, initial_delay=0, max_delay=0)) as c:
        run = c.create_run(RUN_BODY)
    assert run.id == "run_1" and run.created is False
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(seen) == 4 and len(keys) == 1 and next(iter(keys)).startswith("wgc-")
    assert seen[0].headers["Authorization"] == "Bearer wg_k"
    with _client(lambda r: httpx.Response(201, json=_run_json())) as c:
        other = [c.create_run(RUN_BODY) for _ in range(2)]
    assert all(r.created for r in other)


def test_writes_are_retried_only_when_nothing_was_sent() -> None:
    calls: list[str] = []

    def lost(request: httpx.Request) -> httpx.Response:
        calls.append("lost")
        raise httpx.RemoteProtocolError("server disconnected", request=request)

    with _client(lost) as c, pytest.raises(ApiConnectionError):
        c.cancel_run("run_1")
    assert calls == ["lost"]

    def refused(request: httpx.Request) -> httpx.Response:
        calls.append("refused")
        if calls.count("refused") < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=_run_json())

    with _client(refused) as c:
        assert c.cancel_run("run_1").id == "run_1"
    assert calls.count("refused") == 3

    with _client(lambda r: httpx.Response(502)) as c, pytest.raises(ApiServerError) as bad:
        c.complete_run("run_1")
    assert bad.value.status == 502


def test_gives_up_after_the_attempts_and_on_long_retry_after() -> None:
    count = 0

    def busy(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return httpx.Response(503)

    with _client(busy) as c, pytest.raises(ApiServerError):
        c.get_run("run_1")
    assert count == NO_WAIT.attempts

    def slow_down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"})

    with _client(slow_down) as c, pytest.raises(ApiRateLimitError) as limited:
        c.get_run("run_1")
    assert limited.value.retry_after == 3600.0


def test_problem_json_becomes_a_typed_error() -> None:
    problem = {"type": "https://writgate.dev/problems/validation_failed", "title": "The request "
               "is invalid.", "status": 422, "code": "validation_failed", "detail": "/tags/1: bad",
               "field": "/tags/1"}  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422, json=problem, headers={"content-type": "application/problem+json"}
        )

    with _client(handler) as c, pytest.raises(ApiInputError) as bad:
        c.create_run(RUN_BODY)
    assert (bad.value.status, bad.value.code, bad.value.field) == (
        422,
        "validation_failed",
        "/tags/1",
    )
    assert bad.value.problem == problem and "/tags/1" in str(bad.value)
    with (
        _client(lambda r: httpx.Response(500, text="<html>")) as c,
        pytest.raises(ApiServerError) as e,
    ):
        c.get_run_status("run_1")
    assert e.value.code == "server_error" and e.value.status == 500


def test_configuration_comes_from_arguments_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WRITGATE_SERVER", raising=False)
    with pytest.raises(ConfigError, match="WRITGATE_SERVER"):
        Client()
    with pytest.raises(ConfigError, match="http"):
        Client("ftp://host")
    monkeypatch.setenv("WRITGATE_SERVER", "http://127.0.0.1:9/")
    monkeypatch.setenv("WRITGATE_API_KEY", "wg_env")
    with Client() as client:
        assert client.base_url == "http://127.0.0.1:9"
        assert client._http.headers["Authorization"] == "Bearer wg_env"
    with pytest.raises(ValueError), Client() as client:
        client.get_run("")


def test_sse_decoder_follows_the_event_stream_format() -> None:
    decoder = SSEDecoder()
    lines = [": connected", "", "id: 1", "event: run.queued", 'data: {"a":', "data: 1}", "",
             ": heartbeat", "", "event: done", "data: {}", "", "data:no-space", ""]  # fmt: skip
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    assert [(e.id, e.event, e.data) for e in events] == [
        ("1", "run.queued", '{"a":\n1}'), (None, "done", "{}"), (None, "message", "no-space"),
    ]  # fmt: skip
    assert decoder.last_event_id == "1"


def test_follow_resumes_after_a_drop_with_last_event_id() -> None:
    def event(seq: int) -> str:
        return (f'id: {seq}\nevent: e\ndata: {{"subjectId":"run_1","seq":{seq},"type":"e",'
                f'"at":"2026-01-01T00:00:00+00:00","data":{{}}}}\n\n')  # fmt: skip

    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) == 1:  # two events, then half of a third, then the connection ends
            return httpx.Response(200, text=event(1) + event(2) + event(3)[:30])
        if len(requests) == 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, text=event(2) + event(3) + "event: done\ndata: {}\n\n")

    with _client(handler) as c:
        assert [e.seq for e in c.follow("run_1")] == [1, 2, 3]
    assert "last-event-id" not in requests[0].headers
    assert requests[2].headers["Last-Event-ID"] == "2"


def test_follow_reconnects_after_unavailable_answers_and_raises_on_others() -> None:
    body = (
        'id: 1\nevent: e\ndata: {"subjectId":"run_1","seq":1,"type":"e",'
        '"at":"2026-01-01T00:00:00+00:00","data":{}}\n\nevent: done\ndata: {}\n\n'
    )
    answers = [httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"}),
               httpx.Response(200, text=body)]  # fmt: skip
    with _client(lambda request: answers.pop(0)) as c:
        assert [e.seq for e in c.follow("run_1")] == [1]
    assert answers == []
    missing = {"status": 404, "code": "run_not_found", "title": "run run_1 was not found"}
    with (
        _client(lambda r: httpx.Response(404, json=missing)) as c,
        pytest.raises(writgate.client.ApiNotFoundError),
    ):
        list(c.follow("run_1"))


def test_the_async_client_mirrors_the_sync_client() -> None:
    import inspect

    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") and name not in ("close", "aclose")
        }

    assert public(writgate.client.AsyncClient) == public(Client)
    assert len(public(Client)) > 40
