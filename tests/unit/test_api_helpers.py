"""Pure helpers of the HTTP API and CLI: errors, auth, cursors, flow
diagrams, file loading, tables, metric labels."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import click
import pytest
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from agents.state_reads import decode_cursor, encode_cursor
from app.api.errors import ApiError, validation_error
from app.api.flow import dependents, flow_tree, mermaid, references, svg
from app.api.guard import authorize, int_param
from app.cli_api import load_documents, table
from app.metrics import dead_letter_reason
from app.settings import Settings
from models.formula import parse_formula
from models.segments import SegmentDefinition


def request(headers: dict[str, str] | None = None, query: str = ""):
    return make_mocked_request("GET", "/segments" + query, headers=headers or {})


def test_validation_error_names_field_line_and_column() -> None:
    with pytest.raises(ValidationError) as caught:
        SegmentDefinition(id="x", name="x", formula='city = = "Paris"')
    err = validation_error(caught.value)
    assert err.status == 422 and err.code == "invalid"
    assert err.message.startswith("invalid segment definition at formula: line 1, column 8")
    assert err.details[0]["loc"] == "formula"
    assert not err.details[0]["message"].startswith("Value error")


def test_validation_error_paths_into_nested_bodies() -> None:
    with pytest.raises(ValidationError) as caught:
        SegmentDefinition.model_validate({"id": "x", "name": "x", "include": ["a", ""],
                                          "kind": "static"})
    assert validation_error(caught.value).details[0]["loc"] == "include[1]"


R = {"Authorization": "Bearer r3"}
W = {"Authorization": "Bearer s3"}


@pytest.mark.parametrize(("settings", "headers", "write", "outcome"), [
    (Settings(api_token="s3"), {}, False, 401),                        # reads need a token
    (Settings(api_token="s3"), W, False, None),                        # the write token reads
    (Settings(api_token="s3"), {}, True, 401),                         # no header
    (Settings(api_token="s3"), {"Authorization": "Bearer nope"}, True, 403),
    (Settings(api_token="s3"), {"Authorization": "Bearer nope"}, False, 403),
    (Settings(api_token="s3"), {"Authorization": "Basic s3"}, True, 401),
    (Settings(api_token="s3"), W, True, None),
    (Settings(api_token="s3"), {"Authorization": "bearer  s3 "}, True, None),
    (Settings(), {"Authorization": "Bearer anything"}, True, 401),     # no token: refused
    (Settings(), {}, False, None),                                     # no token: reads open
    (Settings(api_open_writes=True), {}, True, None),                  # explicit demo mode
    (Settings(api_token="s3", api_read_token="r3"), R, False, None),   # read token reads
    (Settings(api_token="s3", api_read_token="r3"), R, True, 403),     # ... but never writes
    (Settings(api_token="s3", api_read_token="r3"), {}, False, 401),
    (Settings(api_token="s3", api_read_token="r3"), W, False, None),
    (Settings(api_read_token="r3"), {}, False, 401),                   # a read token alone
    (Settings(api_read_token="r3"), R, False, None),
    (Settings(api_read_token="r3"), R, True, 401),                     # writes disabled
    (Settings(api_token="s3", api_open_reads=True), {}, False, None),  # explicit opt-out
])
def test_authorize(settings, headers, write, outcome) -> None:
    if outcome is None:
        authorize(request(headers), settings, write=write)
        return
    with pytest.raises(ApiError) as caught:
        authorize(request(headers), settings, write=write)
    assert caught.value.status == outcome
    if outcome == 401:
        assert caught.value.headers == {"WWW-Authenticate": 'Bearer realm="segmentflow"'}


def test_tokens_are_secret_in_settings() -> None:
    settings = Settings(api_token="s3", api_read_token="r3")
    assert "s3" not in repr(settings) and "r3" not in repr(settings)
    assert "s3" not in str(settings.model_dump())


def test_no_token_message_says_how_to_enable_writes() -> None:
    with pytest.raises(ApiError) as caught:
        authorize(request(), Settings(), write=True)
    assert "SEGMENTFLOW_API_TOKEN" in caught.value.message
    assert "SEGMENTFLOW_API_OPEN_WRITES" in caught.value.message


def test_int_param_bounds() -> None:
    assert int_param(request(query="?limit=5"), "limit", 100, 1, 1000) == 5
    assert int_param(request(), "limit", 100, 1, 1000) == 100
    for bad in ("0", "1001", "x", "2.5"):
        with pytest.raises(ApiError) as caught:
            int_param(request(query=f"?limit={bad}"), "limit", 100, 1, 1000)
        assert caught.value.code == "invalid_parameter"


def test_cursor_round_trip_and_refusal() -> None:
    for partition, after in [(0, ""), (7, "c1"), (3, "ünï/côde \"q\"")]:
        assert decode_cursor(encode_cursor(partition, after)) == (partition, after)
    for bad in ("zzz", "", "WzEsMl0", encode_cursor(1, "x")[:-3] + "!!!"):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_flow_mermaid_and_svg_follow_the_tree() -> None:
    cond = parse_formula('(city = "Paris" or city = "Lyon") and not age < 18')
    tree = flow_tree("fr", cond)
    text = mermaid(tree)
    assert text.splitlines() == [
        "flowchart TD",
        '    n0(["segment #quot;fr#quot;"])',
        '    n1{"ALL of"}',
        "    n0 --> n1",
        '    n2{"ANY of"}',
        "    n1 --> n2",
        '    n3["city = #quot;Paris#quot;"]',
        "    n2 --> n3",
        '    n4["city = #quot;Lyon#quot;"]',
        "    n2 --> n4",
        '    n5{{"NOT"}}',
        "    n1 --> n5",
        '    n6["age < 18"]',
        "    n5 --> n6",
    ]
    root = ET.fromstring(svg(tree))
    ns = "{http://www.w3.org/2000/svg}"
    labels = [t.text for t in root.iter(ns + "text")]
    assert sorted(labels) == sorted(['segment "fr"', "ALL of", "ANY of", 'city = "Paris"',
                                     'city = "Lyon"', "NOT", "age < 18"])
    assert len(list(root.iter(ns + "line"))) == 6  # one edge per non-root node
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0


def test_flow_of_a_static_segment() -> None:
    assert "explicit members" in mermaid(flow_tree("s", None))


def test_load_documents_accepts_every_shape(tmp_path) -> None:
    multi = tmp_path / "a.yaml"
    multi.write_text("id: a\nformula: x = 1\n---\nid: b\nkind: static\n")
    assert [d["id"] for d in load_documents(str(multi))] == ["a", "b"]
    listed = tmp_path / "b.json"
    listed.write_text('[{"id": "a"}, {"id": "b"}]')
    assert [d["id"] for d in load_documents(str(listed))] == ["a", "b"]
    wrapped = tmp_path / "c.yaml"
    wrapped.write_text("segments:\n  - id: a\n  - id: b\n")
    assert [d["id"] for d in load_documents(str(wrapped))] == ["a", "b"]
    for text, message in [("name: no id\n", "needs an 'id'"), ("", "no segment definitions"),
                          ("id: [unclosed\n", "not valid YAML")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(click.ClickException, match=message):
            load_documents(str(bad))


def test_table_aligns_columns() -> None:
    out = table([{"id": "a", "n": 1}, {"id": "longer", "n": None}], ["id", "n"])
    assert out.splitlines() == ["ID      N", "a       1", "longer"]


@pytest.mark.parametrize(("reason", "label"), [
    ("empty message (null value)", "empty"),
    ("input of 2000000 bytes exceeds 1048576", "too_large"),
    ("segment refused: reference cycle a -> b -> a", "segment_refused"),
    ("evaluation failed: KeyError: 'x'", "evaluation_failed"),
    ("contact_id: Input should be a valid string", "invalid"),
])
def test_dead_letter_reasons_are_bounded_labels(reason, label) -> None:
    assert dead_letter_reason(reason) == label


def test_flow_references_and_dependents() -> None:
    both = SegmentDefinition(id="both", name="Both", kind="compound",
                             formula='in segment "lyon" and not (in segment "adults" or '
                                     'in segment "lyon")')
    vip = SegmentDefinition(id="vip", name="Vip", status="draft",
                            formula='in segment "both" and age > 50')
    lyon = SegmentDefinition(id="lyon", name="Lyon", formula='city = "Lyon"')
    assert references(both.condition) == ["adults", "lyon"]
    assert references(lyon.condition) == [] and references(None) == []
    known = {"both": both, "vip": vip, "lyon": lyon}
    assert dependents("both", known) == ["vip"]
    assert dependents("lyon", known) == ["both"]
    assert dependents("adults", known) == ["both"] and dependents("vip", known) == []
