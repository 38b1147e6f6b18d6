"""Crash test of the whole system: SIGKILL the server and the workers at random points while
runs, pipelines and webhook deliveries are in flight, then restart and check that nothing is
stuck, lost, duplicated or published twice.

Two topologies, one per database. SQLite: the embedded default, one ``writgate serve`` that
executes runs, runs pipeline stages and delivers webhooks itself (SQLite supports one pipeline
worker per database, so there is no multi-worker SQLite topology to test). PostgreSQL: the
scale-out shape, ``writgate serve`` (API, run executor, deliverer) and two ``writgate worker``
processes that share the pipeline stages and the webhook outbox. Both topologies on both
databases would double the wall time without adding a kind of process to kill.

Each of the five cycles starts keyed runs over HTTP (the client resends them through the
crash) and, in some, a pipeline whose writer stage opens a PR on the local forge (started with
an Idempotency-Key too; in one cycle that start is in flight when the kill comes and is resent
through it), then kills the server and/or workers at a random point and starts them again,
while the webhook receiver is down (connection refused), failing (500) or up. In the PostgreSQL
topology the last cycle loses for good the worker that runs a writer stage: the other one must
take it over. SSE clients follow every run and pipeline run through the crashes. Then: every
run and pipeline run ended, each ledger is gapless with no second terminal event, one run (or
pipeline run) and at most one PR per idempotency key and per pipeline, every subscribed event
reached the receiver (duplicates only under one webhook-id), every SSE client got its exact
ledger, and new work succeeds.

The seed is printed on failure; ``WRITGATE_CRASH_SEED=<seed>`` replays the same schedule (the
kill points are random delays, so a replay is close to, not exactly, the failed run).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import SSEError, connect_sse
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from writer.publish import branch_name
from writgate.settings import Settings
from writgate.webhooks import matches

from ._system import (
    FlakyReceiver,
    LedgerRow,
    Process,
    eventually,
    flaky_receiver,
    free_port,
    http_ready,
    prepare,
    read_ledger,
    worker_ready,
)

pytestmark = pytest.mark.slow

ORG = "rel"
REPOSITORY = "acme/app"
CYCLES = 5
PIPELINE_CYCLES = (0, 2, 4)
# Cycles whose pipeline start is sent just before the kill (the others start before the random
# pause, so that their stages are in flight when it comes).
PIPELINE_STARTS_IN_FLIGHT = (2,)
# The receiver during each cycle; it is up for the final settling.
RECEIVER_MODES = ("refusing", "failing", "up", "refusing", "failing")
PATTERNS = ["run.*", "publish.*", "pipeline.*", "stage.*", "pr.*", "gate.*"]
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
SETTLE_SECONDS = 60.0

PIPELINE = """\
name: crash
inputs:
  n: {required: true}
stages:
  write:
    uses: writer
    with:
      repository: acme/app
      title: "pipeline change {{ inputs.n }}"
      prompt: "change {{ inputs.n }}"
      agent:
        driver: command
        argv: [sh, -c, "sleep 0.3; echo p{{ inputs.n }} > pipeline-{{ inputs.n }}.txt"]
      publish: {mode: draft_pr}
      validationMode: none
      session: {keepWarmSeconds: 0}
  review:
    uses: review
    needs: [write]
    with: {reviewers: [secrets, debug-leftovers]}
  passport:
    uses: passport
    needs: [write, review]
  gate:
    uses: gate
    needs: [passport]
    with: {policy: policy.yaml}
"""

POLICY = """\
policy: writgate/v1
name: crash
defaults: {whenNoRuleApplies: allow}
rules:
  - name: no-secrets
    if: {review.findings: {reviewer: secrets, count: "> 0"}}
    block: "A secret was found in the change."
