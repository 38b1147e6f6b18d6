from __future__ import annotations

from pathlib import Path

import pytest

from writer.agents import (
    AiderAgent,
    ClaudeCodeAgent,
    CodexAgent,
    CommandAgent,
    OpenCodeAgent,
    TurnContext,
    TurnUsage,
    agent_env,
    agent_for,
    parse_lines,
)
from writer.agents.aider import AiderParser
from writer.agents.claude_code import ClaudeCodeParser
from writer.agents.cli import ParsedTurn, StreamParser, bounded
from writer.agents.codex import CodexParser
from writer.agents.opencode import OpenCodeParser
from writer.catalog import agent_model, credits_for
from writer.errors import AgentError
from writer.executor import turn_credits

DATA = Path(__file__).parent.parent / "data" / "agents"


def parse(parser: StreamParser, name: str, exit_code: int = 0) -> ParsedTurn:
    lines = (DATA / name).read_text().splitlines()
    return parse_lines(parser, lines, exit_code)


def types(turn: ParsedTurn) -> list[str]:
    return [event.type for event in turn.events]


def context(**changes: object) -> TurnContext:
    values: dict[str, object] = {
        "run_id": "run_1",
        "turn": 1,
        "instruction": "-fix it",
        "repository": "acme/app",
        "model_id": "anthropic/claude-sonnet-4.6",
        "max_turns": 3,
    }
    values.update(changes)
    return TurnContext(**values)  # type: ignore[arg-type]


# -- claude-code ----------------------------------------------------------------------------


def test_claude_code_success_maps_every_event_kind() -> None:
    turn = parse(ClaudeCodeParser(), "claude-code-success.jsonl")
    assert types(turn) == [
        "agent.message",
        "agent.command",
        "agent.command",
        "agent.tool_call",
        "agent.tool_call",
        "agent.message",
    ]
    started, finished = turn.events[1].data, turn.events[2].data
    assert started == {
        "phase": "started",
        "id": "toolu_01",
        "command": "python3 -m pytest -q tests/test_webhook.py",
    }
    assert finished["phase"] == "finished" and finished["status"] == "failed"
    assert finished["output"] == "1 failed, 3 passed in 0.12s"
    edit = turn.events[3].data
    assert edit["tool"] == "Edit" and "compare_digest" in edit["input"]
    assert turn.events[4].data["output"] == "The file /workspace/app/webhook.py has been updated."
    result = turn.result
    assert result is not None and result.ok and result.exit_code == 0
    assert result.session_id == "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
    assert result.usage == TurnUsage(
        input_tokens=10,
        output_tokens=278,
        cache_read_tokens=50056,
        cache_write_tokens=5131,
        cost_usd=0.0563214,
    )
    assert result.summary == "The signature is now verified with a constant-time comparison."


def test_claude_code_usage_grows_per_api_call_not_per_line() -> None:
    parser = ClaudeCodeParser()
    lines = (DATA / "claude-code-success.jsonl").read_text().splitlines()
    seen = []
    for line in lines[:-1]:
        parser.feed("stdout", line)
        seen.append(parser.usage)
    # msg_01A is printed twice (text, then tool_use) with the same id: counted once, latest.
    assert seen[2].output_tokens == 142 and seen[2].cache_read_tokens == 13368
    assert seen[4].output_tokens == 142 + 96
    assert seen[-1].cache_read_tokens == 13368 + 18189 + 18499


def test_claude_code_without_result_event_is_an_error() -> None:
    for name in ("claude-code-truncated.jsonl", "claude-code-offline-recorded.jsonl"):
        turn = parse(ClaudeCodeParser(), name, exit_code=0)
        assert turn.result is not None and not turn.result.ok
        assert turn.result.failure_code == "agent_error"
        assert "without its final result event" in (turn.result.failure_message or "")
    recorded = parse(ClaudeCodeParser(), "claude-code-offline-recorded.jsonl", exit_code=124)
    assert recorded.result is not None
    assert recorded.result.session_id == "92e9d73a-af03-462b-b067-33de8b1e701f"
    assert "api_retry" in str(recorded.events[0].data["text"])


def test_claude_code_truncated_line_is_kept_as_output() -> None:
    turn = parse(ClaudeCodeParser(), "claude-code-truncated.jsonl")
    assert turn.events[-1].data["role"] == "output"
    assert turn.events[-1].data["text"].startswith('{"type":"assistant"')


