"""Unit tests of the dashboard's pure parts: session cookies and CSRF tokens, redirects, the DAG
layout, diff classification, time formatting and event summaries."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from writgate.app.dashboard.dag import NODE_HEIGHT, NODE_WIDTH, layout
from writgate.app.dashboard.forge import parse_diff_lines
from writgate.app.dashboard.live import summarize_event
from writgate.app.dashboard.pages import local_path
from writgate.app.dashboard.rendering import age, environment
from writgate.app.dashboard.sessions import SessionManager, load_session_secret
from writgate.auth import ApiKey, Unauthorized
from writgate.errors import ConfigError

pytestmark = pytest.mark.anyio


class _Keys:
    """Two keys of org-a, one of them revoked later."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.known = {
            "wg_good": ApiKey(
                id="key_1", org_id="org-a", name="n", prefix="wg_good", created_at=now
            )
        }
        self.revoked: set[str] = set()

    async def identify(self, token: str) -> ApiKey:
        if token not in self.known or self.known[token].id in self.revoked:
            raise Unauthorized("the API key is not valid")
        return self.known[token]

    async def active(self, key_id: str) -> ApiKey | None:
        found = [k for k in self.known.values() if k.id == key_id and k.id not in self.revoked]
        return found[0] if found else None


def _manager(keys: _Keys | None = None, lifetime: int = 3600) -> SessionManager:
    return SessionManager(secret=b"s" * 32, keys=keys or _Keys(), lifetime=lifetime)  # type: ignore[arg-type]


async def test_a_session_names_the_key_and_never_holds_it() -> None:
    keys = _Keys()
    manager = _manager(keys)
    session, cookie = await manager.login("  wg_good  ")
    assert "wg_good" not in cookie
    assert "wg_good" not in base64.urlsafe_b64decode(cookie.split(".")[0] + "==").decode()
    verified = await manager.verify(cookie)
    assert verified == session and verified.org == "org-a" and verified.key_id == "key_1"
    keys.revoked.add("key_1")  # revoking the key ends its sessions
    with pytest.raises(Unauthorized, match="revoked"):
        await manager.verify(cookie)


async def test_tampered_foreign_and_expired_sessions_are_refused() -> None:
    manager = _manager()
    _, cookie = await manager.login("wg_good")
    body, signature = cookie.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=="))
    data["o"] = "org-b"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    for bad in (f"{forged}.{signature}", f"{body}.{signature[:-2]}AA", "garbage", "a.b.c", ""):
        with pytest.raises(Unauthorized):
            await manager.verify(bad)
    other = SessionManager(secret=b"t" * 32, keys=_Keys())  # type: ignore[arg-type]
    with pytest.raises(Unauthorized):
        await other.verify(cookie)
    with pytest.raises(Unauthorized):
        await manager.login("wg_unknown")
    expired = _manager(lifetime=-1)
    _, old = await expired.login("wg_good")
    with pytest.raises(Unauthorized, match="expired"):
        await expired.verify(old)


def test_csrf_tokens_are_bound_to_the_nonce_and_the_session() -> None:
    manager = _manager()
    nonce = manager.new_nonce()
    token = manager.csrf_token(nonce, "session-1")
    assert manager.check_csrf(nonce, "session-1", token)
    assert not manager.check_csrf(nonce, "session-2", token)
    assert not manager.check_csrf(manager.new_nonce(), "session-1", token)
    assert not manager.check_csrf(nonce, "session-1", None)
    assert not manager.check_csrf(None, "session-1", token)
    assert not manager.check_csrf(
        nonce, "session-1", token[:-1] + ("A" if token[-1] != "A" else "B")
    )


def test_flash_messages_are_signed() -> None:
    manager = _manager()
    cookie = manager.flash_cookie("error", "Merge refused: <b>pending</b>")
    assert manager.read_flash(cookie) == ("error", "Merge refused: <b>pending</b>")
    _body, signature = cookie.split(".")
    forged = base64.urlsafe_b64encode(b'{"k":"ok","t":"Go to evil.example"}').decode()
    assert manager.read_flash(f"{forged.rstrip('=')}.{signature}") is None
    assert manager.read_flash("nonsense") is None and manager.read_flash(None) is None


def test_the_session_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = load_session_secret(tmp_path, {})
    assert len(first) == 32
    assert load_session_secret(tmp_path, {}) == first
    assert (tmp_path / "dashboard" / "session.key").stat().st_mode & 0o777 == 0o600
    configured = "x" * 40
    assert (
        load_session_secret(tmp_path, {"WRITGATE_SESSION_SECRET": configured})
        == configured.encode()
    )
    with pytest.raises(ConfigError, match="at least 32"):
        load_session_secret(tmp_path, {"WRITGATE_SESSION_SECRET": "short"})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/runs/run_1?x=1", "/runs/run_1?x=1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_redirects_stay_on_the_site(target: str | None, expected: str) -> None:
    assert local_path(target) == expected