"""


def _run_body(number: int) -> dict[str, Any]:
    return {
        "repository": REPOSITORY,
        "title": f"keyed change {number}",
        "prompt": f"change {number}",
        "agent": {
            "driver": "command",
            "argv": ["sh", "-c", f"sleep 0.{number % 5 + 2}; echo {number} > change-{number}.txt"],
        },
        "publish": {"mode": "draft_pr"},
        "validationMode": "none",
        "session": {"keepWarmSeconds": 0},
    }


@dataclass
class System:
    """The processes of one topology, their environment and the API they serve."""

    database_url: str
    home: Path
    env: dict[str, str]
    url: str
    server: Process
    workers: list[Process]
    headers: dict[str, str] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def mark(self, what: str) -> None:
        """Note what happened when (printed with the result, and on failure)."""
        self.timeline.append(f"{time.monotonic() - self.t0:6.1f}s {what}")

    @property
    def processes(self) -> list[Process]:
        return [self.server, *self.workers]

    def start(self, *processes: Process) -> None:
        """Start ``processes`` side by side and wait until each is ready."""
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready(http_ready(self.url) if process is self.server else worker_ready)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def logs(self) -> str:
        return "\n".join(f"== {p.name} log (tail)\n{p.tail()}" for p in self.processes)


@pytest.fixture(params=["sqlite-embedded", "postgresql-workers"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    if request.param == "sqlite-embedded":
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'writgate.db'}"
    else:
        database_url = str(request.getfixturevalue("pg_database_url"))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    env.update(
        WRITGATE_HOME=str(home),
        WRITGATE_DATABASE_URL=database_url,
        WRITGATE_ORG=ORG,
        WRITGATE_WEBHOOKS_ALLOW_PRIVATE="1",
        # Retries every ~300 ms for long enough to outlast every outage of the test.
        WRITGATE_WEBHOOKS_RETRY_SCHEDULE=",".join(["300ms"] * 400),
        WRITGATE_WEBHOOKS_TIMEOUT="2s",
        WRITGATE_WEBHOOKS_LEASE="8s",  # a dead deliverer's claims come back after this
        WRITGATE_WEBHOOKS_POLL="200ms",
        # A dead worker's stages are taken over at once (its pid is gone); the lease only
        # bounds a worker that stopped answering, which a busy test machine must not fake.
        WRITGATE_PIPELINE_LEASE="10s",
        WRITGATE_PIPELINE_POLL="100ms",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["serve", "--port", str(port), "--log-level", "warning"]
    workers: list[Process] = []
    if request.param == "postgresql-workers":
        env["WRITGATE_SERVER_WORKER"] = "off"
        for name in ("worker-a", "worker-b"):
            workers.append(
                Process(
                    name,
                    ["worker", "--all-orgs", "--lease", "10s", "--poll", "100ms"],
                    env,
                    tmp_path / f"{name}.log",
                )
            )
    server = Process("server", serve, env, tmp_path / "server.log")
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    (seed_dir / "README.md").write_text("hello\n")
    key = prepare(Settings(home=home, database_url=database_url, org=ORG), REPOSITORY, seed_dir)
    pipelines = home / "pipelines"
    pipelines.mkdir(parents=True, exist_ok=True)
    (pipelines / "crash.yaml").write_text(PIPELINE)
    (pipelines / "policy.yaml").write_text(POLICY)
    system = System(
        database_url=database_url,
        home=home,
        env=env,
        url=url,
        server=server,
        workers=workers,
        headers={"Authorization": f"Bearer {key}"},
    )
    try:
        system.start(*system.processes)
        system.mark("started")
        yield system
    finally:
        for process in system.processes:
            process.stop()


class Followers:
    """SSE clients that stay with their stream through crashes: after any error they reconnect
    with Last-Event-ID until the stream says ``done``."""

    def __init__(self, system: System):
        self.system = system
        self.got: dict[str, list[dict[str, Any]]] = {}
        self.reconnects = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=32)
        self._futures: list[Future[None]] = []

    def follow(self, path: str) -> None:
        self._futures.append(self._pool.submit(self._follow, path))

    def _follow(self, path: str) -> None:
        got: list[dict[str, Any]] = []
        last: str | None = None
        deadline = time.monotonic() + 240
        with self.system.client() as client:
            while True:
                headers = {"Last-Event-ID": last} if last is not None else {}
                try:
                    with connect_sse(client, "GET", path, headers=headers) as source:
                        status = source.response.status_code
                        assert status == 200 or status >= 500, (path, status)
                        for sse in source.iter_sse():
                            if sse.event == "done":
                                with self._lock:
                                    self.got[path] = got
                                return
                            got.append(json.loads(sse.data))
                            last = sse.id
                except (httpx.TransportError, SSEError):
                    pass  # the server died (or answers 5xx while it starts): reconnect
                assert time.monotonic() < deadline, f"{path}: never done"
                with self._lock:
                    self.reconnects += 1
                time.sleep(0.1)

    def finish(self) -> None:
        for future in self._futures:
            future.result(timeout=120)
        self._pool.shutdown()


RUNS = "/api/v1/coding-agent/runs"
PIPELINES = "/api/v1/pipelines"


class KeyedClient:
    """Creates runs and starts pipelines with Idempotency-Keys, retrying each request through
    connection errors and 5xx answers (a dead or restarting server) until it is answered; then
    follows each run's event stream. Runs are created in background threads."""

    def __init__(self, system: System, followers: Followers):
        self.system = system
        self.followers = followers
        self.answers: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.bodies: dict[str, dict[str, Any]] = {}
        self.pipeline_answers: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.pipeline_bodies: dict[str, dict[str, Any]] = {}
        self.retries = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8)
        self._futures: list[Future[None]] = []

    def submit_next(self) -> str:
        """Create the next run (``crash-<n>``) in the background; returns its key."""
        number = len(self.bodies)
        key, body = f"crash-{number}", _run_body(number)
        self.bodies[key] = body
        self._futures.append(self._pool.submit(self._post, RUNS, key, body))
        return key

    def submit_pipeline(self, number: int) -> Future[str]:
        """Start pipeline ``number`` (key ``pipeline-<n>``) in the background; its run id."""
        key, body = f"pipeline-{number}", {"path": "crash.yaml", "inputs": {"n": number}}
        self.pipeline_bodies[key] = body
        return self._pool.submit(self._post, PIPELINES, key, body)

    def start_pipeline(self, number: int) -> str:
        """Start pipeline ``number`` and wait for its run id."""
        return self.submit_pipeline(number).result(timeout=120)

    def _post(self, path: str, key: str, body: dict[str, Any]) -> str:
        answers = self.answers if path == RUNS else self.pipeline_answers
        deadline = time.monotonic() + 90
        with self.system.client() as client:
            while True:
                try:
                    response = client.post(path, json=body, headers={"Idempotency-Key": key})
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code < 500:
                    assert response.status_code in (200, 201), response.text
                    run_id = str(response.json()["id"])
                    with self._lock:
                        answers[key].append((response.status_code, run_id))
                    stream = RUNS if path == RUNS else "/api/v1/pipeline-runs"
                    self.followers.follow(f"{stream}/{run_id}/stream")
                    return run_id
                assert time.monotonic() < deadline, f"{key}: never answered"
                with self._lock:
                    self.retries += 1
                time.sleep(0.1)

    def replay_all(self) -> None:
        """Send every answered key again: the same run, 200, ``Idempotent-Replayed``."""
        for path, answers, bodies in (
            (RUNS, self.answers, self.bodies),
            (PIPELINES, self.pipeline_answers, self.pipeline_bodies),
        ):
            with self._lock:
                answered = {key: found[0][1] for key, found in answers.items()}
            with self.system.client() as client:
                for key, run_id in answered.items():
                    again = client.post(path, json=bodies[key], headers={"Idempotency-Key": key})
                    assert again.status_code == 200, (key, again.text)
                    assert again.headers.get("idempotent-replayed") == "true"
                    assert again.json()["id"] == run_id, key
                    with self._lock:
                        answers[key].append((200, run_id))

    def finish(self) -> None:
        for future in self._futures:
            future.result(timeout=120)
        self._pool.shutdown()