def test_claude_code_nonzero_exit_after_success_event_fails() -> None:
    turn = parse(ClaudeCodeParser(), "claude-code-success.jsonl", exit_code=1)
    assert turn.result is not None and not turn.result.ok
    assert turn.result.failure_message == "claude-code reported success but exited with code 1"


def test_claude_code_reported_errors() -> None:
    max_turns = parse(ClaudeCodeParser(), "claude-code-max-turns.jsonl", exit_code=0).result
    assert max_turns is not None and max_turns.failure_code == "max_turns_exceeded"
    api = parse(ClaudeCodeParser(), "claude-code-api-error.jsonl", exit_code=1).result
    assert api is not None and not api.ok and api.failure_code == "agent_error"
    assert api.failure_message == (
        "claude-code reported success: Invalid API key · Fix external API key"
    )


def test_claude_code_command_line() -> None:
    agent = ClaudeCodeAgent()
    argv, stdin = agent.command(context())
    assert argv == [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
        "--max-turns",
        "3",
        "--model",
        "claude-sonnet-4-6",
    ]
    assert stdin == b"-fix it"
    follow, _ = agent.command(context(turn=2, session_id="sess-1"))
    assert follow[-2:] == ["-r", "sess-1"]


# -- codex -----------------------------------------------------------------------------------


def test_codex_success() -> None:
    turn = parse(CodexParser(), "codex-success.jsonl")
    assert types(turn) == ["agent.command", "agent.command", "agent.tool_call", "agent.message"]
    assert turn.events[1].data["exitCode"] == 1 and turn.events[1].data["status"] == "failed"
    assert turn.events[2].data["input"] == (
        "update /workspace/app/webhook.py, add /workspace/tests/test_signature.py"
    )
    result = turn.result
    assert result is not None and result.ok
    assert result.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    # input_tokens include the cached ones.
    assert result.usage == TurnUsage(
        input_tokens=24763 - 22016, cache_read_tokens=22016, output_tokens=1302
    )


def test_codex_failures() -> None:
    failed = parse(CodexParser(), "codex-turn-failed.jsonl", exit_code=1).result
    assert failed is not None and not failed.ok
    assert (
        failed.failure_message
        == "codex: unexpected status 401 Unauthorized: Incorrect API key provided"
    )
    recorded = parse(CodexParser(), "codex-offline-recorded.jsonl", exit_code=124)
    assert recorded.result is not None and not recorded.result.ok
    assert "without turn.completed" in (recorded.result.failure_message or "")
    # "Reconnecting…" errors are reported, not fatal.
    assert sum(1 for e in recorded.events if e.data.get("role") == "error") >= 4
    nonzero = parse(CodexParser(), "codex-success.jsonl", exit_code=2).result
    assert nonzero is not None and not nonzero.ok


def test_codex_command_line_resumes_the_thread() -> None:
    argv, stdin = CodexAgent().command(context(model_id="openai/gpt-5.1-codex"))
    assert argv[:3] == ["codex", "exec", "--json"] and argv[-1] == "-"
    assert argv[argv.index("--model") : argv.index("--model") + 2] == ["--model", "gpt-5.1-codex"]
    assert "resume" not in argv and stdin == b"-fix it"
    follow, _ = CodexAgent().command(context(turn=2, session_id="thread-9"))
    assert follow[-3:] == ["resume", "thread-9", "-"]


# -- opencode --------------------------------------------------------------------------------


def test_opencode_success_sums_steps() -> None:
    turn = parse(OpenCodeParser(), "opencode-success.jsonl")
    assert types(turn) == ["agent.command", "agent.tool_call", "agent.message"]
    assert turn.events[0].data["exitCode"] == 1
    result = turn.result
    assert (
        result is not None and result.ok and result.session_id == "ses_494719016ffe85dkDMj0FPRbHK"
    )
    assert result.usage.input_tokens == 1750 and result.usage.output_tokens == 258
    assert result.usage.cache_read_tokens == 11264 + 14276
    assert result.usage.cost_usd == pytest.approx(0.0203)


