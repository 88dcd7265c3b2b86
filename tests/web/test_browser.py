"""The web platform in a real browser: Debian's Chromium and chromedriver, driven by selenium
(no browser download), against `custody web` running as its own service user. Screenshots of
each page at 1366x768 are written to $CUSTODY_TEST_ARTIFACTS/web (default
/tmp/custody-test-artifacts/web) to look at."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.ingestd.served import CLERK, CLERK2, WEB
from tests.web.platform import PASSWORD, WEB_CONFIG

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("CUSTODY_TEST_ARTIFACTS", "/tmp/custody-test-artifacts")) / "web"


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    # (No GPU here: software compositing from the start. Pages are ready at DOMContentLoaded: the
    # tests wait for what they need, and a renderer slow to report "load" on this busy machine
    # timed out navigations twice in eight runs.)
    options.page_load_strategy = "eager"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1366,768", "--autoplay-policy=no-user-gesture-required", "--lang=zh-CN"):  # fmt: skip
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})  # an office PC's
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def sign_in(driver, base: str, login: str) -> None:
    try:
        driver.get(f"{base}/sign-in")
    except TimeoutException:  # headless Chromium's renderer, once, on a saturated machine: again
        driver.get(f"{base}/sign-in")
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "sign-out"))


def wait_for_media(custody) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the daemon makes the playable copies after the ingest
        jobs = json.loads(custody("status", "--json").stdout)["media_jobs"]
        if not jobs.get("queued") and not jobs.get("running"):
            return
        time.sleep(0.5)
    raise AssertionError(f"media work still running: {jobs}")


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_a_clerk_works_a_day_in_the_browser(web, custody, browser):
    base = web["base"]
    wait_for_media(custody)
    sign_in(browser, base, CLERK)
    assert "今日" in browser.title and "需要关注的案件" in browser.page_source
    shot(browser, "01-today-clerk")

    browser.get(f"{base}/footage")
    assert "EV-000003" in browser.page_source  # the restricted case names this clerk
    shot(browser, "02-footage")
    for item in ("EV-000001", "EV-000002"):
        browser.find_element(By.CSS_SELECTOR, f'input[name="items"][value="{item}"]').click()
    browser.find_element(By.ID, "tag-case").send_keys("2026-BROWSER")
    browser.find_element(By.ID, "tag-party").send_keys("赵六")
    browser.find_element(By.ID, "tag-submit").click()
    WebDriverWait(browser, 20).until(lambda d: "已标注 2 条" in d.page_source)
    shot(browser, "03-footage-tagged")
    tagged = [
        e for e in json.loads(custody("log", "--json").stdout)
        if e["action"] == "tag" and e["details"].get("case", {}).get("to") == "2026-BROWSER"
    ]  # fmt: skip
    assert sorted(e["item"] for e in tagged) == ["EV-000001", "EV-000002"]
    assert {e["actor"] for e in tagged} == {f"{CLERK} via {WEB}"}

    # Play the playable copy in the browser's own player; seek to 90 % and play on.
    browser.get(f"{base}/items/EV-000001")
    player = browser.find_element(By.ID, "player")
    browser.execute_script("arguments[0].muted = true; arguments[0].play();", player)
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return arguments[0].currentTime", player) > 0.5
    )
    duration = browser.execute_script("return arguments[0].duration", player)
    assert duration >= 1.5  # (the test clips are two seconds long)
    browser.execute_script(
        "arguments[0].currentTime = arguments[0].duration * 0.9; arguments[0].play();", player
    )
    WebDriverWait(browser, 30).until(
        lambda d: (
            d.execute_script("return arguments[0].currentTime", player) > duration * 0.9 + 0.2
            or d.execute_script("return arguments[0].ended", player)
        )
    )
    shot(browser, "04-item-playing")
    views = [e for e in json.loads(custody("log", "--json").stdout) if e["action"] == "view"]
    # The player asked by ranges (a two-second clip fits its first answer: the seek needs no more).
    assert views and all(e["details"].get("range") for e in views if e["actor"] == f"{CLERK} via {WEB}")

    browser.get(f"{base}/language/en")
    WebDriverWait(browser, 20).until(lambda d: "Today" in d.title)
    shot(browser, "05-today-english")
    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, 20).until(lambda d: d.current_url.endswith("/sign-in"))
    shot(browser, "06-signed-out")


@pytest.mark.parametrize("extra_config", [WEB_CONFIG], indirect=True)
def test_a_restricted_item_is_invisible_to_a_clerk_not_on_its_case_in_the_browser(web, browser):
    sign_in(browser, web["base"], CLERK2)
    browser.get(f"{web['base']}/footage")
    assert "EV-000001" in browser.page_source and "EV-000003" not in browser.page_source
    browser.get(f"{web['base']}/items/EV-000003")
    assert "no item EV-000003" in browser.page_source
    shot(browser, "07-restricted-refused")