def _choose_victims(rng: random.Random, system: System) -> list[Process]:
    if not system.workers:
        return [system.server]
    choices = [
        [system.server],
        [system.workers[0]],
        [system.workers[1]],
        [system.server, system.workers[0]],
        system.processes,
    ]
    return rng.choice(choices)


def _chaos(
    system: System, rng: random.Random, receiver: FlakyReceiver, keyed: KeyedClient
) -> list[str]:
    """The kill/restart cycles; returns the pipeline runs started meanwhile."""
    pipelines: list[str] = []
    for cycle in range(CYCLES):
        receiver.set(RECEIVER_MODES[cycle])
        keyed.submit_next()
        in_flight: Future[str] | None = None
        if cycle in PIPELINE_CYCLES and cycle not in PIPELINE_STARTS_IN_FLIGHT:
            pipelines.append(keyed.start_pipeline(cycle))
        lost = None
        if system.workers and cycle == CYCLES - 1:
            # The last crash of a worker is a lost machine, one that holds a writer stage:
            # the other worker must take the stage over and finish the pipeline.
            lost = _writer_stage_holder(system, pipelines[-1])
        time.sleep(rng.uniform(0.3, 2.5))  # a random point of the work in flight
        keyed.submit_next()  # a create in flight when the kill comes, retried after it
        if cycle in PIPELINE_STARTS_IN_FLIGHT:
            in_flight = keyed.submit_pipeline(cycle)  # so is this start
        # Nothing else restarts then: a restarting process settles what dead ones left over,
        # and the takeover must not depend on that.
        victims = [lost] if lost is not None else _choose_victims(rng, system)
        for process in victims:
            process.kill()
        system.mark(f"cycle {cycle}: killed {[p.name for p in victims]}")
        time.sleep(rng.uniform(0.0, 0.6))  # clients retry against a dead port meanwhile
        restart = [p for p in victims if p is not lost]
        system.start(*restart)
        system.mark(f"cycle {cycle}: restarted {[p.name for p in restart]}")
        if in_flight is not None:
            pipelines.append(in_flight.result(timeout=120))
        keyed.replay_all()
    return pipelines


