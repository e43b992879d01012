"""The console's designer, the rest of issue #15, in headless Chromium
against a worker on the real broker: a segment built in the structured
condition builder (the formula text written by the server, and text typed
there coming back as builder rows), the impact of an edit to a live segment
(who joins, who leaves) confirmed before it applies, the version history,
and the list's joins / leaves of the last hour and day. Plus the API
behind the last two: GET /segments/{id}/versions and GET /insights/recent,
checked against the OpenAPI document. Screenshots: docs/console/ when
SEGMENTFLOW_UPDATE_SCREENSHOTS=1 (tests/integration/browser.py)."""

from __future__ import annotations

import aiohttp
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from app.client import Publisher
from models.inputs import ContactUpsert
from tests.integration.api_helpers import AUTH, READ_AUTH, READ_TOKEN, TOKEN, Api, eventually
from tests.integration.browser import (
    DESKTOP,
    OVERFLOW,
    PHONE,
    UNLABELLED,
    attribute_is,
    css,
    css_all,
    screenshot_dir,
    set_viewport,
    start_chromium,
    wait_for,
)
from tests.integration.caught_up import wait_caught_up
from tests.integration.helpers import wait_segment_applied

pytestmark = pytest.mark.kafka

SEGMENT = "paris-adults"
BUILT = 'city = "Paris" and (age >= 18 or performed purchase at least 2 times within last 30 days)'
FORMULA = 'city = "Paris" and age >= 18'
EDITED = 'city = "Paris" and age >= 35 or city = "Lyon" and age >= 50'
PEOPLE = {"c0": ("Paris", 30), "c1": ("Paris", 41), "c2": ("Paris", 15),
          "c3": ("Lyon", 52), "c4": ("Lyon", 23)}


@pytest.fixture
def settings(settings):
    settings.api_token = TOKEN
    settings.api_read_token = READ_TOKEN
    return settings


@pytest.fixture
def browser(worker):
    driver = start_chromium()
    yield driver
    driver.quit()


def person(contact: str, city: str, age: int) -> ContactUpsert:
    return ContactUpsert(contact_id=contact, attributes={"city": city, "age": age},
                         mode="replace")


def check_page(driver, shots, name: str) -> None:
    """Labelled fields, no sideways scrolling, and a screenshot."""
    assert driver.execute_script(UNLABELLED) == [], name
    assert driver.execute_script(OVERFLOW) <= 0, name
    driver.save_screenshot(str(shots / f"{name}.png"))


def go(driver, url_hash: str, ready_selector: str) -> None:
    driver.execute_script("location.hash = arguments[0]", url_hash)
    wait_for(driver, lambda d: css_all(d, ready_selector), f"page {url_hash}")


def formula_is(text: str):
    return lambda d: css(d, "#formula").get_attribute("value") == text


def builder_rows(driver) -> list[tuple[str, str, str, str]]:
    """(path, node, kind, negated) of every condition row of the builder."""
    return [tuple(row) for row in driver.execute_script(
        "return [...document.querySelectorAll('#builder-root .b-leaf')]"
        ".map(r => [r.dataset.path, r.dataset.node, r.dataset.kind, r.dataset.neg])")]


def type_into(driver, element_id: str, text: str) -> None:
    field = wait_for(driver, lambda d: css_all(d, f"#{element_id}"), element_id)[0]
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text)


def choose(driver, element_id: str, value: str) -> None:
    Select(wait_for(driver, lambda d: css_all(d, f"#{element_id}"), element_id)[0]) \
        .select_by_value(value)


