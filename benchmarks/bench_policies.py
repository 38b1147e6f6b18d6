"""Policy evaluation over a synthetic 1,000-file / 50,000-line passport.

- each library policy (default, strict-agent, ci-autofix) evaluated on its own;
- all three in a row (what a gate comparing policies, or ``policy simulate`` per passport, pays);
- loading the three library policies from YAML (parse, validate, merge ``extends``, digest).

The passport is an agent's change spread over source, tests, docs, CI and dependency files, with
60 review findings and a PR state with reviews, so that every kind of condition does real work
(glob matching over every file is the dominant cost).
"""

from __future__ import annotations

import time
from typing import Any

import policies

FILES = 1_000
SAMPLES = 15
LIBRARY = ("default", "strict-agent", "ci-autofix")
HEAD = "b" * 40

_AREAS = (
    "src/app/module_{i:04d}.py",
    "services/payments/handler_{i:04d}.py",
    "tests/unit/test_module_{i:04d}.py",
    "docs/guide/page_{i:04d}.md",
    "web/components/Widget{i:04d}.test.ts",
    "infra/terraform/stack_{i:04d}.tf",
    "pkg{i:02d}/requirements-{i:04d}.txt",
    ".github/workflows/job_{i:04d}.yml",
)


def synthetic_statement(files: int = FILES) -> dict[str, Any]:
    """A 1,000-file, 50,000-line agent change with findings in every severity."""
    entries = []
    for i in range(files):
        path = _AREAS[i % len(_AREAS)].format(i=i)
        status = ("modified", "added", "removed", "renamed")[i % 4]
        entries.append(
            {
                "path": path,
                "previousPath": f"old/{path}" if status == "renamed" else None,
                "status": status,
                "additions": 25,
                "deletions": 25,
                "binary": False,
            }
        )
    findings = [
        {
            "reviewer": reviewer,
            "rule": f"rule-{n}",
            "severity": ("info", "warning", "error")[n % 3],
            "path": entries[n]["path"],
            "startLine": n + 1,
            "endLine": n + 1,
            "message": "…",
            "suggestion": None,
            "fingerprint": f"{reviewer}-{n}",
        }
        for n, reviewer in enumerate(["debug-leftovers", "large-diff", "missing-tests"] * 20)
    ]
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"git+acme/web@{HEAD}", "digest": {"gitCommit": HEAD}}],
        "predicateType": "https://writgate.dev/change-passport/v1",
        "predicate": {
            "change": {
                "repository": "acme/web",
                "base": {"ref": "main", "sha": "a" * 40},
                "head": {"ref": "writgate/big", "sha": HEAD},
                "pullRequest": None,
                "totals": {
                    "files": files,
                    "additions": 25 * files,
                    "deletions": 25 * files,
                    "lines": 50 * files,
                },
                "files": entries,
            },
            "writer": {
                "kind": "agent",
                "agent": "command",
                "model": "m",
                "tags": ["ci"],
                "metadata": {},
                "intent": {"label": "bugfix"},
                "sandbox": {"provider": "local", "network": "none"},
            },
            "validation": [{"name": "tests", "result": "PASSED"}],
            "reviews": [
                {"reviewer": name, "findings": [f for f in findings if f["reviewer"] == name]}
                for name in ("debug-leftovers", "large-diff", "missing-tests")
            ],
            "provenanceVerified": True,
        },
    }


PR_STATE = {
    "number": 1,
    "title": "Big change",
    "draft": False,
    "author": "writgate-bot",
    "base": "main",
    "headSha": HEAD,
    "labels": ["ci"],
    "reviews": [
        {"user": f"user{n}", "state": "approved", "commitSha": HEAD if n % 2 else "a" * 40}
        for n in range(20)
    ],
    "checks": {"ci/tests": "success"},
}


def _time_ms(func: Any) -> list[float]:
    func()  # warm caches (imports, regex compilation inside pathspec)
    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def run() -> list[dict[str, Any]]:
    """The figures: per-policy evaluation, all three, and loading."""
    statement = synthetic_statement()
    loaded = {name: policies.load_policy(f"library:{name}") for name in LIBRARY}
    team = {"security": ["user1"]}
    figures = []
    for name, policy in loaded.items():
        decision = policies.evaluate(policy, statement, PR_STATE, team_resolver=team)
        samples = _time_ms(
            lambda p=policy: policies.evaluate(p, statement, PR_STATE, team_resolver=team)
        )
        figures.append(
            {
                "figure": f"evaluate {name} ({len(policy.rules)} rules), 1,000-file passport "
                f"-> {decision.decision}",
                "unit": "ms",
                "samples": samples,
                "target": "<= 50 ms",
                "peer": None,
            }
        )
    figures.append(
        {
            "figure": "evaluate all three library policies, 1,000-file / 50k-line passport",
            "unit": "ms",
            "samples": _time_ms(
                lambda: [
                    policies.evaluate(p, statement, PR_STATE, team_resolver=team)
                    for p in loaded.values()
                ]
            ),
            "target": "<= 100 ms",
            "peer": None,
        }
    )
    figures.append(
        {
            "figure": "load the three library policies (YAML, extends, digest)",
            "unit": "ms",
            "samples": _time_ms(
                lambda: [policies.load_policy(f"library:{name}") for name in LIBRARY]
            ),
            "target": None,
            "peer": None,
        }
    )
    return figures


if __name__ == "__main__":
    for figure in run():
        samples = sorted(figure["samples"])
        median = samples[len(samples) // 2]
        print(
            f"{figure['figure']}: median {median:.2f} {figure['unit']} "
            f"(min {samples[0]:.2f}, max {samples[-1]:.2f}; target {figure['target']})"
        )
