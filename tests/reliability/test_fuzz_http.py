"""Bad input everywhere, over HTTP: hostile bodies and headers get documented problem+json errors.

One real server (uvicorn on loopback) serves the whole module and each property sends it many
examples. SQLite is enough here: the property is about how the server handles input (parsing,
validation, error mapping), which is the same code on both databases. Nothing runs the work the
requests create (executor, pipeline worker and webhook delivery are off), so no generated argv is
ever executed and no webhook leaves the machine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from writgate.settings import Settings

from ..integration.forge_server import create_api_key, running_server
from .hostile import (
    ODD_STRINGS,
    alias_bomb,
    damaged,
    deep,
    dumps,
    fuzz,
    json_values,
    mutations,
    odd_text,
    raw_bodies,
)

WEBHOOK_SECRET = "fuzz-webhook-secret"
PIPELINE = """\
name: demo
stages:
  hello: {uses: command, with: {argv: [echo, hello]}}
"""
VALID_RUN: dict[str, Any] = {
    "repository": "acme/web",
    "title": "Fix Stripe webhook verification",
    "tags": ["ci", "payments", "owner:platform"],
    "metadata": {"ticket": "PAY-742", "source": "github-actions", "n": 3, "ok": True, "x": None},
    "prompt": "Add Stripe webhook signature verification and regression tests.",
    "modelId": "anthropic/claude-sonnet-4.6",
    "agent": {"driver": "command", "argv": ["true", "{{ instruction }}"]},
    "billing": {"mode": "managed"},
    "publish": {"mode": "draft_pr"},
    "validationMode": "tests",
    "session": {"keepWarmSeconds": 600},
    "safety": {
        "network": {"mode": "restricted", "allowlist": ["api.stripe.com"]},
        "resources": {"maxTurns": 3, "maxCredits": 12, "maxWallSeconds": 1800},
    },
    "baseRef": "main",
}
VALID_PIPELINE_SPEC: dict[str, Any] = {
    "name": "fuzz",
    "inputs": {"repository": {"required": True}, "check": {"default": "tests"}},
    "concurrency": {"group": "g-{{ inputs.repository }}", "cancelInProgress": True},
    "stages": {
        "write": {
            "uses": "writer",
            "with": {"repository": "{{ inputs.repository }}", "prompt": "fix it"},
            "timeout": "30m",
            "retries": {"max": 1, "backoff": "10s"},
        },
        "review": {"uses": "review", "needs": ["write"], "with": {"reviewers": ["secrets"]}},
        "gate": {"uses": "gate", "needs": ["review"], "if": "{{ always() }}"},
    },
}
VALID_WEBHOOK = {"url": "https://93.184.215.14/hook", "eventTypes": ["run.*"], "description": "x"}


@dataclass
class Api:
    client: httpx.Client
    url: str
    run_id: str
    pipeline_run_id: str
    run_last_seq: int
    pipeline_last_seq: int


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("fuzz-http")
    settings = Settings(home=root / "home", database_url=f"sqlite+aiosqlite:///{root / 'db'}")
    (settings.home / "pipelines").mkdir(parents=True)
    (settings.home / "pipelines" / "demo.yaml").write_text(PIPELINE)
    with pytest.MonkeyPatch.context() as env:
        for name in ("WRITGATE_EXECUTOR", "WRITGATE_SERVER_WORKER", "WRITGATE_WEBHOOKS_DELIVERY"):
            env.setenv(name, "off")
        env.setenv("WRITGATE_GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
        for name in ("WRITGATE_PIPELINE_DIR", "WRITGATE_API_HOST_STAGES", "WRITGATE_FORGE"):
            env.delenv(name, raising=False)
        key = create_api_key(settings, "fuzz")
        with (
            running_server(settings) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client,
        ):
            run = client.post("/api/v1/coding-agent/runs", json=VALID_RUN)
            assert run.status_code == 201, run.text
            pipeline_run = client.post("/api/v1/pipelines", json={"path": "demo.yaml"})
            assert pipeline_run.status_code == 201, pipeline_run.text
            run_id, pipeline_run_id = run.json()["id"], pipeline_run.json()["id"]
            run_events = client.get(f"/api/v1/coding-agent/runs/{run_id}/events").json()
            pipeline_events = client.get(f"/api/v1/pipeline-runs/{pipeline_run_id}/events").json()
            assert run_events["items"] and pipeline_events["items"]
            yield Api(
                client,
                url,
                run_id,
                pipeline_run_id,
                run_events["items"][-1]["seq"],
                pipeline_events["items"][-1]["seq"],
            )


def documented(response: httpx.Response, allowed: set[int]) -> dict[str, Any]:
    """Assert the response is one of ``allowed`` and, when an error, proper problem+json."""
    sent = (response.request.url, response.request.headers, response.request.content[:500])
    assert response.status_code < 500, (sent, response.text[:2000])
    assert response.status_code in allowed, (sent, response.status_code, response.text[:2000])
    assert "Traceback" not in response.text
    if response.status_code < 400:
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return dict(response.json()) if is_json else {}
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    assert isinstance(problem["code"], str) and problem["code"]
    assert isinstance(problem["title"], str) and problem["title"]
    if response.status_code == 422:
        assert isinstance(problem.get("field"), str) and problem["field"], problem
    return problem


def post_json(api: Api, path: str, body: bytes, **headers: str) -> httpx.Response:
    return api.client.post(
        path, content=body, headers={"Content-Type": "application/json", **headers}
    )


# -- POST /runs ----------------------------------------------------------------------------------

RUNS = "/api/v1/coding-agent/runs"
run_bodies = st.one_of(
    mutations(VALID_RUN, json_values()),
    json_values(st.sampled_from(sorted(VALID_RUN))),
)


@fuzz(60)
@given(run_bodies)
@example({**VALID_RUN, "metadata": {"x": float("nan")}})
@example({**VALID_RUN, "metadata": {"x": float("inf")}})
@example({**VALID_RUN, "prompt": "fix \ud800"})
@example({**VALID_RUN, "tags": ["\ud800"]})
@example({**VALID_RUN, "safety": {"resources": {"maxCredits": float("nan")}}})
def test_run_create_body(api: Api, body: Any) -> None:
    documented(post_json(api, RUNS, dumps(body)), {200, 201, 422})


@fuzz(40)
@given(raw_bodies)
def test_run_create_raw_body(api: Api, body: bytes) -> None:
    # Not JSON: 422 naming the byte position; JSON the parser refuses (bad UTF-8, nesting past
    # its stack, integers past 4,300 digits): FastAPI's 400 "error parsing the body".
    documented(post_json(api, RUNS, body), {400, 422})


def header_value(raw: bytes) -> bytes:
    """``raw`` as HTTP/1.1 can carry it: no control characters, no surrounding whitespace."""
    return bytes(b for b in raw if b == 0x09 or 0x20 <= b != 0x7F).strip(b" \t")


header_values = st.binary(max_size=300).map(header_value)


@fuzz(30)
@given(header_values)
@example(b"x" * 256)
@example("ключ".encode())
def test_idempotency_key_header(api: Api, key: bytes) -> None:
    response = api.client.post(
        RUNS,
        content=dumps(VALID_RUN),
        headers=[("Content-Type", b"application/json"), ("Idempotency-Key", key)],
    )
    documented(response, {200, 201, 422})


# -- pipelines -----------------------------------------------------------------------------------

pipeline_yaml = st.one_of(
    st.sampled_from(
        [
            "a: &a [*a]\n",
            "name: x\nstages: " + deep(3000, "{a: ", "}", "1"),
            "name: x\nname: y\nstages: {a: {uses: review}}\n",
            "name: x\n\tstages: {}\n",
            "name: a\x00b\n",
        ]
    ),
    damaged(
        "name: fuzz\nstages:\n  write:\n    uses: writer\n"
        "    with: {prompt: fix, repository: a/b}\n"
        "    timeout: 30m\n  review: {uses: review, needs: [write]}\n"
    ),
    st.text(max_size=200),
)


@fuzz(40)
@given(
    st.one_of(
        pipeline_yaml.map(lambda text: {"yaml": text}),
        mutations(VALID_PIPELINE_SPEC, json_values()).map(lambda spec: {"spec": spec}),
        mutations({"path": "demo.yaml", "inputs": {"who": "x"}}, json_values()),
        json_values(st.sampled_from(["path", "yaml", "spec", "inputs"])),
    )
)
@example({"yaml": alias_bomb()})
@example({"yaml": "name: x\nstages:\n  " + alias_bomb(key="s").replace("\n", "\n  ")})
@example({"yaml": "a: &a [*a]\n"})
@example({"yaml": "name: x\nstages: " + deep(3000, "{a: ", "}", "1")})
@example({"path": "demo.yaml\x00"})
def test_pipeline_spec(api: Api, body: Any) -> None:
    payload = dumps(body)
    validation = documented(post_json(api, "/api/v1/pipelines/validate", payload), {200, 422})
    if validation.get("valid") is False:
        assert validation["problems"]
        for problem in validation["problems"]:
            assert problem["message"]
        # What validate calls invalid, start refuses with a 422 naming the problems.
        refused = documented(post_json(api, "/api/v1/pipelines", payload), {422})
        assert refused["code"] == "invalid_pipeline"


# -- webhooks: subscriptions and the GitHub receiver ---------------------------------------------

webhook_urls = st.one_of(
    odd_text,
    st.sampled_from(
        [
            "http://127.0.0.1/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/",
            "http://0/",
            "http://10.0.0.1:99999/",
            "http://[fe80::1%25eth0]/",
            "https://user:pw@93.184.215.14/",
            "https://93.184.215.14/#frag",
            "ftp://93.184.215.14/",
            "https://93.184.215.14:0/",
            "https://93.184.215.14:-1/",
            "https://[1:2:3/",
            "https:///path",
            "javascript:alert(1)",
            "https://93.184.215.14/" + "a" * 3000,
        ]
    ),
    # Hosts are IP literals: a generated name must never reach a DNS resolver outside loopback.
    st.builds(
        "{}://{}:{}/{}".format,
        st.sampled_from(["http", "https", "HTTP", "gopher", ""]),
        st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
        st.integers(-5, 70000),
        odd_text,
    ),
)


@fuzz(30)
@given(
    st.one_of(
        mutations(VALID_WEBHOOK, json_values()),
        st.builds(lambda url: {**VALID_WEBHOOK, "url": url}, webhook_urls),
    )
)
def test_webhook_subscription(api: Api, body: Any) -> None:
    created = documented(post_json(api, "/api/v1/webhooks", dumps(body)), {201, 422})
    if "id" in created:
        assert created["secret"].startswith("whsec_")
        patched = api.client.patch(f"/api/v1/webhooks/{created['id']}", content=dumps(body))
        documented(patched, {200, 422})


def _github(api: Api, body: bytes, event: str, delivery: str) -> httpx.Response:
    signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return api.client.post(
        "/api/v1/forge/github/webhook",
        content=body,
        headers=[
            ("X-Hub-Signature-256", signature.encode()),
            ("X-GitHub-Event", event.encode()),
            ("X-GitHub-Delivery", delivery.encode()),
            ("Content-Type", b"application/json"),
        ],
    )


PR_PAYLOAD: dict[str, Any] = {
    "action": "opened",
    "number": 7,
    "pull_request": {
        "number": 7,
        "head": {"ref": "feature", "sha": "a" * 40},
        "base": {"ref": "main"},
    },
    "repository": {"full_name": "acme/web"},
    "installation": {"id": 42},
    "sender": {"login": "alice"},
}
github_payloads = st.one_of(
    mutations(PR_PAYLOAD, json_values()).map(dumps),
    json_values(st.sampled_from(["action", "pull_request", "check_suite", "merge_group"])).map(
        dumps
    ),
    raw_bodies,
)


@fuzz(50)
@given(
    github_payloads,
    st.sampled_from(["pull_request", "check_suite", "merge_group", "ping", "push", "\u00e9v"]),
    st.uuids().map(str),
)
@example(dumps({**PR_PAYLOAD, "number": 10**30, "pull_request": {}}), "pull_request", "d-huge")
@example(dumps({**PR_PAYLOAD, "installation": {"id": 2**63}}), "pull_request", "d-huge-id")
@example(('{"action": "opened", "x": ' + deep(100_000) + "}").encode(), "pull_request", "d-deep")
@example(dumps({**PR_PAYLOAD, "action": {"a": 1}}), "pull_request", "d-action-object")
@example(b'{"action": "opened", "repository": {"full_name": "\\ud800"}}', "pull_request", "d-lone")
@example(b'{"action": "opened", "x": NaN}', "pull_request", "d-nan")
@example(dumps(PR_PAYLOAD), "\u00e9v\u00e9nement", "d-latin")
def test_github_webhook_payload(api: Api, body: bytes, event: str, delivery: str) -> None:
    # Properly signed: the receiver must cope with whatever GitHub (or a forger with the secret)
    # sends, and a garbage body is a 400 (a NUL anywhere: the API edge's 422), never a 500.
    response = _github(api, body, event, delivery)
    documented(response, {200, 202, 400, 409, 422})


# -- SSE Last-Event-ID ---------------------------------------------------------------------------

last_event_ids = st.one_of(
    header_values,
    st.sampled_from([*ODD_STRINGS, "1", "0", "1 ", "01", "+1", "1.0", "0x1", "9" * 5000]).map(
        lambda s: header_value(s.encode("utf-8", "surrogatepass"))
    ),
    st.integers(-(10**20), 10**20).map(lambda n: str(n).encode()),
)


@fuzz(60)
@given(st.sampled_from(["run", "pipeline"]), last_event_ids)
@example("run", "9" * 5000)
@example("pipeline", "9" * 5000)
@example("run", "²".encode("latin-1"))
@example("pipeline", "²".encode("latin-1"))
def test_last_event_id(api: Api, subject: str, header: bytes | str) -> None:
    if isinstance(header, str):
        header = header.encode("latin-1")
    path, last = (
        (f"/api/v1/coding-agent/runs/{api.run_id}/stream", api.run_last_seq)
        if subject == "run"
        else (f"/api/v1/pipeline-runs/{api.pipeline_run_id}/stream", api.pipeline_last_seq)
    )
    with api.client.stream("GET", path, headers=[("Last-Event-ID", header)]) as response:
        status = response.status_code
        text = header.decode("latin-1").strip()
        valid = text.isascii() and text.isdigit() and len(text) < 20 and int(text) <= last
        if status == 200:
            assert valid, header
            assert response.headers["content-type"].startswith("text/event-stream")
            return  # a live stream of a queued run: it would only send heartbeats now
        response.read()
    problem = documented(response, {400})
    assert not valid, header
    assert problem["code"] == "invalid_last_event_id"


# -- passport JSON and policy YAML over HTTP -----------------------------------------------------


def _statement() -> dict[str, Any]:
    from tests.unit.passport_samples import sample_statement

    statement: dict[str, Any] = sample_statement()
    return statement


POLICY = """\
policy: writgate/v1
name: fuzz
rules:
  - name: small
    require: {diff.lines: "<= 500"}
