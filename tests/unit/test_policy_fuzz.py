"""Fuzz: any text, any YAML document, any statement — only PolicyError ever escapes."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policies
from policies import PolicyError, parse_policy
from policies.attributes import ATTRIBUTES
from tests.unit.policy_inputs import base_pr, base_statement

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys of the language, so that random documents get deep into the loader, not just its door.
VOCABULARY = [
    "policy",
    "name",
    "description",
    "extends",
    "defaults",
    "whenNoRuleApplies",
    "teams",
    "rules",
    "if",
    "block",
    "require",
    "warn",
    "allow",
    "all",
    "any",
    "not",
    "count",
    "from",
    "users",
    "teams",
    "reviewer",
    "rule",
    "severity",
    "~=",
    "metadata.ticket",
    "checks.ci",
    *ATTRIBUTES,
]
VALUES = [
    "writgate/v1",
    "> 5",
    "<= 0",
    ">= warning",
    "agent",
    "passed",
    "success",
    "none",
    "docs/**",
    "!x",
    "[",
    "(?",
    "library:default",
    "library:nope",
    "missing.yaml",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(VALUES),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=8))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=30,
)


objects = st.dictionaries(keys, documents, max_size=5)


def _rule_like() -> st.SearchStrategy[dict[str, Any]]:
    predicate = st.dictionaries(st.sampled_from(VOCABULARY), documents, min_size=1, max_size=3)
    return st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", "c d", ""])},
        optional={
            "if": predicate,
            "require": predicate,
            "block": scalars,
            "warn": scalars,
            "allow": scalars,
        },
    )


policy_like = st.fixed_dictionaries(
    {"policy": st.sampled_from(["writgate/v1", "writgate/v1", "v0"]), "name": scalars},
    optional={
        "rules": st.lists(_rule_like(), max_size=4),
        "defaults": documents,
        "teams": documents,
        "extends": documents,
    },
)


LIBRARY = [policies.load_policy(f"library:{n}") for n in ("default", "strict-agent", "ci-autofix")]


short_text = st.text(alphabet="abcxyz-*/!.^$", min_size=1, max_size=6).filter(str.strip)
text_matcher = st.one_of(
    short_text,
    st.lists(short_text, min_size=1, max_size=3),
    st.builds(lambda r: {"~=": r}, st.sampled_from(["^a", "b$", "x|y", "."])),
)
globs = st.lists(
    st.sampled_from(["docs/**", "*.md", "!docs/x.md", "src/", "**/*.py", "/README.md", ".*"]),
    min_size=1,
    max_size=3,
)
comparison = st.sampled_from(["> 5", "<= 10", "== 0", "!= 2", 3])
VALID_ATTRIBUTES: dict[str, st.SearchStrategy[Any]] = {
    **{name: globs for name in ATTRIBUTES if name.startswith("paths")},
    **{name: comparison for name in ATTRIBUTES if name.startswith("diff.")},
    "author.kind": st.sampled_from(["agent", "human", "external", ["agent", "human"]]),
    "author.login": text_matcher,
    "writer.model": text_matcher,
    "writer.agent": text_matcher,
    "intent": text_matcher,
    "pr.title": text_matcher,
    "pr.base": text_matcher,
    "metadata.ticket": text_matcher,
    **{
        name: st.lists(short_text, min_size=1, max_size=3)
        for name in ATTRIBUTES
        if name.startswith(("tags.", "pr.labels."))
    },
    "provenance.verified": st.booleans(),
    "pr.draft": st.booleans(),
    "safety.network": st.sampled_from(["none", "restricted", "open"]),
    "validation": st.sampled_from(["passed", "failed", "missing", ["passed", "missing"]]),
    "review.findings": st.one_of(
        comparison,
        st.fixed_dictionaries(
            {},
            optional={
                "reviewer": short_text,
                "severity": st.sampled_from([">= warning", "error", "< error"]),
                "count": comparison,
            },
        ),
    ),
    "checks.ci/tests": st.sampled_from(["success", "failure", "pending", "missing"]),
    "approvals": st.one_of(
        st.integers(1, 3),
        st.fixed_dictionaries(
            {"count": st.integers(1, 2)},
            optional={
                "from": st.sampled_from(
                    [{"users": ["alice"]}, {"teams": ["payments"]}, {"teams": ["ghosts"]}]
                )
            },
        ),
    ),
}
valid_predicates = st.recursive(
    st.sampled_from(sorted(VALID_ATTRIBUTES)).flatmap(
        lambda k: VALID_ATTRIBUTES[k].map(lambda v: {k: v})
    ),
    lambda children: st.one_of(
        st.builds(lambda cs: {"all": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=6,
)
valid_rules = st.lists(
    st.tuples(
        st.sampled_from(["block", "require", "warn", "allow"]),
        st.one_of(st.none(), valid_predicates),
        valid_predicates,
    ),
    max_size=5,
).map(
    lambda specs: [
        {
            "name": f"r{i}",
            **({"if": cond} if cond is not None else {}),
            kind: body if kind == "require" else True if kind == "allow" else "message",
        }
        for i, (kind, cond, body) in enumerate(specs)
    ]
)
odd_statements = st.dictionaries(
    st.sampled_from(["change", "writer", "validation", "reviews", "provenanceVerified"]),
    documents,
    max_size=3,
).map(lambda damage: {**base_statement(), "predicate": {**base_statement()["predicate"], **damage}})


def _parse(text: str) -> policies.Policy | None:
    try:
        return parse_policy(text, source="fuzz.yaml")
    except PolicyError as error:
        assert error.message
        return None


@FUZZ
@given(st.text(max_size=200))
def test_random_text_only_raises_policy_error(text: str) -> None:
    _parse(text)


@FUZZ
@given(documents)
def test_random_documents_only_raise_policy_error(document: Any) -> None:
    _parse(yaml.safe_dump(document))


@FUZZ
@given(policy_like, st.data())
def test_policy_shaped_documents_parse_or_fail_cleanly_and_evaluate(
    document: dict[str, Any], data: st.DataObject
) -> None:
    text = yaml.safe_dump(document, sort_keys=False)
    if data.draw(st.booleans()):
        # Damage the text: YAML-level errors must be positioned PolicyErrors too.
        index = data.draw(st.integers(min_value=0, max_value=len(text)))
        text = (
            text[:index]
            + data.draw(st.sampled_from(["{", "]", ":", "\t", "&a", "*a", "- "]))
            + text[index:]
        )
    policy = _parse(text)
    if policy is None:
        return
    statement: Any = data.draw(st.one_of(st.just(base_statement()), objects))
    pr = data.draw(st.one_of(st.none(), st.just(base_pr()), objects))
    decision = policies.evaluate(policy, statement, pr)
    assert decision.decision in ("allow", "block", "pending")
    assert len(decision.rules) == len(policy.rules)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["change", "writer", "validation", "reviews", "provenanceVerified"]),
        documents,
    )
)
def test_library_policies_never_crash_on_odd_statements(predicate: dict[str, Any]) -> None:
    for policy in LIBRARY:
        decision = policies.evaluate(policy, {"predicate": predicate}, base_pr())
        # Whatever is missing or malformed, the gate never allows it by accident of an error.
        errors = [
            r for r in decision.rules if r.state == "error" and r.kind in ("block", "require")
        ]
        if errors:
            assert decision.decision == "block"


@FUZZ
@given(
    valid_rules,
    st.sampled_from(["allow", "block", "pending"]),
    odd_statements,
    st.one_of(st.none(), st.just(base_pr()), objects),
)
def test_valid_policies_decide_any_statement(
    rules: list[dict[str, Any]], default: str, statement: dict[str, Any], pr: Any
) -> None:
    document = {
        "policy": "writgate/v1",
        "name": "fuzz",
        "defaults": {"whenNoRuleApplies": default},
        "teams": {"payments": ["alice"]},
        "rules": rules,
    }
    policy = parse_policy(yaml.safe_dump(document, sort_keys=False))
    decision = policies.evaluate(policy, statement, pr)
    assert [r.name for r in decision.rules] == [r["name"] for r in rules]
    assert all(r.reasons for r in decision.rules)
    objecting = [
        r
        for r in decision.rules
        if r.kind in ("block", "require") and r.state in ("unsatisfied", "error")
    ]
    if objecting:
        assert decision.decision == "block"
    if decision.decision == "allow":
        assert not objecting
        assert default == "allow" or any(
            r.state == "satisfied" and r.kind in ("require", "allow") for r in decision.rules
        )
