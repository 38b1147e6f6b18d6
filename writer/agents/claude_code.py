"""The ``claude-code`` driver: ``claude -p --output-format stream-json --verbose``.

Claude Code prints one JSON object per line: ``system`` (``init`` names the session; others such
as ``api_retry`` are progress), ``assistant`` (an Anthropic message: ``text`` and ``tool_use``
content blocks, and the ``usage`` of the API call that produced it), ``user`` (``tool_result``
blocks) and, last, one ``result`` event with ``subtype`` (``success``, ``error_max_turns``,
``error_during_execution``, ``error_max_budget_usd``…), ``is_error``, ``num_turns``,
``total_cost_usd`` and the turn's ``usage``.

Usage while the turn runs comes from the ``assistant`` events. One API call can print several
``assistant`` lines (one per content block) that repeat the same ``message.id`` and usage, so
usage is kept per message id and summed, never added line by line. The ``result`` event's usage
is authoritative once it arrives.

The prompt goes to standard input (no argv length limit, never visible in ``ps``); follow-ups
resume the CLI's own session with ``-r <session id>``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from writer.catalog import agent_model

from .cli import CliAgent, ParsedEvent, StreamParser, as_object, compact_json
from .protocol import TurnContext, TurnResult, TurnUsage

__all__ = ["ClaudeCodeAgent", "ClaudeCodeParser"]

_SHELL_TOOLS = frozenset({"Bash", "BashOutput"})
_FAILURES = {
    "error_max_turns": "max_turns_exceeded",
    "error_max_budget_usd": "max_credits_exceeded",
}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(data: Any, cost: Any = None) -> TurnUsage:
    data = data if isinstance(data, dict) else {}
    return TurnUsage(
        input_tokens=_int(data.get("input_tokens")),
        output_tokens=_int(data.get("output_tokens")),
        cache_read_tokens=_int(data.get("cache_read_input_tokens")),
        cache_write_tokens=_int(data.get("cache_creation_input_tokens")),
        cost_usd=float(cost)
        if isinstance(cost, (int, float)) and not isinstance(cost, bool)
        else None,
    )


def _replace(total: TurnUsage, old: TurnUsage, new: TurnUsage) -> TurnUsage:
    """``total`` with ``old`` (one API call's usage) replaced by ``new``."""
    return TurnUsage(
        input_tokens=total.input_tokens - old.input_tokens + new.input_tokens,
        output_tokens=total.output_tokens - old.output_tokens + new.output_tokens,
        cache_read_tokens=total.cache_read_tokens - old.cache_read_tokens + new.cache_read_tokens,
        cache_write_tokens=total.cache_write_tokens
        - old.cache_write_tokens
        + new.cache_write_tokens,
    )


def _text_of(content: Any) -> str:
    """The text of a tool result's ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return compact_json(content)


class ClaudeCodeParser(StreamParser):
    """Parses Claude Code's ``stream-json`` output."""

    driver = "claude-code"

    def __init__(self) -> None:
        super().__init__()
        self._per_message: dict[str, TurnUsage] = {}
        self._final: dict[str, Any] | None = None
        self._commands: set[str] = set()

    def feed(self, stream: str, line: str) -> list[ParsedEvent]:
        event = self.json_line(stream, line)
        if event is None:
            return self.raw(stream, line)
        kind = event.get("type")
        if isinstance(event.get("session_id"), str) and event["session_id"]:
            self.session_id = event["session_id"]
        if kind == "assistant":
            return self._assistant(event.get("message"))
        if kind == "user":
            return self._tool_results(event.get("message"))
        if kind == "result":
            self._final = event
            self.usage = _usage(event.get("usage"), event.get("total_cost_usd"))
            if isinstance(event.get("result"), str):
                self.summary = event["result"]
            return []
        if kind == "system" and event.get("subtype") not in (None, "init"):
            detail = {k: event[k] for k in ("attempt", "error", "error_status") if k in event}
            return [
                ParsedEvent(
                    "agent.message",
                    {"role": "system", "text": f"{event['subtype']} {compact_json(detail)}"},
                )
            ]
        if kind == "error":
            return [ParsedEvent("agent.message", {"role": "error", "text": compact_json(event)})]
        return []

    def _assistant(self, message: Any) -> list[ParsedEvent]:
        if not isinstance(message, dict):
            return []
        if self._final is None and isinstance(message.get("usage"), dict):
            key = str(message.get("id") or len(self._per_message))
            usage = _usage(message["usage"])
            previous = self._per_message.get(key)
            self._per_message[key] = usage
            if previous is None:
                self.usage = self.usage + usage
            elif previous != usage:  # the same API call, printed again with newer counts
                self.usage = _replace(self.usage, previous, usage)
        events: list[ParsedEvent] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                events.append(
                    ParsedEvent("agent.message", {"role": "assistant", "text": block["text"]})
                )
            elif block.get("type") == "tool_use":
                name = str(block.get("name", "?"))
                tool_input = as_object(block.get("input"))
                call_id = str(block.get("id", ""))
                if name in _SHELL_TOOLS and isinstance(tool_input.get("command"), str):
                    self._commands.add(call_id)
                    events.append(
                        ParsedEvent(
                            "agent.command",
                            {"phase": "started", "id": call_id, "command": tool_input["command"]},
                        )
                    )
                else:
                    events.append(
                        ParsedEvent(
                            "agent.tool_call",
                            {
                                "phase": "call",
                                "id": call_id,
                                "tool": name,
                                "input": compact_json(tool_input),
                            },
                        )
                    )
        return events

    def _tool_results(self, message: Any) -> list[ParsedEvent]:
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            return []
        events = []
        for block in message["content"]:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            call_id = str(block.get("tool_use_id", ""))
            failed = bool(block.get("is_error"))
            output = _text_of(block.get("content"))
            if call_id in self._commands:
                events.append(
                    ParsedEvent(
                        "agent.command",
                        {
                            "phase": "finished",
                            "id": call_id,
                            "status": "failed" if failed else "completed",
                            "output": output,
                        },
                    )
                )
            else:
                events.append(
                    ParsedEvent(
                        "agent.tool_call",
                        {
                            "phase": "result",
                            "id": call_id,
                            "status": "failed" if failed else "completed",
                            "output": output,
                        },
                    )
                )
        return events

    def outcome(self, exit_code: int) -> TurnResult:
        final = self._final
        if final is None:
            return self.missing_result(exit_code, "its final result event")
        subtype = str(final.get("subtype", ""))
        detail = final.get("result") if isinstance(final.get("result"), str) else None
        errors = final.get("errors")
        if not detail and isinstance(errors, list) and errors:
            detail = "; ".join(str(e) for e in errors)
        if final.get("is_error") or subtype != "success":
            return self.result(
                ok=False,
                exit_code=exit_code,
                failure_code=_FAILURES.get(subtype, "agent_error"),
                failure_message=f"claude-code reported {subtype or 'an error'}"
                + (f": {detail}" if detail else ""),
            )
        if exit_code != 0:
            return self.result(
                ok=False,
                exit_code=exit_code,
                failure_message=f"claude-code reported success but exited with code {exit_code}",
            )
        return self.result(ok=True, exit_code=exit_code)


class ClaudeCodeAgent(CliAgent):
    """Claude Code in print mode, permissions bypassed (the sandbox is the boundary)."""

    name: str = "claude-code"
    install_hint: ClassVar[str] = (
        "install it on the host (npm install -g @anthropic-ai/claude-code) or in ~/.local/bin"
    )
    credential_env: ClassVar[tuple[str, ...]] = (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_OAUTH_TOKEN",
    )

    def command(self, context: TurnContext) -> tuple[list[str], bytes | None]:
        """``claude -p … [-r <session>]`` with the instruction on standard input."""
        argv = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--dangerously-skip-permissions"]
        if context.max_turns is not None:
            argv += ["--max-turns", str(context.max_turns)]
        model = agent_model(context.model_id, self.name)
        if model:
            argv += ["--model", model]
        if context.session_id:
            argv += ["-r", context.session_id]
        return argv, context.instruction.encode("utf-8")

    def environment(self, context: TurnContext) -> dict[str, str]:
        """No telemetry, error reporting or auto-update traffic: only the model API is needed."""
        return {
            **super().environment(context),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }

    def parser(self) -> ClaudeCodeParser:
        """A parser for one turn."""
        return ClaudeCodeParser()
