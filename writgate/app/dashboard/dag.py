"""Laying out a pipeline's stages as a DAG: columns by depth, an SVG edge per ``needs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["NODE_HEIGHT", "NODE_WIDTH", "Edge", "Layout", "Node", "layout"]

NODE_WIDTH = 180
NODE_HEIGHT = 58
_COLUMN_GAP = 70
_ROW_GAP = 22
_MARGIN = 10


@dataclass(frozen=True)
class Node:
    """One stage box."""

    stage: str
    column: int
    row: int
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    """A ``needs`` arrow from ``source`` to ``target`` as an SVG cubic path."""

    source: str
    target: str
    path: str


@dataclass(frozen=True)
class Layout:
    """Nodes and edges with the drawing's size."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int


def layout(needs: Mapping[str, Sequence[str]]) -> Layout:
    """Place every stage in the column of its longest chain of ``needs`` (spec order in a column).

    Unknown needs are ignored and a cycle cannot hang it (a spec with one is rejected earlier).
    """
    depth: dict[str, int] = {}

    def depth_of(stage: str, visiting: frozenset[str]) -> int:
        if stage in depth:
            return depth[stage]
        parents = [n for n in needs.get(stage, ()) if n in needs and n not in visiting]
        value = 1 + max((depth_of(p, visiting | {stage}) for p in parents), default=-1)
        depth[stage] = value
        return value

    for stage in needs:
        depth_of(stage, frozenset())
    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for stage in needs:
        column = depth[stage]
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes[stage] = Node(
            stage=stage,
            column=column,
            row=row,
            x=_MARGIN + column * (NODE_WIDTH + _COLUMN_GAP),
            y=_MARGIN + row * (NODE_HEIGHT + _ROW_GAP),
        )
    edges = []
    for stage, parents in needs.items():
        for parent in parents:
            if parent not in nodes:
                continue
            a, b = nodes[parent], nodes[stage]
            x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT // 2
            x2, y2 = b.x, b.y + NODE_HEIGHT // 2
            bend = max(20, (x2 - x1) // 2)
            edges.append(
                Edge(
                    source=parent,
                    target=stage,
                    path=f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}",
                )
            )
    columns = max(rows, default=0) + 1 if rows else 0
    tallest = max(rows.values(), default=0)
    return Layout(
        nodes=tuple(nodes.values()),
        edges=tuple(edges),
        width=2 * _MARGIN + max(0, columns * (NODE_WIDTH + _COLUMN_GAP) - _COLUMN_GAP),
        height=2 * _MARGIN + max(0, tallest * (NODE_HEIGHT + _ROW_GAP) - _ROW_GAP),
    )
