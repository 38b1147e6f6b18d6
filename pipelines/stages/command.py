"""The ``command`` stage: ``argv`` in a subprocess; a nonzero exit fails the stage.

The subprocess sees a small environment: ``PATH``, ``HOME``, ``LANG``, ``TMPDIR``, the variables
allowed for templates (``WRITGATE_PIPELINE_ENV_ALLOW``), the stage's ``env:`` and
``WRITGATE_PIPELINE_RUN_ID``, ``WRITGATE_STAGE_ID``, ``WRITGATE_STAGE_ATTEMPT`` and
``WRITGATE_IDEMPOTENCY_KEY``. The worker's own secrets (database URL, tokens) are not passed on.
Outputs: ``exitCode``, ``stdout`` (the last 4,000 characters, secrets redacted).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process

from writgate.redact import host_secret_values, redact

from ..context import StageContext
from ..errors import StageFailure
from ..templates import allowed_env
from . import register

__all__ = ["run_command"]

TAIL = 4000
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER")
_KILL_GRACE = 5.0


class _Tail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit * 4:
            del self.data[: len(self.data) - self.limit * 4]

    def text(self, secrets: Sequence[str] = ()) -> str:
        """The last ``limit`` characters, redacted before the cut (a cut can split a token)."""
        return redact(self.data.decode("utf-8", errors="replace"), secrets)[-self.limit :]


async def _drain(stream: ByteReceiveStream | None, tail: _Tail, done: anyio.Event) -> None:
    try:
        if stream is not None:
            async for chunk in stream:
                tail.add(chunk)
    finally:
        done.set()


def _signal_group(process: Process, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _environment(ctx: StageContext, extra: Mapping[str, Any]) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASS_THROUGH if name in os.environ}
    env.update(allowed_env())
    env.update({str(k): str(v) for k, v in extra.items()})
    env.update(
        {
            "WRITGATE_PIPELINE_RUN_ID": ctx.pipeline_run_id,
            "WRITGATE_STAGE_ID": ctx.stage_id,
            "WRITGATE_STAGE_ATTEMPT": str(ctx.attempt),
            "WRITGATE_IDEMPOTENCY_KEY": ctx.idempotency_key,
        }
    )
    return env


async def run_command(ctx: StageContext) -> Mapping[str, Any]:
    """Run ``with.argv``; outputs ``exitCode`` and the tail of ``stdout``."""
    argv = [str(a) for a in ctx.params.get("argv") or []]
    if not argv:
        raise StageFailure("a command stage needs a non-empty 'argv'", retryable=False)
    cwd = ctx.resolve_path(str(ctx.params["cwd"])) if ctx.params.get("cwd") else ctx.base_dir
    env = _environment(ctx, ctx.params.get("env") or {})
    stdout, stderr = _Tail(TAIL), _Tail(TAIL)
    try:
        process = await anyio.open_process(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise StageFailure(f"command not found: {argv[0]!r}", retryable=False) from exc
    except PermissionError as exc:
        raise StageFailure(f"command not executable: {argv[0]!r}", retryable=False) from exc
    except NotADirectoryError as exc:
        raise StageFailure(f"bad working directory {str(cwd)!r}", retryable=False) from exc
    try:
        drained = anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, process.stdout, stdout, drained[0])
            tg.start_soon(_drain, process.stderr, stderr, drained[1])
            code = await process.wait()
            # A background child may keep the pipes open: read what is there, then stop.
            with anyio.move_on_after(2):
                for flag in drained:
                    await flag.wait()
            tg.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            # Cancelled or timed out: stop the whole process group, politely first.
            with anyio.CancelScope(shield=True):
                _signal_group(process, signal.SIGTERM)
                with anyio.move_on_after(_KILL_GRACE):
                    await process.wait()
                if process.returncode is None:
                    _signal_group(process, signal.SIGKILL)
                    await process.wait()
        await process.aclose()
    # Outputs are stored, shown and sent: known secrets, and the values of the stage's env
    # variables named like credentials (``DEPLOY_TOKEN``), are hidden.
    secrets = host_secret_values({str(k): str(v) for k, v in env.items()})
    outputs = {"exitCode": code, "stdout": stdout.text(secrets)}
    if code != 0:
        last = (
            stderr.text(secrets).strip().splitlines()[-1:]
            or str(outputs["stdout"]).strip().splitlines()[-1:]
        )
        detail = f": {last[0][:300]}" if last else ""
        raise StageFailure(f"{argv[0]} exited with code {code}{detail}", outputs=outputs)
    return outputs


register("command", run_command)
