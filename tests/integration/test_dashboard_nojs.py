"""The dashboard without JavaScript (Debian's headless Chromium with scripts disabled): every
page renders and every action is a plain form."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support.dashboard import REPO, Dashboard, chromium, dashboard_server, login

PROGRAM = "import sys; print('said:', sys.argv[1])"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with dashboard_server(tmp_path_factory.mktemp("dashboard-nojs")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-nojs"), javascript=False) as context:
        yield context


def test_runs_can_be_filtered_followed_up_and_completed_without_javascript(
    browser: BrowserContext, dashboard: Dashboard
) -> None:
    with dashboard.api() as api:
        created = api.post(
            "/api/v1/coding-agent/runs",
            json={
                "repository": REPO,
                "title": "No script needed",
                "prompt": "say hello",
                "tags": ["nojs"],
                "agent": {
                    "driver": "command",
                    "argv": ["python3", "-c", PROGRAM, "{{ instruction }}"],
                },
                "publish": {"mode": "none"},
                "session": {"keepWarmSeconds": 120},
            },
        )
        assert created.status_code == 201, created.text
        run = created.json()
    page = browser.new_page()
    assert page.evaluate("1 + 1") == 2  # Playwright still evaluates; the page's scripts do not run
    login(page, dashboard.url, dashboard.keys["org-a"])
    page.fill("form.filters input[name=tag]", "nojs")
    page.click("form.filters button[type=submit]")
    page.click(f"tr[data-run-id='{run['id']}'] td.title a")
    badge = page.locator("[data-refresh=head-badges] .badge")
    for _ in range(300):  # without live updates, the operator reloads
        if badge.inner_text() == "awaiting follow up":
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(badge).to_have_text("awaiting follow up")
    expect(page.locator("[data-live-state]")).to_contain_text("reload to see new events")
    expect(page.locator("[data-log] .summary", has_text="said: say hello")).to_have_count(1)

    page.fill("#follow-up-text", "again")
    page.click("form.follow-up button[type=submit]")
    expect(page.locator("p.flash.ok")).to_have_text("Follow-up sent.")
    rows = page.locator("[data-refresh=turns] table.turns tbody tr")
    for _ in range(300):
        if rows.count() == 2 and badge.inner_text() == "awaiting follow up":
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(rows).to_have_count(2)
    expect(page.locator("[data-log] .summary", has_text="said: again")).to_have_count(1)
    page.click("[data-refresh=actions] form[action$='/complete'] button")
    expect(page.locator("p.flash.ok")).to_contain_text("the run succeeded")
    expect(badge).to_have_text("succeeded")
    page.click("header.top form.logout button")
    expect(page.locator("#key")).to_be_visible()
    page.close()
