"""Agent stream parsing: what the host spends per event of a coding agent's output.

A Claude Code turn of 10,000 stream-json events (text, tool_use and tool_result, usage on every
assistant line) and a Codex turn of 10,000 item events, parsed line by line as the drivers do
while the agent runs, with ``json.loads`` of the same lines as the peer (the floor).
"""

from __future__ import annotations

import json
import time
from typing import Any

from writer.agents import parse_lines
from writer.agents.claude_code import ClaudeCodeParser
from writer.agents.codex import CodexParser

EVENTS = 10_000
SAMPLES = 7


def _claude_lines() -> list[str]:
    session = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
    usage = {"input_tokens": 3, "cache_read_input_tokens": 13368, "output_tokens": 80}
    lines = [json.dumps({"type": "system", "subtype": "init", "session_id": session})]
    for i in range(EVENTS // 2):
        lines.append(
            json.dumps(
                {
                    "type": "assistant",
                    "session_id": session,
                    "message": {
                        "id": f"msg_{i}",
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "Looking at the handler. " * 8},
                            {
                                "type": "tool_use",
                                "id": f"toolu_{i}",
                                "name": "Bash",
                                "input": {"command": "python3 -m pytest -q tests/"},
                            },
                        ],
                        "usage": usage,
                    },
                }
            )
        )
        lines.append(
            json.dumps(
                {
                    "type": "user",
                    "session_id": session,
                    "message": {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": "ok"}
                        ],
                    },
                }
            )
        )
    lines.append(json.dumps({"type": "result", "subtype": "success", "is_error": False}))
    return lines


def _codex_lines() -> list[str]:
    lines = [json.dumps({"type": "thread.started", "thread_id": "t"}), '{"type":"turn.started"}']
    for i in range(EVENTS // 2):
        item = {"id": f"item_{i}", "type": "command_execution", "command": "pytest -q"}
        lines.append(
            json.dumps({"type": "item.started", "item": {**item, "status": "in_progress"}})
        )
        done = {**item, "status": "completed", "exit_code": 0, "aggregated_output": "ok\n" * 20}
        lines.append(json.dumps({"type": "item.completed", "item": done}))
    lines.append(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 1}}))
    return lines


def _time(fn: Any) -> list[float]:
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def run() -> list[dict[str, Any]]:
    """The figures."""
    figures = []
    for name, lines, parser in (
        ("claude-code", _claude_lines(), ClaudeCodeParser),
        ("codex", _codex_lines(), CodexParser),
    ):
        figures.append(
            {
                "figure": f"{name} stream parse, {EVENTS:,} events",
                "unit": "ms",
                "samples": _time(
                    lambda lines=lines, parser=parser: parse_lines(parser(), lines, 0)
                ),
                "target": "<= 1000 ms",
                "peer": {
                    "name": "json.loads of every line",
                    "samples": _time(lambda lines=lines: [json.loads(line) for line in lines]),
                },
            }
        )
    return figures


if __name__ == "__main__":
    for figure in run():
        median = sorted(figure["samples"])[len(figure["samples"]) // 2]
        peer = sorted(figure["peer"]["samples"])[len(figure["peer"]["samples"]) // 2]
        print(f"{figure['figure']}: {median:.1f} ms (json.loads: {peer:.1f} ms)")
