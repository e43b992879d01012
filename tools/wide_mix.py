"""A realistic segment catalogue of any size, for benchmarks.

``segment_mix`` (tools/workload.py) cycles twenty fixed formulas: at 1,000
segments it holds fifty copies of each, so every event changes hundreds of
memberships, which no real catalogue does. Here every segment is one of
twenty templates (every condition kind: profile, firmographic, behavioural
with ``where`` / counts / windows, aggregates, recency, compound, static)
with its own parameters drawn from ``WIDE`` pools: a campaign out of 200, a
city out of 40, a category out of 40, its own thresholds and windows. An
event then touches the few segments about its campaign or category plus the
unfiltered behavioural ones, as in a real marketing catalogue.

Each segment keeps its template name and parameters, so the batch
recompute (bench/batch_recompute.py) can translate the same catalogue to SQL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from models.segments import SegmentDefinition
from tools.workload import WIDE, Pools

__all__ = ["TEMPLATES", "MixSegment", "wide_segment_mix"]


def _city(rng: random.Random, p: Pools) -> dict[str, Any]:
    return {"city": rng.choice(p.cities)}


def _cities(rng: random.Random, p: Pools) -> dict[str, Any]:
    return {"cities": tuple(rng.sample(p.cities, 3))}


def _ages(rng: random.Random, p: Pools) -> dict[str, Any]:
    lo = rng.randrange(18, 70)
    return {"lo": lo, "hi": lo + rng.randrange(4, 15), "city": rng.choice(p.cities)}


def _window(rng: random.Random, p: Pools) -> dict[str, Any]:
    return {"days": rng.choice([3, 7, 14, 30, 60]), "city": rng.choice(p.cities)}


def _campaign(rng: random.Random, p: Pools) -> dict[str, Any]:
    return {"campaign": rng.choice(p.campaigns), "times": rng.randrange(1, 4),
            "days": rng.choice([7, 14, 30, 60])}


def _category(rng: random.Random, p: Pools) -> dict[str, Any]:
    return {"category": rng.choice(p.categories), "times": rng.randrange(1, 3),
            "days": rng.choice([14, 30, 60]), "amount": rng.choice([100, 200, 300, 500])}


def _threshold(rng: random.Random, p: Pools) -> dict[str, Any]:
    return {"amount": rng.choice([50, 100, 150, 200, 250]), "times": rng.randrange(2, 5),
            "days": rng.choice([3, 7, 14]), "campaign": rng.choice(p.campaigns),
            "category": rng.choice(p.categories)}


# name -> (kind, formula template, parameter drawer)
TEMPLATES: dict[str, tuple[str, str, Any]] = {
    "city": ("dynamic", 'city = "{city}"', _city),
    "cities": ("dynamic", 'city in ("{cities[0]}", "{cities[1]}", "{cities[2]}")', _cities),
    "age": ("dynamic", 'age between {lo} and {hi} and city = "{city}"', _ages),
    "phone-city": ("dynamic", 'phone exists and city = "{city}"', _city),
    "no-phone-city": ("dynamic", 'phone not exists and city = "{city}"', _city),
    "email-domain": ("dynamic", 'email contains "@{domain}" and age >= {age}',
                     lambda rng, p: {"domain": rng.choice(p.domains),
                                     "age": rng.randrange(20, 70)}),
    "industry": ("dynamic", 'account.industry = "{industry}"',
                 lambda rng, p: {"industry": rng.choice(p.industries)}),
    "employees": ("dynamic", 'account.employees >= {employees} and account.industry = "{industry}"',
                  lambda rng, p: {"employees": rng.choice([100, 1000, 5000]),
                                  "industry": rng.choice(p.industries)}),
    "signed-up": ("dynamic", 'signed_up_at within last {days} days and city = "{city}"',
                  _window),
    "openers": ("dynamic", 'performed email_opened where campaign = "{campaign}" '
                "at least {times} times within last {days} days", _campaign),
    "clickers": ("dynamic", 'performed email_clicked where campaign = "{campaign}" '
                 "within last {days} days", _campaign),
    "visitors": ("dynamic", 'performed page_visited where campaign = "{campaign}" '
                 "at least {times} times within last {days} days", _threshold),
    "opened-not-bought": ("dynamic", 'performed email_opened where campaign = "{campaign}" '
                          "ever and not performed purchase within last {days} days",
                          _campaign),
    "lapsed": ("dynamic", 'last performed purchase where category = "{category}" '
               "before {days} days ago", _category),
    "spend": ("dynamic", 'sum amount of purchase where category = "{category}" '
              "within last {days} days >= {amount}", _category),
    "aov": ("dynamic", 'avg amount of purchase where category = "{category}" ever > {amount}',
            _threshold),
    "favourite": ("dynamic", 'most frequent category of purchase ever = "{category}"',
                  _category),
    "returners": ("dynamic", 'performed return where category = "{category}" '
                  "at least {times} times within last {days} days", _category),
    "compound": ("compound", 'in segment "{a}" and in segment "{b}"', None),
    "static": ("static", "", None),
}
_ORDER = list(TEMPLATES)


@dataclass(frozen=True)
class MixSegment:
    definition: SegmentDefinition
    template: str
    params: dict[str, Any]


def wide_segment_mix(count: int, seed: int = 11, pools: Pools = WIDE,
                     status: str = "live") -> list[MixSegment]:
    """``count`` segments, template ``i % 20`` for the i-th, parameters drawn
    from ``pools``. Compound segments reference two earlier dynamic segments
    (drawn at random, so the catalogue has a real dependency graph)."""
    rng = random.Random(seed)
    out: list[MixSegment] = []
    dynamic_ids: list[str] = []
    for i in range(count):
        name = _ORDER[i % len(_ORDER)]
        kind, template, draw = TEMPLATES[name]
        seg_id = f"{name}-{i:05d}"
        if name == "static":
            seg_id = "static-list" if i < len(_ORDER) else seg_id
            params: dict[str, Any] = {}
        elif name == "compound":
            a, b = rng.sample(dynamic_ids, 2)
            params = {"a": a, "b": b}
        else:
            params = draw(rng, pools)
        fields: dict[str, Any] = {"id": seg_id, "name": seg_id, "kind": kind, "status": status}
        if template:
            fields["formula"] = template.format(**params)
        out.append(MixSegment(SegmentDefinition.model_validate(fields), name, params))
        if kind == "dynamic":
            dynamic_ids.append(seg_id)
    return out