def version_rows(driver) -> list[dict[str, str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#versions-rows tr')].map(r => "
        "({version: r.dataset.version, op: r.dataset.op, inForce: r.dataset.inForce, "
        "changed: r.dataset.changed}))")


async def test_designer_builder_impact_versions(settings, worker, browser, tmp_path):
    shots = screenshot_dir(tmp_path)
    driver = browser
    async with Publisher(settings) as pub, aiohttp.ClientSession(headers=AUTH) as http:
        for contact, (city, age) in PEOPLE.items():
            await pub.send(person(contact, city, age))
        async with http.put(f"{worker.url}/segments/lyon", json={
                "name": "Lyon", "formula": 'city = "Lyon"', "status": "live"}) as response:
            assert response.status == 202, await response.text()
        await pub.flush()
        await wait_caught_up(settings)
        await wait_segment_applied(worker, "lyon", 1, settings.partitions)

        driver.get(f"{worker.url}/ui#/new")
        wait_for(driver, lambda d: css(d, "#token-dialog").is_displayed(), "token dialog")
        css(driver, "#token-input").send_keys(TOKEN, Keys.ENTER)
        wait_for(driver, lambda d: css_all(d, "#builder-root .b-root"), "builder")
        css(driver, "#seg-id").send_keys(SEGMENT)
        css(driver, "#seg-name").send_keys("Adults in Paris")

        # Build BUILT in the builder, by keyboard: the server writes the text.
        # The field catalogue offers the attributes seen.
        wait_for(driver, lambda d: {"city", "age"} <= set(d.execute_script(
            "return [...document.querySelectorAll('#b-contact-fields option')]"
            ".map(o => o.value)")), "attributes offered")
        css(driver, "#b-root-add").send_keys(Keys.ENTER)
        type_into(driver, "b-0-field", "city")
        # Rows repeat: each control's name says which condition it is in.
        assert css(driver, "#b-0-field").get_attribute("aria-label") == "Condition 1: Attribute"
        type_into(driver, "b-0-value", "Paris")
        wait_for(driver, formula_is('city = "Paris"'), "first condition as text")
        css(driver, "#b-root-add-group").send_keys(Keys.ENTER)
        assert Select(css(driver, "#b-1-op")).first_selected_option.get_attribute("value") \
            == "or"
        type_into(driver, "b-1-0-field", "age")
        # The value's type follows the type the catalogue saw for the field.
        wait_for(driver, attribute_is("#b-1-0-value-type", "value", "number"), "number type")
        choose(driver, "b-1-0-op", ">=")
        type_into(driver, "b-1-0-value", "18")
        css(driver, "#b-1-add").send_keys(Keys.ENTER)
        choose(driver, "b-1-1-kind", "performed")
        assert "purchase" in [o.get_attribute("value")
                              for o in css_all(driver, "#b-1-1-event option")]
        choose(driver, "b-1-1-event", "purchase")
        type_into(driver, "b-1-1-count", "2")
        wait_for(driver, formula_is(BUILT), "the built formula, written by the server")
        wait_for(driver, attribute_is("#formula-status", "data-valid", "true"), "valid")
        assert css(driver, "#builder").get_attribute("data-state") == "ok"
        check_page(driver, shots, "designer-builder")

        # Text typed in the editor comes back as builder rows.
        formula = css(driver, "#formula")
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys('not in segment "lyon" and account.tier = "gold" and '
                          "sum amount of purchase where currency = \"EUR\" ever >= 100")
        wait_for(driver, lambda d: builder_rows(d) == [
            ("1", "in_segment", "in_segment", "true"),
            ("2", "compare", "account", "false"),
            ("3", "aggregate", "aggregate", "false"),
            ("3.w.1", "compare", "property", "false")], "rows from the text")
        assert Select(css(driver, "#b-0-segment")).first_selected_option.text == "lyon"
        assert css(driver, "#b-2-window").get_attribute("value") == "ever"
        # The where clause offers the properties of its event type.
        assert css(driver, "#b-2-w-0-field").get_attribute("list") == "b-props-purchase"
        assert css(driver, "#builder-tz").text == "UTC"
        # …and an edit there rewrites the text: the window, then "not" off.
        choose(driver, "b-2-window", "relative")
        css(driver, "#b-0-not").send_keys(Keys.SPACE)
        wait_for(driver, formula_is(
            'in segment "lyon" and account.tier = "gold" and sum amount of purchase '
            'where currency = "EUR" within last 30 days >= 100'), "edited in the builder")
        # An unfinished condition is said, and the text is left as it was.
        css(driver, "#b-root-add").send_keys(Keys.ENTER)
        wait_for(driver, attribute_is("#builder", "data-state", "refused"), "refused")
        assert "cannot be written" in css(driver, "#builder-status").text
        css(driver, "[aria-label='Remove condition 4']").send_keys(Keys.ENTER)
        # By keyboard: focus stays in the group, on its "+ Condition".
        wait_for(driver, lambda d: d.switch_to.active_element.get_attribute("id")
                 == "b-root-add", "focus after removing")

        # Consent and split buckets have their rows too.
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys('consented to transactional sms or bucket("spring") < 1000')
        wait_for(driver, lambda d: builder_rows(d) == [
            ("1", "consented", "consented", "false"), ("2", "bucket", "bucket", "false")],
            "consent and bucket rows")
        assert css(driver, "#b-0-purpose").get_attribute("value") == "transactional"
        type_into(driver, "b-1-bucket", "500")
        wait_for(driver, formula_is('consented to transactional sms or bucket("spring") < 500'),
                 "bucket edited in the builder")

        # A group inside a where clause: its conditions are event properties too.
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys('performed purchase where (currency = "EUR" and '
                          "(quantity > 1 or quantity < 0)) ever")
        wait_for(driver, lambda d: builder_rows(d) == [
            ("1", "performed", "performed", "false"),
            ("1.w.1", "compare", "property", "false"),
            ("1.w.2.1", "compare", "property", "false"),
            ("1.w.2.2", "compare", "property", "false")], "nested where rows")
        assert css(driver, "#b-0-w-1-1-field").get_attribute("list") == "b-props-purchase"

        # The formula of the test: typed, then saved as draft and sent live.
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys(FORMULA)
        wait_for(driver, lambda d: [r[:2] for r in builder_rows(d)]
                 == [("1", "compare"), ("2", "compare")], "builder follows")
        css(driver, "#save-draft").click()
        wait_for(driver, attribute_is("#seg-state", "data-applied", "true"), "draft applied")
        css(driver, "#go-live").click()
        wait_for(driver, lambda d: css(d, "#seg-state").get_attribute("data-status") == "live"
                 and css(d, "#seg-state").get_attribute("data-golive") == "true", "live")

        # An edit to a live segment: who joins (c3) and who leaves (c0), confirmed.
        type_into(driver, "formula", EDITED)
        wait_for(driver, lambda d: css(d, "#apply").is_enabled(), "apply enabled")
        css(driver, "#apply").click()
        wait_for(driver, lambda d: css(d, "#confirm-dialog").is_displayed(), "impact")
        summary = css(driver, "#impact-summary")
        assert (summary.get_attribute("data-join"), summary.get_attribute("data-leave"),
                summary.get_attribute("data-size")) == ("1", "1", "2")
        assert css(driver, "#impact-join").text == "+1 would join: c3"
        assert css(driver, "#impact-leave").text == "\u22121 would leave: c0"
        assert "Now: 2 members" in summary.text
        check_page(driver, shots, "designer-impact")
        css(driver, "#confirm-ok").click()
        wait_for(driver, lambda d: css(d, "#seg-state").get_attribute("data-version") == "3"
                 and css(d, "#seg-state").get_attribute("data-applied") == "true"
                 and css(d, "#seg-state").get_attribute("data-golive") == "true", "applied")
        await wait_segment_applied(worker, SEGMENT, 3, settings.partitions)
        # The builder follows the text applied (even when saved before its check ran).
        wait_for(driver, lambda d: [r[0] for r in builder_rows(d)] == ["1.1", "1.2", "2.1", "2.2"]
                 and css(d, "#formula-status").get_attribute("data-valid") == "true",
                 "builder in step with the text applied")
        async with http.get(f"{worker.url}/segments/{SEGMENT}/members") as response:
            assert sorted((await response.json())["members"]) == ["c1", "c3"]

        # Version history: newest first, what changed, the one in force.
        wait_for(driver, lambda d: [r["version"] for r in version_rows(d)] == ["3", "2", "1"],
                 "three versions")
        rows = version_rows(driver)
        assert [r["inForce"] for r in rows] == ["true", "false", "false"]
        assert rows[0]["changed"] == "formula" and rows[1]["changed"] == "status"
        assert rows[2]["changed"] == "op"
        changes = css(driver, "#versions-rows tr[data-version='3'] li").text
        assert FORMULA in changes and EDITED in changes
        assert "status: draft → live" in css(driver, "#versions-rows tr[data-version='2']").text
        driver.execute_script("document.querySelector('#versions').scrollIntoView()")
        check_page(driver, shots, "designer-versions")
        # Back to version 2's formula: into the editor, its impact shown (not applied here).
        assert not css_all(driver, "#restore-3")  # the version in force
        css(driver, "#restore-2").send_keys(Keys.ENTER)
        wait_for(driver, formula_is(FORMULA), "version 2's formula in the editor")
        wait_for(driver, lambda d: css(d, "#apply").is_enabled(), "apply enabled")
        css(driver, "#apply").click()
        wait_for(driver, lambda d: css(d, "#confirm-dialog").is_displayed(), "impact of v2")
        assert css(driver, "#impact-join").text == "+1 would join: c0"
        assert css(driver, "#impact-leave").text == "\u22121 would leave: c3"
        driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait_for(driver, lambda d: not css(d, "#confirm-dialog").is_displayed(), "cancelled")
        assert css(driver, "#seg-state").get_attribute("data-version") == "3"

        # The list: joins and leaves of the last hour and day (the series).
        await wait_caught_up(settings)

        async def recent() -> dict:
            async with http.get(f"{worker.url}/insights/recent") as response:
                assert response.status == 200
                return {s["segment_id"]: s for s in (await response.json())["segments"]}

        # c0, c1 joined at go-live; then c3 joined and c0 left.
        mine = (await eventually(recent, lambda r: r[SEGMENT]["joins_day"] == 3))[SEGMENT]
        assert mine["leaves_day"] == 1
        go(driver, "#/segments", "#segment-list[data-activity-from]")
        day = css(driver, f"tr[data-segment='{SEGMENT}'] .day-activity .activity")
        assert (day.get_attribute("data-joins"), day.get_attribute("data-leaves")) == ("3", "1")
        assert day.text.startswith("+3 / \u22121")
        # The current hour: as the API counts it for the same hour (should the
        # hour turn between the page and the API, the page is read again).
        for _ in range(3):
            shown_from = css(driver, "#segment-list").get_attribute("data-activity-from")
            hour = css(driver, f"tr[data-segment='{SEGMENT}'] .hour-activity .activity")
            shown = (hour.get_attribute("data-joins"), hour.get_attribute("data-leaves"))
            async with http.get(f"{worker.url}/insights/recent") as response:
                body = await response.json()
            if body["hour_from"] == shown_from:
                break
            driver.refresh()
            wait_for(driver, lambda d: css_all(d, "#segment-list[data-activity-from]"), "list")
        now = {s["segment_id"]: s for s in body["segments"]}
        assert shown == (str(now[SEGMENT]["joins_hour"]), str(now[SEGMENT]["leaves_hour"]))
        lyon = css(driver, "tr[data-segment='lyon'] .day-activity .activity")
        assert lyon.get_attribute("data-joins") == "2"  # c3, c4
        check_page(driver, shots, "list-activity")

        # A phone's width: the builder and the history stay in one column.
        set_viewport(driver, *PHONE)
        go(driver, f"#/segments/{SEGMENT}", "#versions-rows tr")
        wait_for(driver, lambda d: len(builder_rows(d)) == 4, "builder at a phone's width")
        driver.execute_script("document.querySelector('#builder').scrollIntoView()")
        check_page(driver, shots, "designer-builder-phone")
        set_viewport(driver, *DESKTOP)


async def test_versions_and_recent_api(settings, worker):
    async with aiohttp.ClientSession() as session:
        api = Api(session, worker.url, READ_AUTH)
        await api.load_openapi()
        route = "/segments/{segment_id}/versions"
        for version in range(3):
            body = {"name": "Vip", "formula": f"score >= {10 * (version + 1)}",
                    "status": "live" if version else "draft"}
            await api.call("PUT", "/segments/vip", json=body, headers=AUTH, expect=202)
        _, answer = await api.call("GET", "/segments/vip/versions", route=route,
                                        expect=200)
        assert answer["total"] == 3 and answer["history_complete"] is True
        assert answer["source"] == settings.topics.segment_definitions
        assert [v["version"] for v in answer["versions"]] == [3, 2, 1]
        newest, middle, first = answer["versions"]
        assert first["changes"] == [{"field": "op", "from": None, "to": "create"}]
        assert first["status"] == "draft" and first["formula"] == "score >= 10"
        assert middle["changes"] == [
            {"field": "status", "from": "draft", "to": "live"},
            {"field": "formula", "from": "score >= 10", "to": "score >= 20"}]
        assert newest["changes"] == [
            {"field": "formula", "from": "score >= 20", "to": "score >= 30"}]
        assert all(v["updated_at"] and v["written_at"] for v in answer["versions"])
        # In force once applied: version 3.
        await wait_segment_applied(worker, "vip", 3, settings.partitions)
        _, answer = await api.call("GET", "/segments/vip/versions?limit=2", route=route,
                                   expect=200)
        assert [v["version"] for v in answer["versions"]] == [3, 2]
        assert [v["in_force"] for v in answer["versions"]] == [True, False]
        assert answer["version_in_force"] == 3 and answer["total"] == 3

        # A deletion is a version too; the history outlives it.
        await api.call("DELETE", "/segments/vip", headers=AUTH, expect=202)
        await wait_segment_applied(worker, "vip", 0, settings.partitions)
        _, answer = await api.call("GET", "/segments/vip/versions", route=route, expect=200)
        assert answer["versions"][0]["op"] == "delete"
        assert answer["versions"][0]["changes"] == [{"field": "op", "from": None,
                                                     "to": "delete"}]
        assert not any(v["in_force"] for v in answer["versions"])
        assert answer["version_in_force"] is None

        await api.call("GET", "/segments/nothing-here/versions", route=route, expect=404)
        await api.call("GET", "/segments/vip/versions?limit=0", route=route, expect=400)
        await api.call("GET", "/segments/vip/versions", headers={}, expect=401)

        # Recent activity: every segment, with the service's clock.
        await api.call("PUT", "/segments/all", json={"formula": "score >= 0",
                                                     "status": "live"},
                       headers=AUTH, expect=202)
        async with Publisher(settings) as pub:
            await pub.send(ContactUpsert(contact_id="p1", attributes={"score": 5}))
            await pub.send(ContactUpsert(contact_id="p2", attributes={"score": 7}))
            await pub.flush()
        await wait_caught_up(settings)

        async def recent() -> dict:
            _, body = await api.call("GET", "/insights/recent", route="/insights/recent",
                                     expect=200)
            return body

        body = await eventually(recent, lambda b: any(
            s["segment_id"] == "all" and s["joins_day"] == 2 for s in b["segments"]))
        found = {s["segment_id"]: s for s in body["segments"]}
        assert found["all"]["leaves_day"] == 0
        assert found["all"]["joins_hour"] in (0, 1, 2)  # the hour may have turned meanwhile
        assert body["hour_from"] <= body["now"] and body["day_from"] < body["hour_from"]
        await api.call("GET", "/insights/recent", headers={}, expect=401)


FLOW_SEGMENTS = {
    "lyon": {"name": "Lyon", "formula": 'city = "Lyon"', "status": "live"},
    "adults": {"name": "Adults", "formula": "age >= 18", "status": "live"},
    "lyon-adults": {"name": "Adults in Lyon", "kind": "compound", "status": "live",
                    "formula": 'in segment "lyon" and (in segment "adults" or age >= 16)'},
    "lyon-seniors": {"name": "Seniors in Lyon", "kind": "compound", "status": "live",
                     "formula": 'in segment "lyon-adults" and age >= 65'},
    "lyon-vip": {"name": "Lyon VIP", "kind": "compound", "status": "draft",
                 "formula": 'in segment "lyon-adults" and score >= 50'},
}


def flow_links(driver, list_id: str) -> list[tuple[str, str, str | None]]:
    """(segment, status, link target) of each item of a flow panel's list."""
    return [tuple(item) for item in driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' li')].map(li => "
        "[li.dataset.segment, li.dataset.status, "
        "li.querySelector('a') && li.querySelector('a').getAttribute('href')])",
        f"#{list_id}")]


