"""Bad input on PostgreSQL: text that SQLite stores but PostgreSQL refuses (U+0000).

The SQLite fuzz (``test_fuzz_http``) covers the input handling; this module covers the one class
of input whose fate depends on the database: a NUL character in any string of a request body
must be a 422 naming the field (or the webhook receiver's 400), never a 500 from the driver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from writgate.settings import Settings

from ..integration.forge_server import create_api_key, running_server
from .hostile import fuzz, paths_of, replace_at
from .test_fuzz_http import PR_PAYLOAD, VALID_RUN, VALID_WEBHOOK, WEBHOOK_SECRET, documented

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str
) -> Iterator[httpx.Client]:
    from tests.conftest import _pg_admin

    name = f"writgate_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    settings = Settings(
        home=tmp_path_factory.mktemp("fuzz-pg"),
        database_url=f"postgresql+asyncpg://postgres@{postgres_server}:5432/{name}",
    )
    try:
        with pytest.MonkeyPatch.context() as env:
            for variable in ("WRITGATE_EXECUTOR", "WRITGATE_SERVER_WORKER"):
                env.setenv(variable, "off")
            env.setenv("WRITGATE_WEBHOOKS_DELIVERY", "off")
            env.setenv("WRITGATE_GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
            key = create_api_key(settings, "fuzz")
            with (
                running_server(settings) as url,
                httpx.Client(
                    base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
                ) as client,
            ):
                yield client
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _string_paths(document: Any) -> list[tuple[Any, ...]]:
    return [path for path in paths_of(document) if isinstance(_at(document, path), str)]


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def with_nul(document: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``document`` with a NUL character inserted into one of its strings."""
    return st.tuples(st.sampled_from(_string_paths(document)), st.integers(0, 20)).map(
        lambda t: replace_at(
            document, t[0], _at(document, t[0])[: t[1]] + "\x00" + _at(document, t[0])[t[1] :]
        )
    )


@fuzz(30)
@given(with_nul(VALID_RUN))
@example({**VALID_RUN, "metadata": {"ticket": "PAY\x00"}})
@example({**VALID_RUN, "title": "x\x00"})
@example({**VALID_RUN, "repository": "acme/web\x00"})
def test_nul_in_run_create(client: httpx.Client, body: dict[str, Any]) -> None:
    documented(client.post("/api/v1/coding-agent/runs", json=body), {422})


@fuzz(10)
@given(with_nul(VALID_WEBHOOK))
@example({**VALID_WEBHOOK, "description": "a\x00"})
def test_nul_in_webhook_subscription(client: httpx.Client, body: dict[str, Any]) -> None:
    documented(client.post("/api/v1/webhooks", json=body), {422})


@fuzz(10)
@given(with_nul(PR_PAYLOAD))
@example(replace_at(PR_PAYLOAD, ("repository", "full_name"), "a\x00b"))
def test_nul_in_github_webhook(client: httpx.Client, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        "/api/v1/forge/github/webhook",
        content=body,
        headers={
            "X-Hub-Signature-256": signature,
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": hashlib.sha256(body).hexdigest()[:32],
            "Content-Type": "application/json",
        },
    )
    # The API's edge refuses the NUL before the receiver parses the payload.
    assert documented(response, {422})["field"].startswith("/")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/coding-agent/runs?repository=a%00b", "/repository"),
        ("/api/v1/coding-agent/runs?tag=ci%00", "/tag"),
        ("/api/v1/passports?cursor=pp_%00", "/cursor"),
        ("/api/v1/coding-agent/runs/run_%00x", "path"),
        ("/api/v1/forge/local/repositories/acme%00/app/pulls", "path"),
    ],
)
def test_nul_in_path_or_query_is_a_422_naming_it(
    client: httpx.Client, path: str, field: str
) -> None:
    assert documented(client.get(path), {422})["field"] == field


def test_nul_in_any_json_body_is_a_422_with_its_pointer(client: httpx.Client) -> None:
    body = {"title": "fine", "body": "bad\x00", "labels": ["ok", "x\x00y"]}
    response = client.post("/api/v1/forge/local/repositories/acme/app/pulls", json=body)
    assert documented(response, {422})["field"] == "/body"
