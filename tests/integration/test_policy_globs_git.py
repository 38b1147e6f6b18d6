"""Policy globs are gitignore-style for real: ``paths`` agrees with ``git check-ignore``.

For each set of patterns and each path, a policy rule ``if: {paths: <patterns>}`` over a passport
changing only that path must apply exactly when git, given the same patterns as a .gitignore,
says the path is ignored.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import policies
from tests.conftest import git
from tests.unit.policy_inputs import file, policy_of, statement

PATTERN_SETS = {
    "docs-and-markdown": ["docs/", "*.md", "!README.md", "services/**/api.py", "/top.txt"],
    "dotfiles-except-github": [".*", "!/.github/"],
    "build-outputs": ["**/node_modules", "build/", "*.py[cod]", "!keep.pyc", "logs/**/debug.log"],
    "double-star-forms": ["a/**/b", "**/c/*.txt", "d/*", "e/**"],
    "all-but-python": ["*", "!*.py", "!*/"],
    "anchored-and-nested": [
        "/root.cfg",
        "conf/*.yaml",
        "deep/**/secrets/**",
        "!deep/**/public.key",
    ],
    "character-classes": ["file[0-9].txt", "img?.png", "[!x]y.cfg"],
}

PATHS = [
    "docs/a.md",
    "docs/sub/deep.txt",
    "README.md",
    "x/README.md",
    "x/y.md",
    "services/api.py",
    "services/a/b/api.py",
    "top.txt",
    "sub/top.txt",
    ".env",
    ".github/workflows/ci.yml",
    "src/.hidden/x.py",
    "node_modules/pkg/index.js",
    "web/node_modules/pkg/index.js",
    "build/out.o",
    "src/build/out.o",
    "mod.pyc",
    "pkg/keep.pyc",
    "logs/debug.log",
    "logs/2026/11/debug.log",
    "a/b",
    "a/x/y/b",
    "a/b/c.txt",
    "c/notes.txt",
    "x/c/notes.txt",
    "d/one.txt",
    "d/two/three.txt",
    "e/f/g.txt",
    "main.py",
    "lib/util.py",
    "lib/data.json",
    "root.cfg",
    "nested/root.cfg",
    "conf/app.yaml",
    "conf/env/app.yaml",
    "deep/x/secrets/key.pem",
    "deep/x/secrets/public.key",
    "file7.txt",
    "file77.txt",
    "img1.png",
    "img10.png",
    "ay.cfg",
    "xy.cfg",
]


def git_ignored(repo: Path, patterns: list[str]) -> dict[str, bool]:
    """What ``git check-ignore`` says of every path under ``patterns``."""
    (repo / ".gitignore").write_text("\n".join(patterns) + "\n")
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-n", "-v"],
        cwd=repo,
        input="\n".join(PATHS) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    verdicts = {}
    for line in result.stdout.splitlines():
        source, path = line.split("\t", 1)
        pattern = source.split(":", 2)[2] if source != "::" else ""
        verdicts[path] = bool(pattern) and not pattern.startswith("!")
    assert set(verdicts) == set(PATHS)
    return verdicts


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("globs")
    git(path, "init", "-q")
    return path


@pytest.mark.parametrize("name", sorted(PATTERN_SETS))
def test_paths_match_exactly_what_git_ignores(repo: Path, name: str) -> None:
    patterns = PATTERN_SETS[name]
    expected = git_ignored(repo, patterns)
    assert set(expected.values()) == {True, False}, "each set must both match and miss"
    policy = policy_of([{"name": "match", "if": {"paths": patterns}, "allow": True}])
    actual = {
        path: policies.evaluate(policy, statement({"change.files": [file(path)]}))
        .rule("match")
        .state
        == "satisfied"
        for path in PATHS
    }
    assert actual == expected
