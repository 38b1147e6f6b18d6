"""The synchronous client, :class:`Client` (``async_client.py`` mirrors it method for method)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from . import calls
from .calls import Call
from .errors import ApiConnectionError, WaitTimeout, error_from_response
from .retry import RetryPolicy, parse_retry_after
from .shared import (
    DEFAULT_TIMEOUT,
    STREAM_READ_TIMEOUT,
    ClientConfig,
    EventCursor,
    new_idempotency_key,
    poll_intervals,
    until_predicate,
)

if TYPE_CHECKING:
    from judge.api import DecisionList, DecisionOut, RefreshOut, ReviewRunList, ReviewRunOut
    from pipelines.api import PipelineRunList, PipelineRunOut, ValidationOut
    from writer.api import ModelList
    from writer.lifecycle import Lifecycle
    from writer.models import CreateRunRequest, Run, RunList, RunStatus
    from writgate.app.passports_api import PassportList, PassportOut
    from writgate.sse import LedgerEvent, LedgerEventList
    from writgate.webhooks.models import (
        WebhookDelivery,
        WebhookDeliveryList,
        WebhookEndpoint,
        WebhookEndpointList,
        WebhookEndpointWithSecret,
        WebhookEventFamilyList,
    )

    from .shared import Until

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A client of a writgate server's HTTP API.

    ``base_url`` defaults to ``$WRITGATE_SERVER`` and ``api_key`` to ``$WRITGATE_API_KEY``.
    Reads and keyed creates are retried on transient failures (see :mod:`writgate.client.retry`);
    errors are raised as :class:`~writgate.client.errors.ApiError` subclasses carrying the
    problem+json ``code``, ``status`` and ``field``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        stream_read_timeout: float = STREAM_READ_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig.resolve(base_url, api_key, retry)
        self._stream_read_timeout = stream_read_timeout
        self._http = httpx.Client(
            base_url=self._config.base_url,
            headers=self._config.headers(),
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._config.base_url

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        return call.parse(self._request(call))

    def _request(self, call: Call[Any]) -> httpx.Response:
        policy = self._config.retry
        retry = 0
        while True:
            last = retry + 1 >= policy.attempts
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=tuple(call.params),
                    json=call.json,
                    headers=call.headers,
                )
            except httpx.TransportError as exc:
                if last or not policy.exception_is_retryable(exc, safe=call.safe):
                    raise ApiConnectionError(
                        f"{call.method} {call.path}: {type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(policy.backoff(retry))
                retry += 1
                continue
            if response.is_success:
                return response
            delay = None if last else policy.response_delay(response, safe=call.safe, retry=retry)
            if delay is None:
                raise error_from_response(
                    response, retry_after=parse_retry_after(response.headers.get("retry-after"))
                )
            time.sleep(delay)
            retry += 1

    def _follow(self, path: str, cursor: EventCursor) -> Iterator[Any]:
        timeout = httpx.Timeout(self._http.timeout.connect, read=self._stream_read_timeout)
        while not cursor.done:
            failure: Exception | None = None
            delay = 0.0
            try:
                with self._http.stream(
                    "GET", path, headers=cursor.headers(), timeout=timeout
                ) as response:
                    if not response.is_success:
                        response.read()
                        # 502/503/504, or 429 with Retry-After: reconnect after the delay.
                        asked = self._config.retry.response_delay(
                            response, safe=True, retry=cursor.failures
                        )
                        if asked is None:
                            raise error_from_response(response)
                        delay = asked
                    else:
                        decoder = cursor.decoder()
                        for line in response.iter_lines():
                            sse = decoder.feed(line)
                            event = cursor.accept(sse) if sse is not None else None
                            if event is not None:
                                yield event
                            if cursor.done:
                                return
            except httpx.TransportError as exc:
                failure = exc
            time.sleep(max(delay, cursor.dropped(failure)))

    # --- coding-agent runs ----------------------------------------------------------------------

    def create_run(
        self,
        request: CreateRunRequest | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> Run:
        """Create a run. Without ``idempotency_key`` one is generated; either way the key is
        reused on every retry, so a retried create yields one run (``created`` tells which)."""
        key = idempotency_key or new_idempotency_key()
        return self._send(calls.create_run(request, idempotency_key=key))

    def list_runs(
        self,
        *,
        tags: Iterable[str] = (),
        metadata: Mapping[str, str | int | float | bool] | None = None,
        lifecycle: Iterable[Lifecycle | str] = (),
        repository: str | None = None,
        intent: str | None = None,
        parent_run_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> RunList:
        """One page of runs, newest first; every tag and metadata pair must match."""
        return self._send(
            calls.list_runs(
                tags=tags, metadata=metadata, lifecycle=lifecycle, repository=repository,
                intent=intent, parent_run_id=parent_run_id, cursor=cursor, limit=limit,
            )
        )  # fmt: skip

    def iter_runs(
        self,
        *,
        tags: Iterable[str] = (),
        metadata: Mapping[str, str | int | float | bool] | None = None,
        lifecycle: Iterable[Lifecycle | str] = (),
        repository: str | None = None,
        intent: str | None = None,
        parent_run_id: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Run]:
        """Every matching run, newest first, following ``nextCursor``."""
        tags, lifecycle = list(tags), list(lifecycle)
        cursor: str | None = None
        while True:
            page = self.list_runs(
                tags=tags, metadata=metadata, lifecycle=lifecycle, repository=repository,
                intent=intent, parent_run_id=parent_run_id, cursor=cursor, limit=page_size,
            )  # fmt: skip
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_run(self, run_id: str) -> Run:
        """The full run."""
        return self._send(calls.get_run(run_id))

    def get_run_status(self, run_id: str) -> RunStatus:
        """The run's lifecycle fields, failure, session expiry and update time."""
        return self._send(calls.get_run_status(run_id))

    def list_run_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> LedgerEventList:
        """One page of the run's ledger: events with ``seq > after``, oldest first."""
        return self._send(calls.list_run_events(run_id, after=after, limit=limit))

    def follow(self, run_id: str, *, after: int = 0) -> Iterator[LedgerEvent]:
        """The run's events from ``seq > after`` as they happen, until the stream's ``done``.

        A dropped connection is reopened with ``Last-Event-ID``: every event is yielded exactly
        once, in order. Gives up with :class:`ApiConnectionError` after ``retry.attempts``
        consecutive connections that brought nothing new.
        """
        from writgate.sse import LedgerEvent

        cursor = EventCursor(LedgerEvent, after=after, retry=self._config.retry, what=run_id)
        return self._follow(calls.run_stream_path(run_id), cursor)

    def wait(self, run_id: str, *, until: Until = None, timeout: float = 600.0) -> RunStatus:
        """Poll the run's status until ``until`` holds; returns that status.

        ``until``: None (default) waits until the run is terminal or awaiting a follow-up; a
        collection of lifecycle values; or a predicate over :class:`RunStatus`. Raises
        :class:`WaitTimeout` (with the last status) after ``timeout`` seconds.
        """
        done = until_predicate(until)
        deadline = time.monotonic() + timeout
        for delay in poll_intervals():
            status = self.get_run_status(run_id)
            if done(status):
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(
                    f"run {run_id} is still {status.lifecycle.value} after {timeout:g} s",
                    last=status,
                )
            time.sleep(min(delay, remaining))
        raise AssertionError("unreachable")  # pragma: no cover

    def send_message(
        self, run_id: str, text: str, *, fallback: Literal["none", "chain"] = "none"
    ) -> Run:
        """A follow-up turn on the warm run (same id), or with ``fallback="chain"`` a chained run
        when the session is not warm. Never retried once it may have reached the server."""
        return self._send(calls.send_message(run_id, text, fallback=fallback))

    def complete_run(self, run_id: str) -> Run:
        """Close the warm session: the run succeeds."""
        return self._send(calls.complete_run(run_id))

    def cancel_run(self, run_id: str) -> Run:
        """Stop the agent and release the sandbox."""
        return self._send(calls.cancel_run(run_id))

    def list_models(self) -> ModelList:
        """The model catalog."""
        return self._send(calls.list_models())

    # --- pipelines ------------------------------------------------------------------------------

    def start_pipeline(
        self,
        *,
        path: str | None = None,
        yaml: str | None = None,
        spec: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> PipelineRunOut:
        """Start a pipeline run from a file of the server's pipeline directory, YAML or a spec.

        Like :meth:`create_run`: without ``idempotency_key`` one is generated, and the key is
        reused on every retry, so a retried start yields one pipeline run."""
        key = idempotency_key or new_idempotency_key()
        call = calls.start_pipeline(
            path=path, yaml=yaml, spec=spec, inputs=inputs, idempotency_key=key
        )
        return self._send(call)

    def validate_pipeline(
        self,
        *,
        path: str | None = None,
        yaml: str | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> ValidationOut:
        """Check a pipeline without running it."""
        return self._send(calls.validate_pipeline(path=path, yaml=yaml, spec=spec))

    def list_pipeline_runs(
        self, *, status: Iterable[str] = (), name: str | None = None, limit: int | None = None
    ) -> PipelineRunList:
        """Pipeline runs, newest first."""
        return self._send(calls.list_pipeline_runs(status=status, name=name, limit=limit))

    def get_pipeline_run(self, run_id: str) -> PipelineRunOut:
        """A pipeline run and its stages."""
        return self._send(calls.get_pipeline_run(run_id))

    def cancel_pipeline_run(self, run_id: str, *, reason: str | None = None) -> PipelineRunOut:
        """Cancel a pipeline run."""
        return self._send(calls.cancel_pipeline_run(run_id, reason=reason))

    def list_pipeline_run_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> LedgerEventList:
        """One page of a pipeline run's ledger."""
        return self._send(calls.list_pipeline_run_events(run_id, after=after, limit=limit))

    def follow_pipeline_run(self, run_id: str, *, after: int = 0) -> Iterator[LedgerEvent]:
        """A pipeline run's events until it finishes, resuming like :meth:`follow`."""
        from writgate.sse import LedgerEvent

        cursor = EventCursor(LedgerEvent, after=after, retry=self._config.retry, what=run_id)
        return self._follow(calls.pipeline_stream_path(run_id), cursor)

    # --- judge: review runs and the merge gate --------------------------------------------------

    def create_review_run(
        self,
        repository: str,
        *,
        pull_request: int | None = None,
        base: str | None = None,
        head: str | None = None,
        reviewers: Iterable[str] | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ReviewRunOut:
        """Review a pull request (or ``base``..``head``) of a repository on the server's forge."""
        return self._send(
            calls.create_review_run(
                repository, pull_request=pull_request, base=base, head=head,
                reviewers=reviewers, config=config,
            )
        )  # fmt: skip

    def list_review_runs(
        self,
        *,
        repository: str | None = None,
        head_sha: str | None = None,
        pull_request: int | None = None,
        before: str | None = None,
        limit: int | None = None,
    ) -> ReviewRunList:
        """Review runs, newest first, without findings."""
        return self._send(
            calls.list_review_runs(
                repository=repository, head_sha=head_sha, pull_request=pull_request,
                before=before, limit=limit,
            )
        )  # fmt: skip

    def get_review_run(self, run_id: str) -> ReviewRunOut:
        """A review run with its findings."""
        return self._send(calls.get_review_run(run_id))

    def export_review_run(
        self, run_id: str, *, format: Literal["rdjson", "sarif"]
    ) -> dict[str, Any]:
        """A review run's findings as reviewdog rdjson or SARIF 2.1.0."""
        return self._send(calls.export_review_run(run_id, format=format))

    def evaluate_gate(
        self,
        policy: str,
        *,
        passport: Mapping[str, Any] | None = None,
        pr_state: Mapping[str, Any] | None = None,
        repository: str | None = None,
        pull_request: int | None = None,
        reviewers: Iterable[str] | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        publish: bool = False,
    ) -> DecisionOut:
        """Decide a passport (or a forge pull request) with a policy (YAML text)."""
        return self._send(
            calls.evaluate_gate(
                policy, passport=passport, pr_state=pr_state, repository=repository,
                pull_request=pull_request, reviewers=reviewers, config=config, publish=publish,
            )
        )  # fmt: skip

    def refresh_gate(
        self, repository: str, pull_request: int, *, publish: bool = True
    ) -> RefreshOut:
        """Re-evaluate a pull request's current decision."""
        return self._send(calls.refresh_gate(repository, pull_request, publish=publish))

    def list_gate_decisions(
        self,
        *,
        repository: str | None = None,
        pull_request: int | None = None,
        status: Literal["current", "superseded", "stale"] | None = None,
        limit: int | None = None,
    ) -> DecisionList:
        """Merge-gate decisions, newest first."""
        return self._send(
            calls.list_gate_decisions(
                repository=repository, pull_request=pull_request, status=status, limit=limit
            )
        )

    def get_gate_decision(self, decision_id: str) -> DecisionOut:
        """One decision with every rule's state and reasons."""
        return self._send(calls.get_gate_decision(decision_id))

    # --- passports -----------------------------------------------------------------------------

    def list_passports(
        self, *, since: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> PassportList:
        """Stored passports, newest first (``since``: a duration such as 30d, or a date)."""
        return self._send(calls.list_passports(since=since, cursor=cursor, limit=limit))

    def get_passport(self, passport: str) -> PassportOut:
        """A stored passport by stored id (pp_…) or passport id (sha256:…)."""
        return self._send(calls.get_passport(passport))

    def get_passport_markdown(self, passport: str) -> str:
        """The passport rendered as Markdown (the PR comment)."""
        return self._send(calls.get_passport_markdown(passport))

    # --- webhooks -------------------------------------------------------------------------------

    def list_webhook_event_types(self) -> WebhookEventFamilyList:
        """The event families an endpoint can subscribe to (``<family>.*``)."""
        return self._send(calls.list_webhook_event_types())

    def create_webhook_endpoint(
        self, url: str, event_types: Iterable[str], *, description: str = ""
    ) -> WebhookEndpointWithSecret:
        """Subscribe ``url``; the answer carries the signing secret, shown only this once."""
        return self._send(calls.create_webhook_endpoint(url, event_types, description=description))

    def list_webhook_endpoints(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> WebhookEndpointList:
        """The org's webhook endpoints, newest first."""
        return self._send(calls.list_webhook_endpoints(cursor=cursor, limit=limit))

    def get_webhook_endpoint(self, webhook_id: str) -> WebhookEndpoint:
        """One webhook endpoint."""
        return self._send(calls.get_webhook_endpoint(webhook_id))

    def update_webhook_endpoint(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        event_types: Iterable[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change the given fields of an endpoint (``enabled=True`` re-enables it)."""
        return self._send(
            calls.update_webhook_endpoint(
                webhook_id, url=url, event_types=event_types, description=description,
                enabled=enabled,
            )
        )  # fmt: skip

    def delete_webhook_endpoint(self, webhook_id: str) -> None:
        """Remove an endpoint."""
        return self._send(calls.delete_webhook_endpoint(webhook_id))

    def rotate_webhook_secret(
        self, webhook_id: str, *, grace_seconds: int | None = None
    ) -> WebhookEndpointWithSecret:
        """A new signing secret; the old one still signs for ``grace_seconds``."""
        return self._send(calls.rotate_webhook_secret(webhook_id, grace_seconds=grace_seconds))

    def test_webhook_endpoint(self, webhook_id: str) -> WebhookDelivery:
        """Send one signed ``webhook.test`` message now and return the attempt."""
        return self._send(calls.test_webhook_endpoint(webhook_id))

    def list_webhook_deliveries(
        self,
        webhook_id: str,
        *,
        status: Literal["pending", "succeeded", "failed"] | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> WebhookDeliveryList:
        """Deliveries to an endpoint, newest first."""
        return self._send(
            calls.list_webhook_deliveries(webhook_id, status=status, cursor=cursor, limit=limit)
        )

    def get_webhook_delivery(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """One delivery with its attempt log."""
        return self._send(calls.get_webhook_delivery(webhook_id, delivery_id))

    def redeliver_webhook(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """Deliver a delivery again (manual redelivery)."""
        return self._send(calls.redeliver_webhook(webhook_id, delivery_id))

    # --- the API description --------------------------------------------------------------------

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document."""
        return self._send(calls.openapi())
