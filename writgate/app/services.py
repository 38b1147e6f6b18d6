"""Building the domain services from settings: for the server, the CLI and pipelines alike."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from forge.github import GitHubForge
from forge.local import LocalForge
from forge.protocol import Forge
from forge.webhooks import TriggerStore, WebhookSettings
from judge.gate import MergeGate, program_reviewers_from_env, public_url_from_env
from judge.store import ReviewStore
from judge.watch import GateWatcher
from pipelines.api import pipeline_dir
from pipelines.dispatch import TriggerDispatcher
from pipelines.durations import parse_duration
from pipelines.service import PipelineService
from writer.executor import Executor
from writer.sandbox import SandboxProvider, provider_for
from writer.service import WriterService
from writer.store import RunStore
from writgate.errors import ConfigError
from writgate.ledger import Ledger
from writgate.settings import Settings
from writgate.web import AppState
from writgate.webhooks import Deliverer, WebhookService
from writgate.webhooks import attach as attach_webhooks

__all__ = ["Services", "build_services", "make_services", "trigger_dispatcher"]


@dataclass
class Services:
    """The wired domain services of one process."""

    forge_for: Callable[[str], Forge]
    provider: SandboxProvider
    executor: Executor
    writer: WriterService


def _forge_factory(
    settings: Settings, engine: AsyncEngine, ledger: Ledger
) -> Callable[[str], Forge]:
    kind = os.environ.get("WRITGATE_FORGE", "local")
    if kind == "github":
        github = GitHubForge.from_env()  # one GitHub installation serves every org

        def github_for(org: str) -> Forge:
            del org
            return github

        return github_for
    if kind != "local":
        raise ConfigError(f"WRITGATE_FORGE={kind!r} is not supported (use 'local' or 'github')")

    def forge_for(org: str) -> Forge:
        return LocalForge(engine=engine, ledger=ledger, home=settings.home, org=org)

    return forge_for


def make_services(settings: Settings, engine: AsyncEngine, ledger: Ledger) -> Services:
    """Wire the forge, the sandbox provider, the executor and the writer service."""
    forge_for = _forge_factory(settings, engine, ledger)
    store = RunStore(engine=engine, ledger=ledger)
    sink: list[Executor] = []

    async def on_event(event: object) -> None:
        if sink:
            await sink[0].on_sandbox_event(event)  # type: ignore[arg-type]

    provider = provider_for(
        os.environ.get("WRITGATE_SANDBOX", "local"), home=settings.home, on_event=on_event
    )
    executor = Executor(store=store, provider=provider, forge_for=forge_for, home=settings.home)
    sink.append(executor)
    return Services(
        forge_for=forge_for,
        provider=provider,
        executor=executor,
        writer=WriterService(store=store, executor=executor),
    )


def trigger_dispatcher(
    triggers: TriggerStore, pipelines: PipelineService, settings: Settings
) -> TriggerDispatcher:
    """The dispatcher of forge triggers to the pipeline directory's pipelines.

    ``WRITGATE_TRIGGER_POLL`` (default 2s) is how often it looks for triggers stored by another
    process.
    """
    poll = os.environ.get("WRITGATE_TRIGGER_POLL") or "2s"
    try:
        interval = parse_duration(poll)
    except ValueError as exc:
        raise ConfigError(f"WRITGATE_TRIGGER_POLL: {exc}") from None
    return TriggerDispatcher(
        triggers=triggers,
        pipelines=pipelines,
        directory=pipeline_dir(settings.home),
        poll_interval=interval,
    )


def _on(name: str) -> bool:
    return os.environ.get(name, "on").lower() not in ("off", "0", "false", "no")


def build_services(state: AppState) -> None:
    """Register every domain service in ``state.services`` (routers use ``web.service``)."""
    services = make_services(state.settings, state.engine, state.ledger)
    state.services["writer"] = services.writer
    state.services["forge_for"] = services.forge_for
    state.services["forge.local"] = LocalForge(
        engine=state.engine, ledger=state.ledger, home=state.settings.home
    )
    state.services["forge.triggers"] = TriggerStore(engine=state.engine)
    state.services["judge.reviews"] = ReviewStore(engine=state.engine, ledger=state.ledger)
    gate = MergeGate(
        engine=state.engine,
        ledger=state.ledger,
        forge=state.services["forge.local"],
        public_url=public_url_from_env(),
        home=state.settings.home,
        allow_program_reviewers=program_reviewers_from_env(),
    )
    state.services["judge.gate"] = gate
    watcher = GateWatcher(gate)
    watcher.install(state.ledger)
    state.background.append(watcher.serve)
    state.services["forge.github.webhook"] = WebhookSettings(
        os.environ.get("WRITGATE_GITHUB_WEBHOOK_SECRET")
    )
    pipelines = PipelineService(
        engine=state.engine, ledger=state.ledger, settings=state.settings, services=state.services
    )
    state.services["pipelines"] = pipelines
    dispatcher = trigger_dispatcher(state.services["forge.triggers"], pipelines, state.settings)
    state.services["pipelines.triggers"] = dispatcher
    if _on("WRITGATE_TRIGGER_DISPATCH"):
        # Stored forge triggers start the pipelines configured for them (`on:`).
        state.background.append(dispatcher.serve)
    if os.environ.get("WRITGATE_SERVER_WORKER", "on").lower() not in ("off", "0", "false", "no"):
        # The server runs pipeline stages itself unless dedicated `writgate worker`s do.
        state.background.append(pipelines.serve)
    if os.environ.get("WRITGATE_EXECUTOR", "on").lower() not in ("off", "0", "false", "no"):
        # API-only nodes (WRITGATE_EXECUTOR=off) store runs; an executor elsewhere runs them.
        state.background.append(services.executor.serve)
    webhooks = attach_webhooks(state.ledger, home=state.settings.home)
    deliverer = Deliverer.from_env(webhooks)
    state.services["webhooks"] = WebhookService(store=webhooks, deliverer=deliverer)
    delivery = os.environ.get("WRITGATE_WEBHOOKS_DELIVERY", "on").lower()
    if delivery not in ("off", "0", "false", "no"):
        # Deliveries go out from the server unless dedicated `writgate worker`s send them.
        state.background.append(deliverer.serve)
