"""The demo shop in headless Chromium (Debian's ``chromium`` and ``chromium-driver``): clicks become events on Kafka.

Covers the tracker's three ways out: the batching timer, ``sendBeacon`` when the page goes away, and the
retry of a queue that a previous page could not deliver (kept in localStorage).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.collector import collector_url
from tests.support.collector import free_port, read_records
from udfs.events import parse_event

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EVENTS = "clickstream.events"
WAIT_S = 20.0
_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "needs Debian's chromium and chromium-driver; run 'make deps' (scripts/install-system-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cartpulse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _click(driver: Any, testid: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').click()


def _tracker(driver: Any) -> dict[str, Any]:
    return dict(driver.execute_script("return cartpulse.debug()"))


def _wait_until_sent(driver: Any) -> dict[str, Any]:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(lambda d: _tracker(d)["queued"] == 0 and _tracker(d)["lastStatus"] == 200)
    state = _tracker(driver)
    assert state["lastErrors"] == [], state
    return state


def _events_of(sandbox: Any, anonymous_id: str, expect: int) -> list[dict[str, Any]]:
    records = read_records(
        sandbox.kafka_bootstrap, EVENTS, lambda v: v.get("anonymousId") == anonymous_id, expect=expect, timeout_s=WAIT_S
    )
    for record in records:
        assert record.key == record.value["personId"]
        parse_event(json.dumps(record.value))  # the Flink job's parser takes it
    return sorted((r.value for r in records), key=lambda v: (v["timestamp"], v["receivedAt"]))


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("event") or e["type"] for e in events]


def test_a_shopping_journey_arrives_as_ecommerce_events_and_follows_the_login(sandbox, browser, run_id):
    from selenium.webdriver.common.by import By

    url = collector_url(sandbox)
    browser.get(f"{url}/shop/")
    anonymous_id = browser.execute_script("return cartpulse.anonymousId()")
    for testid in ("add-sku-boots", "add-sku-socks", "add-sku-socks", "remove-sku-boots", "view-cart", "checkout"):
        _click(browser, testid)
    _wait_until_sent(browser)
    email = f"shopper-{run_id}@example.com"
    browser.find_element(By.CSS_SELECTOR, '[data-testid="email"]').send_keys(email)
    _click(browser, "login")
    _click(browser, "place-order")
    _wait_until_sent(browser)

    events = _events_of(sandbox, anonymous_id, expect=10)

    assert (
        _names(events)
        == [
            "page",
            "Product Added",
            "Product Added",
            "Product Added",
            "Product Removed",
            "Cart Viewed",
            "Checkout Started",
            "identify",
            "Order Completed",
        ][: len(events)]
        and len(events) == 9
    )
    before, after = events[:7], events[7:]
    assert {e["personId"] for e in before} == {anonymous_id}
    assert {e["personId"] for e in after} == {email}
    boots = events[1]["properties"]
    assert (boots["product_id"], boots["price"], boots["quantity"], boots["currency"]) == ("sku-boots", 89.0, 1, "USD")
    assert events[5]["properties"]["products"] == [
        {"product_id": "sku-socks", "name": "Wool socks", "price": 12.5, "quantity": 2, "url": f"{url}/shop/#sku-socks"}
    ]
    order = events[8]["properties"]
    assert order["order_id"].startswith("order-") and order["total"] == 25.0
    assert all(e["context"]["library"]["name"] == "cartpulse.js" for e in events)
    assert all(e["originalTimestamp"] and e["sentAt"] for e in events)


def test_events_still_queued_when_the_page_goes_away_leave_by_beacon(sandbox, browser):
    browser.get(f"{collector_url(sandbox)}/shop/?flushInterval=600000")
    anonymous_id = browser.execute_script("return cartpulse.anonymousId()")
    _click(browser, "add-sku-cap")
    _click(browser, "add-sku-pack")
    assert _tracker(browser)["queued"] == 3 and _tracker(browser)["sent"] == 0

    browser.get("about:blank")  # pagehide → navigator.sendBeacon

    assert _names(_events_of(sandbox, anonymous_id, expect=3)) == ["page", "Product Added", "Product Added"]

    # The next page resends what was beaconed (its fate was unknown); the collector drops the copies.
    browser.get(f"{collector_url(sandbox)}/shop/")
    _wait_until_sent(browser)
    events = _events_of(sandbox, anonymous_id, expect=4)
    assert _names(events) == ["page", "Product Added", "Product Added", "page"]
    assert len({e["messageId"] for e in events}) == 4


def test_a_queue_that_could_not_be_delivered_is_retried_by_the_next_page(sandbox, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    url = collector_url(sandbox)
    browser.get(f"{url}/shop/?host=http://127.0.0.1:{free_port()}&flushInterval=50")
    anonymous_id = browser.execute_script("return cartpulse.anonymousId()")
    _click(browser, "add-sku-boots")
    WebDriverWait(browser, WAIT_S).until(lambda d: _tracker(d)["failures"] >= 2)  # retried, with backoff
    assert _tracker(browser)["queued"] == 2

    browser.get(f"{url}/shop/")  # the collector is reachable from here: the kept queue goes first

    events = _events_of(sandbox, anonymous_id, expect=3)
    assert _names(events) == ["page", "Product Added", "page"]
    _wait_until_sent(browser)