def test_dag_layout_places_stages_by_their_longest_chain() -> None:
    drawing = layout(
        {"write": [], "review": ["write"], "passport": ["write", "review"], "notify": ["passport"],
         "lint": ["write"]}
    )  # fmt: skip
    columns = {node.stage: node.column for node in drawing.nodes}
    assert columns == {"write": 0, "review": 1, "passport": 2, "notify": 3, "lint": 1}
    rows = {node.stage: node.row for node in drawing.nodes}
    assert rows["review"] == 0 and rows["lint"] == 1  # spec order within a column
    assert {(e.source, e.target) for e in drawing.edges} == {
        ("write", "review"), ("write", "passport"), ("review", "passport"),
        ("passport", "notify"), ("write", "lint"),
    }  # fmt: skip
    for node in drawing.nodes:
        assert node.x + NODE_WIDTH <= drawing.width and node.y + NODE_HEIGHT <= drawing.height
    assert layout({}).nodes == ()
    assert {n.column for n in layout({"a": ["b"], "b": ["a"]}).nodes} <= {0, 1}  # a cycle ends


def test_diff_lines_are_classified() -> None:
    text = (
        "diff --git a/x.py b/x.py\nindex 1..2 100644\n--- a/x.py\n+++ b/x.py\n"
        "@@ -1 +1 @@\n-old\n+new\n same\n"
    )
    assert [line.kind for line in parse_diff_lines(text)] == [
        "file", "meta", "meta", "meta", "hunk", "del", "add", "context",
    ]  # fmt: skip


def test_ages_and_summaries() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert age(now - timedelta(seconds=42), now) == "42s"
    assert age(now - timedelta(minutes=5, seconds=3), now) == "5m"
    assert age(now - timedelta(hours=3), now) == "3h"
    assert age((now - timedelta(days=2)).isoformat(), now) == "2d"
    assert age(None, now) == "—" and age("not a time", now) == "—"
    assert age(now + timedelta(seconds=5), now) == "0s"
    assert summarize_event("agent.message", {"text": "tick 1"}) == "tick 1"
    failed = {"lifecycle": "failed", "failure": {"code": "agent_error", "message": "exit 1"}}
    assert summarize_event("run.failed", failed) == "lifecycle failed — agent_error: exit 1"
    assert summarize_event("stage.started", {"stage": "write"}) == "write"
    assert len(summarize_event("x.y", {"blob": "z" * 1000})) == 400


def test_templates_escape_everything() -> None:
    env = environment()
    assert env.autoescape is True
    rendered = env.from_string("{{ value }}").render(value="<script>x</script>")
    assert rendered == "&lt;script&gt;x&lt;/script&gt;"


def test_passport_signatures_are_checked_against_the_trusted_keys(tmp_path: Path) -> None:
    from passport import StoredPassport, generate_signing_key, passport_id, sign_statement
    from tests.unit.passport_samples import sample_statement
    from writgate.app.dashboard.gate import trusted_keys, verification_of

    statement = sample_statement()
    signer, stranger = generate_signing_key(), generate_signing_key("p256")
    (tmp_path / "signer.pem").write_bytes(signer.to_pem())
    (tmp_path / "stranger.pub").write_bytes(stranger.public_key.to_pem())

    def stored(envelope: dict[str, object] | None) -> StoredPassport:
        return StoredPassport(
            id="pp_1", passport_id=passport_id(statement), repository="acme/app",
            head_sha="1" * 40, created_at=datetime.now(UTC), statement=statement,
            envelope=envelope,
        )  # fmt: skip

    envelope = sign_statement(statement, signer)
    assert trusted_keys({}) == []
    own = trusted_keys({"WRITGATE_SIGNING_KEY": str(tmp_path / "signer.pem")})
    other = trusted_keys(
        {"WRITGATE_TRUST_KEYS": f"{tmp_path / 'stranger.pub'}:{tmp_path / 'missing.pem'}"}
    )
    assert len(own) == 1 and len(other) == 1
    assert verification_of(stored(None), own).label == "unsigned"
    verified = verification_of(stored(envelope), own)
    assert verified.verified is True and verified.keyids == (signer.keyid,)
    assert verification_of(stored(envelope), []).verified is None
    refused = verification_of(stored(envelope), other)
    assert refused.verified is False and "INVALID" in refused.label
    tampered = dict(envelope, signatures=[{"keyid": signer.keyid, "sig": "AAAA"}])
    assert verification_of(stored(tampered), own).verified is False


def test_public_names_are_sorted_and_exist() -> None:
    import writgate.app.dashboard as dashboard
    from writgate.app.dashboard import dag, forge, gate, live, pages, rendering, runs, sessions

    for module in (dashboard, dag, forge, gate, live, pages, rendering, runs, sessions):
        names = list(module.__all__)
        # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
        assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
        assert all(hasattr(module, name) for name in names), module.__name__