"""


@fuzz(40)
@given(
    st.one_of(
        mutations(_statement(), json_values()),
        json_values(st.sampled_from(["_type", "subject", "predicateType", "predicate"])),
        st.builds(
            lambda payload: {
                "payloadType": "application/vnd.in-toto+json",
                "payload": payload,
                "signatures": [],
            },
            st.one_of(odd_text, st.binary(max_size=40).map(lambda b: b.hex())),
        ),
    ),
    st.one_of(st.just(POLICY), damaged(POLICY), st.text(max_size=80)),
)
@example(
    {
        **_statement(),
        "predicate": {**_statement()["predicate"], "reviews": [{"reviewer": "x", "findings": [1]}]},
    },
    POLICY,
)
@example({**_statement(), "predicate": {**_statement()["predicate"], "reviews": [7]}}, POLICY)
@example(_statement(), "")
@example(_statement(), "policy: writgate/v1\nname: x\nrules: " + deep(3000, "{a: ", "}", "1"))
def test_gate_evaluate_passport_and_policy(api: Api, passport: Any, policy: str) -> None:
    body = {"policy": policy, "passport": passport, "prState": None}
    decided = documented(post_json(api, "/api/v1/merge-gate/evaluate", dumps(body)), {200, 422})
    ref = decided.get("passport")
    if isinstance(ref, str):
        # A passport the gate accepted and stored must render too.
        for path in (f"/api/v1/passports/{ref}", f"/api/v1/passports/{ref}/markdown"):
            documented(api.client.get(path), {200})


@fuzz(30)
@given(
    st.one_of(
        # A URL cannot carry a lone surrogate: the client refuses it before the server sees it.
        odd_text.filter(lambda text: not any(0xD800 <= ord(c) <= 0xDFFF for c in text)),
        st.sampled_from(["30d", "0d", "2026-13-01", "0001-01-01T00:00:00+01:00"]),
    )
)
@example("99999999999999999999d")
@example("²d")
@example("9999-12-31T23:59:59-23:00")
def test_passport_list_since_and_cursor(api: Api, value: str) -> None:
    for name in ("since", "cursor"):
        documented(api.client.get("/api/v1/passports", params={name: value}), {200, 422})


def test_fixture_sent_valid_requests(api: Api) -> None:
    # The examples above are only meaningful if the same server accepts honest requests.
    assert api.client.get(f"{RUNS}/{api.run_id}").status_code == 200
    signed = _github(api, json.dumps(PR_PAYLOAD).encode(), "pull_request", "honest-delivery")
    assert signed.status_code == 202, signed.text
