#!/usr/bin/python3
"""A stand-in for the claude, codex, opencode and aider CLIs, installed under those names.

It speaks each tool's documented output format (the same shapes as the recorded streams in
tests/data/agents/) and picks a scenario from a keyword in its instruction:

- ``write <text>``: append <text> to notes.txt, report a tool call and usage, end properly;
- ``overrun``: keep reporting usage (a new model call every 20 ms) and never end;
- ``no-result``: work, then exit 0 without the final result event;
- ``exit-after-success``: print the final success event, then exit 3;
- ``leak``: print the credential it was given (it must reach the ledger redacted).

Every run first reports its argv as an assistant message, so tests see resume arguments.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
import uuid

TOOL = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]


def out(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def instruction() -> str:
    if TOOL == "aider":
        return next(a.split("=", 1)[1] for a in ARGS if a.startswith("--message="))
    return sys.stdin.read()


def option(name: str) -> str | None:
    return ARGS[ARGS.index(name) + 1] if name in ARGS else None


def write_notes(text: str) -> None:
    path = pathlib.Path("notes.txt")
    path.write_text((path.read_text() if path.exists() else "") + text + "\n")


# -- claude ------------------------------------------------------------------------------


def claude(prompt: str) -> int:
    session = option("-r") or str(uuid.uuid4())
    out(
        {
            "type": "system",
            "subtype": "init",
            "session_id": session,
            "model": option("--model"),
            "tools": ["Bash", "Write"],
            "permissionMode": "bypassPermissions",
            "uuid": str(uuid.uuid4()),
        }
    )

    def say(text: str, usage: dict | None = None, msg: str | None = None) -> None:
        message = {
            "id": msg or f"msg_{uuid.uuid4().hex[:12]}",
            "type": "message",
            "role": "assistant",
            "model": option("--model"),
            "content": [{"type": "text", "text": text}],
        }
        if usage:
            message["usage"] = usage
        out(
            {
                "type": "assistant",
                "message": message,
                "session_id": session,
                "parent_tool_use_id": None,
                "uuid": str(uuid.uuid4()),
            }
        )

    say("argv: " + json.dumps(ARGS))
    if "overrun" in prompt:
        while True:
            say("still thinking", {"input_tokens": 100_000, "output_tokens": 2_000})
            time.sleep(0.02)
    if "leak" in prompt:
        say("my key is " + os.environ.get("ANTHROPIC_API_KEY", "none"))
    text = prompt.split("write", 1)[1].strip() if "write" in prompt else "done"
    usage = {
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_input_tokens": 10_000,
        "cache_creation_input_tokens": 2_000,
    }
    call = f"toolu_{uuid.uuid4().hex[:10]}"
    msg = f"msg_{uuid.uuid4().hex[:12]}"
    for block in (
        {"type": "text", "text": "I will update notes.txt."},
        {
            "type": "tool_use",
            "id": call,
            "name": "Bash",
            "input": {"command": f"echo {text} >> notes.txt"},
        },
    ):
        out(
            {
                "type": "assistant",
                "session_id": session,
                "uuid": str(uuid.uuid4()),
                "message": {
                    "id": msg,
                    "type": "message",
                    "role": "assistant",
                    "content": [block],
                    "usage": usage,
                },
            }
        )
    write_notes(text)
    out(
        {
            "type": "user",
            "session_id": session,
            "uuid": str(uuid.uuid4()),
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call, "content": "", "is_error": False}
                ],
            },
        }
    )
    if "no-result" in prompt:
        return 0
    out(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "duration_ms": 1234,
            "num_turns": 2,
            "result": f"Appended {text} to notes.txt.",
            "session_id": session,
            "total_cost_usd": 0.0123,
            "usage": usage,
            "uuid": str(uuid.uuid4()),
        }
    )
    return 3 if "exit-after-success" in prompt else 0


# -- codex -------------------------------------------------------------------------------


def codex(prompt: str) -> int:
    thread = ARGS[ARGS.index("resume") + 1] if "resume" in ARGS else str(uuid.uuid4())
    out({"type": "thread.started", "thread_id": thread})
    out({"type": "turn.started"})
    out(
        {
            "type": "item.completed",
            "item": {"id": "item_0", "type": "agent_message", "text": "argv: " + json.dumps(ARGS)},
        }
    )
    if "overrun" in prompt:
        while True:  # codex reports usage only at the end: the wall clock must stop it
            time.sleep(0.05)
    text = prompt.split("write", 1)[1].strip() if "write" in prompt else "done"
    command = f"bash -lc 'echo {text} >> notes.txt'"
    out(
        {
            "type": "item.started",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": command,
                "aggregated_output": "",
                "exit_code": None,
                "status": "in_progress",
            },
        }
    )
    write_notes(text)
    out(
        {
            "type": "item.completed",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": command,
                "aggregated_output": "",
                "exit_code": 0,
                "status": "completed",
            },
        }
    )
    out(
        {
            "type": "item.completed",
            "item": {"id": "item_2", "type": "agent_message", "text": f"Appended {text}."},
        }
    )
    if "no-result" in prompt:
        return 0
    if "expensive" in prompt:
        usage = {"input_tokens": 2_000_000, "cached_input_tokens": 0, "output_tokens": 100_000}
    else:
        usage = {"input_tokens": 5000, "cached_input_tokens": 4000, "output_tokens": 250}
    out({"type": "turn.completed", "usage": usage})
    return 0


# -- opencode ----------------------------------------------------------------------------


def opencode(prompt: str) -> int:
    session = option("--session") or f"ses_{uuid.uuid4().hex[:26]}"

    def part(kind: str, **fields: object) -> None:
        out(
            {
                "type": kind,
                "timestamp": int(time.time() * 1000),
                "sessionID": session,
                "part": {
                    "id": f"prt_{uuid.uuid4().hex[:20]}",
                    "sessionID": session,
                    "messageID": "msg_1",
                    **fields,
                },
            }
        )

    def step(reason: str, tokens: int) -> None:
        part(
            "step_finish",
            type="step-finish",
            reason=reason,
            cost=0.002,
            tokens={
                "input": tokens,
                "output": 100,
                "reasoning": 0,
                "cache": {"read": 0, "write": 0},
            },
        )

    part("step_start", type="step-start")
    part("text", type="text", text="argv: " + json.dumps(ARGS), time={"start": 1, "end": 2})
    if "overrun" in prompt:
        while True:
            step("tool-calls", 200_000)
            part("step_start", type="step-start")
            time.sleep(0.02)
    text = prompt.split("write", 1)[1].strip() if "write" in prompt else "done"
    write_notes(text)
    part(
        "tool_use",
        type="tool",
        tool="bash",
        callID="call_1",
        state={
            "status": "completed",
            "input": {"command": f"echo {text} >> notes.txt"},
            "output": "",
            "metadata": {"exit": 0},
        },
    )
    step("tool-calls", 900)
    part("step_start", type="step-start")
    part("text", type="text", text=f"Appended {text}.", time={"start": 3, "end": 4})
    if "no-result" in prompt:
        return 0
    step("stop", 1100)
    return 0


# -- aider -------------------------------------------------------------------------------


def aider(prompt: str) -> int:
    print("Aider v0.86.2")
    print("argv: " + json.dumps(ARGS))
    if "overrun" in prompt:
        while True:
            time.sleep(0.05)
    text = prompt.split("write", 1)[1].strip() if "write" in prompt else "done"
    write_notes(text)
    with open(".aider.chat.history.md", "a") as history:  # as the real aider does
        history.write(f"#### {prompt}\n")
    print("Applied edit to notes.txt")
    print("Tokens: 2.4k sent, 212 received. Cost: $0.0098 message, $0.0098 session.")
    return 0


if __name__ == "__main__":
    handlers = {"claude": claude, "codex": codex, "opencode": opencode, "aider": aider}
    sys.exit(handlers[TOOL](instruction()))
