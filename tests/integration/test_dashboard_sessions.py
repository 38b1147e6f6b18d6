"""Dashboard sessions over the real key store (SQLite and PostgreSQL): a revoked key ends them."""

from __future__ import annotations

import pytest

from writgate.app.dashboard.sessions import SessionManager
from writgate.app.database import Database
from writgate.auth import KeyStore, Unauthorized

pytestmark = pytest.mark.anyio


async def test_sessions_follow_the_key_store(database: Database) -> None:
    keys = KeyStore(engine=database.engine)
    key, token = await keys.create("org-a", name="dashboard")
    other, _ = await keys.create("org-b")
    assert (await keys.identify(token)).id == key.id
    assert (await keys.active(key.id)) == key
    manager = SessionManager(secret=b"k" * 32, keys=keys)
    session, cookie = await manager.login(token)
    assert session.key_id == key.id and session.org == "org-a"
    assert token not in cookie
    assert (await manager.verify(cookie)).org == "org-a"
    await keys.revoke(key.id)
    assert await keys.active(key.id) is None
    assert await keys.active(other.id) == other
    with pytest.raises(Unauthorized, match="revoked"):
        await manager.verify(cookie)
    with pytest.raises(Unauthorized):
        await manager.login(token)
    with pytest.raises(Unauthorized):
        await keys.identify("wg_unknown")
