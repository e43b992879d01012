"""The web console (/ui) end to end in a real headless Chromium against a
worker on the real broker: sign in, build a segment in the designer (a
validation error shown at its position), preview, save, go live, see an
edit's impact before it applies, watch members arrive as events are
produced, explain a member and a non-member, follow the live feed filtered
by segment, stop and delete with confirmation; by keyboard, with labelled
fields, at 1280 px and at a phone's width. Screenshots of each page:
docs/console/ when SEGMENTFLOW_UPDATE_SCREENSHOTS=1
(tests/integration/browser.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from app.client import Publisher
from models.inputs import ContactUpsert, Interaction
from tests.integration.api_helpers import AUTH, READ_TOKEN, TOKEN
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
FORMULA = 'city = "Paris" and age >= 18'
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
    driver.quit()  # before the worker stops: no stream left open


def person(contact: str, city: str, age: int) -> ContactUpsert:
    return ContactUpsert(contact_id=contact, attributes={"city": city, "age": age},
                         mode="replace")


def contacts_shown(driver) -> set[str]:
    """The contacts of the members page (read at once: the list re-renders)."""
    return set(driver.execute_script(
        "return [...document.querySelectorAll('#member-list .contact')]"
        ".map(b => b.dataset.contact)"))


def feed_rows(driver) -> set[tuple[str, str, str]]:
    return {tuple(row) for row in driver.execute_script(
        "return [...document.querySelectorAll('#feed-rows tr')]"
        ".map(r => [r.dataset.segment, r.dataset.contact, r.dataset.change])")}


def check_page(driver, shots, name: str) -> None:
    """Labelled fields, no sideways scrolling, and a screenshot."""
    assert driver.execute_script(UNLABELLED) == [], name
    assert driver.execute_script(OVERFLOW) <= 0, name
    driver.save_screenshot(str(shots / f"{name}.png"))


def go(driver, url_hash: str, ready_selector: str) -> None:
    driver.execute_script("location.hash = arguments[0]", url_hash)
    wait_for(driver, lambda d: css_all(d, ready_selector), f"page {url_hash}")


def sign_in(driver, token: str) -> None:
    wait_for(driver, lambda d: css(d, "#token-dialog").is_displayed(), "token dialog")
    field = css(driver, "#token-input")
    assert driver.switch_to.active_element == field  # focus is in the dialog
    field.send_keys(token, Keys.ENTER)
    wait_for(driver, lambda d: not css(d, "#token-dialog").is_displayed(), "dialog closed")


async def test_console_end_to_end(settings, worker, browser, tmp_path):
    shots = screenshot_dir(tmp_path)
    driver = browser
    async with Publisher(settings) as pub, aiohttp.ClientSession(headers=AUTH) as http:
        for contact, (city, age) in PEOPLE.items():
            await pub.send(person(contact, city, age))
        # A second live segment, so that the feed's filter has something to leave out.
        async with http.put(f"{worker.url}/segments/lyon", json={
                "name": "Lyon", "formula": 'city = "Lyon"', "status": "live"}) as response:
            assert response.status == 202, await response.text()
        await pub.flush()
        await wait_caught_up(settings)
        await wait_segment_applied(worker, "lyon", 1, settings.partitions)

        # Sign in: reads need a token, the console asks for it.
        driver.get(f"{worker.url}/ui")
        wait_for(driver, lambda d: css(d, "#token-dialog").is_displayed(), "token dialog")
        assert "Authorization" in css(driver, "#token-reason").text
        assert not css_all(driver, "#segment-list tr[data-segment]")
        check_page(driver, shots, "sign-in")
        sign_in(driver, TOKEN)
        wait_for(driver, lambda d: css_all(d, "tr[data-segment='lyon']"), "segment list")

        # Designer: an error at its line and column, marked where it is.
        css(driver, "a[href='#/new']").click()
        wait_for(driver, lambda d: css_all(d, "#formula"), "designer")
        css(driver, "#seg-id").send_keys(SEGMENT)
        css(driver, "#seg-name").send_keys("Adults in Paris")
        css(driver, "#seg-owner").send_keys("crm-team@example.com")
        formula = css(driver, "#formula")
        formula.send_keys('city = = "Paris"')
        mark = wait_for(driver, lambda d: css_all(d, "#formula-error-mark"), "error mark")[0]
        message = css(driver, "#formula-error-message")
        assert (message.get_attribute("data-line"), message.get_attribute("data-column")) \
            == ("1", "8")
        assert "Line 1, column 8" in message.text and "expected" in message.text
        assert mark.get_attribute("data-offset") == "7" and mark.text == "="
        assert formula.get_attribute("aria-invalid") == "true"
        # At the spot: inside the editor, 7 monospace characters from its start.
        box, spot = formula.rect, mark.rect
        assert box["y"] <= spot["y"] < box["y"] + 40
        assert abs((spot["x"] - box["x"]) - 7 * spot["width"]) < spot["width"] + 14
        check_page(driver, shots, "designer-error")

        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys(FORMULA)
        wait_for(driver, attribute_is("#formula-status", "data-valid", "true"), "valid formula")
        assert not css_all(driver, "#formula-error-mark")

        # Preview before anything is applied: c0 and c1 would match.
        css(driver, "#preview").click()
        wait_for(driver, attribute_is("#preview-size", "data-size", "2"), "preview")
        assert not css_all(driver, "#preview-warnings")
        check_page(driver, shots, "designer-preview")

        # A field no input carried (a typo) is accepted, with a warning.
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys('citty = "Paris"')
        wait_for(driver, attribute_is("#formula-status", "data-valid", "true"), "valid typo")
        css(driver, "#preview").click()
        warning = wait_for(driver, lambda d: css_all(d, "#preview-warnings li"), "warning")[0]
        assert "'citty'" in warning.text and "'city'" in warning.text
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys(FORMULA)
        wait_for(driver, attribute_is("#formula-status", "data-valid", "true"), "valid formula")

        # Save as draft, then go live.
        css(driver, "#save-draft").click()
        wait_for(driver, attribute_is("#seg-state", "data-applied", "true"), "draft applied")
        async with http.get(f"{worker.url}/segments/{SEGMENT}") as response:
            assert (await response.json())["definition"]["owner"] == "crm-team@example.com"
        assert css(driver, "#seg-state").get_attribute("data-status") == "draft"
        css(driver, "#go-live").click()
        wait_for(driver, lambda d: css(d, "#seg-state").get_attribute("data-status") == "live"
                 and css(d, "#seg-state").get_attribute("data-golive") == "true", "live")
        check_page(driver, shots, "designer-live")

        # An edit to a live segment shows its impact before it applies (cancelled here).
        formula = css(driver, "#formula")
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys('city = "Paris" and age >= 35')
        wait_for(driver, lambda d: css(d, "#apply").is_enabled(), "apply enabled")
        css(driver, "#apply").click()
        wait_for(driver, lambda d: css(d, "#confirm-dialog").is_displayed(), "impact")
        impact = css(driver, "#confirm-body").text
        assert "Now: 2 members. With this definition: 1 contacts match." in impact, impact
        # Who would join and leave: against the current members (c0, c1).
        assert css(driver, "#impact-join").text == "+0 would join"
        assert css(driver, "#impact-leave").text == "\u22121 would leave: c0"
        driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait_for(driver, lambda d: not css(d, "#confirm-dialog").is_displayed(), "cancelled")
        formula.send_keys(Keys.CONTROL, "a")
        formula.send_keys(FORMULA)
        wait_for(driver, lambda d: not css(d, "#apply").is_enabled(), "nothing to apply")
        assert css(driver, "#seg-state").get_attribute("data-version") == "2"

        # Members arrive as events are produced.
        css(driver, "#members-link").click()
        wait_for(driver, lambda d: contacts_shown(d) == {"c0", "c1"}, "first members")
        wait_for(driver, attribute_is("#members-live", "data-state", "live"), "members live")
        await pub.send(person("c5", "Paris", 28))
        await pub.send(person("c6", "Paris", 64))
        await pub.flush()
        wait_for(driver, lambda d: contacts_shown(d) == {"c0", "c1", "c5", "c6"},
                 "members c5 and c6 arrive")
        wait_for(driver, attribute_is("#member-count", "data-count", "4"), "count 4")

        # Explain: a member (every condition met), then why not for c2.
        css(driver, "#member-list .contact[data-contact='c5']").click()
        wait_for(driver, attribute_is("#explain", "data-member", "true"), "explain c5")
        trace = css(driver, "#explain-trace").text
        assert 'city = "Paris"' in trace and "age >= 18" in trace and "✗" not in trace
        explain_contact = css(driver, "#explain-contact")
        explain_contact.send_keys("c2", Keys.ENTER)
        wait_for(driver, attribute_is("#explain", "data-member", "false"), "explain c2")
        no = [li.text for li in css_all(driver, "#explain-trace li.no")]
        assert any(line.startswith("✗ not met age >= 18") and "15" in line for line in no), no
        assert "Why c2 is not in paris-adults" in css(driver, "#explain-title").text
        check_page(driver, shots, "members-explain")

        # Insights: the persisted series as charts, one point per hour of the
        # default range (the API's answer), ending at the current size; the
        # overlap with lyon (none: no adult of Paris lives in Lyon).
        # Engagement: what the members did (two opens by c5, a member; one by
        # c2, who is not): 2 interactions over 4 members today.
        today = datetime.now(UTC)
        for n, contact in enumerate(["c5", "c5", "c2"]):
            await pub.send(Interaction(event_id=f"open-{n}", contact_id=contact,
                                       type="email_opened", occurred_at=today, properties={}))
        await pub.flush()
        await wait_caught_up(settings)
        go(driver, f"#/segments/{SEGMENT}/insights", "#size-chart circle.point")
        wait_for(driver, attribute_is("#size-chart", "data-last-size", "4"), "size chart at 4")
        cell = wait_for(driver, lambda d: css_all(
            d, f"#engagement-table tr[data-day='{today.date().isoformat()}'] "
               "td[data-type='email_opened']"), "engagement")[0]
        assert cell.text == "0.5"
        async with http.get(f"{worker.url}/segments/{SEGMENT}/insights") as response:
            series = await response.json()
        points = len(css_all(driver, "#size-chart circle.point"))
        assert points == len(series["points"]) == 48, (points, len(series["points"]))
        assert css(driver, "#flow-chart").get_attribute("data-points") == "48"
        assert css(driver, "#insights-summary").get_attribute("data-joins") == "4"
        assert css_all(driver, "#causes-table tr[data-cause]")
        check_page(driver, shots, "insights")
        css(driver, "#overlap-segments input[value='lyon']").click()
        css(driver, "#overlap-compare").click()
        wait_for(driver, lambda d: css_all(d, "#overlap-matrix td[data-count]"), "overlap")
        cells = {(td.get_attribute("data-row"), td.get_attribute("data-col")):
                 td.get_attribute("data-count")
                 for td in css_all(driver, "#overlap-matrix td[data-count]")}
        assert cells == {(SEGMENT, SEGMENT): "4", (SEGMENT, "lyon"): "0",
                         ("lyon", SEGMENT): "0", ("lyon", "lyon"): "2"}, cells
        driver.execute_script("document.querySelector('#causes-title').scrollIntoView()")
        check_page(driver, shots, "insights-overlap")

        # Live feed, filtered by segment: lyon's changes are left out.
        go(driver, f"#/feed/{SEGMENT}", "#feed-state")
        wait_for(driver, attribute_is("#feed-state", "data-state", "live"), "feed live")
        await pub.send(person("c0", "Lyon", 30))   # leaves paris-adults, joins lyon
        await pub.send(person("c4", "Paris", 23))  # leaves lyon, joins paris-adults
        await pub.flush()
        wait_for(driver, lambda d: feed_rows(d) == {(SEGMENT, "c0", "left"),
                                                    (SEGMENT, "c4", "joined")}, "feed rows")
        assert css(driver, "#feed-counts").get_attribute("data-joined") == "1"
        check_page(driver, shots, "feed")
        # Every segment: both sides of the next move.
        Select(css(driver, "#feed-segment")).select_by_value("")
        wait_for(driver, lambda d: d.execute_script("return location.hash") == "#/feed",
                 "unfiltered feed")
        wait_for(driver, attribute_is("#feed-state", "data-state", "live"), "feed live again")
        await pub.send(person("c3", "Paris", 52))
        await pub.flush()
        wait_for(driver, lambda d: {("lyon", "c3", "left"), (SEGMENT, "c3", "joined")}
                 <= feed_rows(d), "unfiltered feed rows")

        # The list, searched and filtered; by keyboard into a segment.
        go(driver, "#/segments", f"tr[data-segment='{SEGMENT}']")
        check_page(driver, shots, "list")
        search = css(driver, "#search")
        search.send_keys("lyon")
        wait_for(driver, lambda d: [r.get_attribute("data-segment") for r in
                                    css_all(d, "tr[data-segment]")] == ["lyon"], "search")
        search.clear()
        search.send_keys(" ", Keys.BACKSPACE)
        wait_for(driver, lambda d: len(css_all(d, "tr[data-segment]")) == 2, "search cleared")
        search.send_keys(Keys.TAB)
        for _ in range(20):  # Tab through the filters to the segment's link
            active = driver.switch_to.active_element
            if active.text == "Adults in Paris":
                break
            active.send_keys(Keys.TAB)
        assert driver.switch_to.active_element.text == "Adults in Paris"
        driver.switch_to.active_element.send_keys(Keys.ENTER)
        wait_for(driver, attribute_is("#seg-state", "data-status", "live"), "designer by keyboard")

        # A phone's width: one column, cards instead of tables, no sideways scroll.
        set_viewport(driver, *PHONE)
        check_page(driver, shots, "designer-phone")
        go(driver, "#/segments", f"tr[data-segment='{SEGMENT}']")
        check_page(driver, shots, "list-phone")
        go(driver, f"#/segments/{SEGMENT}/members", "#member-list .contact")
        check_page(driver, shots, "members-phone")
        go(driver, f"#/segments/{SEGMENT}/insights", "#size-chart circle.point")
        check_page(driver, shots, "insights-phone")
        set_viewport(driver, *DESKTOP)

        # Stop, then delete: the confirmation can be cancelled (Escape).
        go(driver, f"#/segments/{SEGMENT}", "#seg-state[data-status='live']")
        css(driver, "#stop").click()
        wait_for(driver, lambda d: css(d, "#seg-state").get_attribute("data-status")
                 == "stopped" and css(d, "#seg-state").get_attribute("data-applied") == "true",
                 "stopped")
        css(driver, "#delete").click()
        wait_for(driver, lambda d: css(d, "#confirm-dialog").is_displayed(), "confirmation")
        assert f'Delete segment "{SEGMENT}"?' in css(driver, "#confirm-title").text
        driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait_for(driver, lambda d: not css(d, "#confirm-dialog").is_displayed(), "cancelled")
        assert css(driver, "#seg-state").get_attribute("data-status") == "stopped"
        css(driver, "#delete").click()
        wait_for(driver, lambda d: css(d, "#confirm-dialog").is_displayed(), "confirmation")
        css(driver, "#confirm-ok").click()
        wait_for(driver, lambda d: d.execute_script("return location.hash") == "#/segments"
                 and css_all(d, "tr[data-segment='lyon']"), "back to the list")
        await wait_segment_applied(worker, SEGMENT, 0, settings.partitions)
        driver.refresh()
        wait_for(driver, lambda d: css_all(d, "tr[data-segment='lyon']"), "list reloaded")
        assert not css_all(driver, f"tr[data-segment='{SEGMENT}']")

        # Signed out, members are not shown: the console asks for a token again.
        css(driver, "#sign-out").click()
        go(driver, "#/segments/lyon/members", "#member-list")
        wait_for(driver, lambda d: css(d, "#token-dialog").is_displayed(), "token asked")
        assert not contacts_shown(driver)
        sign_in(driver, READ_TOKEN)  # a read token is enough to see them
        wait_for(driver, lambda d: contacts_shown(d) == {"c0"}, "lyon's members")

        # A worker with streams open (this one, and the browser's) stops at
        # once: its shutdown ends them rather than waiting for them.
        async with http.get(f"{worker.url}/ui/api/changes?segment=lyon") as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            first = await stream.content.readuntil(b"\n\n")
            assert first == b"retry: 2000\nevent: ready\ndata: {}\n\n"
            started = time.monotonic()
            await asyncio.to_thread(worker.stop)
            assert await asyncio.wait_for(stream.content.read(), 10) == b""
            assert time.monotonic() - started < 10
