"""Webhooks without a database: patterns, signatures, secrets at rest, schedules, destinations."""

from __future__ import annotations

import base64
import json
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

import writgate.webhooks
from writgate.errors import ConfigError, InputError
from writgate.webhooks import (
    DEFAULT_RETRY_DELAYS,
    RetrySchedule,
    SecretBox,
    generate_secret,
    matches,
    normalize_patterns,
)
from writgate.webhooks.delivery import parse_duration
from writgate.webhooks.destinations import DestinationError, check_url, resolve
from writgate.webhooks.events import payload_body
from writgate.webhooks.signing import secret_bytes, signature_headers

pytestmark = pytest.mark.anyio


def test_public_api_is_sorted_and_importable() -> None:
    names = writgate.webhooks.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))  # ruff RUF022 order
    for name in names:
        assert getattr(writgate.webhooks, name) is not None


# -- patterns ----------------------------------------------------------------------------------


def test_patterns_match_wildcards_and_exact_types() -> None:
    assert matches(["run.*"], "run.succeeded")
    assert not matches(["run.*"], "runner.started")
    assert not matches(["run.*"], "turn.started")
    assert matches(["gate.decided"], "gate.decided")
    assert not matches(["gate.decided"], "gate.stale")
    assert matches(["*"], "stage.progress")
    assert not matches([], "run.queued")


def test_patterns_are_normalized_and_deduplicated() -> None:
    assert normalize_patterns([" Run.* ", "run.*", "gate.decided"]) == ["run.*", "gate.decided"]
    assert normalize_patterns(["*"]) == ["*"]


@pytest.mark.parametrize(
    ("patterns", "field", "fragment"),
    [
        (["rn.*"], "/eventTypes/0", "unknown event family 'rn'"),
        (["run.*", "run"], "/eventTypes/1", "not an event type pattern"),
        (["run.*.x"], "/eventTypes/0", "not an event type pattern"),
        (["*.decided"], "/eventTypes/0", "not an event type pattern"),
        (["run..x"], "/eventTypes/0", "not an event type pattern"),
        ([], "/eventTypes", "at least one"),
    ],
)
def test_bad_patterns_name_their_position(patterns: list[str], field: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        normalize_patterns(patterns)
    assert caught.value.field == field
    assert fragment in caught.value.message


# -- signatures --------------------------------------------------------------------------------


def test_secret_format_is_standard_webhooks() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert generate_secret() != secret


def test_signature_verifies_with_standardwebhooks_and_fails_when_tampered() -> None:
    secret = generate_secret()
    body = payload_body(
        "run.succeeded", datetime.now(UTC), {"runId": "run_1", "tags": ["ci"], "note": "é ✓"}
    ).encode()
    now = int(time.time())
    headers = dict(signature_headers([secret_bytes(secret)], "msg_1", now, body))
    verified = Webhook(secret).verify(body, headers)
    assert verified["type"] == "run.succeeded" and verified["data"]["note"] == "é ✓"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"run_1", b"run_2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    old = dict(signature_headers([secret_bytes(secret)], "msg_1", now - 3600, body))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, old)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})


def test_two_keys_give_two_signatures_each_verifiable() -> None:
    new, old = generate_secret(), generate_secret()
    body = b'{"type":"run.queued","timestamp":"2026-01-01T00:00:00Z","data":{}}'
    headers = dict(
        signature_headers([secret_bytes(new), secret_bytes(old)], "msg_x", int(time.time()), body)
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)


def test_payload_shape() -> None:
    at = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    body = json.loads(payload_body("gate.decided", at, {"decision": "allow"}))
    assert body == {
        "type": "gate.decided",
        "timestamp": "2026-05-01T12:00:00.123000Z",
        "data": {"decision": "allow"},
    }


# -- secrets at rest ---------------------------------------------------------------------------


def test_secret_box_round_trip_binds_the_endpoint(tmp_path: Path) -> None:
    box = SecretBox.from_env(tmp_path, environ={})
    secret = generate_secret()
    blob = box.encrypt(secret, endpoint_id="whk_a")
    assert secret.encode() not in blob and secret_bytes(secret) not in blob
    assert box.decrypt(blob, endpoint_id="whk_a") == secret
    with pytest.raises(ConfigError) as caught:
        box.decrypt(blob, endpoint_id="whk_b")
    assert secret not in str(caught.value)
    key_file = tmp_path / "webhooks.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = SecretBox.from_env(tmp_path, environ={})
    assert again.decrypt(blob, endpoint_id="whk_a") == secret


def test_secret_box_with_another_key_fails_clearly(tmp_path: Path) -> None:
    blob = SecretBox.from_env(tmp_path / "a", environ={}).encrypt("whsec_x", endpoint_id="whk_a")
    other = SecretBox.from_env(tmp_path / "b", environ={})
    with pytest.raises(ConfigError, match="encrypted with another key"):
        other.decrypt(blob, endpoint_id="whk_a")


def test_secret_key_from_environment(tmp_path: Path) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    box = SecretBox.from_env(tmp_path, environ={"WRITGATE_SECRET_KEY": key})
    blob = box.encrypt("whsec_abc", endpoint_id="whk_a")
    assert not (tmp_path / "webhooks.key").exists()
    same = SecretBox(b"k" * 32)
    assert same.decrypt(blob, endpoint_id="whk_a") == "whsec_abc"
    bad = SecretBox.from_env(tmp_path, environ={"WRITGATE_SECRET_KEY": "c2hvcnQ="})
    with pytest.raises(ConfigError, match="WRITGATE_SECRET_KEY"):
        bad.encrypt("whsec_abc", endpoint_id="whk_a")


# -- schedules ---------------------------------------------------------------------------------


def test_default_schedule_retries_for_more_than_a_day() -> None:
    schedule = RetrySchedule()
    assert schedule.span_seconds >= 24 * 3600
    assert list(DEFAULT_RETRY_DELAYS) == sorted(DEFAULT_RETRY_DELAYS)  # backoff grows
    delays = [schedule.delay_after(n) for n in range(1, schedule.max_attempts)]
    assert all(d is not None for d in delays)
    assert schedule.delay_after(schedule.max_attempts) is None


def test_jitter_stretches_but_never_shortens() -> None:
    schedule = RetrySchedule(delays=(10.0,), jitter=0.5)
    samples = {schedule.delay_after(1) for _ in range(200)}
    assert all(s is not None and 10.0 <= s <= 15.0 for s in samples)
    assert len(samples) > 100


def test_schedule_and_durations_parse() -> None:
    assert RetrySchedule.parse("500ms, 5s,2m,1h,1d").delays == (0.5, 5.0, 120.0, 3600.0, 86400.0)
    with pytest.raises(ConfigError, match="WRITGATE_WEBHOOKS_RETRY_SCHEDULE"):
        RetrySchedule.parse("5s,soon")
    assert parse_duration("1.5h", name="X") == 5400.0
    assert timedelta(seconds=parse_duration("2m", name="X")) == timedelta(minutes=2)


# -- destinations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("example.com/hook", "only http and https"),
        ("https://user:pw@example.com/x", "credentials"),
        ("https:///x", "no host"),
        ("https://example.com/x#frag", "fragment"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com:99999/", "invalid"),
    ],
)
def test_url_syntax_is_checked(url: str, fragment: str) -> None:
    with pytest.raises(DestinationError) as caught:
        check_url(url)
    assert caught.value.field == "/url"
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8080/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://[::1]/x", "loopback"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://10.1.2.3/x", "private"),
        ("http://192.168.0.10/x", "private"),
        ("http://172.16.5.4/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://0.0.0.0/x", "unspecified"),
        ("http://100.64.0.1/x", "non-public"),
        ("http://224.0.0.1/x", "multicast"),
    ],
)
async def test_private_destinations_are_refused(url: str, kind: str) -> None:
    with pytest.raises(DestinationError) as caught:
        await resolve(url, allow_private=False)
    assert caught.value.field == "/url"
    assert f"a {kind} address" in caught.value.message
    assert "WRITGATE_WEBHOOKS_ALLOW_PRIVATE=1" in caught.value.message


