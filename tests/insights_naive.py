"""The insights series counted the naive way (tests only): the consumers'
documented filter over a change stream in log order, then per hour (or day)
the kept changes that changed membership, and the size at each bucket's end
as the sum of everything counted before it ends."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from app.insights.series import hour_of


def naive(stream: list[dict[str, Any]]) -> tuple[dict[tuple[str, int], dict[str, Any]],
                                                 dict[str, int]]:
    """Per (segment, hour): joins, leaves, causes of the kept changes that
    changed membership; per segment: the final size."""
    last: dict[tuple[str, str], int] = {}
    member: dict[tuple[str, str], bool] = {}
    counted: list[tuple[str, int, bool, str]] = []
    for c in stream:
        pair = (c["segment_id"], c["contact_id"])
        if c["sequence"] <= last.get(pair, 0):
            continue  # a replay
        joined = c["change"] == "joined"
        if joined != member.get(pair, False):
            counted.append((c["segment_id"], hour_of(datetime.fromisoformat(c["at"])),
                            joined, c["cause"]["kind"]))
        member[pair] = joined
        last[pair] = c["sequence"]
        if c["cause"]["kind"] == "erasure":  # the contact may come back from 1
            del last[pair]
            member[pair] = False
    hours: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"joins": 0, "leaves": 0, "causes": defaultdict(lambda: [0, 0])})
    for segment, hour, joined, cause in counted:
        entry = hours[(segment, hour)]
        entry["joins" if joined else "leaves"] += 1
        entry["causes"][cause][0 if joined else 1] += 1
    sizes: dict[str, int] = defaultdict(int)
    for segment, _, joined, _ in counted:
        sizes[segment] += 1 if joined else -1
    return hours, sizes


def naive_points(stream: list[dict[str, Any]], segment: str, first: int, last: int,
                 step: str) -> list[dict[str, Any]]:
    hours, _ = naive(stream)
    width = 24 if step == "day" else 1
    start, stop = first - first % width, last - last % width
    out = []
    for b in range(start, stop + 1, width):
        joins = leaves = 0
        causes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for h in range(b, b + width):
            entry = hours.get((segment, h))
            if entry:
                joins += entry["joins"]
                leaves += entry["leaves"]
                for kind, (j, left) in entry["causes"].items():
                    causes[kind][0] += j
                    causes[kind][1] += left
        # size at the bucket's end: every counted change before it ends
        size = sum(e["joins"] - e["leaves"] for (s, h), e in hours.items()
                   if s == segment and h < b + width)
        out.append({"start": (datetime.fromtimestamp(b * 3600, UTC)).isoformat()
                    .replace("+00:00", "Z"),
                    "joins": joins, "leaves": leaves, "size": size,
                    "causes": {k: {"joined": j, "left": left}
                               for k, (j, left) in sorted(causes.items()) if j or left}})
    return out
