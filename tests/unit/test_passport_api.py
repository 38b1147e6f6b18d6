"""The public API of ``passport``: sorted, importable, and free of upward imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import passport

FORBIDDEN = ("writer", "judge", "forge", "pipelines", "policies", "writgate.app")


def test_all_is_sorted_and_every_name_is_importable() -> None:
    assert passport.__all__ == sorted(passport.__all__)
    assert len(set(passport.__all__)) == len(passport.__all__)
    for name in passport.__all__:
        assert getattr(passport, name) is not None, name


def test_passport_imports_no_higher_layer() -> None:
    root = Path(passport.__file__).parent
    offenders = []
    for source in root.rglob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{source.relative_to(root)}: {name}")
    assert offenders == []


def test_every_module_in_all_resolves_to_a_defining_module() -> None:
    for name in passport.__all__:
        module = getattr(getattr(passport, name), "__module__", None)
        if callable(getattr(passport, name)) and module != "typing":  # classes, functions
            assert module.startswith("passport"), (name, module)
            importlib.import_module(module)
