"""The facts a policy reads: a passport statement (contract 1) and a PR state (contract 2).

:class:`Facts` is built once per evaluation. Each accessor returns the value the policy needs or
raises :class:`Missing` naming what the input lacks; a condition turns that into an ``error`` state
(or ``pending`` for facts that may still arrive: approvals and checks). A key present with the
value ``null`` is not missing: it is an explicit "none" (a human change has no ``writer.model``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .errors import PolicyError

__all__ = ["ChangedFile", "Facts", "Missing", "TeamResolver"]

TeamResolver = Callable[[str], Iterable[str] | None]
"""Resolves a team name to its members' logins (``None`` when the team is unknown)."""


class Missing(Exception):
    """A fact the policy needs is absent from the input."""

    def __init__(self, what: str, *, may_arrive: bool = False) -> None:
        super().__init__(what)
        self.what = what
        self.may_arrive = may_arrive


@dataclass(frozen=True, slots=True)
class ChangedFile:
    """One changed file of the passport."""

    path: str
    previous_path: str | None
    status: str

    @property
    def paths(self) -> tuple[str, ...]:
        """The path and, for a rename or copy, the path it came from."""
        if self.previous_path and self.previous_path != self.path:
            return (self.path, self.previous_path)
        return (self.path,)


_MISSING = object()


def _dig(value: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


class Facts:
    """Read access to one statement and PR state, with "missing" made explicit."""

    def __init__(
        self,
        statement: Mapping[str, Any],
        pr: Mapping[str, Any] | None = None,
        *,
        teams: Mapping[str, Collection[str]] | None = None,
        team_resolver: TeamResolver | None = None,
    ) -> None:
        if not isinstance(statement, Mapping):
            raise PolicyError("the passport statement must be a JSON object")
        if pr is not None and not isinstance(pr, Mapping):
            raise PolicyError("the PR state must be a JSON object")
        self.statement = statement
        self.pr = pr
        self._teams = dict(teams or {})
        self._team_resolver = team_resolver
        self._resolved_teams: dict[str, frozenset[str] | None] = {}

    # -- passport ------------------------------------------------------------------------------

    def passport(self, *keys: str) -> Any:
        """``statement.predicate.<keys>``; raises :class:`Missing` when absent."""
        value = _dig(self.statement, ("predicate", *keys))
        if value is _MISSING:
            raise Missing(f"the passport has no predicate.{'.'.join(keys)}")
        return value

    def passport_list(self, *keys: str) -> list[Any]:
        """A list field of the predicate (``null`` reads as empty)."""
        value = self.passport(*keys)
        if value is None:
            return []
        if not isinstance(value, list):
            raise Missing(f"the passport's predicate.{'.'.join(keys)} is not a list")
        return value

    @cached_property
    def files(self) -> list[ChangedFile]:
        """The changed files of the passport."""
        files = []
        for index, item in enumerate(self.passport_list("change", "files")):
            path = item.get("path") if isinstance(item, Mapping) else None
            if not isinstance(path, str):
                raise Missing(f"the passport's predicate.change.files[{index}] has no path")
            previous = item.get("previousPath")
            status = item.get("status")
            files.append(
                ChangedFile(
                    path=path,
                    previous_path=previous if isinstance(previous, str) else None,
                    status=status if isinstance(status, str) else "modified",
                )
            )
        return files

    def total(self, key: str) -> int:
        """One of the diff totals: files, additions, deletions, lines."""
        totals = self.passport("change", "totals")
        value = totals.get(key) if isinstance(totals, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Missing(f"the passport has no predicate.change.totals.{key}")
        return value

    def writer(self, key: str) -> Any:
        """A field of ``predicate.writer``."""
        return self.passport("writer", key)

    @cached_property
    def findings(self) -> list[Mapping[str, Any]]:
        """Every review finding, with its reviewer filled in from the enclosing review."""
        findings: list[Mapping[str, Any]] = []
        for review in self.passport_list("reviews"):
            if not isinstance(review, Mapping):
                raise Missing("the passport's predicate.reviews holds a non-object")
            reviewer = review.get("reviewer")
            items = review.get("findings") or []
            if not isinstance(items, list):
                raise Missing("the passport's predicate.reviews[].findings is not a list")
            for finding in items:
                if isinstance(finding, Mapping):
                    if finding.get("reviewer") is None and reviewer is not None:
                        finding = {**finding, "reviewer": reviewer}
                    findings.append(finding)
        return findings

    # -- pull request --------------------------------------------------------------------------

    def pull_request(self, key: str) -> Any:
        """A PR field: from the PR state when given, else from the passport's pullRequest."""
        if self.pr is not None and key in self.pr:
            return self.pr[key]
        recorded = _dig(self.statement, ("predicate", "change", "pullRequest"))
        if isinstance(recorded, Mapping) and key in recorded:
            return recorded[key]
        if key == "base":
            base = _dig(self.statement, ("predicate", "change", "base", "ref"))
            if isinstance(base, str):
                return base
        raise Missing(f"no PR state gives the pull request's {key}")

    def pr_state(self, key: str) -> Any:
        """A field only the live PR state has (reviews, checks, headSha); may still arrive."""
        if self.pr is None:
            raise Missing("no PR state yet", may_arrive=True)
        if key not in self.pr:
            raise Missing(f"the PR state has no {key}", may_arrive=key != "headSha")
        return self.pr[key]

    def team(self, name: str) -> frozenset[str] | None:
        """The logins (casefolded) of a team, from the policy or the resolver; None if unknown."""
        if name not in self._resolved_teams:
            members: Iterable[str] | None = self._teams.get(name)
            if members is None and self._team_resolver is not None:
                members = self._team_resolver(name)
            self._resolved_teams[name] = (
                None if members is None else frozenset(m.casefold() for m in members)
            )
        return self._resolved_teams[name]
