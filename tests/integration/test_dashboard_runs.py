"""The dashboard's run pages in a real browser (Debian's headless Chromium via Playwright)
against a real server on 127.0.0.1: login, filters, live lifecycle and events, follow-ups,
cancel, escaping of user content, org scoping, CSRF and SSE resumption."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.support.dashboard import REPO, Dashboard, chromium, dashboard_server, login, wait_for

# Prints its instruction, then a line every 0.4 s: slow enough to watch the page change.
TICKER = (
    "import sys, time\n"
    "print('instruction:', sys.argv[1], flush=True)\n"
    "for i in range(6):\n"
    "    time.sleep(0.4)\n"
    "    print('tick', i, flush=True)\n"
)
SLEEPER = "import time\nprint('working', flush=True)\ntime.sleep(120)\n"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with dashboard_server(tmp_path_factory.mktemp("dashboard-runs")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext, dashboard: Dashboard) -> Iterator[Page]:
    page = browser.new_page()
    login(page, dashboard.url, dashboard.keys["org-a"])
    yield page
    page.close()


def _run(
    api: httpx.Client, *, program: str = "print('done')", keep_warm: int = 0, **changes: Any
) -> dict[str, Any]:
    body = {
        "repository": REPO,
        "title": "Count",
        "prompt": "count things",
        "agent": {"driver": "command", "argv": ["python3", "-c", program, "{{ instruction }}"]},
        "publish": {"mode": "none"},
        "session": {"keepWarmSeconds": keep_warm},
        **changes,
    }
    response = api.post("/api/v1/coding-agent/runs", json=body)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


def _lifecycle(api: httpx.Client, run_id: str) -> str:
    return str(api.get(f"/api/v1/coding-agent/runs/{run_id}/status").json()["lifecycle"])


def _listed(page: Page) -> set[str]:
    return set(page.locator("table.runs tbody tr").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-run-id'))"
    ))  # fmt: skip


def test_login_is_required_and_the_cookie_never_holds_the_key(
    browser: BrowserContext, dashboard: Dashboard
) -> None:
    page = browser.new_page()
    browser.clear_cookies()
    page.goto(f"{dashboard.url}/gate/decisions")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fgate%2Fdecisions$"))
    page.fill("#key", "wg_not-a-real-key")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("p.flash.error")).to_have_text("That API key is not valid.")
    page.fill("#key", dashboard.keys["org-a"])
    page.click("form[action='/login'] button[type=submit]")
    expect(page).to_have_url(f"{dashboard.url}/gate/decisions")
    cookies = {c["name"]: c for c in browser.cookies()}
    session = cookies["writgate_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert dashboard.keys["org-a"] not in session["value"]
    assert dashboard.keys["org-a"].removeprefix("wg_") not in session["value"]
    expect(page.locator("header.top .org strong")).to_have_text("org-a")
    page.click("header.top form.logout button")
    expect(page).to_have_url(f"{dashboard.url}/login")
    page.goto(f"{dashboard.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.close()


def test_filter_runs_by_tag_and_intent(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    with dashboard.api() as api:
        fix = _run(api, title="Fix the crash in checkout", tags=["filter-a", "payments"],
                   metadata={"ticket": "PAY-1"})  # fmt: skip
        docs = _run(api, title="Update the README guide", tags=["filter-a", "docs-team"],
                    metadata={"ticket": "DOC-2"})  # fmt: skip
        other = _run(api, title="Fix the broken parser", tags=["filter-b"])
    assert fix["intent"]["label"] == "bugfix" and docs["intent"]["label"] == "docs"
    page.goto(f"{dashboard.url}/")
    assert {fix["id"], docs["id"], other["id"]} <= _listed(page)

    page.fill("form.filters input[name=tag]", "filter-a")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"tag=filter-a"))
    assert _listed(page) == {fix["id"], docs["id"]}

    page.select_option("form.filters select[name=intent]", "bugfix")
    page.click("form.filters button[type=submit]")
    assert _listed(page) == {fix["id"]}
    row = page.locator(f"tr[data-run-id='{fix['id']}']")
    expect(row.locator(".intent")).to_have_text("bugfix")
    expect(row.locator(".tag")).to_have_text(["filter-a", "payments"])
    expect(row.locator(".badge")).to_be_visible()

    page.fill("form.filters input[name=tag]", "")
    page.fill("form.filters input[name=metadata]", "ticket=DOC-2")
    page.select_option("form.filters select[name=intent]", "")
    page.click("form.filters button[type=submit]")
    assert _listed(page) == {docs["id"]}

    page.goto(f"{dashboard.url}/?intent=bugfix&tag=filter-b")
    assert _listed(page) == {other["id"]}
    page.click(f"tr[data-run-id='{other['id']}'] a.tag")  # a tag links to its filter
    assert _listed(page) == {other["id"]}
    page.goto(f"{dashboard.url}/?tag=no-such-tag")
    expect(page.locator("p.empty")).to_contain_text("No run matches")
    page.goto(f"{dashboard.url}/?lifecycle=bogus")
    expect(page.locator(".error-page h1")).to_contain_text("422")
    page.goto(f"{dashboard.url}/?tag=filter-a")
    page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)


def test_run_page_updates_live_and_sends_a_follow_up(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    with dashboard.api() as api:
        run = _run(api, program=TICKER, keep_warm=120, title="Watch me live",
                   tags=["live"], metadata={"ticket": "LIVE-1"})  # fmt: skip
        page.goto(f"{dashboard.url}/runs/{run['id']}")
        page.evaluate("window.__loaded = 'once'")
        expect(page.locator("[data-live-state]")).to_have_text(re.compile("live|finished"))
        # Lifecycle and events arrive without a reload.
        badge = page.locator("[data-refresh=head-badges] .badge")
        expect(badge).to_have_text("awaiting follow up", timeout=60_000)
        expect(page.locator("[data-log] .summary", has_text="tick 5")).to_have_count(1)
        expect(page.locator("[data-field=nextActions] .action-name")).to_have_text(
            ["follow_up", "complete", "cancel"]
        )
        assert page.evaluate("window.__loaded") == "once"
        seqs = page.locator("[data-log] li").evaluate_all(
            "items => items.map(i => Number(i.dataset.seq))"
        )
        assert seqs == sorted(set(seqs)) and seqs[0] == 1  # no duplicate, no gap at the start
        events = api.get(f"/api/v1/coding-agent/runs/{run['id']}/events").json()["items"]
        assert seqs == [e["seq"] for e in events]
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

        page.fill("#follow-up-text", "add the regression test")
        page.click("form.follow-up button[type=submit]")
        expect(page.locator("p.flash.ok")).to_have_text("Follow-up sent.")
        page.evaluate("window.__loaded = 'after follow-up'")
        expect(page.locator("[data-log] .summary", has_text="instruction: add the regression test")
               ).to_have_count(1, timeout=60_000)  # fmt: skip
        expect(page.locator("[data-refresh=turns] table.turns tbody tr")).to_have_count(
            2, timeout=60_000
        )
        expect(badge).to_have_text("awaiting follow up", timeout=60_000)
        assert page.evaluate("window.__loaded") == "after follow-up"
        status = api.get(f"/api/v1/coding-agent/runs/{run['id']}").json()
        assert len(status["turns"]) == 2 and status["lifecycle"] == "awaiting_follow_up"

        page.click("[data-refresh=actions] form[action$='/complete'] button")
        expect(page.locator("p.flash.ok")).to_contain_text("the run succeeded")
        expect(badge).to_have_text("succeeded")
        assert _lifecycle(api, run["id"]) == "succeeded"
        # A finished run offers a chained follow-up from its branch.
        expect(page.locator("form.follow-up input[name=fallback]")).to_have_value("chain")


def test_cancel_from_the_page(page: Page, dashboard: Dashboard) -> None:
    with dashboard.api() as api:
        run = _run(api, program=SLEEPER, title="Sleepy")
        wait_for(lambda: _lifecycle(api, run["id"]) == "running", message="run starts")
        page.goto(f"{dashboard.url}/runs/{run['id']}")
        expect(page.locator("[data-log] .summary", has_text="working")).to_have_count(1)
        page.click("[data-refresh=actions] form[action$='/cancel'] button")
        expect(page.locator("p.flash.ok")).to_have_text("Run cancelled.")
        expect(page.locator("[data-refresh=head-badges] .badge")).to_have_text("cancelled")
        assert _lifecycle(api, run["id"]) == "cancelled"
        # Acting on a run that has ended says why on the page, and changes nothing.
        response = page.request.post(
            f"{dashboard.url}/runs/{run['id']}/cancel",
            form={"csrf": page.locator("form.logout input[name=csrf]").input_value()},
            max_redirects=0,
        )
        assert response.status == 303
        page.reload()
        expect(page.locator("p.flash.error")).to_contain_text("cancel")


def test_user_content_is_rendered_as_text(page: Page, dashboard: Dashboard) -> None:
    title = "<script>window.__pwned = 1</script> Fix it"
    evil = '"><img src=x onerror="window.__pwned=2"><script>window.__pwned=3</script>'
    with dashboard.api() as api:
        run = _run(api, title=title, prompt=f"do it {evil}", metadata={"note": evil},
                   tags=["xss"])  # fmt: skip
    for path in ("/?tag=xss", "/?metadata=" + quote(f"note={evil}"), f"/runs/{run['id']}"):
        page.goto(f"{dashboard.url}{path}")
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("script").count() == 1  # only the dashboard's own script
        assert page.locator("img").count() == 0
        if path.startswith("/?"):
            assert _listed(page) == {run["id"]}
            expect(page.locator("td.title a")).to_have_text(title)
    expect(page.locator("h1.run-title")).to_have_text(title)
    expect(page.locator(".run-metadata .meta-value")).to_have_text(evil)
    expect(page.locator("pre.prompt")).to_have_text(f"do it {evil}")


def test_another_orgs_run_is_a_404_page(browser: BrowserContext, dashboard: Dashboard) -> None:
    with dashboard.api("org-a") as api:
        run = _run(api, title="Org A only")
    page = browser.new_page()
    login(page, dashboard.url, dashboard.keys["org-b"])
    response = page.goto(f"{dashboard.url}/runs/{run['id']}")
    assert response is not None and response.status == 404
    expect(page.locator(".error-page h1")).to_contain_text("404")
    assert "Org A only" not in page.content()
    page.goto(f"{dashboard.url}/")
    assert run["id"] not in _listed(page)
    live = page.request.get(f"{dashboard.url}/runs/{run['id']}/live")
    assert live.status == 404
    page.close()


@contextmanager
def _session(dashboard: Dashboard, org: str = "org-a") -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard.url, timeout=30) as client:
        answer = client.post(
            "/login", data={"key": dashboard.keys[org], "csrf": _csrf(client, "/login")}
        )
        assert answer.status_code == 303
        yield client


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def test_forms_need_the_csrf_token_of_the_session(dashboard: Dashboard) -> None:
    with dashboard.api() as api:
        run = _run(api, program=SLEEPER, title="Guarded")
    with _session(dashboard) as client, _session(dashboard) as other:
        path = f"/runs/{run['id']}/cancel"
        assert client.post(path, data={}).status_code == 403
        assert client.post(path, data={"csrf": "forged"}).status_code == 403
        # Another session's token is worthless here.
        assert client.post(path, data={"csrf": _csrf(other, "/")}).status_code == 403
        token = _csrf(client, "/")
        cross_site = client.post(path, data={"csrf": token}, headers={"Origin": "https://evil"})
        assert cross_site.status_code == 403
        with dashboard.api() as api:
            assert _lifecycle(api, run["id"]) != "cancelled"
        # The session reads the API but may not change anything through it.
        assert client.get(f"/api/v1/coding-agent/runs/{run['id']}/status").status_code == 200
        assert client.post(f"/api/v1/coding-agent/runs/{run['id']}/cancel").status_code == 401
        done = client.post(path, data={"csrf": token})
        assert done.status_code == 303 and done.headers["location"] == f"/runs/{run['id']}"
        with dashboard.api() as api:
            assert _lifecycle(api, run["id"]) == "cancelled"
    # Without a session, no form does anything.
    with httpx.Client(base_url=dashboard.url) as anonymous:
        answer = anonymous.post(path, data={"csrf": token})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def _sse(client: httpx.Client, path: str, headers: dict[str, str], count: int) -> list[int]:
    seqs: list[int] = []
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id: "):
                seqs.append(int(line[4:]))
                if len(seqs) == count:
                    break
    return seqs


def test_live_stream_resumes_after_a_dropped_connection(dashboard: Dashboard) -> None:
    with dashboard.api() as api:
        run = _run(api, program=TICKER, title="Resume")
        wait_for(lambda: _lifecycle(api, run["id"]) in ("succeeded", "failed"), message="ends")
        total = len(api.get(f"/api/v1/coding-agent/runs/{run['id']}/events").json()["items"])
    assert total >= 10
    with _session(dashboard) as client:
        path = f"/runs/{run['id']}/live"
        first = _sse(client, path, {}, 4)  # the connection drops after four events
        assert first == [1, 2, 3, 4]
        rest = _sse(client, path, {"Last-Event-ID": "4"}, total - 4)
        assert rest == list(range(5, total + 1))
        assert _sse(client, f"{path}?after=7", {}, 1) == [8]
        bad = client.get(path, headers={"Last-Event-ID": "nope"})
        assert bad.status_code == 400


NOTES = (
    "import pathlib, sys; p = pathlib.Path('notes.txt'); "
    "p.write_text((p.read_text() if p.exists() else '') + sys.argv[1] + '\\n'); "
    "print('wrote', sys.argv[1])"
)


def test_a_published_run_links_its_pull_request(page: Page, dashboard: Dashboard) -> None:
    with dashboard.api() as api:
        run = _run(api, program=NOTES, title="Write the notes", prompt="first note",
                   publish={"mode": "draft_pr"})  # fmt: skip
        wait_for(lambda: _lifecycle(api, run["id"]) in ("succeeded", "failed"), message="ends")
        result = api.get(f"/api/v1/coding-agent/runs/{run['id']}").json()
    assert result["lifecycle"] == "succeeded", result["failure"]
    number = result["result"]["pullRequest"]["number"]
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    expect(page.locator("[data-refresh=result]")).to_contain_text(result["result"]["branch"])
    page.click("a.pr-link")
    expect(page).to_have_url(f"{dashboard.url}/forge/{REPO}/pulls/{number}")
    expect(page.locator(".head-badges .badge.draft")).to_have_text("draft")
    expect(page.locator("table.files tbody tr")).to_contain_text(["notes.txt"])
    expect(page.locator("pre.diff .d-add")).to_contain_text(["+first note"])
    page.click(".gate form[action$='/merge'] button")
    expect(page.locator("p.flash.error")).to_contain_text("no merge-gate decision")


def test_a_follow_up_on_a_finished_run_starts_a_chained_run(
    page: Page, dashboard: Dashboard
) -> None:
    with dashboard.api() as api:
        run = _run(api, program=NOTES, title="Write the notes", prompt="first note")
        wait_for(lambda: _lifecycle(api, run["id"]) == "succeeded", message="succeeds")
    # The session is not warm any more: a follow-up from the page starts a chained run.
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    expect(page.locator("form.follow-up input[name=fallback]")).to_have_value("chain")
    page.fill("#follow-up-text", "second note")
    page.click("form.follow-up button[type=submit]")
    expect(page.locator("p.flash.ok")).to_contain_text("this chained run took the follow-up")
    child_id = page.url.rsplit("/", 1)[1]
    assert child_id.startswith("run_") and child_id != run["id"]
    expect(page.locator("[data-refresh=chain] ol.chain li").first).to_contain_text(run["id"])
    expect(page.locator("[data-refresh=chain] ol.chain")).to_contain_text("parent")
    with dashboard.api() as api:
        child = api.get(f"/api/v1/coding-agent/runs/{child_id}").json()
    assert child["parentRunId"] == run["id"] and child["chain"] == [run["id"]]
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    expect(page.locator("[data-refresh=chain] ul.children a")).to_have_attribute(
        "href", f"/runs/{child_id}"
    )


def test_the_page_resumes_its_event_log_after_dropped_connections(
    page: Page, dashboard: Dashboard
) -> None:
    seen: list[dict[str, str]] = []

    def flaky(route: Route) -> None:
        request = route.request
        seen.append({"url": request.url, "last": request.all_headers().get("last-event-id", "")})
        after = re.search(r"after=(\d+)", request.url)
        assert after is not None
        if len(seen) == 1:  # the server is unavailable: the script reconnects by itself
            route.fulfill(status=503, body="unavailable")
        elif len(seen) == 2:  # one (old) event, then the connection drops
            event = {"seq": int(after.group(1)), "type": "run.heartbeat", "summary": "dup"}
            route.fulfill(
                status=200,
                headers={"Content-Type": "text/event-stream"},
                body=f"retry: 200\nid: {after.group(1)}\ndata: {json.dumps(event)}\n\n",
            )
        else:
            route.continue_()

    page.route(re.compile(r".*/runs/run_[a-z0-9]+/live.*"), flaky)
    with dashboard.api() as api:
        run = _run(api, program=TICKER, title="Flaky network")
        page.goto(f"{dashboard.url}/runs/{run['id']}")
        wait_for(lambda: len(seen) >= 3, message="the browser reconnects twice", page=page)
        expect(page.locator("[data-refresh=head-badges] .badge")).to_have_text("succeeded")
        wait_for(lambda: _lifecycle(api, run["id"]) == "succeeded", message="the run ends")
        events = api.get(f"/api/v1/coding-agent/runs/{run['id']}/events").json()["items"]
    # Both drops were noticed and resumed from the last event seen (seq 2 was rendered with the
    # page; the browser's own reconnect also sends Last-Event-ID, which the server prefers).
    assert int(page.locator("section[data-live]").get_attribute("data-reconnects") or 0) >= 2
    resumed_from = {re.search(r"after=(\d+)", s["url"]).group(1) for s in seen[:3]}  # type: ignore[union-attr]
    assert len(resumed_from) == 1 and all(s["last"] in ("", *resumed_from) for s in seen)
    expect(page.locator("[data-log] li")).to_have_count(len(events))
    seqs = page.locator("[data-log] li").evaluate_all(
        "items => items.map(i => Number(i.dataset.seq))"
    )
    assert seqs == [e["seq"] for e in events]  # each event once, in order
    assert page.locator("[data-log] .summary", has_text="dup").count() == 0
    page.unroute(re.compile(r".*/runs/run_[a-z0-9]+/live.*"))
