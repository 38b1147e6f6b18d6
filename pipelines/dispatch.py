"""Starting the pipelines a stored forge trigger is configured for — each once, crash or not.

The webhook receiver only stores the trigger (``forge_triggers``, ``dispatched_at`` NULL). A
:class:`TriggerDispatcher` (in the server, and in each ``writgate worker``) picks up triggers not
dispatched yet, right away when the receiver is in its process and by polling otherwise, starts
every matching pipeline of the pipeline directory and then marks the trigger dispatched with what
it did.

Exactly once: a run started for a trigger has an id derived from the trigger and the pipeline's
name, so when the process dies after starting some runs but before marking the trigger, the next
dispatch finds those runs (or collides on the primary key when two dispatchers race) instead of
starting them again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml

from forge.webhooks import Trigger, TriggerStore
from writgate.errors import InputError, StoreError
from writgate.ids import derived_id

from .errors import PipelineRunNotFound, PipelineSpecError
from .loader import parse_pipeline
from .service import PipelineService
from .spec import Pipeline
from .triggers import match_trigger, trigger_inputs

__all__ = ["TriggerDispatcher", "TriggeredPipeline", "run_id_for"]

log = logging.getLogger(__name__)


def run_id_for(trigger: Trigger, pipeline_name: str) -> str:
    """The id of the run ``trigger`` starts for the pipeline ``pipeline_name`` (always the same)."""
    return derived_id("prun", f"{trigger.id}\0{pipeline_name}", at=trigger.received_at)


@dataclass(frozen=True)
class TriggeredPipeline:
    """A file of the pipeline directory with an ``on:`` section, loaded or not."""

    file: str
    path: Path
    pipeline: Pipeline | None
    problem: str | None = None


class _Catalog:
    """The pipeline files with an ``on:`` section, re-read only when a file changes."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._cache: dict[Path, tuple[tuple[int, int], TriggeredPipeline | None]] = {}

    def load(self) -> list[TriggeredPipeline]:
        if not self.directory.is_dir():
            return []
        found: list[TriggeredPipeline] = []
        seen: set[Path] = set()
        files = sorted(
            p
            for pattern in ("*.yaml", "*.yml")
            for p in self.directory.rglob(pattern)
            if not any(part.startswith(".") for part in p.relative_to(self.directory).parts)
        )
        for path in files:
            seen.add(path)
            try:
                stat = path.stat()
            except OSError:
                continue
            key = (stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(path)
            if cached is None or cached[0] != key:
                cached = (key, self._read(path))
                self._cache[path] = cached
            if cached[1] is not None:
                found.append(cached[1])
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        return found

    def _read(self, path: Path) -> TriggeredPipeline | None:
        file = str(path.relative_to(self.directory))
        try:
            text = path.read_text(encoding="utf-8")
            data = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            # not a pipeline a trigger could start (policies and other YAML live here too)
            log.debug("pipeline directory: skipping %s: %s", file, type(exc).__name__)
            return None
        if not isinstance(data, Mapping) or not ({"on", True} & set(data)):
            return None
        try:
            pipeline = parse_pipeline(text, source=file)
        except PipelineSpecError as exc:
            log.warning("pipeline %s is configured for triggers but invalid: %s", file, exc)
            return TriggeredPipeline(file=file, path=path, pipeline=None, problem=str(exc))
        return TriggeredPipeline(file=file, path=path, pipeline=pipeline)


class TriggerDispatcher:
    """Starts the pipelines of ``directory`` that stored forge triggers are configured for."""

    def __init__(
        self,
        *,
        triggers: TriggerStore,
        pipelines: PipelineService,
        directory: Path,
        poll_interval: float = 2.0,
        batch_size: int = 50,
    ):
        self.triggers = triggers
        self.pipelines = pipelines
        self.directory = directory
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._catalog = _Catalog(directory)
        self._wake = anyio.Event()

    def wake(self, _trigger: Trigger | None = None) -> None:
        """Dispatch now rather than at the next poll (a trigger was stored in this process)."""
        self._wake.set()

    async def dispatch(self, trigger: Trigger) -> Trigger:
        """Start ``trigger``'s pipelines that were not started yet and mark it dispatched.

        A database failure leaves the trigger undispatched (the next round retries it).
        """
        catalog = await anyio.to_thread.run_sync(self._catalog.load)
        outcomes: list[dict[str, Any]] = []
        names: dict[str, str] = {}
        for entry in catalog:
            if entry.pipeline is None:
                outcomes.append(
                    {"pipeline": None, "file": entry.file, "reason": f"invalid: {entry.problem}"}
                )
                continue
            name, on = entry.pipeline.name, entry.pipeline.on
            if on is None or trigger.event not in dict(on.events()):
                continue  # not configured for this event at all: not worth a line
            reason = match_trigger(on, trigger)
            if reason is None and name in names:
                reason = f"{names[name]} has the same pipeline name; names must be unique"
            if reason is None:
                names[name] = entry.file
                outcomes.append(await self._start(trigger, entry, entry.pipeline))
            else:
                outcomes.append({"pipeline": name, "file": entry.file, "reason": reason})
        return await self.triggers.mark_dispatched(trigger.org_id, trigger.id, outcomes)

    async def _start(
        self, trigger: Trigger, entry: TriggeredPipeline, pipeline: Pipeline
    ) -> dict[str, Any]:
        base = {"pipeline": pipeline.name, "file": entry.file}
        run_id = run_id_for(trigger, pipeline.name)
        if await self._exists(trigger.org_id, run_id):
            return {**base, "runId": run_id}
        inputs, missing = trigger_inputs(pipeline.inputs, trigger)
        if missing is not None:
            return {**base, "reason": missing}
        try:
            await self.pipelines.start(
                trigger.org_id,
                pipeline,
                inputs,
                source=entry.file,
                base_dir=entry.path.parent,
                run_id=run_id,
                trigger_id=trigger.id,
            )
        except StoreError:
            if await self._exists(trigger.org_id, run_id):  # another dispatcher was quicker
                return {**base, "runId": run_id}
            raise
        except InputError as exc:
            return {**base, "reason": str(exc)}
        log.info("trigger %s started pipeline %s as %s", trigger.id, pipeline.name, run_id)
        return {**base, "runId": run_id}

    async def _exists(self, org_id: str, run_id: str) -> bool:
        try:
            await self.pipelines.get(org_id, run_id)
        except PipelineRunNotFound:
            return False
        return True

    async def dispatch_pending(self) -> int:
        """Dispatch every trigger not dispatched yet; returns how many were."""
        done = 0
        while True:
            pending = await self.triggers.undispatched(limit=self.batch_size)
            batch = 0
            for trigger in pending:
                try:
                    await self.dispatch(trigger)
                except StoreError:
                    raise  # the database is down: the next round retries them all
                except Exception:  # one trigger's bug must not hold up the ones behind it
                    log.exception("dispatching forge trigger %s failed", trigger.id)
                    continue
                batch += 1
            done += batch
            if batch < self.batch_size:  # the last page, or one that will fail again
                return done

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Dispatch pending triggers, then whenever woken or every ``poll_interval``, until
        cancelled. Failures are logged and retried with a growing pause; they never end it."""
        self.triggers.add_listener(self.wake)
        failures = 0
        task_status.started()
        try:
            while True:
                self._wake = anyio.Event()
                try:
                    await self.dispatch_pending()
                    failures = 0
                except Exception:  # the server must outlive a database outage or a bad file
                    failures += 1
                    log.exception("dispatching forge triggers failed (attempt %d)", failures)
                pause = self.poll_interval * min(math.pow(2, failures), 30)
                with anyio.move_on_after(pause):
                    await self._wake.wait()
        finally:
            self.triggers.remove_listener(self.wake)
