"""The GitHub forge against a fake GitHub on 127.0.0.1 that validates every exchange against
GitHub's OpenAPI description (see ``github_fake``); live tests against github.com when asked."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forge import Annotation, ForgeAuthError, GitHubValidationError, MergeRefused, RateLimited
from forge.errors import ForgeError
from forge.github import GitHubForge
from forge.github_http import GitHubApp, TokenAuth
from tests.conftest import git
from tests.integration.github_fake import FakeGitHub, schema_example, serve, user

pytestmark = pytest.mark.anyio

TOKEN = "ghp_FAKEtokenForTests0123456789abcdef"
GATE = "writgate/merge-gate"

# Operations writgate uses that the shared OpenAPI subset does not describe.
OUTSIDE_SUBSET = {
    "GET ^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls$",
    "PUT ^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls/(?P<pull_number>[^/]+)/merge$",
    "GET ^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/check-runs/(?P<check_run_id>[^/]+)$",
    "POST ^/api/graphql$",
}


class Sleeps:
    """An injected sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitHub]:
    github = FakeGitHub(tmp_path / "fake")
    github.valid_tokens.add(TOKEN)
    with serve(github) as running:
        yield running
    assert running.errors == [], "\n".join(running.errors)
    assert set(running.unvalidated) <= OUTSIDE_SUBSET


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def forge(fake: FakeGitHub, sleeps: Sleeps) -> GitHubForge:
    return GitHubForge(
        auth=TokenAuth(TOKEN), api_url=fake.base_url, web_url=fake.git_url, sleep=sleeps
    )


def _seed_files(fake: FakeGitHub, count: int) -> None:
    fake.files = [
        schema_example(
            "diff-entry",
            filename=f"src/f{i:03}.py",
            status="modified",
            additions=2,
            deletions=1,
            changes=3,
            patch="@@ -1 +1,2 @@",
        )
        for i in range(count)
    ]
    fake.files.append(
        schema_example(
            "diff-entry",
            filename="docs/new.md",
            status="renamed",
            previous_filename="docs/old.md",
            additions=0,
            deletions=0,
            changes=0,
            patch="",
        )
    )
    fake.files.append(
        schema_example("diff-entry", filename="logo.png", status="added", additions=0, deletions=0)
    )


