"""Hypothesis strategies for hostile input, shared by the bad-input fuzz modules.

Structured-but-wrong values (the right keys with the wrong types), huge numbers, unicode and NUL
bytes, deep nesting, YAML duplicate keys, alias bombs, tabs and binary. Every fuzz test uses
:func:`fuzz`: few examples, no per-example deadline (a hang is caught by the explicit bounds of
the tests: :func:`bounded`, HTTP timeouts), derandomized so CI runs the same examples every time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Whatever the input, handling it must finish well within this many seconds; an alias bomb or a
# quadratic parser would take minutes or forever, so the bound is far from any honest slowness.
HANG_SECONDS = 20.0


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings of the bad-input fuzz: modest, deterministic, no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextmanager
def bounded(what: str) -> Iterator[None]:
    """Fail when the block took longer than :data:`HANG_SECONDS` (a hang, not a slow machine)."""
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < HANG_SECONDS, f"{what} took {elapsed:.1f} s"


ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t",
    "\r\n",
    "\u202e",
    "\ufeff",
    "\ud800",  # a lone surrogate: JSON can carry it, UTF-8 cannot
    "💥" * 3,
    "Ω≈ç√",
    "../../etc/passwd",
    "{{ 7 * 7 }}",
    "${{ secrets.X }}",
    "%s%n%x",
    "'; DROP TABLE runs; --",
    "x" * 5000,
    "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes, ASCII parsers say no
    "²",
    "-1",
    "1e400",
    "NaN",
    "null",
    "true",
]
HUGE_NUMBERS: list[Any] = [
    0,
    -1,
    2**31,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    10**30,
    10**400,
    1e308,
    -0.0,
    1.5,
    float("inf"),
    float("nan"),
]

odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=30))
numbers = st.one_of(
    st.sampled_from(HUGE_NUMBERS),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text)


def json_values(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Any JSON-ish value, with object keys from ``keys`` (odd text by default)."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(odd_text if keys is None else keys, children, max_size=4),
        ),
        max_leaves=12,
    )


def deep(depth: int, open_: str = "[", close: str = "]", inner: str = "") -> str:
    """``depth`` levels of nesting, e.g. ``[[[…]]]`` (a parser that recurses runs out of stack)."""
    return open_ * depth + inner + close * depth


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes the way a careless client writes it: NaN and lone surrogates too."""
    return json.dumps(value, allow_nan=True).encode("utf-8")


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[1, 2",
            b'{"a": 1,}',
            b"\xff\xfe{}",
            b'{"a": "\\ud800"}',
            b'{"a": NaN, "b": Infinity}',
            b'{"a": 1, "a": 2}',
            b"9" * 5000,
            b'{"n": ' + b"9" * 5000 + b"}",
            deep(100_000).encode(),
            deep(100_000, '{"a":', "}", "1").encode(),
            b"null",
            b"[]",
            b'"text"',
            b"\x00" * 10,
        ]
    ),
)


def alias_bomb(levels: int = 9, width: int = 9, key: str = "lol") -> str:
    """The YAML "billion laughs": each level is ``width`` aliases of the previous one."""
    lines = [f"{key}0: &{key}0 [" + ", ".join(["ha"] * width) + "]"]
    for level in range(1, levels + 1):
        previous = f"*{key}{level - 1}"
        lines.append(f"{key}{level}: &{key}{level} [" + ", ".join([previous] * width) + "]")
    return "\n".join(lines) + "\n"


YAML_TRAPS = [
    "\t",
    "\x00",
    "\ufeff",
    ": ",
    "- ",
    "{",
    "]",
    "&a ",
    "*a",
    "*nope",
    "<<: *a\n",
    "!!python/object:os.system ",
    "!!binary ",
    "? ",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "\n  ",
    "'",
    '"\\x',
    "2001-12-14t21:59:43.10-05:00",
    "~",
    "0o777",
    ".nan",
]

YAML_DOCUMENTS = [  # alias_bomb() is left to explicit examples: refusing it takes a second
    alias_bomb(levels=3, width=3),
    "a: &a [*a]\n",  # a recursive alias
    # Nested past the parser's stack. (Not "[[[…": PyYAML's scanner spends seconds on a deep
    # flow sequence before it fails the same way, which would only slow this suite down.)
    "a: " + deep(3000, "{b: ", "}", "1"),
    "a:\n  " + "- " * 3000 + "1",  # nested block sequences
    "name: x\nname: y\n",
    "\tname: x\n",
    "name: a\x00b\n",
    "\xff\xfe",
    "- 1\n- 2\n",
    "just text",
    "",
    "---\na: 1\n---\nb: 2\n",
]


def damaged(text: str) -> st.SearchStrategy[str]:
    """``text`` with one trap inserted at a random place."""
    return st.tuples(st.integers(0, len(text)), st.sampled_from(YAML_TRAPS)).map(
        lambda pair: text[: pair[0]] + pair[1] + text[pair[0] :]
    )


def replace_at(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``document`` with the value at ``path`` replaced (or added)."""
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def paths_of(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (objects and lists), the root excluded."""
    found: list[tuple[Any, ...]] = []
    items: Any = (
        document.items()
        if isinstance(document, dict)
        else enumerate(document)
        if isinstance(document, list)
        else ()
    )
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths_of(value, (*prefix, key)))
    return found


def mutations(document: Any, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``document`` with one value replaced by a hostile one, or one path dropped or added."""
    paths = paths_of(document)

    def drop(path: tuple[Any, ...]) -> Any:
        copy = json.loads(json.dumps(document))
        target = copy
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return copy

    return st.one_of(
        st.builds(replace_at, st.just(document), st.sampled_from(paths), values),
        st.sampled_from(paths).map(drop),
        st.builds(
            lambda path, key, value: (
                replace_at(document, (*path[:-1], key), value)
                if isinstance(path[-1], str)
                else document
            ),
            st.sampled_from(paths),
            odd_text,
            values,
        ),
    )
