"""Dependency manifests and lockfiles: changes to either, and drift between them.

Drift is a manifest whose dependencies changed while its lockfile (in the same directory, present
at head) did not, or a lockfile that changed while no manifest next to it did. For
``package.json``, ``pyproject.toml`` and ``Cargo.toml`` only the dependency sections count, so a
version bump or a tool setting is not a dependency change.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import PurePosixPath
from typing import Any

from ..change import Change, ChangedFile
from ..findings import Finding
from .base import Options, check_known

__all__ = ["LOCKFILES", "MANIFESTS", "DependenciesReviewer"]

# manifest name -> lockfile names that pin it
MANIFESTS: dict[str, tuple[str, ...]] = {
    "package.json": ("package-lock.json", "yarn.lock", "pnpm-lock.yaml", "npm-shrinkwrap.json",
                     "bun.lockb", "bun.lock"),
    "pyproject.toml": ("poetry.lock", "uv.lock", "pdm.lock"),
    "Pipfile": ("Pipfile.lock",),
    "go.mod": ("go.sum",),
    "Cargo.toml": ("Cargo.lock",),
    "Gemfile": ("Gemfile.lock",),
    "composer.json": ("composer.lock",),
    "mix.exs": ("mix.lock",),
    "requirements.in": ("requirements.txt",),
}  # fmt: skip
_UNPINNED_MANIFESTS = ("requirements.txt", "setup.py", "setup.cfg", "pom.xml", "build.gradle",
                       "build.gradle.kts")  # fmt: skip
LOCKFILES: dict[str, tuple[str, ...]] = {}
for _manifest, _locks in MANIFESTS.items():
    for _lock in _locks:
        LOCKFILES.setdefault(_lock, ())
        LOCKFILES[_lock] = (*LOCKFILES[_lock], _manifest)
LOCKFILES.pop("requirements.txt")  # also a plain manifest when no requirements.in exists


def _dependency_view(name: str, text: str | None) -> Any:
    """The dependency sections of a manifest, or the whole text for formats not parsed here."""
    if text is None:
        return None
    try:
        if name == "package.json":
            data = json.loads(text)
            keys = (
                "dependencies", "devDependencies", "peerDependencies", "optionalDependencies",
                "bundleDependencies", "overrides", "resolutions",
            )  # fmt: skip
            return {k: data.get(k) for k in keys} if isinstance(data, dict) else text
        if name == "pyproject.toml":
            data = tomllib.loads(text)
            project = data.get("project", {})
            poetry = data.get("tool", {}).get("poetry", {})
            return {
                "dependencies": project.get("dependencies"),
                "optional": project.get("optional-dependencies"),
                "groups": data.get("dependency-groups"),
                "build": data.get("build-system", {}).get("requires"),
                "poetry": poetry.get("dependencies"),
                "poetryGroups": poetry.get("group"),
                "uvSources": data.get("tool", {}).get("uv", {}).get("sources"),
            }
        if name == "Cargo.toml":
            data = tomllib.loads(text)
            sections = ("dependencies", "dev-dependencies", "build-dependencies", "target",
                        "workspace", "patch")  # fmt: skip
            return {k: data.get(k) for k in sections}
    except (ValueError, tomllib.TOMLDecodeError):
        return text  # unparseable: compare the text
    return text


class DependenciesReviewer:
    """Reports dependency changes and lockfile drift."""

    name = "dependencies"

    def __init__(self, options: Options | None = None):
        check_known(options or {}, self.name, ())

    async def review(self, change: Change) -> list[Finding]:
        changed_paths = {f.path for f in change} | {
            f.previous_path for f in change if f.previous_path
        }
        findings: list[Finding] = []
        for changed in change:
            name = PurePosixPath(changed.path).name
            folder = str(PurePosixPath(changed.path).parent)
            if name in MANIFESTS or name in _UNPINNED_MANIFESTS:
                if not await self._dependencies_changed(change, changed, name):
                    continue
                message = f"Dependency manifest {changed.status}: {changed.path}."
                findings.append(self._finding("manifest-changed", "info", changed, message))
                locks = [_join(folder, lock) for lock in MANIFESTS.get(name, ())]
                present = [
                    lock for lock in locks if await change.read(change.head, lock) is not None
                ]
                if (
                    present
                    and changed.status != "removed"
                    and not any(lock in changed_paths for lock in present)
                ):
                    findings.append(self._finding(
                        "lockfile-drift", "warning", changed,
                        f"{changed.path} changed its dependencies but {present[0]} did not change.",
                        suggestion="Regenerate the lockfile and commit it with the manifest.",
                    ))  # fmt: skip
            elif name in LOCKFILES:
                message = f"Lockfile {changed.status}: {changed.path}."
                findings.append(self._finding("lockfile-changed", "info", changed, message))
                manifests = [_join(folder, m) for m in LOCKFILES[name]]
                if changed.status != "removed" and not any(m in changed_paths for m in manifests):
                    findings.append(self._finding(
                        "lockfile-drift", "warning", changed,
                        f"{changed.path} changed but no manifest next to it "
                        f"({', '.join(manifests)}) changed.",
                        suggestion="Check that the lockfile update was intended.",
                    ))  # fmt: skip
        return findings

    async def _dependencies_changed(self, change: Change, changed: ChangedFile, name: str) -> bool:
        if changed.status in ("added", "removed") or changed.binary:
            return True
        before = _dependency_view(name, await change.base_text(changed))
        after = _dependency_view(name, await change.head_text(changed))
        return bool(before != after)

    def _finding(
        self,
        rule: str,
        severity: Any,
        changed: ChangedFile,
        message: str,
        suggestion: str | None = None,
    ) -> Finding:
        return Finding.create(
            reviewer=self.name,
            rule=rule,
            severity=severity,
            path=changed.path,
            message=message,
            snippet=changed.path,
            suggestion=suggestion,
        )


def _join(folder: str, name: str) -> str:
    return name if folder in ("", ".") else f"{folder}/{name}"
