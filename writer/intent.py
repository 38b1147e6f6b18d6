"""Deterministic intent classification of a run (DESIGN.md §4.4): modest on purpose."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pathspec
import yaml

from .models import Intent

__all__ = ["classify_intent"]

_RULES = Path(__file__).with_name("intent_rules.yaml")
_WORD = re.compile(r"[a-z0-9][a-z0-9-]*")


@lru_cache(maxsize=1)
def _rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(_RULES.read_text())
    return rules


def classify_intent(title: str, prompt: str, paths: Sequence[str] = ()) -> Intent:
    """Classify ``title`` + ``prompt`` (+ changed ``paths``); the same input, the same output."""
    rules = _rules()
    title_words = set(_WORD.findall(title.lower()))
    prompt_words = set(_WORD.findall(prompt.lower()))
    best: tuple[int, str, list[str]] = (0, rules["default"], [])
    for label, rule in rules["labels"].items():
        matched: list[str] = []
        score = 0
        for term in rule.get("terms", []):
            if term in title_words:
                score += 2
                matched.append(term)
            elif term in prompt_words:
                score += 1
                matched.append(term)
        globs = rule.get("paths")
        if globs and paths:
            spec = pathspec.GitIgnoreSpec.from_lines(globs)
            hits = [p for p in paths if spec.match_file(p)]
            if hits:
                score += 2 if len(hits) == len(paths) else 1
                matched.extend(f"path:{p}" for p in hits[:5])
        if score > best[0]:
            best = (score, label, matched)
    return Intent(label=best[1], ruleset=rules["ruleset"], matched=best[2])