def _writer_stage_holder(system: System, pipeline_run: str) -> Process:
    """The worker that runs the writer stage of ``pipeline_run`` (once it runs)."""

    def holder() -> Process | None:
        with system.client() as client:
            run = client.get(f"/api/v1/pipeline-runs/{pipeline_run}").json()
        write = next(s for s in run["stages"] if s["stage"] == "write")
        if write["status"] != "running" or not write["leaseOwner"]:
            assert write["status"] in ("queued", "running"), write
            return None
        pid = int(write["leaseOwner"].split(":")[-2])
        # None while the lease is still a dead worker's, before another one takes it over.
        return next((w for w in system.workers if w.process and w.process.pid == pid), None)

    found: Process = eventually(holder, timeout=30, what="a worker to run the writer stage")
    system.mark(f"{found.name} runs the writer stage of {pipeline_run}")
    return found


def _unsettled(
    system: System,
    receiver: FlakyReceiver,
    endpoint_id: str,
    keys: int,
    pipelines: list[str],
) -> str | None:
    """What has not settled yet (``None`` once everything has)."""
    with system.client() as client:
        runs = client.get("/api/v1/coding-agent/runs", params={"limit": 200}).json()["items"]
        if len(runs) < keys + len(pipelines):
            return f"{len(runs)} runs"
        busy = [f"{r['id']} {r['lifecycle']}" for r in runs if r["lifecycle"] not in TERMINAL]
        if busy:
            return f"runs {busy}"
        for run_id in pipelines:
            run = client.get(f"/api/v1/pipeline-runs/{run_id}").json()
            if run["status"] not in ("succeeded", "failed", "cancelled"):
                stages = {s["stage"]: (s["status"], s["leaseOwner"]) for s in run["stages"]}
                return f"pipeline {run_id} {run['status']}: {stages}"
        pending = client.get(
            f"/api/v1/webhooks/{endpoint_id}/deliveries", params={"status": "pending"}
        ).json()["items"]
        if pending:
            return f"{len(pending)} webhook deliveries pending"
    missing = _expected(read_ledger(system.database_url, ORG)) - _delivered(receiver)
    return f"events not received: {sorted(missing)[:10]}" if missing else None


def _expected(ledger: list[LedgerRow]) -> set[tuple[str, int]]:
    return {(row.subject_id, row.seq) for row in ledger if matches(PATTERNS, row.type)}


def _delivered(receiver: FlakyReceiver) -> set[tuple[str, int]]:
    found = set()
    for delivery in receiver.snapshot():
        if delivery.status == 200:
            data = json.loads(delivery.body)["data"]
            found.add((data["subjectId"], data["seq"]))
    return found


