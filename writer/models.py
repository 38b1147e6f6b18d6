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
    """Base: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )


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

    network: NetworkSafety = Field(default_factory=NetworkSafety)
    resources: Resources = Field(default_factory=Resources)


class CreateRunRequest(Model):
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
    billing: Billing = Field(default_factory=Billing)
    publish: PublishSpec = Field(default_factory=PublishSpec)
    validation_mode: Literal["none", "tests", "lint", "tests_and_lint"] = Field(
        default="none", description="What to validate after each turn."
    )
    session: SessionSpec = Field(default_factory=SessionSpec)
    safety: Safety = Field(default_factory=Safety)
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


class FollowUpRequest(Model):
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

    turns: int = 0
    credits: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    reported: bool = Field(default=True, description="False when the agent reports no usage.")


class ValidationOutcome(Model):
    """Result of the validation commands after a turn."""

    result: Literal["PASSED", "WARNED", "FAILED", "SKIPPED"]
    command: str | None = None
    exit_code: int | None = None
    passed: int | None = None
    failed: int | None = None
    skipped: int | None = None
    errors: int | None = None
    output_tail: str | None = None


class Turn(Model):
    """One instruction and its outcome."""

    number: int
    instruction_sha256: str
    started_at: datetime
    finished_at: datetime | None = None
    exit_code: int | None = None
    outcome: Literal["running", "succeeded", "failed", "cancelled"] = "running"
    failure: Failure | None = None
    validation: ValidationOutcome | None = None


class PullRequestRef(Model):
    """The PR the run opened."""

    number: int
    url: str
    draft: bool


class RunResult(Model):
    """What the run produced."""

    branch: str | None = None
    base_sha: str | None = None
    head_sha: str | None = None
    diff_stats: dict[str, int] | None = None
    pull_request: PullRequestRef | None = None
    validation: ValidationOutcome | None = None
    agent_session: str | None = Field(
        default=None,
        description="The agent CLI's own session (thread) id; follow-up turns resume it.",
    )


class SessionInfo(Model):
    """The warm session."""

    keep_warm_seconds: int
    sandbox_id: str | None = None
    expires_at: datetime | None = None


class RunStatus(Model):
    """``GET /runs/{id}/status``: cheap to poll."""

    id: str
    lifecycle: Lifecycle
    terminal: bool
    awaiting_follow_up: bool
    can_follow_up: bool
    next_actions: list[NextAction]
    failure: Failure | None = None
    session: SessionInfo
    updated_at: datetime


class Run(RunStatus):
    """A full run: contract, lifecycle, usage, turns, result and chain."""

    created: bool | None = Field(default=None, description="Create responses only: a new run?")
    repository: str
    title: str
    tags: list[str]
    metadata: dict[str, Any]
    prompt: str
    model_id: str | None
    agent: AgentSpec
    billing: Billing
    publish: PublishSpec
    validation_mode: str
    safety: Safety
    base_ref: str | None = None
    intent: Intent
    usage: Usage
    turns: list[Turn]
    result: RunResult
    parent_run_id: str | None = None
    chain: list[str] = Field(description="Ancestor run ids, oldest first.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunList(Model):
    """A page of runs."""

    items: list[Run]
    next_cursor: str | None = None
