"""What every CLI agent driver shares: run the CLI in the sandbox, parse its event stream.

A driver is two things: the command line of a turn (:meth:`CliAgent.command`) and a parser of
the CLI's own output (:class:`StreamParser`). The parser is pure: it is fed the lines the CLI
prints, one at a time, and returns the ledger events they mean (``agent.message``,
``agent.tool_call``, ``agent.command``, ``agent.usage``); at the end it decides the turn's
outcome from the exit code *and* what the stream said (:meth:`StreamParser.outcome`). Tests
feed recorded streams to the parsers without any process (:func:`parse_lines`).

:class:`CliAgent` runs the command, streams each line through the parser, bounds and redacts
every event before it reaches the ledger, and tells the host the turn's usage whenever it
changes, so the host can kill the process when a budget is crossed (DESIGN.md §4.5).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from writer.sandbox import ExecResult, Sandbox
from writer.sandbox.bubblewrap import HOME
from writgate.redact import Redactor

from .protocol import AgentEventSink, TurnContext, TurnResult, TurnUsage

__all__ = [  # noqa: RUF022 (plain sorted order, checked by a test)
    "CliAgent",
    "MAX_EVENTS_PER_TURN",
    "MAX_TEXT_CHARS",
    "ParsedEvent",
    "ParsedTurn",
    "StreamParser",
    "as_object",
    "bounded",
    "compact_json",
    "parse_lines",
    "usage_event",
]

MAX_TEXT_CHARS = 4000
"""Longest text (message, command output, tool input) kept in one ledger event."""
MAX_EVENTS_PER_TURN = 2000
"""Most agent events recorded per turn; later ones are counted, not stored."""
AGENT_PATH = f"{HOME}/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of agent processes: ``~/.local/bin`` first, where per-user CLI installers put them."""


def bounded(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (events are never trusted)."""
    return value if isinstance(value, dict) else {}


def compact_json(value: Any) -> str:
    """A one-line JSON rendering of a tool input or output (for bounded ledger text)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def usage_event(usage: TurnUsage, *, final: bool) -> dict[str, Any]:
    """The data of an ``agent.usage`` event: the turn's usage so far."""
    data: dict[str, Any] = {
        "reported": usage.reported,
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cacheReadTokens": usage.cache_read_tokens,
        "cacheWriteTokens": usage.cache_write_tokens,
        "final": final,
    }
    if usage.cost_usd is not None:
        data["costUsd"] = usage.cost_usd
    return data


@dataclass(frozen=True)
class ParsedEvent:
    """One ledger event a parser found in the stream (``turn`` is added by the driver)."""

    type: str
    data: Mapping[str, Any]


class StreamParser(abc.ABC):
    """Turns one CLI's output lines into ledger events, usage, a session id and an outcome.

    Subclasses implement :meth:`feed` and :meth:`outcome`; they keep :attr:`usage` as the
    turn's usage so far and :attr:`session_id` once the CLI has named its session.
    """

    driver: ClassVar[str] = "cli"

    def __init__(self) -> None:
        self.usage = TurnUsage()
        self.session_id: str | None = None
        self.summary: str | None = None
        self.unparsed = 0

    @abc.abstractmethod
    def feed(self, stream: str, line: str) -> list[ParsedEvent]:
        """The events that one line of output (``stream`` is stdout or stderr) means."""

    @abc.abstractmethod
    def outcome(self, exit_code: int) -> TurnResult:
        """How the turn ended, from the exit code and everything fed so far."""

    # -- helpers for subclasses ----------------------------------------------------------

    def json_line(self, stream: str, line: str) -> dict[str, Any] | None:
        """``line`` as a JSON object if it is one on stdout, else ``None``."""
        text = line.strip()
        if stream != "stdout" or not text.startswith("{"):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            self.unparsed += 1
            return None
        return value if isinstance(value, dict) else None

    def raw(self, stream: str, line: str) -> list[ParsedEvent]:
        """A line that is not an event (a warning on stderr, a banner): kept as a message."""
        if not line.strip():
            return []
        return [ParsedEvent("agent.message", {"role": "output", "stream": stream, "text": line})]

    def result(
        self,
        *,
        ok: bool,
        exit_code: int,
        failure_code: str | None = None,
        failure_message: str | None = None,
    ) -> TurnResult:
        """A :class:`TurnResult` with this parser's usage, session and summary."""
        return TurnResult(
            ok=ok,
            exit_code=exit_code,
            usage=self.usage,
            session_id=self.session_id,
            failure_code=None if ok else (failure_code or "agent_error"),
            failure_message=None if ok else failure_message,
            summary=self.summary,
        )

    def missing_result(self, exit_code: int, what: str) -> TurnResult:
        """The outcome of a stream that ended without its final result event."""
        return self.result(
            ok=False,
            exit_code=exit_code,
            failure_message=(
                f"the {self.driver} agent ended without {what} (exit code {exit_code}); "
                "a turn without a final result is not a success"
            ),
        )


@dataclass
class ParsedTurn:
    """Everything a parser made of a whole stream (see :func:`parse_lines`)."""

    events: list[ParsedEvent] = field(default_factory=list)
    result: TurnResult | None = None


def parse_lines(
    parser: StreamParser, lines: Iterable[str | tuple[str, str]], exit_code: int
) -> ParsedTurn:
    """Feed ``lines`` (stdout, or ``(stream, line)`` pairs) to ``parser``; the whole turn."""
    turn = ParsedTurn()
    for item in lines:
        stream, line = ("stdout", item) if isinstance(item, str) else item
        turn.events.extend(parser.feed(stream, line.rstrip("\n")))
    turn.result = parser.outcome(exit_code)
    return turn


class _Recorder:
    """Bounds, redacts and counts the events of one turn on their way to the ledger."""

    def __init__(self, emit: AgentEventSink, context: TurnContext):
        self.emit = emit
        self.turn = context.turn
        self.redactor = Redactor(value for value in context.env.values() if len(value) >= 6)
        self.count = 0

    def text(self, value: str, limit: int = MAX_TEXT_CHARS) -> str:
        """``value`` redacted, then cut to ``limit`` (redacting first: a cut can split a token;
        only twice the limit is redacted, so a huge value costs no more than a long one)."""
        head = value[: 2 * limit]
        text = self.redactor.text(head)
        size = len(text) + len(value) - len(head)
        return text if size <= limit else f"{text[:limit]}… [{size - limit} more characters]"

    def clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {str(k): self.clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.clean(v) for v in list(value)[:50]]
        return value

    async def record(self, event: ParsedEvent) -> None:
        if event.type != "agent.usage":
            self.count += 1
            if self.count > MAX_EVENTS_PER_TURN:
                return
        data = self.clean(dict(event.data))
        data["turn"] = self.turn
        await self.emit(event.type, data)

    async def close(self) -> None:
        if self.count > MAX_EVENTS_PER_TURN:
            await self.emit(
                "agent.message",
                {
                    "role": "writgate",
                    "turn": self.turn,
                    "text": f"[{self.count - MAX_EVENTS_PER_TURN} more agent events not recorded]",
                },
            )


class CliAgent(abc.ABC):
    """A coding-agent CLI run once per turn inside the sandbox, its output parsed as it comes.

    Subclasses set :attr:`name`, :attr:`credential_env` and implement :meth:`command` and
    :meth:`parser`.
    """

    name: str = "cli"
    credential_env: ClassVar[tuple[str, ...]] = ()
    """Host environment variables the CLI needs (API keys): passed into the sandbox."""
    install_hint: ClassVar[str] = ""
    """How to install the CLI, for the error of a sandbox that does not have it."""

    @abc.abstractmethod
    def command(self, context: TurnContext) -> tuple[list[str], bytes | None]:
        """The argv of this turn and what to write to its standard input."""

    @abc.abstractmethod
    def parser(self) -> StreamParser:
        """A fresh parser for one turn's output."""

    def environment(self, context: TurnContext) -> dict[str, str]:
        """The environment of the CLI process (on top of the sandbox's own)."""
        return {"PATH": AGENT_PATH, "NO_COLOR": "1", "CI": "1", **context.env}

    async def run_turn(
        self, sandbox: Sandbox, context: TurnContext, emit: AgentEventSink
    ) -> TurnResult:
        """Run the CLI for one instruction; events go to ``emit``, usage to the host."""
        argv, stdin = self.command(context)
        parser = self.parser()
        recorder = _Recorder(emit, context)
        reported = parser.usage

        async def on_output(stream: str, line: str) -> None:
            nonlocal reported
            for event in parser.feed(stream, line):
                await recorder.record(event)
            if parser.usage != reported:
                reported = parser.usage
                await recorder.record(
                    ParsedEvent("agent.usage", usage_event(reported, final=False))
                )
                if context.on_usage is not None:
                    await context.on_usage(reported)

        result = await sandbox.exec(
            argv, env=self.environment(context), on_output=on_output, stdin=stdin
        )
        outcome = parser.outcome(result.exit_code)
        if not outcome.ok and parser.session_id is None and _not_found(argv[0], result):
            outcome = parser.result(
                ok=False,
                exit_code=result.exit_code,
                failure_message=f"the {argv[0]!r} command of the {self.name} driver was not found "
                f"in the sandbox (exit code {result.exit_code}): {self.install_hint}".rstrip(": "),
            )
        await recorder.record(ParsedEvent("agent.usage", usage_event(outcome.usage, final=True)))
        await recorder.close()
        if outcome.failure_message:
            message = recorder.text(outcome.failure_message, 1000)
            outcome = TurnResult(
                ok=outcome.ok,
                exit_code=outcome.exit_code,
                usage=outcome.usage,
                session_id=outcome.session_id,
                failure_code=outcome.failure_code,
                failure_message=message,
                summary=outcome.summary,
            )
        return outcome


def _not_found(program: str, result: ExecResult) -> bool:
    """Whether ``program`` could not be started: a shell's 127, or bwrap's failed execvp."""
    if result.exit_code == 127:
        return True
    return result.exit_code == 1 and f"execvp {program}: No such file" in result.stderr