def test_sigkill_servers_and_workers_at_random_points(system: System) -> None:
    seed = int(os.environ.get("WRITGATE_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    system.mark(f"seed {seed}")
    with flaky_receiver() as receiver:
        try:
            _scenario(system, rng, receiver)
        except BaseException as exc:
            raise AssertionError(
                f"crash test failed (seed {seed}, replay with WRITGATE_CRASH_SEED={seed})\n"
                + "\n".join(system.timeline)
                + "\n"
                + system.logs()
            ) from exc
    print("\n".join(system.timeline))


def _scenario(system: System, rng: random.Random, receiver: FlakyReceiver) -> None:
    with system.client() as client:
        created = client.post(
            "/api/v1/webhooks", json={"url": receiver.url, "eventTypes": PATTERNS}
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()

    followers = Followers(system)
    keyed = KeyedClient(system, followers)
    pipelines = _chaos(system, rng, receiver, keyed)

    # After the last restart: the receiver is up and new work must simply succeed.
    receiver.set("up")
    control_runs = [keyed.submit_next(), keyed.submit_next()]
    pipelines.append(keyed.start_pipeline(CYCLES))
    keyed.finish()
    keys = len(keyed.bodies)
    system.mark("settling")
    last = [""]

    def settled() -> bool:
        last[0] = _unsettled(system, receiver, endpoint["id"], keys, pipelines) or ""
        return not last[0]

    try:
        eventually(settled, timeout=SETTLE_SECONDS, what="everything to settle")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still unsettled: {last[0]}") from None
    system.mark("settled")
    keyed.replay_all()

    ledger = read_ledger(system.database_url, ORG)
    by_subject: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in ledger:
        by_subject[row.subject_id].append(row)

    # Every ledger is gapless.
    for subject, rows in by_subject.items():
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), subject

    # Every follower got its stream's exact ledger, across the crashes.
    followers.finish()
    with system.client() as client:
        for path, got in followers.got.items():
            events = client.get(path.replace("/stream", "/events"), params={"limit": 1000})
            assert got == events.json()["items"], path
    assert len(followers.got) == keys + len(pipelines)

    with system.client() as client:
        runs = client.get("/api/v1/coding-agent/runs", params={"limit": 200}).json()["items"]
        pulls = client.get(
            "/api/v1/forge/local/pulls",
            params={"repository": REPOSITORY, "state": "all", "limit": 200},
        ).json()["items"]
        pipeline_runs = [client.get(f"/api/v1/pipeline-runs/{p}").json() for p in pipelines]
        all_pipeline_runs = client.get("/api/v1/pipeline-runs", params={"limit": 200}).json()
        failed_deliveries = client.get(
            f"/api/v1/webhooks/{endpoint['id']}/deliveries", params={"status": "failed"}
        ).json()["items"]

    # One run per idempotency key, whatever the crashes; every run has ended.
    keyed_runs = set()
    for key, answers in keyed.answers.items():
        assert len({run_id for _, run_id in answers}) == 1, (key, answers)
        assert [status for status, _ in answers].count(201) <= 1, (key, answers)
        keyed_runs.add(answers[0][1])
    assert len(keyed_runs) == keys
    # One pipeline run per pipeline start's key, and none nobody asked for.
    for key, answers in keyed.pipeline_answers.items():
        assert len({run_id for _, run_id in answers}) == 1, (key, answers)
        assert [status for status, _ in answers].count(201) <= 1, (key, answers)
    assert len(keyed.pipeline_answers) == len(pipelines) == len(set(pipelines))
    assert {p["id"] for p in all_pipeline_runs["items"]} == set(pipelines)
    # A pipeline's writer runs: the stage's run, and runs redoing it after an interruption.
    runs_of_pipeline = {
        p["id"]: {
            r.data[name]
            for r in by_subject[p["id"]]
            if r.type == "stage.progress"
            for name in ("runId", "interruptedRunId")
            if name in r.data
        }
        for p in pipeline_runs
    }
    assert all(runs_of_pipeline.values()), runs_of_pipeline
    origin = {run_id: key for key, answers in keyed.answers.items() for _, run_id in answers}
    origin.update({r: p for p, ids in runs_of_pipeline.items() for r in ids})
    assert {r["id"] for r in runs} == set(origin), "a run nobody asked for"
    lifecycles = Counter(
        r["lifecycle"] + (f"/{r['failure']['code']}" if r.get("failure") else "") for r in runs
    )
    assert {r["lifecycle"] for r in runs} <= TERMINAL, lifecycles
    # A crash never fails a pipeline: stages resume, a writer run that died is redone.
    assert [p["status"] for p in pipeline_runs] == ["succeeded"] * len(pipelines), pipeline_runs
    # Work started after the crashes succeeds: nothing was left wedged.
    status_of = {r["id"]: r["lifecycle"] for r in runs}
    assert [status_of[keyed.answers[key][0][1]] for key in control_runs] == ["succeeded"] * 2

    # No event twice where one is the only legal number.
    for run in runs:
        types = Counter(r.type for r in by_subject[run["id"]])
        endings = sum(types[f"run.{state}"] for state in TERMINAL)
        assert endings == 1 and types["run.queued"] == 1, (run["id"], types)
        assert types["run.starting"] <= 1 and types["run.running"] <= 1, (run["id"], types)
        assert types["publish.pull_request"] <= 1, (run["id"], types)
        assert by_subject[run["id"]][-1].type == f"run.{run['lifecycle']}"
    for subject, rows in by_subject.items():
        if subject.startswith("pr_"):
            assert [r.type for r in rows].count("pr.opened") == 1, (subject, rows)
    for p in pipeline_runs:
        rows = by_subject[p["id"]]
        types = Counter(r.type for r in rows)
        assert types["pipeline.finished"] == 1 and types["pipeline.created"] == 1, types
        assert rows[-1].type == "pipeline.finished"
        stage_ends = Counter(
            r.data["stage"]
            for r in rows
            if r.type in ("stage.succeeded", "stage.skipped", "stage.cancelled")
        )
        assert all(count == 1 for count in stage_ends.values()), stage_ends

    # One pull request per idempotency key and per pipeline, and it is the one its runs
    # recorded; a run that succeeded has it.
    with system.client() as client:
        details = {r["id"]: client.get(f"/api/v1/coding-agent/runs/{r['id']}").json() for r in runs}
    pull_of_branch = {pull["head"]: pull for pull in pulls}
    assert len(pull_of_branch) == len(pulls), "two pull requests for one branch"
    pulls_of_origin: dict[str, set[int]] = defaultdict(set)
    # A run killed before it recorded its branch still pushed to the one named after it.
    branch_of = {
        run_id: d["result"].get("branch") or branch_name(run_id, d["title"])
        for run_id, d in details.items()
    }
    for run_id, detail in details.items():
        branch = branch_of[run_id]
        recorded = [r.data for r in by_subject[run_id] if r.type == "publish.pull_request"]
        if recorded:
            assert pull_of_branch[branch]["number"] == recorded[0]["number"], run_id
        if branch in pull_of_branch:
            pulls_of_origin[origin[run_id]].add(pull_of_branch[branch]["number"])
        if detail["lifecycle"] == "succeeded":
            assert recorded and detail["result"]["pullRequest"]["number"] == recorded[0]["number"]
    for pull in pulls:  # every pull request belongs to a run
        assert pull["head"] in branch_of.values(), pull
    assert all(len(numbers) == 1 for numbers in pulls_of_origin.values()), pulls_of_origin

    # Every event the endpoint subscribes to was delivered; duplicates carry one webhook-id.
    assert not failed_deliveries, failed_deliveries
    expected = _expected(ledger)
    received = receiver.snapshot()
    ids_of: dict[tuple[str, int], set[str]] = defaultdict(set)
    events_of: dict[str, set[tuple[str, int]]] = defaultdict(set)
    webhook = Webhook(endpoint["secret"])
    for delivery in received:
        try:
            payload = webhook.verify(delivery.body, delivery.headers)
        except WebhookVerificationError as exc:
            raise AssertionError(f"{exc}: {delivery.headers} {delivery.body!r}") from exc
        event = (payload["data"]["subjectId"], payload["data"]["seq"])
        assert event in expected, event
        ids_of[event].add(delivery.headers["webhook-id"])
        events_of[delivery.headers["webhook-id"]].add(event)
    assert expected <= _delivered(receiver)
    delivered_types = {row.type for row in ledger if (row.subject_id, row.seq) in expected}
    assert delivered_types >= {
        "run.queued",
        "run.succeeded",
        "publish.pull_request",
        "pr.opened",
        "pipeline.finished",
        "stage.succeeded",
        "gate.decided",
    }, delivered_types
    assert all(len(ids) == 1 for ids in ids_of.values())
    assert all(len(events) == 1 for events in events_of.values())

    # The chaos happened: every cycle killed something, the receiver failed some attempts.
    assert sum(p.kills for p in system.processes) >= CYCLES
    assert any(d.status != 200 for d in received)
    system.mark(
        f"runs {dict(lifecycles)}, pipelines {[p['status'] for p in pipeline_runs]}, "
        f"PRs {len(pulls)}, events {len(expected)}, deliveries {len(received)} "
        f"({sum(d.status == 200 for d in received)} ok, {receiver.truncated} cut by a kill), "
        f"client retries {keyed.retries}, "
        f"SSE streams {len(followers.got)} with {followers.reconnects} reconnects, "
        f"kills {[(p.name, p.kills) for p in system.processes]}"
    )