async def test_private_destinations_allowed_when_configured() -> None:
    destination = await resolve("http://127.0.0.1:8080/x?a=1", allow_private=True)
    assert destination.connect_url == "http://127.0.0.1:8080/x?a=1"
    assert destination.host_header == "127.0.0.1:8080"


async def test_public_address_literal_passes_and_is_pinned() -> None:
    destination = await resolve("https://93.184.215.14/hook", allow_private=False)
    assert destination.address == "93.184.215.14"
    assert destination.connect_url == "https://93.184.215.14:443/hook"
    assert destination.host_header == "93.184.215.14"


async def test_unresolvable_host_is_a_clear_error() -> None:
    with pytest.raises(DestinationError, match="does not resolve") as caught:
        await resolve("https://no-such-host.invalid/x", allow_private=False)
    assert caught.value.field == "/url"


def test_retry_after_header_values() -> None:
    from email.utils import format_datetime

    from writgate.webhooks.delivery import _retry_after

    assert _retry_after("120") == 120.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    value = _retry_after(later)
    assert value is not None and 85 <= value <= 91


class _NoStore:
    def on_enqueued(self, callback: object) -> None:
        del callback


def test_deliverer_configuration_from_the_environment() -> None:
    from writgate.webhooks import CircuitPolicy, Deliverer

    store: Any = _NoStore()
    deliverer = Deliverer.from_env(
        store,
        {
            "WRITGATE_WEBHOOKS_RETRY_SCHEDULE": "1s,2s",
            "WRITGATE_WEBHOOKS_TIMEOUT": "10s",
            "WRITGATE_WEBHOOKS_DISABLE_AFTER_FAILURES": "3",
            "WRITGATE_WEBHOOKS_DISABLE_AFTER": "1h",
            "WRITGATE_WEBHOOKS_RETENTION": "0",
        },
    )
    assert deliverer.schedule.delays == (1.0, 2.0) and deliverer.timeout == 10.0
    assert deliverer.circuit == CircuitPolicy(failure_threshold=3, failing_for=timedelta(hours=1))
    assert deliverer.retention is None
    defaults = Deliverer.from_env(store, {})
    assert defaults.schedule == RetrySchedule() and defaults.circuit == CircuitPolicy()
    assert defaults.retention == timedelta(days=30)
    for environ, fragment in (
        ({"WRITGATE_WEBHOOKS_TIMEOUT": "2m"}, "lease must outlast"),
        ({"WRITGATE_WEBHOOKS_DISABLE_AFTER_FAILURES": "many"}, "is not a number"),
        ({"WRITGATE_WEBHOOKS_DISABLE_AFTER_FAILURES": "0"}, "at least 1"),
        ({"WRITGATE_WEBHOOKS_POLL": "often"}, "WRITGATE_WEBHOOKS_POLL"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            Deliverer.from_env(store, environ)