async def test_pull_request_round_trip_conforms_to_githubs_description(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    pr = await forge.open_pull_request(
        "acme/web", head="writgate/fix", base="main", title="Fix", body="Body", draft=True
    )
    assert (pr.number, pr.state, pr.draft, pr.author, pr.head, pr.base) == (
        1,
        "open",
        True,
        "writgate-bot",
        "writgate/fix",
        "main",
    )
    head = pr.head_sha
    fake.reviews = [
        schema_example(
            "pull-request-review",
            id=1,
            user=user("alice"),
            state="APPROVED",
            commit_id="0" * 40,
            body="",
        ),
        schema_example(
            "pull-request-review",
            id=2,
            user=user("bob"),
            state="DISMISSED",
            commit_id=head,
            body="",
        ),
        schema_example(
            "pull-request-review",
            id=3,
            user=user("carol"),
            state="CHANGES_REQUESTED",
            commit_id=head,
            body="tests?",
        ),
    ]
    await forge.set_commit_status(
        "acme/web", head, context=GATE, state="pending", description="evaluating " * 30
    )
    assert len(fake.statuses[0]["description"]) == 140
    await forge.set_commit_status(
        "acme/web",
        head,
        context="ci/tests",
        state="failure",
        description="2 failed",
        target_url="https://ci.example/1",
    )
    annotations = [
        Annotation(
            path="src/a.py",
            start_line=i + 1,
            end_line=i + 1,
            annotation_level="warning",
            message=f"finding {i}",
            title="secrets",
        )
        for i in range(120)
    ]
    run = await forge.create_check_run(
        "acme/web",
        head,
        name="writgate/judge",
        status="in_progress",
        conclusion=None,
        title="Judge",
        summary="reviewing",
        annotations=annotations,
    )
    assert fake.annotation_batches == [50, 50, 20]  # 120 annotations: three requests
    assert run.annotations_count == 120 and run.check_state == "pending"
    run = await forge.update_check_run("acme/web", run.id, conclusion="success")
    assert (run.status, run.conclusion) == ("completed", "success")
    run = await forge.update_check_run("acme/web", run.id, annotations=annotations[:60])
    assert fake.annotation_batches[-2:] == [50, 10] and run.annotations_count == 180
    assert run.title == "Judge"  # kept: GitHub needs a title with every output

    full = await forge.get_pull_request("acme/web", 1)
    assert full.to_pr_state() == {
        "number": 1,
        "title": "Fix",
        "draft": True,
        "author": "writgate-bot",
        "base": "main",
        "headSha": head,
        "labels": [],
        "reviews": [
            {"user": "alice", "state": "approved", "commitSha": "0" * 40},
            {"user": "carol", "state": "changes_requested", "commitSha": head},
        ],
        "checks": {GATE: "pending", "ci/tests": "failure", "writgate/judge": "success"},
    }
    assert full.current_approvers == ()  # alice approved an older head

    _seed_files(fake, 248)  # 250 files: three pages of 100
    files = await forge.list_files("acme/web", 1)
    assert len(files) == 250
    assert files[0].filename == "src/f000.py" and files[0].changes == 3
    renamed = next(f for f in files if f.filename == "docs/new.md")
    assert (renamed.status, renamed.previous_filename, renamed.binary) == (
        "renamed",
        "docs/old.md",
        False,
    )
    assert next(f for f in files if f.filename == "logo.png").binary
    pages = [e.query for e in fake.exchanges if e.path.endswith("/pulls/1/files")]
    assert pages == ["per_page=100", "per_page=100&page=2", "per_page=100&page=3"]

    commits = await forge.list_commits("acme/web", 1)
    assert [(c.sha, c.author, c.message) for c in commits] == [("a" * 40, "dev", "Fix the answer")]
    statuses = await forge.list_commit_statuses("acme/web", head)
    assert [(s.context, s.state) for s in statuses] == [("ci/tests", "failure"), (GATE, "pending")]

    fake.comments = [
        schema_example("issue-comment", id=i, body=f"chatter {i}", user=user("x"))
        for i in range(1, 131)
    ]
    first = await forge.upsert_comment("acme/web", 1, marker="writgate:gate", body="blocked")
    second = await forge.upsert_comment("acme/web", 1, marker="writgate:gate", body="allowed")
    assert first.id == second.id and len(fake.comments) == 131
    assert fake.comments[-1]["body"] == "<!-- writgate:gate -->\nallowed"
    assert await forge.add_labels("acme/web", 1, ["writgate", "bugfix"]) == ["writgate", "bugfix"]

    closed = await forge.update_pull_request("acme/web", 1, title="Fix it", state="closed")
    assert (closed.title, closed.state) == ("Fix it", "closed")
    ready = await forge.update_pull_request("acme/web", 1, draft=False)
    assert ready.draft is False
    assert (await forge.update_pull_request("acme/web", 1, draft=True)).draft is True
    graphql = [e for e in fake.exchanges if e.path == "/api/graphql"]
    assert [e.body["variables"] for e in graphql] == [{"id": "PR_1"}, {"id": "PR_1"}]
    assert all(e.authorization == f"Bearer {TOKEN}" for e in fake.exchanges)
    assert all("Bearer" not in e.query and TOKEN not in e.query for e in fake.exchanges)


async def test_find_and_merge_outside_the_subset(forge: GitHubForge, fake: FakeGitHub) -> None:
    await forge.open_pull_request(
        "acme/web", head="b", base="main", title="B", body="", draft=False
    )
    found = await forge.find_pull_request("acme/web", head="b")
    assert found is not None and found.number == 1
    assert await forge.find_pull_request("acme/web", head="other") is None
    with pytest.raises(MergeRefused, match="writgate/merge-gate"):
        await forge.merge_pull_request("acme/web", 1)
    await forge.set_commit_status(
        "acme/web", "a" * 40, context=GATE, state="success", description="ok"
    )
    merged = await forge.merge_pull_request("acme/web", 1)
    assert (merged.state, merged.merge_commit_sha) == ("merged", "c" * 40)


async def test_secondary_and_primary_rate_limits_back_off(
    forge: GitHubForge, fake: FakeGitHub, sleeps: Sleeps
) -> None:
    secondary = {
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before "
        "you try again.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
    }
    from tests.integration.github_fake import Reply

    fake.faults.append(
        ("POST", r"/repos/acme/web/pulls", Reply(403, secondary, {"Retry-After": "7"}))
    )
    pr = await forge.open_pull_request(
        "acme/web", head="b", base="main", title="B", body="", draft=False
    )
    assert pr.number == 1 and sleeps.waits == [7.0]
    assert [e.status for e in fake.exchanges if e.method == "POST"] == [403, 201]

    now = forge.client.clock()
    primary = {
        "message": "API rate limit exceeded for installation ID 1.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits",
    }
    fake.faults.append(
        (
            "PATCH",
            r"/repos/acme/web/pulls/1",
            Reply(
                403,
                primary,
                {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 30)},
            ),
        )
    )
    await forge.update_pull_request("acme/web", 1, title="B2")
    assert 29 <= sleeps.waits[-1] <= 32

    # A wait longer than the cap fails at once with a clear error, without sleeping.
    fake.faults.append(
        ("POST", r"/repos/acme/web/pulls", Reply(403, secondary, {"Retry-After": "3600"}))
    )
    with pytest.raises(RateLimited, match="retry in 3600s"):
        await forge.open_pull_request(
            "acme/web", head="c", base="main", title="C", body="", draft=False
        )
    assert len(sleeps.waits) == 2


