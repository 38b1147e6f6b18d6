"""The crash test's pipeline and its kill points (imported by the worker subprocesses too).

A trial writes ``<dir>/kill`` (``STAGE PHASE``) before it starts the process to kill. The process
that reaches that point writes ``<dir>/reached`` and blocks until it is SIGKILLed, so every trial
interrupts the run exactly where it was meant to. The phases:

- ``claimed``: the stage is claimed (its lease held, ``stage.started`` committed); its handler
  has not started;
- ``effect``: the stage's side effect happened (a ``python`` or ``command`` stage's effect; the
  writer run's pull request is open, the writer run not settled); the handler has not returned;
- ``publish`` (writer only): the agent finished in its sandbox; nothing is pushed yet;
- ``commit``: the handler returned (the writer run succeeded); the stage's outcome is not
  committed.

The kill file is removed once the process is dead: whatever completes the run never blocks.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from pipelines import StageContext

KILL = "kill"
REACHED = "reached"
WRITER = "write"
STAGES = ("s1", WRITER, "s3", "s4", "s5", "s6")
PHASES = ("claimed", "effect", "commit")
WRITER_PHASES = ("claimed", "publish", "effect", "commit")


def kill_points() -> list[tuple[str, str]]:
    """Every ``(stage, phase)`` a trial may kill at."""
    return [
        (stage, phase)
        for stage in STAGES
        for phase in (WRITER_PHASES if stage == WRITER else PHASES)
    ]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


async def reach(directory: Path, stage: str, phase: str) -> None:
    """Block here until killed when ``(stage, phase)`` is this trial's kill point."""
    try:
        point = (directory / KILL).read_text().split()
    except FileNotFoundError:
        return
    if point == [stage, phase]:
        _write_atomically(directory / REACHED, f"{stage} {phase} {os.getpid()}\n")
        await anyio.sleep_forever()


def _log(directory: Path, name: str, line: str) -> None:
    with (directory / name).open("a") as log:
        log.write(line)


async def effect(ctx: StageContext, dir: str) -> dict[str, Any]:
    """A ``python`` stage: its side effect happens once per idempotency key."""
    directory = Path(dir)
    line = f"{ctx.stage_id} {ctx.idempotency_key} {os.getpid()}\n"
    _log(directory, "executions.log", line)
    try:
        (directory / "markers" / ctx.idempotency_key.replace(":", "_")).mkdir()
    except FileExistsError:
        pass
    else:
        _log(directory, "effects.log", line)
    await reach(directory, ctx.stage_id, "effect")
    return {"stage": ctx.stage_id}


# A `command` stage: the same effect; at its kill point it waits for the worker (its parent) to
# die, then ends too (it runs in a session of its own, a SIGKILLed worker does not take it down).
EFFECT_SH = """\
set -e
key="$WRITGATE_IDEMPOTENCY_KEY"
line="$WRITGATE_STAGE_ID $key $$"
echo "$line" >> "$DIR/executions.log"
if mkdir "$DIR/markers/$(echo "$key" | tr ':' '_')" 2>/dev/null; then
    echo "$line" >> "$DIR/effects.log"
fi
if [ "$(cat "$DIR/kill" 2>/dev/null)" = "$WRITGATE_STAGE_ID effect" ]; then
    echo "$WRITGATE_STAGE_ID effect $$" > "$DIR/reached.partial"
    mv "$DIR/reached.partial" "$DIR/reached"
    while kill -0 "$PPID" 2>/dev/null; do sleep 0.05; done
    exit 1
fi
echo "pr $PR"
"""

# The writer's agent (a `command` agent in the bubblewrap sandbox): the same change every time.
AGENT = """\
import pathlib, sys
pathlib.Path("CRASH.md").write_text("recovered\\n")
print("wrote CRASH.md for:", sys.argv[1])
"""

_PY = (
    '{uses: python, needs: %s, with: {function: "tests.integration._crash_pipeline:effect", '
    'args: {dir: "{{ inputs.dir }}"}}}'
)
_SH = (
    '{uses: command, needs: %s, with: {argv: [sh, effect.sh], env: {DIR: "{{ inputs.dir }}", '
    'PR: "{{ stages.write.outputs.pullRequestNumber }}"}}}'
)

