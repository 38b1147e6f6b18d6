"""The dashboard's gate, passport, pull-request and pipeline pages in a real browser (Debian's
headless Chromium via Playwright) against a real server: a decision shows every rule's reasons,
a PR refuses to merge until the gate allows, a new head makes a decision stale, and a pipeline's
DAG follows its stages live."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from forge.local import LocalForge
from tests.conftest import git
from tests.support.dashboard import REPO, Dashboard, chromium, dashboard_server, login

POLICY = """\
policy: writgate/v1
name: needs-review
rules:
  - name: needs-approval
    description: Every change needs one approval.
    require: {approvals: {count: 1}}
  - name: touches-code
    if: {paths: ["*.py"]}
    warn: "Python code changed: run the tests."
  - name: docs-only
    if: {paths.only: ["docs/**"]}
    allow: true
"""

PIPELINE = """\
name: dashboard-demo
stages:
  prepare: {uses: command, with: {argv: [python3, -c, "print('ready')"]}}
  slow:
    uses: command
    needs: [prepare]
    with: {argv: [python3, -c, "import time; time.sleep(4); print('slow done')"]}
  lint: {uses: command, needs: [prepare], with: {argv: [python3, -c, "print('lint ok')"]}}
  report:
    uses: command
    needs: [slow, lint]
    with: {argv: [echo, "report <b>{{ stages.slow.outputs.stdout | trim }}</b>"]}
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    home = tmp_path_factory.mktemp("dashboard-gate")
    (home / "pipelines").mkdir()
    (home / "pipelines" / "demo.yaml").write_text(PIPELINE)
    with dashboard_server(home) as server:
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


def _open_pull_request(dashboard: Dashboard, work: Path, branch: str) -> int:
    async def go(forge: LocalForge) -> int:
        git(work.parent, "clone", "-q", await forge.clone_url(REPO), str(work))
        git(work, "checkout", "-qb", branch)
        (work / "app.py").write_text(f"def answer():\n    return 42\n\n\nBRANCH = {branch!r}\n")
        git(work, "commit", "-qam", f"Answer 42 on {branch}")
        await forge.push_branch(REPO, work, branch)
        pr = await forge.open_pull_request(
            REPO, head=branch, base="main", title=f"Answer <42> on {branch}", body="Why: <b>x</b>"
        )
        return pr.number

    number: int = dashboard.forge()(go)
    return number


def _push(dashboard: Dashboard, work: Path, branch: str) -> None:
    async def go(forge: LocalForge) -> None:
        (work / "app.py").write_text("def answer():\n    return 43\n")
        git(work, "commit", "-qam", "another head")
        await forge.push_branch(REPO, work, branch)

    dashboard.forge()(go)


def _evaluate(api: httpx.Client, number: int) -> dict[str, Any]:
    response = api.post(
        "/api/v1/merge-gate/evaluate",
        json={"policy": POLICY, "repository": REPO, "pullRequest": number, "publish": True},
    )
    assert response.status_code == 200, response.text
    decision: dict[str, Any] = response.json()
    return decision


