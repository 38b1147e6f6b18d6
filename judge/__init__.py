"""judge: review runs over a change, the merge gate and its status checks (DESIGN.md §10).

Entry points:

- ``await review_change(repo, base, head, *, reviewers=None, config=None)`` -> :class:`ReviewResult`
  (``findings``, ``counts``, ``to_passport_reviews()`` for the passport's ``reviews[]``);
- ``MergeGate(engine=…, ledger=…, forge=…, public_url=…, home=…)`` with
  ``await gate.evaluate(org_id, policy=…, statement=…, pr=…, repository=…, publish=…)`` ->
  :class:`GateDecision` (``id``, ``decision``, ``rules``, ``reasons``, ``to_json()``), ``refresh``,
  ``merge_group``, ``merge``;
- ``await judge_pull_request(gate, org_id, repository=…, number=…, policy=…, home=…)``: review a
  forge PR, store the review run, build its passport and decide;
- :class:`ReviewStore` / :class:`DecisionStore`, :func:`to_rdjson`, :func:`to_sarif`.
"""

from __future__ import annotations

from .change import Change, ChangedFile, load_change
from .errors import (
    JudgeError,
    MergeRefused,
    ReviewConfigError,
    ReviewerError,
    ReviewerSkipped,
    RevisionNotFound,
)
from .export import to_rdjson, to_rdjsonl, to_sarif
from .findings import Finding, fingerprint
from .gate import MergeGate, Verdict, decide, decision_url, public_url_from_env
from .publish import Publisher, render_check_summary, status_description
from .pull_requests import PullRequestVerdict, checkout_pull_request, judge_pull_request
from .review import ReviewerOutcome, ReviewResult, review_change, run_reviewers
from .reviewers import (
    BUILTIN_REVIEWERS,
    DEFAULT_REVIEWERS,
    Reviewer,
    create_reviewer,
    register_reviewer,
    resolve_reviewers,
)
from .store import DecisionStore, GateDecision, ReviewRun, ReviewStore

__all__ = [  # noqa: RUF022 (plain sorted order, checked by a test)
    "BUILTIN_REVIEWERS",
    "Change",
    "ChangedFile",
    "DEFAULT_REVIEWERS",
    "DecisionStore",
    "Finding",
    "GateDecision",
    "JudgeError",
    "MergeGate",
    "MergeRefused",
    "Publisher",
    "PullRequestVerdict",
    "ReviewConfigError",
    "ReviewResult",
    "ReviewRun",
    "ReviewStore",
    "Reviewer",
    "ReviewerError",
    "ReviewerOutcome",
    "ReviewerSkipped",
    "RevisionNotFound",
    "Verdict",
    "checkout_pull_request",
    "create_reviewer",
    "decide",
    "decision_url",
    "fingerprint",
    "judge_pull_request",
    "load_change",
    "public_url_from_env",
    "register_reviewer",
    "render_check_summary",
    "resolve_reviewers",
    "review_change",
    "run_reviewers",
    "status_description",
    "to_rdjson",
    "to_rdjsonl",
    "to_sarif",
]
