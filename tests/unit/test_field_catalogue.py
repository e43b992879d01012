"""The field catalogue (runtime/fields.py): what inputs carried, and the
warnings a formula reading something never seen gets."""

from __future__ import annotations

from datetime import UTC, datetime

from engine import Catalog
from models.segments import SegmentDefinition
from runtime.driver import Driver
from runtime.fields import MAX_FIELDS, FieldCatalogue, field_warnings, merge_catalogues
from runtime.processor import ProcessorConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _deps(formula: str):  # type: ignore[no-untyped-def]
    definition = SegmentDefinition.model_validate({"id": "s", "name": "s", "formula": formula})
    return Catalog.empty().put(definition).compiled("s").deps


def test_types_counts_and_dotted_paths() -> None:
    cat = FieldCatalogue()
    cat.observe("contact", {"city": "Paris", "age": 30, "address": {"zip": "75001"},
                            "gone": None})
    cat.observe("contact", {"city": "Lyon", "age": 31.5})
    assert cat.fields["contact"] == {
        "city": {"string": 2}, "age": {"integer": 1, "number": 1},
        "address": {"object": 1}, "address.zip": {"string": 1}}  # a null says nothing


def test_the_catalogue_is_bounded() -> None:
    cat = FieldCatalogue()
    cat.observe("contact", {f"f{i}": 1 for i in range(MAX_FIELDS + 10)})
    assert sum(len(v) for v in cat.fields.values()) == MAX_FIELDS and cat.truncated


def test_warnings_name_unseen_fields_with_the_closest_seen_ones() -> None:
    seen = {"fields": {"contact": {"city": {"string": 3}, "country": {"string": 3}},
                       "event:purchase": {"amount": {"number": 2}},
                       "event:email_opened": {}}}
    warnings = field_warnings(seen, _deps(
        'citty = "Paris" and sum amout of purchase within last 3 days > 1 '
        "and performed email_open ever"))
    assert warnings == [
        "contact attribute 'citty' has not been seen on any input yet; did you mean 'city'?",
        "no 'email_open' event has been seen yet; did you mean 'email_opened'?",
        "property of 'purchase' 'amout' has not been seen on any input yet; "
        "did you mean 'amount'?",
    ]
    assert field_warnings(seen, _deps('city = "Paris" and performed purchase ever')) == []
    # a new system (nothing seen) gets no warning at all
    assert field_warnings({"fields": {}}, _deps('citty = "Paris"')) == []


def test_the_processor_keeps_it_across_restarts_and_merges_add_counts() -> None:
    config = ProcessorConfig(partitions=2, clock="event")
    driver = Driver(2, config=config, store="rocksdb", wall=lambda: T0)
    try:
        for n in range(4):
            driver.send("contact", {"contact_id": f"c{n}", "attributes": {"city": "Paris"},
                                    "updated_at": T0.isoformat()})
            driver.send("interaction", {"event_id": f"e{n}", "contact_id": f"c{n}",
                                        "type": "purchase", "occurred_at": T0.isoformat(),
                                        "properties": {"amount": 2}})
        driver.send("account", {"account_id": "a1", "attributes": {"size": 5}})
        driver.run()
        driver.restart(keep_local=False)  # restored from the changelog
        merged = merge_catalogues(
            {"fields": p.fields.fields, "truncated": p.fields.truncated}
            for p in driver.processors.values())
        assert merged["fields"] == {"contact": {"city": {"string": 4}},
                                    "event:purchase": {"amount": {"integer": 4}},
                                    "account": {"size": {"integer": 2}}}  # every partition
    finally:
        driver.close()
