"""A synthetic, seeded workload: contacts with attributes, accounts, an
interaction mix (opens, clicks, visits, forms, purchases, returns) in time
order, and a segment mix drawn from every condition kind. Used by the replay
test, the benchmarks and ``segmentflow produce-demo --synthetic``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from models.inputs import AccountUpsert, ContactUpsert, Interaction, StaticEdit
from models.segments import SegmentDefinition

__all__ = ["NARROW", "WIDE", "Pools", "Workload", "segment_mix"]

CITIES = ["Paris", "Lyon", "London", "Berlin", "Madrid", "Rome", "Oslo"]
INDUSTRIES = ["Retail", "Banking", "Software", "Health", "Energy"]
CAMPAIGNS = ["spring", "summer", "autumn", "winter"]
CATEGORIES = ["shoes", "bags", "hats", "coats"]
DOMAINS = ["gmail.com", "example.org"]


@dataclass(frozen=True)
class Pools:
    """The values attributes and event properties are drawn from. ``NARROW``
    (the tests' twenty segments) keeps every value common; ``WIDE`` has the
    spread of a real marketing catalogue (hundreds of campaigns, dozens of
    cities and categories), so each segment matches a small share of events."""

    cities: tuple[str, ...]
    industries: tuple[str, ...]
    campaigns: tuple[str, ...]
    categories: tuple[str, ...]
    domains: tuple[str, ...]


NARROW = Pools(tuple(CITIES), tuple(INDUSTRIES), tuple(CAMPAIGNS), tuple(CATEGORIES),
               tuple(DOMAINS))
WIDE = Pools(
    cities=(*CITIES, "Lisbon", "Porto", "Dublin", "Vienna", "Prague", "Warsaw", "Krakow",
            "Munich", "Hamburg", "Milan", "Turin", "Naples", "Seville", "Valencia",
            "Barcelona", "Marseille", "Nice", "Lille", "Bordeaux", "Geneva", "Zurich",
            "Brussels", "Antwerp", "Amsterdam", "Rotterdam", "Copenhagen", "Stockholm",
            "Helsinki", "Tallinn", "Riga", "Athens", "Budapest", "Bucharest"),
    industries=(*INDUSTRIES, "Telecom", "Insurance", "Education", "Logistics", "Media",
                "Travel", "Automotive", "Pharma", "Construction", "Food", "Fashion",
                "Government", "Nonprofit", "Gaming", "Real estate"),
    campaigns=tuple(f"cmp-{i:03d}" for i in range(200)),
    categories=tuple(f"cat-{i:02d}" for i in range(40)),
    domains=("gmail.com", "example.org", "outlook.com", "yahoo.com", "proton.me",
             "icloud.com", "gmx.de", "orange.fr", "free.fr", "web.de"),
)
EVENT_MIX = [
    ("email_opened", 30), ("email_clicked", 12), ("page_visited", 30), ("form_submitted", 5),
    ("purchase", 12), ("return", 3), ("email_sent", 8),
]

# Twenty segments, every condition kind of the formula language.
SEGMENT_FORMULAS: list[tuple[str, str, str]] = [
    ("paris", "dynamic", 'city = "Paris"'),
    ("big-cities", "dynamic", 'city in ("Paris", "London", "Berlin")'),
    ("adults-30s", "dynamic", "age between 30 and 39"),
    ("has-phone", "dynamic", "phone exists"),
    ("no-phone", "dynamic", "phone not exists"),
    ("gmail", "dynamic", 'email contains "@gmail"'),
    ("retail-accounts", "dynamic", 'account.industry = "Retail"'),
    ("large-accounts", "dynamic", "account.employees >= 1000"),
    ("recent-signups", "dynamic", "signed_up_at within last 14 days"),
    ("spring-openers", "dynamic",
     'performed email_opened where campaign = "spring" at least 3 times within last 30 days'),
    ("visitors-7d", "dynamic", "performed page_visited at least 5 times within last 7 days"),
    ("no-purchase-30d", "dynamic",
     "performed email_opened ever and not performed purchase within last 30 days"),
    ("lapsed", "dynamic", "last performed purchase before 20 days ago"),
    ("spend-500", "dynamic", "sum amount of purchase within last 60 days >= 500"),
    ("aov-100", "dynamic", "avg amount of purchase ever > 100"),
    ("shoe-lovers", "dynamic", 'most frequent category of purchase ever = "shoes"'),
    ("multi-category", "dynamic", "count distinct category of purchase ever >= 3"),
    ("returners", "dynamic", "performed return at least 2 times within last 60 days"),
    ("vip-paris", "compound", 'in segment "spend-500" and in segment "paris"'),
    ("static-list", "static", ""),
]


def segment_mix(count: int = 20, status: str = "live") -> list[SegmentDefinition]:
    """``count`` segments cycling through the twenty kinds above (ids made unique)."""
    defs = []
    for i in range(count):
        base_id, kind, formula = SEGMENT_FORMULAS[i % len(SEGMENT_FORMULAS)]
        round_ = i // len(SEGMENT_FORMULAS)
        seg_id = base_id if round_ == 0 else f"{base_id}-{round_}"
        if kind == "compound" and round_:
            formula = formula.replace('"spend-500"', f'"spend-500-{round_}"').replace(
                '"paris"', f'"paris-{round_}"')
        fields = {"id": seg_id, "name": seg_id, "kind": kind, "status": status}
        if formula:
            fields["formula"] = formula
        defs.append(SegmentDefinition.model_validate(fields))
    return defs


@dataclass
class Workload:
    contacts: int = 1000
    accounts: int = 50
    events: int = 10_000
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    # Average gap between events; 10k events at 4 min span ~4 weeks, so
    # windows open and close during a replay.
    mean_gap: timedelta = timedelta(minutes=4)
    seed: int = 7
    pools: Pools = NARROW

    def contact_id(self, i: int) -> str:
        return f"c{i:06d}"

    def inputs(self) -> Iterator[AccountUpsert | ContactUpsert | Interaction | StaticEdit]:
        rng = random.Random(self.seed)
        now = self.start
        for a in range(self.accounts):
            yield AccountUpsert(account_id=f"a{a:04d}", attributes={
                "industry": rng.choice(self.pools.industries),
                "employees": rng.choice([10, 200, 1500, 9000]),
            })
        for i in range(self.contacts):
            yield self._contact(rng, i, now)
        event_types = [t for t, w in EVENT_MIX for _ in range(w)]
        for n in range(self.events):
            now += timedelta(seconds=rng.expovariate(1 / self.mean_gap.total_seconds()))
            roll = rng.random()
            contact = self.contact_id(rng.randrange(self.contacts))
            if roll < 0.05:  # profile change
                yield self._contact(rng, int(contact[1:]), now)
            elif roll < 0.06:
                yield StaticEdit(segment_id="static-list", contact_id=contact,
                                 op=rng.choice(["add", "remove"]), at=now)
            else:
                kind = rng.choice(event_types)
                props: dict[str, object] = {"campaign": rng.choice(self.pools.campaigns)}
                if kind in ("purchase", "return"):
                    props = {"amount": round(rng.uniform(5, 400), 2),
                             "category": rng.choice(self.pools.categories)}
                yield Interaction(event_id=f"e{n}", contact_id=contact, type=kind,  # type: ignore[arg-type]
                                  occurred_at=now, properties=props)

    def _contact(self, rng: random.Random, i: int, now: datetime) -> ContactUpsert:
        attributes: dict[str, object] = {
            "city": rng.choice(self.pools.cities),
            "age": rng.randrange(18, 80),
            "email": f"user{i}@{rng.choice(self.pools.domains)}",
            "signed_up_at": (now - timedelta(days=rng.randrange(0, 30))).isoformat(),
        }
        if rng.random() < 0.5:
            attributes["phone"] = f"+33{rng.randrange(10**8, 10**9)}"
        else:
            attributes["phone"] = None  # merge mode: removes it
        return ContactUpsert(
            contact_id=self.contact_id(i), attributes=attributes,
            account_id=f"a{rng.randrange(self.accounts):04d}", updated_at=now,
        )
