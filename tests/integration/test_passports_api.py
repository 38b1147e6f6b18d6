from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from passport import PassportStore, build_passport
from writgate.app.database import open_database
from writgate.settings import Settings

from ..conftest import git
from .forge_server import create_api_key, running_server


def _seed(settings: Settings, repo: Path, count: int) -> list[str]:
    async def go() -> list[str]:
        database = await open_database(settings)
        try:
            store = PassportStore(engine=database.engine)
            ids = []
            for i in range(count):
                (repo / f"f{i}.txt").write_text(f"{i}\n")
                git(repo, "add", "-A")
                git(repo, "commit", "-qm", f"c{i}")
                statement = await build_passport(repo, "HEAD~1", "HEAD", repository="acme/app")
                ids.append((await store.save("org-a", statement)).id)
            return ids
        finally:
            await database.dispose()

    return anyio.run(go)


def test_passports_list_get_markdown_and_tenancy(settings: Settings, git_repo: Path) -> None:
    key_a = create_api_key(settings, "org-a")
    key_b = create_api_key(settings, "org-b")
    ids = _seed(settings, git_repo, 3)
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {key_a}"}
        page = client.get("/api/v1/passports", params={"limit": 2}, headers=auth).json()
        assert [p["id"] for p in page["items"]] == ids[::-1][:2]
        rest = client.get(
            "/api/v1/passports", params={"cursor": page["nextCursor"]}, headers=auth
        ).json()
        assert [p["id"] for p in rest["items"]] == [ids[0]] and rest["nextCursor"] is None
        one = client.get(f"/api/v1/passports/{ids[0]}", headers=auth).json()
        assert one["statement"]["predicateType"] == "https://writgate.dev/change-passport/v1"
        assert one["signed"] is False and one["envelope"] is None
        by_digest = client.get(f"/api/v1/passports/{one['passportId']}", headers=auth).json()
        assert by_digest["id"] == ids[0]
        markdown = client.get(f"/api/v1/passports/{ids[0]}/markdown", headers=auth)
        assert markdown.status_code == 200 and "f0.txt" in markdown.text
        other = {"Authorization": f"Bearer {key_b}"}
        assert client.get(f"/api/v1/passports/{ids[0]}", headers=other).status_code == 404
        assert client.get("/api/v1/passports", headers=other).json()["items"] == []
        bad = client.get("/api/v1/passports", params={"since": "yesterday"}, headers=auth)
        assert bad.status_code == 422 and bad.json()["field"] == "since"
        recent = client.get("/api/v1/passports", params={"since": "1d"}, headers=auth).json()
        assert len(recent["items"]) == 3