async def test_designer_flow_panel(settings, worker, browser, tmp_path):
    """A compound segment's flow: the server's SVG shown inline (nothing
    but its shapes and text), the segments it references and the ones that
    reference it (a draft too) as links, followed by keyboard."""
    shots = screenshot_dir(tmp_path)
    driver = browser
    async with aiohttp.ClientSession(headers=AUTH) as http:
        for segment_id, body in FLOW_SEGMENTS.items():
            async with http.put(f"{worker.url}/segments/{segment_id}", json=body) as response:
                assert response.status == 202, await response.text()
    for segment_id in FLOW_SEGMENTS:
        await wait_segment_applied(worker, segment_id, 1, settings.partitions)

    driver.get(f"{worker.url}/ui#/segments/lyon-adults")
    wait_for(driver, lambda d: css(d, "#token-dialog").is_displayed(), "token dialog")
    css(driver, "#token-input").send_keys(TOKEN, Keys.ENTER)
    wait_for(driver, lambda d: css_all(d, "#flow-diagram svg text"), "flow diagram")
    labels = driver.execute_script(
        "return [...document.querySelectorAll('#flow-diagram svg text')].map(t => t.textContent)")
    assert labels[-1] == 'segment "lyon-adults"'  # the root is drawn last
    assert {"ALL of", "ANY of", 'in segment "lyon"', 'in segment "adults"', "age >= 16"} \
        <= set(labels)
    svg = css(driver, "#flow-diagram svg")
    assert svg.get_attribute("role") == "img" and "lyon-adults" in svg.get_attribute("aria-label")
    assert svg.size["width"] > 200 and svg.size["height"] > 100
    assert driver.execute_script(
        "return document.querySelectorAll('#flow-diagram svg rect').length") == len(labels)
    assert css(driver, "#flow").get_attribute("aria-labelledby") == "flow-title"
    assert flow_links(driver, "flow-references") == [
        ("adults", "live", "#/segments/adults"), ("lyon", "live", "#/segments/lyon")]
    assert flow_links(driver, "flow-dependents") == [
        ("lyon-seniors", "live", "#/segments/lyon-seniors"),
        ("lyon-vip", "draft", "#/segments/lyon-vip")]
    # The diagram's box takes the keyboard focus (it scrolls sideways when wide).
    assert css(driver, "#flow-diagram").get_attribute("tabindex") == "0"
    driver.execute_script("document.querySelector('#flow').scrollIntoView()")
    check_page(driver, shots, "designer-flow")

    # By keyboard: a dependent's link opens its designer, whose flow
    # references this one and has no dependents.
    link = css(driver, "#flow-dependents li[data-segment='lyon-vip'] a")
    driver.execute_script("arguments[0].focus()", link)
    assert driver.switch_to.active_element == link
    link.send_keys(Keys.ENTER)
    wait_for(driver, lambda d: flow_links(d, "flow-references") == [
        ("lyon-adults", "live", "#/segments/lyon-adults")], "the dependent's flow")
    assert css(driver, "#flow-dependents").text.startswith("None")

    # A segment that references none.
    go(driver, "#/segments/lyon", "#flow-dependents li")
    assert css(driver, "#flow-references").text == "None."
    assert flow_links(driver, "flow-dependents") == [
        ("lyon-adults", "live", "#/segments/lyon-adults")]

    # At a phone's width the diagram scrolls in its own box, not the page.
    set_viewport(driver, *PHONE)
    go(driver, "#/segments/lyon-adults", "#flow-dependents li")
    wait_for(driver, lambda d: len(flow_links(d, "flow-dependents")) == 2, "flow at phone width")
    assert driver.execute_script(OVERFLOW) <= 0
    set_viewport(driver, *DESKTOP)