def test_opencode_error_and_truncation() -> None:
    error = parse(OpenCodeParser(), "opencode-error.jsonl", exit_code=1).result
    assert error is not None and error.failure_message == (
        "opencode: ProviderAuthError: Invalid API key."
    )
    truncated = parse(OpenCodeParser(), "opencode-truncated.jsonl", exit_code=0).result
    assert truncated is not None and not truncated.ok
    assert "without a final step_finish or done event" in (truncated.failure_message or "")
    done = parse_lines(
        OpenCodeParser(),
        [*(DATA / "opencode-truncated.jsonl").read_text().splitlines(), '{"type":"done"}'],
        0,
    )
    assert done.result is not None and done.result.ok


def test_opencode_command_line() -> None:
    argv, stdin = OpenCodeAgent().command(context(turn=2, session_id="ses_1"))
    assert argv == [
        "opencode",
        "run",
        "--format",
        "json",
        "--auto",
        "--model",
        "anthropic/claude-sonnet-4-6",
        "--session",
        "ses_1",
    ]
    assert stdin == b"-fix it"


# -- aider -----------------------------------------------------------------------------------


def test_aider_reports_no_usage() -> None:
    lines = (DATA / "aider-output.txt").read_text().splitlines()
    turn = parse_lines(AiderParser(), lines, 0)
    assert len(turn.events) == len([line for line in lines if line.strip()])
    assert turn.result is not None and turn.result.ok
    assert turn.result.usage.reported is False
    failed = parse_lines(AiderParser(), lines, 2).result
    assert failed is not None and failed.failure_message == "aider exited with code 2"


def test_aider_command_line() -> None:
    argv, stdin = AiderAgent().command(context())
    assert argv[:4] == ["aider", "--message=-fix it", "--yes-always", "--no-auto-commits"]
    assert "--model=anthropic/claude-sonnet-4-6" in argv and stdin is None
    assert "--restore-chat-history" in AiderAgent().command(context(turn=2))[0]


# -- selection, credentials, prices ------------------------------------------------------------


def test_agent_for_every_driver() -> None:
    assert isinstance(agent_for("claude-code"), ClaudeCodeAgent)
    assert isinstance(agent_for("codex"), CodexAgent)
    assert isinstance(agent_for("opencode"), OpenCodeAgent)
    assert isinstance(agent_for("aider"), AiderAgent)
    assert isinstance(agent_for("command", argv=["true"]), CommandAgent)
    with pytest.raises(AgentError) as info:
        agent_for("cursor")
    assert info.value.code == "agent_unavailable"


def test_agent_env_passes_only_the_drivers_credentials() -> None:
    environ = {"ANTHROPIC_API_KEY": "sk-ant-x", "OPENAI_API_KEY": "sk-o", "AWS_SECRET": "s"}
    assert agent_env(ClaudeCodeAgent(), environ) == {"ANTHROPIC_API_KEY": "sk-ant-x"}
    assert agent_env(CodexAgent(), environ) == {"OPENAI_API_KEY": "sk-o"}
    assert agent_env(CommandAgent(["true"]), environ) == {}


def test_model_names_and_credits() -> None:
    assert agent_model("anthropic/claude-sonnet-4.6", "claude-code") == "claude-sonnet-4-6"
    assert agent_model("openai/gpt-5.1", "codex") == "gpt-5.1"
    assert agent_model("google/gemini-2.5-pro", "opencode") == "google/gemini-2.5-pro"
    assert agent_model(None, "codex") is None
    # sonnet: 3 in, 15 out, 0.3 cache read, 3.75 cache write per million tokens.
    assert credits_for(
        "anthropic/claude-sonnet-4.6",
        1_000_000,
        1_000_000,
        cache_read_tokens=1_000_000,
        cache_write_tokens=1_000_000,
    ) == pytest.approx(3 + 15 + 0.3 + 3.75)
    usage = TurnUsage(input_tokens=1_000_000, cost_usd=99.0)
    assert turn_credits("anthropic/claude-sonnet-4.6", usage) == pytest.approx(3.0)
    # Not in the catalog: what the agent says it cost.
    assert turn_credits("acme/private-model", usage) == 99.0
    assert turn_credits(None, TurnUsage(input_tokens=5)) == 0.0


def test_bounded_text() -> None:
    assert bounded("abc", 5) == "abc"
    assert bounded("a" * 10, 4) == "aaaa… [6 more characters]"


def test_public_api_is_sorted() -> None:
    import writer.agents

    assert writer.agents.__all__ == sorted(writer.agents.__all__)
    assert all(hasattr(writer.agents, name) for name in writer.agents.__all__)
