"""The JSON Schema (draft 2020-12) of the policy language, for editors and other tools.

The loader is the authority (it also checks regular expressions, globs and rule-name uniqueness);
the schema describes the same shapes so that an editor can complete and check a policy as it is
typed. A test keeps the two in step over the library policies and the loader's error cases.
"""

from __future__ import annotations

from typing import Any

from .attributes import AUTHOR_KINDS, CHECK_STATES, NETWORK_MODES, VALIDATION_STATES
from .loader import LANGUAGE_VERSION
from .matchers import SEVERITIES

__all__ = ["SCHEMA_ID", "policy_schema"]

SCHEMA_ID = "https://writgate.dev/schemas/policy/v1.json"

_COMPARISON = r"^\s*(==|!=|>=|<=|>|<)\s*-?\d+\s*$"
_SEVERITY = r"^\s*((==|!=|>=|<=|>|<)\s*)?(" + "|".join(SEVERITIES) + r")\s*$"


def _one_or_many(item: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}


def _enum(values: tuple[str, ...]) -> dict[str, Any]:
    return _one_or_many({"enum": list(values)})


def policy_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (a fresh dict each call)."""
    text = {"type": "string", "minLength": 1}
    scalar = {"type": ["string", "number", "boolean"]}
    regex = {
        "type": "object",
        "properties": {"~=": {**text, "description": "a regular expression (searched)"}},
        "required": ["~="],
        "additionalProperties": False,
    }
    defs: dict[str, Any] = {
        "globs": {
            **_one_or_many(text),
            "description": "gitignore-style globs: ** spans directories, a trailing / matches a "
            "directory, ! excludes what an earlier glob matched",
        },
        "comparison": {
            "oneOf": [{"type": "integer"}, {"type": "string", "pattern": _COMPARISON}],
            "description": 'an integer (==) or "<op> <integer>" with op in == != >= <= > <',
        },
        "names": _one_or_many(text),
        "text": {
            "oneOf": [scalar, {"type": "array", "items": scalar, "minItems": 1}, regex],
            "description": 'a value, a list of values (any of them), or {"~=": regex}',
        },
        "findings": {
            "oneOf": [
                {"$ref": "#/$defs/comparison"},
                {
                    "type": "object",
                    "properties": {
                        "reviewer": {"$ref": "#/$defs/names"},
                        "rule": {"$ref": "#/$defs/names"},
                        "severity": {"type": "string", "pattern": _SEVERITY},
                        "count": {"$ref": "#/$defs/comparison"},
                    },
                    "additionalProperties": False,
                },
            ],
            "description": "matching review findings; count defaults to > 0",
        },
        "approvals": {
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {
                    "type": "object",
                    "properties": {
                        "count": {"type": "integer", "minimum": 1},
                        "from": {
                            "type": "object",
                            "properties": {
                                "users": {"$ref": "#/$defs/names"},
                                "teams": {"$ref": "#/$defs/names"},
                            },
                            "minProperties": 1,
                            "additionalProperties": False,
                        },
                    },
                    "required": ["count"],
                    "additionalProperties": False,
                },
            ],
            "description": "approvals of the current head; the PR author never counts",
        },
    }
    attributes: dict[str, Any] = {
        "all": {"type": "array", "items": {"$ref": "#/$defs/predicate"}, "minItems": 1},
        "any": {"type": "array", "items": {"$ref": "#/$defs/predicate"}, "minItems": 1},
        "not": {"$ref": "#/$defs/predicate"},
    }
    for suffix in ("", ".only", ".none", ".added", ".removed", ".renamed", ".modified"):
        attributes["paths" + suffix] = {"$ref": "#/$defs/globs"}
    for name in ("diff.files", "diff.additions", "diff.deletions", "diff.lines"):
        attributes[name] = {"$ref": "#/$defs/comparison"}
    attributes["author.kind"] = _enum(AUTHOR_KINDS)
    for name in ("author.login", "writer.model", "writer.agent", "intent", "pr.title", "pr.base"):
        attributes[name] = {"$ref": "#/$defs/text"}
    for name in ("tags.any", "tags.all", "tags.none"):
        attributes[name] = {"$ref": "#/$defs/names"}
    for name in ("pr.labels.any", "pr.labels.all", "pr.labels.none"):
        attributes[name] = {"$ref": "#/$defs/names"}
    attributes["provenance.verified"] = {"type": "boolean"}
    attributes["pr.draft"] = {"type": "boolean"}
    attributes["safety.network"] = _enum(NETWORK_MODES)
    attributes["validation"] = _enum(VALIDATION_STATES)
    attributes["review.findings"] = {"$ref": "#/$defs/findings"}
    attributes["approvals"] = {"$ref": "#/$defs/approvals"}
    defs["predicate"] = {
        "type": "object",
        "description": "several keys in one mapping must all hold",
        "properties": attributes,
        "patternProperties": {
            r"^metadata\..+$": {"$ref": "#/$defs/text"},
            r"^checks\..+$": _enum(CHECK_STATES),
        },
        "additionalProperties": False,
        "minProperties": 1,
    }
    message = {"type": "string", "minLength": 1}
    rule_base = {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$"},
        "description": message,
        "if": {"$ref": "#/$defs/predicate"},
    }
    actions = {
        "block": message,
        "require": {"$ref": "#/$defs/predicate"},
        "warn": message,
        "allow": {"const": True},
    }
    defs["rule"] = {
        "type": "object",
        "properties": {**rule_base, **actions},
        "required": ["name"],
        "additionalProperties": False,
        "oneOf": [{"required": [action]} for action in actions],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "writgate policy",
        "type": "object",
        "properties": {
            "policy": {"const": LANGUAGE_VERSION},
            "name": {"type": "string", "minLength": 1},
            "description": message,
            "extends": _one_or_many(
                {**text, "description": "a path relative to this file, or library:<name>"}
            ),
            "defaults": {
                "type": "object",
                "properties": {"whenNoRuleApplies": {"enum": ["allow", "block", "pending"]}},
                "additionalProperties": False,
            },
            "teams": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": text},
            },
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
        },
        "required": ["policy", "name"],
        "anyOf": [{"required": ["rules"]}, {"required": ["extends"]}],
        "additionalProperties": False,
        "$defs": defs,
    }
