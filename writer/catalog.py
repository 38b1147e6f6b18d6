"""The model catalog: which models exist, which drivers run them, what they cost."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from writgate.errors import ConfigError, InputError

from .models import Model

__all__ = [
    "ModelEntry",
    "ModelPrices",
    "agent_model",
    "credits_for",
    "default_driver",
    "load_catalog",
    "lookup",
]

_DEFAULT = Path(__file__).with_name("model_catalog.yaml")


class ModelPrices(Model):
    """Credits per million tokens."""

    input_per_m_tok: float = Field(
        alias="inputPerMTok", ge=0, description="Credits per million input tokens."
    )
    output_per_m_tok: float = Field(
        alias="outputPerMTok", ge=0, description="Credits per million output tokens."
    )
    cache_read_per_m_tok: float | None = Field(
        default=None,
        alias="cacheReadPerMTok",
        ge=0,
        description="Credits per million input tokens read from the prompt cache "
        "(default: the input price).",
    )
    """Input read from the prompt cache; the input price when not given."""
    cache_write_per_m_tok: float | None = Field(
        default=None,
        alias="cacheWritePerMTok",
        ge=0,
        description="Credits per million input tokens written to the prompt cache "
        "(default: the input price).",
    )
    """Input written to the prompt cache; the input price when not given."""


class ModelEntry(Model):
    """One model of the catalog; its first driver is the default."""

    id: str = Field(description="Catalog id, e.g. anthropic/claude-sonnet-4.6.")
    provider: str = Field(description="The model's provider.")
    drivers: list[str] = Field(
        min_length=1, description="Agent drivers that can run it, the default first."
    )
    prices: ModelPrices = Field(description="Credit prices.")
    agent_models: dict[str, str] = Field(
        default_factory=dict,
        alias="agentModels",
        description="The model's name for each agent CLI.",
    )
    """The model's name for each agent CLI (``claude-code: claude-sonnet-4-6``); by default
    the id without its provider for claude-code and codex, the id itself for the others."""


def _read(path: Path) -> list[ModelEntry]:
    try:
        data = yaml.safe_load(path.read_text())
        return [ModelEntry.model_validate(item) for item in (data or {}).get("models", [])]
    except (OSError, yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise ConfigError(f"model catalog {path} is invalid: {exc}".splitlines()[0]) from exc


@lru_cache(maxsize=4)
def _load(extra: str | None) -> dict[str, ModelEntry]:
    entries = {entry.id: entry for entry in _read(_DEFAULT)}
    if extra:
        entries.update({entry.id: entry for entry in _read(Path(extra))})
    return entries


def load_catalog() -> dict[str, ModelEntry]:
    """The default catalog, extended by ``WRITGATE_MODEL_CATALOG`` when set."""
    return _load(os.environ.get("WRITGATE_MODEL_CATALOG") or None)


def lookup(model_id: str) -> ModelEntry:
    """The catalog entry of ``model_id`` (a 422-style error when unknown)."""
    entry = load_catalog().get(model_id)
    if entry is None:
        raise InputError(
            f"unknown model {model_id!r}: see GET /models", field="/modelId", code="unknown_model"
        )
    return entry


def default_driver(model_id: str | None) -> str:
    """The driver a run of ``model_id`` uses when it names none: the model's first one."""
    entry = load_catalog().get(model_id or "")
    return entry.drivers[0] if entry else "command"


def agent_model(model_id: str | None, driver: str) -> str | None:
    """The name the ``driver``'s CLI knows ``model_id`` by (``None``: the CLI's default)."""
    if not model_id:
        return None
    entry = load_catalog().get(model_id)
    if entry is not None and driver in entry.agent_models:
        return entry.agent_models[driver]
    if driver in ("claude-code", "codex"):
        return model_id.split("/", 1)[-1]
    return model_id


def credits_for(
    model_id: str | None,
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    """Credits of a usage at the catalog price (0 for models not in the catalog)."""
    entry = load_catalog().get(model_id or "")
    if entry is None:
        return 0.0
    prices = entry.prices
    read = (
        prices.input_per_m_tok
        if prices.cache_read_per_m_tok is None
        else (prices.cache_read_per_m_tok)
    )
    write = (
        prices.input_per_m_tok
        if prices.cache_write_per_m_tok is None
        else (prices.cache_write_per_m_tok)
    )
    return round(
        (
            input_tokens * prices.input_per_m_tok
            + output_tokens * prices.output_per_m_tok
            + cache_read_tokens * read
            + cache_write_tokens * write
        )
        / 1e6,
        6,
    )