async def test_422_is_a_clear_validation_error(forge: GitHubForge) -> None:
    await forge.open_pull_request(
        "acme/web", head="b", base="main", title="B", body="", draft=False
    )
    with pytest.raises(GitHubValidationError) as info:
        await forge.open_pull_request(
            "acme/web", head="b", base="main", title="again", body="", draft=False
        )
    text = str(info.value)
    assert "422" in text and "POST /api/v3/repos/acme/web/pulls" in text
    assert "Validation Failed" in text and "A pull request already exists for acme:b." in text
    assert info.value.code == "github_validation_failed"


async def test_bad_token_is_an_auth_error(fake: FakeGitHub, sleeps: Sleeps) -> None:
    wrong = "ghp_WRONGtoken000000000000000000000000"
    forge = GitHubForge(auth=TokenAuth(wrong), api_url=fake.base_url, sleep=sleeps)
    with pytest.raises(ForgeAuthError) as info:
        await forge.get_pull_request("acme/web", 1)
    assert "Bad credentials" in str(info.value) and wrong not in str(info.value)
    assert fake.undocumented == ["401 to GET /api/v3/repos/acme/web/pulls/1"]


@pytest.fixture
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def test_app_installation_token_is_cached_and_refreshed(
    tmp_path: Path, app_key: rsa.RSAPrivateKey, sleeps: Sleeps
) -> None:
    github = FakeGitHub(tmp_path / "fake", app_public_key=app_key.public_key())
    now = [1_800_000_000.0]
    github.clock = lambda: now[0]
    pem = app_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with serve(github):
        app = GitHubApp(app_id=github.app_id, private_key=pem, installation_id=77)
        forge = GitHubForge(auth=app, api_url=github.base_url, sleep=sleeps, clock=lambda: now[0])
        await forge.open_pull_request(
            "acme/web", head="b", base="main", title="B", body="", draft=False
        )
        now[0] += 3000  # token expires at +3600: still outside the 5-minute margin
        await forge.get_pull_request("acme/web", 1)
        assert github.issued == 1
        now[0] += 400  # now within 5 minutes of expiry: a new token is fetched first
        await forge.get_pull_request("acme/web", 1)
        assert github.issued == 2
        api = [e for e in github.exchanges if "access_tokens" not in e.path]
        assert {e.authorization for e in api[:4]} == {"token ghs_installation0001secret"}
        assert api[-1].authorization == "token ghs_installation0002secret"
        tokens = [e for e in github.exchanges if "access_tokens" in e.path]
        assert all(e.authorization and e.authorization.startswith("Bearer ey") for e in tokens)

        # A token revoked early (401) is replaced once, transparently.
        github.valid_tokens.clear()
        await forge.get_pull_request("acme/web", 1)
        assert github.issued == 3
    assert github.errors == [], "\n".join(github.errors)


async def test_push_uses_a_header_and_the_token_leaks_nowhere(
    forge: GitHubForge,
    fake: FakeGitHub,
    git_repo: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bare = fake.create_git_repository("acme/web", git_repo)
    git(git_repo, "checkout", "-qb", "writgate/fix")
    (git_repo / "fix.txt").write_text("fixed\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "fix")
    sha = await forge.push_branch("acme/web", git_repo, "writgate/fix")
    assert git(bare, "rev-parse", "writgate/fix").strip() == sha
    clone_url = await forge.clone_url("acme/web")
    assert TOKEN not in clone_url and "@" not in clone_url
    assert TOKEN not in (git_repo / ".git" / "config").read_text()
    assert fake.git_authorization[-1] is not None

    failures: list[BaseException] = []
    for attempt in (
        lambda: forge.open_pull_request(
            "acme/web", head="b", base="main", title="", body="", draft=False
        ),
        lambda: forge.open_pull_request(
            "acme/web", head="b", base="main", title="", body="", draft=False
        ),  # 422
        lambda: forge.get_pull_request("acme/web", 99),  # 404
    ):
        try:
            await attempt()
        except ForgeError as exc:
            failures.append(exc)
    bad = GitHubForge(
        auth=TokenAuth("ghp_WRONG" + TOKEN[9:]), api_url=fake.base_url, web_url=fake.git_url
    )
    try:
        await bad.push_branch("acme/web", git_repo, "other")
    except ForgeError as exc:
        failures.append(exc)
    assert len(failures) == 3
    for exc in failures:
        rendered = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.details)
        assert TOKEN not in rendered and TOKEN[9:] not in rendered
    assert TOKEN not in caplog.text and TOKEN[9:] not in caplog.text
    assert "POST" in caplog.text or "github" in caplog.text


async def test_pagination_never_follows_a_link_to_another_host(
    forge: GitHubForge, fake: FakeGitHub
) -> None:
    from tests.integration.github_fake import Reply

    await forge.open_pull_request(
        "acme/web", head="b", base="main", title="B", body="", draft=False
    )
    fake.faults.append(
        (
            "GET",
            r"/repos/acme/web/pulls/1/files",
            Reply(200, [], {"Link": '<https://evil.example/steal?page=2>; rel="next"'}),
        )
    )
    with pytest.raises(ForgeError, match="outside"):
        await forge.list_files("acme/web", 1)


def test_from_env_reads_a_token_or_an_app(app_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    forge = GitHubForge.from_env(
        {"WRITGATE_GITHUB_TOKEN": TOKEN, "WRITGATE_GITHUB_API_URL": "https://ghe.example/api/v3"}
    )
    assert (forge.api_url, forge.web_url) == ("https://ghe.example/api/v3", "https://ghe.example")
    assert TOKEN not in repr(forge.client.auth)
    key = tmp_path / "app.pem"
    key.write_bytes(
        app_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    app = GitHubForge.from_env(
        {
            "WRITGATE_GITHUB_APP_ID": "1",
            "WRITGATE_GITHUB_APP_PRIVATE_KEY_FILE": str(key),
            "WRITGATE_GITHUB_APP_INSTALLATION_ID": "9",
        }
    )
    assert isinstance(app.client.auth, GitHubApp) and app.web_url == "https://github.com"
    with pytest.raises(ForgeAuthError, match="WRITGATE_GITHUB_TOKEN"):
        GitHubForge.from_env({})
    with pytest.raises(ForgeAuthError, match="PEM"):
        GitHubForge.from_env(
            {
                "WRITGATE_GITHUB_APP_ID": "1",
                "WRITGATE_GITHUB_APP_PRIVATE_KEY": "nope",
                "WRITGATE_GITHUB_APP_INSTALLATION_ID": "9",
            }
        )


LIVE_TOKEN = os.environ.get("WRITGATE_GITHUB_TEST_TOKEN")
LIVE_REPO = os.environ.get("WRITGATE_GITHUB_TEST_REPO")
live = pytest.mark.skipif(
    not (LIVE_TOKEN and LIVE_REPO),
    reason="live GitHub tests need WRITGATE_GITHUB_TEST_TOKEN and WRITGATE_GITHUB_TEST_REPO",
)


@live
async def test_live_github_statuses_and_checks(tmp_path: Path) -> None:
    assert LIVE_TOKEN and LIVE_REPO
    forge = GitHubForge(auth=TokenAuth(LIVE_TOKEN))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", "--depth", "1", await forge.clone_url(LIVE_REPO), str(work))
    git(work, "config", "user.name", "writgate-test")
    git(work, "config", "user.email", "writgate-test@example.com")
    branch = f"writgate-test/{os.getpid()}-{int(forge.client.clock())}"
    (work / "writgate-live-test.txt").write_text(branch + "\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "writgate live test")
    sha = await forge.push_branch(LIVE_REPO, work, branch)
    base = git(work, "rev-parse", "--abbrev-ref", "origin/HEAD").strip().removeprefix("origin/")
    pr = await forge.open_pull_request(
        LIVE_REPO, head=branch, base=base or "main", title="writgate live test", body="", draft=True
    )
    try:
        await forge.set_commit_status(
            LIVE_REPO, sha, context="writgate/live-test", state="success", description="live test"
        )
        fetched = await forge.get_pull_request(LIVE_REPO, pr.number)
        assert fetched.head_sha == sha
        assert fetched.checks.get("writgate/live-test") == "success"
        assert [f.filename for f in await forge.list_files(LIVE_REPO, pr.number)] == [
            "writgate-live-test.txt"
        ]
    finally:
        await forge.update_pull_request(LIVE_REPO, pr.number, state="closed")
        await forge.aclose()


async def test_the_validator_catches_nonconforming_exchanges(tmp_path: Path) -> None:
    """The fake's checks can fail: a body GitHub would refuse is reported."""
    github = FakeGitHub(tmp_path / "fake")
    github.valid_tokens.add(TOKEN)
    with serve(github):
        async with httpx.AsyncClient(base_url=github.base_url) as http:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            await http.post(
                "/repos/acme/web/statuses/" + "a" * 40, json={"state": "bogus"}, headers=headers
            )
            await http.post(
                "/repos/acme/web/check-runs",
                json={"name": "n", "head_sha": "a" * 40, "status": "completed"},
                headers=headers,
            )
    assert len(github.errors) == 2
    assert "request POST /api/v3/repos/acme/web/statuses" in github.errors[0]
    assert "bogus" in github.errors[0]
    assert "check-runs" in github.errors[1]  # completed without a conclusion
