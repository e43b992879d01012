"""Headless Chromium for the console tests: Debian's ``chromium`` driven by
its ``chromedriver`` through Selenium (both installed by
deploy/install-system-deps.sh; Selenium never downloads a browser or a
driver here: both paths are given)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs/console"
DESKTOP = (1280, 900)
PHONE = (390, 844)


def start_chromium() -> WebDriver:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("chromium and chromedriver are needed (bash deploy/install-system-deps.sh "
                    "installs Debian's chromium and chromium-driver)")
    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--lang=en-US",
                "--hide-scrollbars", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/console with SEGMENTFLOW_UPDATE_SCREENSHOTS=1 (what the README
    shows), else the test's temporary directory: a test run leaves the
    committed files alone."""
    if os.environ.get("SEGMENTFLOW_UPDATE_SCREENSHOTS") != "1":
        return tmp_path
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's viewport (not the window's outer size) is width x height."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str,
             timeout: float = 30.0) -> Any:
    """``condition`` re-checked until true; an element replaced meanwhile
    (the page re-rendered it) counts as not yet."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message=f"{what}: not within {timeout} s")


def css(driver: WebDriver | WebElement, selector: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, selector)


def css_all(driver: WebDriver | WebElement, selector: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def attribute_is(selector: str, name: str, value: str) -> Callable[[WebDriver], bool]:
    def check(driver: WebDriver) -> bool:
        found = css_all(driver, selector)
        return bool(found) and found[0].get_attribute(name) == value
    return check


# Every visible form control has an accessible name from a label (or
# aria-label): returns the ones that do not.
UNLABELLED = """
return [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML);
"""

# Wider than the viewport: the page scrolls sideways (unreadable on a phone).
OVERFLOW = "return document.documentElement.scrollWidth - window.innerWidth;"
