"""The ``codex`` driver: ``codex exec --json``.

Codex prints one JSON object per line: ``thread.started`` (``thread_id``: the session that
``codex exec resume`` continues), ``turn.started``, ``item.started`` / ``item.updated`` /
``item.completed`` (an ``item`` of type ``agent_message``, ``reasoning``, ``command_execution``,
``file_change``, ``mcp_tool_call``, ``web_search``, ``todo_list`` or ``error``), top-level
``error`` events (non-fatal: Codex prints ``Reconnecting... 2/5`` this way and carries on) and,
last, ``turn.completed`` with the turn's ``usage`` or ``turn.failed`` with its ``error``.

Codex reports usage only in ``turn.completed``, so the host can enforce ``maxCredits`` for it
only at the end of the turn. Its ``input_tokens`` include ``cached_input_tokens``.

Codex's own sandbox is bypassed: writgate's sandbox is the boundary, and Codex's Landlock
sandbox cannot nest inside it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from writer.catalog import agent_model

from .cli import CliAgent, ParsedEvent, StreamParser, as_object, compact_json
from .protocol import TurnContext, TurnResult, TurnUsage

__all__ = ["CodexAgent", "CodexParser"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class CodexParser(StreamParser):
    """Parses ``codex exec --json`` output."""

    driver = "codex"

    def __init__(self) -> None:
        super().__init__()
        self._completed = False
        self._failed: str | None = None

    def feed(self, stream: str, line: str) -> list[ParsedEvent]:
        event = self.json_line(stream, line)
        if event is None:
            return self.raw(stream, line)
        kind = event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            self.session_id = event["thread_id"]
            return []
        if kind == "turn.completed":
            usage = as_object(event.get("usage"))
            cached = _int(usage.get("cached_input_tokens"))
            self.usage = TurnUsage(
                input_tokens=max(_int(usage.get("input_tokens")) - cached, 0),
                cache_read_tokens=cached,
                output_tokens=_int(usage.get("output_tokens")),
            )
            self._completed = True
            return []
        if kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self._failed = str(message or "the turn failed")
            return [ParsedEvent("agent.message", {"role": "error", "text": self._failed})]
        if kind == "error":
            return [
                ParsedEvent(
                    "agent.message", {"role": "error", "text": str(event.get("message", ""))}
                )
            ]
        if kind in ("item.started", "item.completed") and isinstance(event.get("item"), dict):
            return self._item(event["item"], done=kind == "item.completed")
        return []

    def _item(self, item: dict[str, Any], *, done: bool) -> list[ParsedEvent]:
        kind = item.get("type")
        item_id = str(item.get("id", ""))
        if kind == "agent_message" and done:
            text = str(item.get("text", ""))
            self.summary = text
            return [ParsedEvent("agent.message", {"role": "assistant", "text": text})]
        if kind == "error" and done:
            return [
                ParsedEvent("agent.message", {"role": "error", "text": str(item.get("message"))})
            ]
        if kind == "command_execution":
            data: dict[str, Any] = {
                "phase": "finished" if done else "started",
                "id": item_id,
                "command": str(item.get("command", "")),
            }
            if done:
                data["status"] = str(item.get("status", ""))
                data["exitCode"] = item.get("exit_code")
                data["output"] = str(item.get("aggregated_output", ""))
            return [ParsedEvent("agent.command", data)]
        if kind == "file_change" and done:
            changes = [
                f"{c.get('kind')} {c.get('path')}"
                for c in item.get("changes") or []
                if isinstance(c, dict)
            ]
            return [
                ParsedEvent(
                    "agent.tool_call",
                    {
                        "phase": "result",
                        "id": item_id,
                        "tool": "file_change",
                        "status": str(item.get("status", "")),
                        "input": ", ".join(changes),
                    },
                )
            ]
        if kind == "mcp_tool_call":
            data = {
                "phase": "result" if done else "call",
                "id": item_id,
                "tool": f"{item.get('server')}.{item.get('tool')}",
                "input": compact_json(item.get("arguments")),
            }
            if done:
                data["status"] = str(item.get("status", ""))
                error = item.get("error")
                data["output"] = compact_json(
                    error.get("message") if isinstance(error, dict) else item.get("result")
                )
            return [ParsedEvent("agent.tool_call", data)]
        if kind == "web_search" and done:
            return [
                ParsedEvent(
                    "agent.tool_call",
                    {
                        "phase": "call",
                        "id": item_id,
                        "tool": "web_search",
                        "input": str(item.get("query", "")),
                    },
                )
            ]
        return []

    def outcome(self, exit_code: int) -> TurnResult:
        if self._failed is not None:
            return self.result(
                ok=False, exit_code=exit_code, failure_message=f"codex: {self._failed}"
            )
        if not self._completed:
            return self.missing_result(exit_code, "turn.completed")
        if exit_code != 0:
            return self.result(
                ok=False,
                exit_code=exit_code,
                failure_message=f"codex completed the turn but exited with code {exit_code}",
            )
        return self.result(ok=True, exit_code=exit_code)


class CodexAgent(CliAgent):
    """Codex in ``exec`` mode; follow-ups run ``codex exec resume <thread id>``."""

    name: str = "codex"
    install_hint: ClassVar[str] = (
        "install it on the host (npm install -g @openai/codex) or in ~/.local/bin"
    )
    credential_env: ClassVar[tuple[str, ...]] = (
        "OPENAI_API_KEY",
        "CODEX_API_KEY",
        "OPENAI_BASE_URL",
    )

    def command(self, context: TurnContext) -> tuple[list[str], bytes | None]:
        """``codex exec --json … [resume <thread>] -`` with the instruction on stdin."""
        argv = ["codex", "exec", "--json", "--skip-git-repo-check"]
        argv += ["--dangerously-bypass-approvals-and-sandbox"]
        model = agent_model(context.model_id, self.name)
        if model:
            argv += ["--model", model]
        if context.session_id:
            argv += ["resume", context.session_id]
        # "-": the prompt is read from standard input, whatever characters it holds.
        return [*argv, "-"], context.instruction.encode("utf-8")

    def parser(self) -> CodexParser:
        """A parser for one turn."""
        return CodexParser()
