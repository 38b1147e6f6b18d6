"""The run contract (DESIGN.md §4.1): request and response models, camelCase on the wire."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from writgate.text import refuse_nul

from .lifecycle import Lifecycle, NextAction

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_METADATA_KEYS",
    "MAX_TAGS",
    "AgentSpec",
    "Billing",
    "CreateRunRequest",
    "Failure",
    "FollowUpRequest",
    "Intent",
    "NetworkSafety",
    "PublishSpec",
    "PullRequestRef",
    "Resources",
    "Run",
    "RunList",
    "RunResult",
    "RunStatus",
    "Safety",
    "SessionInfo",
    "SessionSpec",
    "Turn",
    "Usage",
    "ValidationOutcome",
    "normalize_tag",
]

MAX_TAGS = 20
MAX_METADATA_KEYS = 32
MAX_METADATA_BYTES = 16 * 1024
_TAG = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,63}$")
_HOST = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)


class Model(BaseModel):
    """Base: camelCase aliases, unknown fields rejected, numbers finite (JSON has no NaN)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        allow_inf_nan=False,
    )


class _Request(Model):
    """Base of request bodies: no NUL character in any text (PostgreSQL cannot store one)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


def normalize_tag(value: str) -> str:
    """Trim, lower-case and turn inner whitespace into ``-``; raise if the result is invalid."""
    tag = re.sub(r"\s+", "-", value.strip().lower())
    if not _TAG.match(tag):
        raise ValueError(
            f"tag {value!r} is invalid: after normalization it must match "
            "[a-z0-9][a-z0-9._:/-]{0,63}"
        )
    return tag


Tag = Annotated[StrictStr, AfterValidator(normalize_tag)]
MetadataKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
MetadataValue = (
    Annotated[StrictStr, Field(max_length=1024)] | StrictBool | StrictInt | StrictFloat | None
)


def _host(value: str) -> str:
    host = value.strip().lower().rstrip(".")
    if not _HOST.match(host):
        raise ValueError(f"{value!r} is not a host name (exact name or *.domain)")
    return host


class AgentSpec(Model):
    """Which coding agent runs the turns."""

    driver: Literal["claude-code", "codex", "opencode", "aider", "command"] = Field(
        description="The agent driver."
    )
    argv: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None,
        max_length=64,
        description="command driver only: the argv template (Jinja2 over instruction, runId, "
        "turn, repository).",
    )

    @model_validator(mode="after")
    def _argv_for_command(self) -> AgentSpec:
        if self.driver == "command" and not self.argv:
            raise ValueError("agent.argv is required with the command driver")
        if self.driver != "command" and self.argv is not None:
            raise ValueError("agent.argv is only allowed with the command driver")
        return self


class Billing(Model):
    """Who pays for the model."""

    mode: Literal["managed", "byok"] = Field(default="managed", description="Billing mode.")


class PublishSpec(Model):
    """What happens to the change after the last turn."""

    mode: Literal["none", "branch", "draft_pr", "pr"] = Field(
        default="draft_pr", description="none, push a branch, open a draft PR, or open a PR."
    )


class SessionSpec(Model):
    """Warm-session settings."""

    keep_warm_seconds: int = Field(
        default=600, ge=0, le=86_400, description="How long the sandbox stays warm after a turn."
    )


class NetworkSafety(Model):
    """Network policy of the sandbox."""

    mode: Literal["none", "restricted", "open"] = Field(default="none", description="Network mode.")
    allowlist: list[Annotated[str, AfterValidator(_host)]] = Field(
        default_factory=list, max_length=100, description="Hosts reachable in restricted mode."
    )

    @model_validator(mode="after")
    def _allowlist_only_restricted(self) -> NetworkSafety:
        if self.allowlist and self.mode != "restricted":
            raise ValueError("allowlist is only allowed with network mode 'restricted'")
        return self


class Resources(Model):
    """Budgets enforced by the host."""

    max_turns: int = Field(default=3, ge=1, le=100, description="Turns allowed per run.")
    max_credits: float | None = Field(
        default=None, ge=0, le=1_000_000, description="Credit budget; the agent is killed past it."
    )
    max_wall_seconds: int = Field(
        default=1800, ge=1, le=86_400, description="Wall-clock budget of one turn, in seconds."
    )


class Safety(Model):
    """Sandbox network and resource limits."""

    network: NetworkSafety = Field(
        default_factory=NetworkSafety, description="Network policy of the sandbox."
    )
    resources: Resources = Field(
        default_factory=Resources, description="Budgets the host enforces."
    )


class CreateRunRequest(_Request):
    """Body of ``POST /runs``."""

    repository: str = Field(
        min_length=1, max_length=512, description="owner/name on the forge, or a local path."
    )
    title: str | None = Field(
        default=None, max_length=200, description="Defaults to the prompt's first line."
    )
    tags: list[Tag] = Field(default_factory=list, description="Normalized tags, at most 20.")
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, description="Flat metadata: at most 32 keys, 16 KiB."
    )
    prompt: str = Field(min_length=1, max_length=100_000, description="The instruction.")
    model_id: str | None = Field(default=None, max_length=200, description="Model catalog id.")
    agent: AgentSpec | None = Field(
        default=None, description="Agent driver; default from the model."
    )
    billing: Billing = Field(default_factory=Billing, description="Who pays for the model.")
    publish: PublishSpec = Field(
        default_factory=PublishSpec, description="What happens to the change after the last turn."
    )
    validation_mode: Literal["none", "tests", "lint", "tests_and_lint"] = Field(
        default="none", description="What to validate after each turn."
    )
    session: SessionSpec = Field(default_factory=SessionSpec, description="Warm-session settings.")
    safety: Safety = Field(
        default_factory=Safety, description="Sandbox network and resource limits."
    )
    base_ref: str | None = Field(
        default=None, max_length=255, description="Branch or commit to start from (default branch)."
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, tags: list[str]) -> list[str]:
        unique = list(dict.fromkeys(tags))
        if len(unique) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags after normalization, got {len(unique)}")
        return unique

    @field_validator("metadata")
    @classmethod
    def _bound_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        if len(metadata) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys, got {len(metadata)}")
        size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"at most {MAX_METADATA_BYTES} bytes serialized, got {size}")
        return metadata

    @model_validator(mode="after")
    def _defaults(self) -> CreateRunRequest:
        if self.title is None or not self.title.strip():
            self.title = self.prompt.strip().splitlines()[0][:200]
        if self.agent is None and self.model_id is None:
            raise ValueError("modelId is required unless agent.driver is given")
        return self

    def canonical(self) -> dict[str, Any]:
        """The request with defaults applied: what the idempotency fingerprint covers."""
        return self.model_dump(mode="json", by_alias=True)


class FollowUpRequest(_Request):
    """Body of ``POST /runs/{id}/messages``."""

    text: str = Field(min_length=1, max_length=100_000, description="The follow-up instruction.")
    fallback: Literal["none", "chain"] = Field(
        default="none", description="chain: start a chained run when the session is not warm."
    )


class Failure(Model):
    """Why a run failed."""

    code: str = Field(description="Stable failure code, e.g. max_turns_exceeded.")
    message: str = Field(description="Human-readable explanation.")


class Intent(Model):
    """Deterministic classification of the run (DESIGN.md §4.4)."""

    label: str = Field(description="bugfix, feature, test, docs, refactor, ci, dependency, …")
    ruleset: str = Field(description="Rule set version, e.g. intent/v1.")
    matched: list[str] = Field(description="The terms that decided the label.")


class Usage(Model):
    """What the run consumed."""

    turns: int = Field(default=0, description="Turns run so far.")
    credits: float = Field(
        default=0.0,
        description="Credits consumed, from the reported usage and the catalog's prices.",
    )
    input_tokens: int = Field(default=0, description="Input tokens the agent reported.")
    output_tokens: int = Field(default=0, description="Output tokens the agent reported.")
    reported: bool = Field(default=True, description="False when the agent reports no usage.")


class ValidationOutcome(Model):
    """Result of the validation commands after a turn."""

    result: Literal["PASSED", "WARNED", "FAILED", "SKIPPED"] = Field(
        description="PASSED, WARNED, FAILED or SKIPPED."
    )
    command: str | None = Field(default=None, description="The validation command that ran.")
    exit_code: int | None = Field(default=None, description="Its exit code.")
    passed: int | None = Field(
        default=None, description="Passed tests (from a JUnit XML report, when there is one)."
    )
    failed: int | None = Field(default=None, description="Failed tests.")
    skipped: int | None = Field(default=None, description="Skipped tests.")
    errors: int | None = Field(default=None, description="Tests that errored.")
    output_tail: str | None = Field(default=None, description="The end of the command's output.")


class Turn(Model):
    """One instruction and its outcome."""

    number: int = Field(description="1 for the prompt, then one per follow-up.")
    instruction_sha256: str = Field(
        description="sha256 of the turn's instruction (the text itself is not repeated)."
    )
    started_at: datetime = Field(description="When the turn started.")
    finished_at: datetime | None = Field(
        default=None, description="When it ended (null while running)."
    )
    exit_code: int | None = Field(default=None, description="The agent process's exit code.")
    outcome: Literal["running", "succeeded", "failed", "cancelled"] = Field(
        default="running", description="running, succeeded, failed or cancelled."
    )
    failure: Failure | None = Field(default=None, description="Why the turn failed, if it did.")
    validation: ValidationOutcome | None = Field(
        default=None, description="Validation after the turn, if any ran."
    )


class PullRequestRef(Model):
    """The PR the run opened."""

    number: int = Field(description="Pull request number on the forge.")
    url: str = Field(description="Its web URL.")
    draft: bool = Field(description="Whether it was opened as a draft.")


class RunResult(Model):
    """What the run produced."""

    branch: str | None = Field(
        default=None, description="The pushed branch (writgate/<short id>-<slug>)."
    )
    base_sha: str | None = Field(default=None, description="The commit the run started from.")
    head_sha: str | None = Field(default=None, description="The commit with the run's change.")
    diff_stats: dict[str, int] | None = Field(
        default=None, description="files, insertions and deletions of the change."
    )
    pull_request: PullRequestRef | None = Field(
        default=None, description="The pull request the run opened."
    )
    validation: ValidationOutcome | None = Field(
        default=None, description="The last validation outcome."
    )
    agent_session: str | None = Field(
        default=None,
        description="The agent CLI's own session (thread) id; follow-up turns resume it.",
    )
    start_branch: str | None = Field(
        default=None, description="Chained runs: the parent's branch this run started from."
    )


class SessionInfo(Model):
    """The warm session."""

    keep_warm_seconds: int = Field(description="How long the sandbox stays warm after a turn.")
    sandbox_id: str | None = Field(
        default=None, description="The warm sandbox, while there is one."
    )
    expires_at: datetime | None = Field(
        default=None, description="When the warm window ends (awaiting_follow_up only)."
    )


class RunStatus(Model):
    """``GET /runs/{id}/status``: cheap to poll."""

    id: str = Field(description="The run id (run_…).")
    lifecycle: Lifecycle = Field(description="Where the run is in its lifecycle.")
    terminal: bool = Field(description="True once the run can change no more.")
    awaiting_follow_up: bool = Field(
        description="True while the warm session waits for a follow-up."
    )
    can_follow_up: bool = Field(description="Whether POST /runs/{id}/messages continues this run.")
    next_actions: list[NextAction] = Field(
        description="What the client may do next, computed from the state."
    )
    failure: Failure | None = Field(
        default=None, description="Why the run failed (failed runs only)."
    )
    session: SessionInfo = Field(description="The warm session.")
    updated_at: datetime = Field(description="When the run last changed.")


class Run(RunStatus):
    """A full run: contract, lifecycle, usage, turns, result and chain."""

    created: bool | None = Field(default=None, description="Create responses only: a new run?")
    repository: str = Field(description="The repository the run works on.")
    title: str = Field(description="The run's title.")
    tags: list[str] = Field(description="Normalized tags.")
    metadata: dict[str, Any] = Field(description="Flat metadata given at creation.")
    prompt: str = Field(description="The instruction of the first turn.")
    model_id: str | None = Field(description="Model catalog id.")
    agent: AgentSpec = Field(description="The agent driver running the turns.")
    billing: Billing = Field(description="Who pays for the model.")
    publish: PublishSpec = Field(description="What happens to the change after the last turn.")
    validation_mode: str = Field(description="What is validated after each turn.")
    safety: Safety = Field(description="Sandbox network and resource limits.")
    base_ref: str | None = Field(default=None, description="Branch or commit the run started from.")
    intent: Intent = Field(description="Deterministic classification of the change.")
    usage: Usage = Field(description="What the run consumed.")
    turns: list[Turn] = Field(description="Every turn, oldest first.")
    result: RunResult = Field(description="What the run produced.")
    parent_run_id: str | None = Field(
        default=None, description="The run this chained run continues."
    )
    chain: list[str] = Field(description="Ancestor run ids, oldest first.")
    created_at: datetime = Field(description="When the run was created.")
    started_at: datetime | None = Field(default=None, description="When its first turn started.")
    finished_at: datetime | None = Field(
        default=None, description="When it reached a terminal state."
    )


class RunList(Model):
    """A page of runs."""

    items: list[Run] = Field(description="Runs, newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )
