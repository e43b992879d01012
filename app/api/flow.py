"""A segment's condition tree as a diagram: Mermaid flowchart text and a
self-contained SVG. Pure functions over ``models.conditions``.

``and`` / ``or`` / ``not`` become branch nodes; every other condition is a
leaf labelled with its own formula text (``format_condition``).
``references`` and ``dependents`` say which segments a tree reads and which
definitions read a segment (any status: a draft that references a segment
depends on it too, unlike the engine's index, which holds live ones only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape

from pydantic import BaseModel

from models.conditions import AllOf, AnyOf, Condition, InSegment, Negation
from models.formula import format_condition
from models.segments import SegmentDefinition

__all__ = ["FlowNode", "dependents", "flow_tree", "mermaid", "references", "svg"]


@dataclass
class FlowNode:
    label: str
    kind: str  # "segment", "and", "or", "not", "leaf"
    children: list[FlowNode] = field(default_factory=list)


def flow_tree(segment_id: str, condition: Condition | None) -> FlowNode:
    root = FlowNode(f'segment "{segment_id}"', "segment")
    if condition is not None:
        root.children.append(_node(condition))
    else:
        root.children.append(FlowNode("explicit members (static)", "leaf"))
    return root


def _node(cond: Condition) -> FlowNode:
    if isinstance(cond, AllOf):
        return FlowNode("ALL of", "and", [_node(c) for c in cond.args])
    if isinstance(cond, AnyOf):
        return FlowNode("ANY of", "or", [_node(c) for c in cond.args])
    if isinstance(cond, Negation):
        return FlowNode("NOT", "not", [_node(cond.arg)])
    return FlowNode(format_condition(cond), "leaf")


def references(condition: Condition | None) -> list[str]:
    """The segment ids ``condition`` reads (``in segment``), sorted, once each."""
    found: set[str] = set()

    def visit(value: object) -> None:
        if isinstance(value, InSegment):
            found.add(value.segment_id)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                visit(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)

    visit(condition)
    return sorted(found)


def dependents(segment_id: str, definitions: Mapping[str, SegmentDefinition]) -> list[str]:
    """The ids of the definitions whose condition reads ``segment_id``, sorted."""
    return sorted(sid for sid, d in definitions.items()
                  if sid != segment_id and segment_id in references(d.condition))


def _walk(node: FlowNode, prefix: str = "n") -> list[tuple[str, FlowNode, str | None]]:
    """(id, node, parent id) in depth-first order."""
    out: list[tuple[str, FlowNode, str | None]] = []

    def visit(n: FlowNode, parent: str | None) -> None:
        node_id = f"{prefix}{len(out)}"
        out.append((node_id, n, parent))
        for child in n.children:
            visit(child, node_id)

    visit(node, None)
    return out


def _mermaid_label(text: str) -> str:
    # Mermaid quoted labels: double quotes must be written as #quot;
    return text.replace('"', "#quot;")


def mermaid(root: FlowNode) -> str:
    shapes = {"segment": ('(["', '"])'), "and": ('{"', '"}'), "or": ('{"', '"}'),
              "not": ('{{"', '"}}'), "leaf": ('["', '"]')}
    lines = ["flowchart TD"]
    for node_id, node, parent in _walk(root):
        left, right = shapes[node.kind]
        lines.append(f"    {node_id}{left}{_mermaid_label(node.label)}{right}")
        if parent is not None:
            lines.append(f"    {parent} --> {node_id}")
    return "\n".join(lines) + "\n"


_FILL = {"segment": "#dbeafe", "and": "#dcfce7", "or": "#fef9c3", "not": "#fee2e2",
         "leaf": "#f3f4f6"}
_CHAR_W, _BOX_H, _GAP_X, _GAP_Y, _PAD = 7.2, 30, 16, 50, 20


def svg(root: FlowNode) -> str:
    """A top-down tree: each subtree gets the width of its leaves."""
    widths: dict[int, float] = {}

    def box_w(n: FlowNode) -> float:
        return max(60.0, len(n.label) * _CHAR_W + 20)

    def measure(n: FlowNode) -> float:
        own = box_w(n)
        kids = sum(measure(c) for c in n.children) + _GAP_X * max(0, len(n.children) - 1)
        widths[id(n)] = max(own, kids)
        return widths[id(n)]

    total = measure(root)
    parts: list[str] = []
    depth_max = 0

    def place(n: FlowNode, x: float, depth: int) -> tuple[float, float]:
        nonlocal depth_max
        depth_max = max(depth_max, depth)
        span = widths[id(n)]
        cx = x + span / 2
        y = _PAD + depth * (_BOX_H + _GAP_Y)
        w = box_w(n)
        child_x = x + (span - (sum(widths[id(c)] for c in n.children)
                               + _GAP_X * max(0, len(n.children) - 1))) / 2
        for child in n.children:
            ccx, cy = place(child, child_x, depth + 1)
            parts.append(f'<line x1="{cx:.1f}" y1="{y + _BOX_H}" x2="{ccx:.1f}" y2="{cy}" '
                         'stroke="#6b7280"/>')
            child_x += widths[id(child)] + _GAP_X
        parts.append(
            f'<rect x="{cx - w / 2:.1f}" y="{y}" width="{w:.1f}" height="{_BOX_H}" rx="6" '
            f'fill="{_FILL[n.kind]}" stroke="#374151"/>'
            f'<text x="{cx:.1f}" y="{y + _BOX_H / 2 + 4}" text-anchor="middle" '
            f'font-family="monospace" font-size="12">{escape(n.label)}</text>')
        return cx, y

    place(root, _PAD, 0)
    width = total + 2 * _PAD
    height = _PAD * 2 + (depth_max + 1) * _BOX_H + depth_max * _GAP_Y
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">'
            + "".join(parts) + "</svg>\n")