def test_decision_page_and_a_merge_refused_until_the_gate_allows(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    number = _open_pull_request(dashboard, tmp_path / "work", "answer")
    with dashboard.api() as api:
        first = _evaluate(api, number)
        assert first["decision"] == "pending"
        stored = api.get(f"/api/v1/merge-gate/decisions/{first['id']}").json()

    # The PR page: what the gate said, with the published status linking to the decision.
    page.goto(f"{dashboard.url}/forge/{REPO}/pulls/{number}")
    expect(page.locator("h1.pr-title")).to_contain_text(f"Answer <42> on answer #{number}")
    expect(page.locator("pre.pr-body")).to_have_text("Why: <b>x</b>")
    expect(page.locator(".commits li")).to_have_count(1)
    expect(page.locator("table.files tbody tr")).to_contain_text(["app.py"])
    expect(page.locator("pre.diff .d-add")).to_contain_text(["+    return 42"])
    expect(page.locator(".gate .decision")).to_have_text("pending")
    status = page.locator(".statuses li[data-context='writgate/merge-gate']")
    expect(status.locator(".badge")).to_have_text("pending")
    target = status.locator("a").get_attribute("href")
    assert target is not None and target.endswith(f"/gate/decisions/{first['id']}")
    expect(page.locator(".check-run summary")).to_contain_text(["writgate merge gate"])
    page.screenshot(path=str(tmp_path / "pull_request.png"), full_page=True)

    page.click(".gate form[action$='/merge'] button")
    expect(page.locator("p.flash.error")).to_contain_text("Merge refused")
    expect(page.locator("p.flash.error")).to_contain_text("pending")
    expect(page.locator(".head-badges .badge").first).to_have_text("open")

    # The decision page, where the status check links: every rule with its state and reasons.
    page.goto(f"{dashboard.url}/gate/decisions/{first['id']}")
    expect(page.locator("h1 .decision")).to_have_text("pending")
    expect(page.locator(".head-badges .badge").first).to_have_text("current")
    rows = page.locator("table.rules tr.rule")
    expect(rows).to_have_count(len(stored["rules"]))
    for rule in stored["rules"]:
        row = page.locator(f"tr.rule[data-rule='{rule['name']}']")
        expect(row.locator(".badge")).to_have_text(rule["state"])
        for reason in rule["reasons"]:
            expect(row.locator(".reasons li", has_text=reason)).to_have_count(1)
        if rule["message"]:
            expect(row.locator(".rule-message")).to_have_text(rule["message"])
    assert any(rule["reasons"] for rule in stored["rules"])
    expect(page.locator("tr.rule[data-rule='needs-approval']")).to_contain_text(
        "Every change needs one approval."
    )
    expect(page.locator("code.digest")).to_have_text(stored["policyDigest"])
    expect(page.locator("pre.policy")).to_contain_text("needs-approval")
    published = page.locator(".published")
    expect(published).to_contain_text("writgate/merge-gate")
    expect(published.locator(".badge")).to_have_text("pending")
    page.screenshot(path=str(tmp_path / "decision.png"), full_page=True)

    # The passport the decision was made over.
    page.click(".side-col a[href^='/passports/']")
    expect(page.locator("h1")).to_have_text("Change Passport")
    expect(page.locator(".passport-body table.files")).to_contain_text("app.py")
    expect(page.locator(".head-badges .badge").first).to_have_text("unsigned")
    page.screenshot(path=str(tmp_path / "passport.png"), full_page=True)

    # An approval from the page re-evaluates the gate; then the merge goes through.
    page.goto(f"{dashboard.url}/forge/{REPO}/pulls/{number}")
    page.fill("#approve-user", "alice")
    page.click("form.approve button")
    expect(page.locator("p.flash.ok")).to_contain_text("Approved by alice")
    expect(page.locator(".gate .decision")).to_have_text("allow")
    expect(page.locator(".reviews li")).to_contain_text(["alice"])
    expect(status.locator(".badge")).to_have_text("success")
    page.click(".gate form[action$='/merge'] button")
    expect(page.locator("p.flash.ok")).to_contain_text("Merged as")
    expect(page.locator(".head-badges .badge").first).to_have_text("merged")
    page.goto(f"{dashboard.url}/gate/decisions/{first['id']}")
    expect(page.locator(".head-badges .badge").first).to_have_text("superseded")


def test_a_new_head_makes_the_decision_stale(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    number = _open_pull_request(dashboard, work, "stale-me")
    with dashboard.api() as api:
        decision = _evaluate(api, number)
        _push(dashboard, work, "stale-me")
        refreshed = api.post(
            "/api/v1/merge-gate/refresh", json={"repository": REPO, "pullRequest": number}
        )
        assert refreshed.status_code == 200, refreshed.text
        assert api.get(f"/api/v1/merge-gate/decisions/{decision['id']}").json()["status"] == "stale"
    page.goto(f"{dashboard.url}/gate/decisions/{decision['id']}")
    expect(page.locator(".head-badges .badge.stale")).to_have_text("stale")
    expect(page.locator("p.flash.warn")).to_contain_text("stale")
    page.goto(f"{dashboard.url}/forge/{REPO}/pulls/{number}")
    expect(page.locator(".gate .badge.stale")).to_have_text("stale: for an older head")
    page.click(".gate form[action$='/merge'] button")
    expect(page.locator("p.flash.error")).to_contain_text("no merge-gate decision for head")


def test_another_orgs_decision_and_pull_request_are_404_pages(
    browser: BrowserContext, dashboard: Dashboard
) -> None:
    with dashboard.api() as api:
        decisions = api.get("/api/v1/merge-gate/decisions").json()["items"]
    assert decisions, "the tests above made decisions in org-a"
    page = browser.new_page()
    login(page, dashboard.url, dashboard.keys["org-b"])
    for path in (
        f"/gate/decisions/{decisions[0]['id']}",
        f"/passports/{decisions[0]['passport']}",
        f"/forge/{REPO}/pulls/1",
        "/pipelines/pr_nothing",
    ):
        response = page.goto(f"{dashboard.url}{path}")
        assert response is not None and response.status == 404, path
        expect(page.locator(".error-page h1")).to_contain_text("404")
    page.goto(f"{dashboard.url}/gate/decisions")
    expect(page.locator("p.empty")).to_have_text("No decisions yet.")
    page.close()


def test_pipeline_dag_follows_the_stages_live(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    with dashboard.api() as api:
        started = api.post("/api/v1/pipelines", json={"path": "demo.yaml"})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        page.goto(f"{dashboard.url}/pipelines/{run_id}")
        page.evaluate("window.__loaded = 'once'")
        report = page.locator("svg.dag g.node[data-stage='report']")
        assert report.get_attribute("data-status") != "succeeded"  # slow takes four seconds
        expect(page.locator("svg.dag g.node")).to_have_count(4)
        expect(page.locator("svg.dag path.edge")).to_have_count(4)
        expect(report).to_have_attribute("data-status", "succeeded", timeout=60_000)
        for stage in ("prepare", "slow", "lint"):
            expect(page.locator(f"svg.dag g.node[data-stage='{stage}']")).to_have_attribute(
                "data-status", "succeeded"
            )
        assert page.evaluate("window.__loaded") == "once"
        expect(page.locator(".head-badges .badge").first).to_have_text("succeeded")
        outputs = page.locator("tr[data-stage-row='report'] td.outputs")
        expect(outputs).to_contain_text("report <b>slow done</b>")
        expect(page.locator("[data-log] .type", has_text="pipeline.finished")).to_have_count(1)
        final = api.get(f"/api/v1/pipeline-runs/{run_id}").json()
        assert [s["status"] for s in final["stages"]] == ["succeeded"] * 4
        page.screenshot(path=str(tmp_path / "pipeline.png"), full_page=True)
    page.goto(f"{dashboard.url}/pipelines")
    page.click(f"a[href='/pipelines/{run_id}']")
    expect(page).to_have_url(re.compile(f"/pipelines/{run_id}$"))


def test_cancel_a_pipeline_run_from_its_page(page: Page, dashboard: Dashboard) -> None:
    with dashboard.api() as api:
        started = api.post("/api/v1/pipelines", json={"path": "demo.yaml"})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        page.goto(f"{dashboard.url}/pipelines/{run_id}")
        page.click("form[action$='/cancel'] button")
        expect(page.locator("p.flash.ok")).to_have_text("Cancellation requested.")
        expect(page.locator(".head-badges .badge").first).to_have_text("cancelled", timeout=60_000)
        final = api.get(f"/api/v1/pipeline-runs/{run_id}").json()
        assert final["status"] == "cancelled" and final["cancelReason"] == (
            "cancelled from the dashboard"
        )
        assert final["stages"][-1]["status"] in ("cancelled", "skipped")
    expect(page.locator("form[action$='/cancel']")).to_have_count(0)


def test_a_signed_passport_shows_whether_its_signature_verifies(
    page: Page, dashboard: Dashboard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from passport import generate_signing_key, sign_statement
    from tests.unit.passport_samples import sample_statement

    key = generate_signing_key()
    (tmp_path / "signing.pem").write_bytes(key.to_pem())
    statement = sample_statement(files=2)
    statement["predicate"]["writer"]["title"] = "<script>window.__pwned = 1</script>"
    with dashboard.api() as api:
        decided = api.post(
            "/api/v1/merge-gate/evaluate",
            json={"policy": POLICY, "passport": sign_statement(statement, key)},
        )
    assert decided.status_code == 200, decided.text
    path = f"{dashboard.url}/passports/{decided.json()['passport']}"
    page.goto(path)
    expect(page.locator(".head-badges .badge").first).to_have_text("signed (signature not checked)")
    monkeypatch.setenv("WRITGATE_SIGNING_KEY", str(tmp_path / "signing.pem"))
    page.goto(path)
    expect(page.locator(".head-badges .badge.verified").first).to_contain_text("signature verified")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    other = generate_signing_key("p256")
    (tmp_path / "other.pem").write_bytes(other.to_pem())
    monkeypatch.setenv("WRITGATE_SIGNING_KEY", str(tmp_path / "other.pem"))
    page.goto(path)
    expect(page.locator(".head-badges .badge.invalid")).to_contain_text("INVALID")