PIPELINE = f"""\
name: crash
inputs:
  dir: {{required: true}}
  repository: {{required: true}}
stages:
  s1: {_PY % "[]"}
  write:
    uses: writer
    needs: [s1]
    with:
      repository: "{{{{ inputs.repository }}}}"
      title: Crash trial
      prompt: Record that the run recovered.
      agent: {{driver: command, script: agent.py}}
      publish: {{mode: draft_pr}}
      validationMode: none
      session: {{keepWarmSeconds: 0}}
      safety: {{network: {{mode: none}}, resources: {{maxTurns: 1, maxWallSeconds: 120}}}}
  s3: {_SH % "[write]"}
  s4: {_PY % "[write]"}
  s5: {_SH % "[s3, s4]"}
  s6: {_PY % "[s5]"}
"""


def prepare(directory: Path) -> None:
    """The files a trial's run uses (the pipeline refers to them relative to its folder)."""
    (directory / "markers").mkdir(parents=True)
    (directory / "effect.sh").write_text(EFFECT_SH)
    (directory / "agent.py").write_text(AGENT)
    (directory / "crash.yaml").write_text(PIPELINE)


def install_kill_points(directory: Path) -> None:
    """Make this process block at the trial's kill point (called in the process to be killed)."""
    import pipelines.worker
    import writer.executor
    from pipelines.stages import handler_for
    from writer.publish import publish_change

    def kill_point_handler_for(kind: str) -> Any:
        handler = handler_for(kind)
        if handler is None:
            return None

        async def handle(ctx: StageContext) -> Mapping[str, Any]:
            await reach(directory, ctx.stage_id, "claimed")
            outputs: Mapping[str, Any] = await handler(ctx)
            await reach(directory, ctx.stage_id, "commit")
            return outputs

        return handle

    async def kill_point_publish(**arguments: Any) -> Any:
        await reach(directory, WRITER, "publish")
        published = await publish_change(**arguments)
        await reach(directory, WRITER, "effect")
        return published

    # the names the worker and the executor call (they imported them from these modules)
    setattr(pipelines.worker, "handler_for", kill_point_handler_for)  # noqa: B010
    setattr(writer.executor, "publish_change", kill_point_publish)  # noqa: B010


async def _lean_worker(run_id: str) -> None:
    """A worker for one run started by the test, with the services of `writgate resume`."""
    from writgate.app.cli._pipelines import pipeline_service
    from writgate.app.database import open_database
    from writgate.settings import Settings

    settings = Settings.from_env()
    database = await open_database(settings, migrate_schema=False)
    try:
        async with pipeline_service(database, settings) as service:
            print(run_id, flush=True)
            await service.execute(settings.org, run_id, poll_interval=0.05)
    finally:
        await database.dispose()


def _child(command: dict[str, Any]) -> int:
    """In a forked child: the output files, the kill points, then the command itself."""
    for fd, name, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, command["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, command["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(name, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child ends with os._exit
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.environ.update(command.get("env") or {})
    os.chdir(command["cwd"])
    if command.get("kill_dir"):
        install_kill_points(Path(command["kill_dir"]))
    argv = command["argv"]
    if argv[0] == "lean-worker":
        anyio.run(_lean_worker, argv[1])
        return 0
    from writgate.app.cli import main

    sys.argv = ["writgate", *argv]
    return main(argv)


def fork_server() -> None:
    """Start `writgate` processes fast: fork them from an interpreter that imported everything.

    A crash trial starts three processes; a fresh interpreter spends seconds importing the app on
    a loaded machine. Commands come on stdin as JSON lines (``argv``: the `writgate` arguments or
    ``["lean-worker", RUN_ID]``; ``env`` to add; ``out``/``err`` files; ``cwd``; ``kill_dir`` to
    install the kill points); stdout answers ``started PID`` and, once a child ended,
    ``ended PID STATUS``.
    """
    import json
    import select

    import pipelines.stages

    for name in ("writgate.app.cli", "writgate.app.cli.run", "writgate.app.cli.worker"):
        importlib.import_module(name)  # and the services they wire (writer, forge, judge)
    importlib.import_module("writgate.app.services")
    pipelines.stages.registered_kinds()  # imports every stage kind
    children: set[int] = set()
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0.02)
        if readable:
            line = sys.stdin.readline()
            if not line:
                break
            command = json.loads(line)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _child(command)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            children.add(pid)
            print(f"started {pid}", flush=True)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                print(f"ended {pid} {os.waitstatus_to_exitcode(status)}", flush=True)
    for pid in children:  # stdin closed: the test is over
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
