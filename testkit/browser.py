"""Headless Debian Chromium driven through its own chromedriver (Selenium), for the console tests.

Nothing is downloaded: the browser and driver are Debian's (`chromium`, `chromium-driver`,
installed by scripts/test.sh; CHROMIUM_BIN / CHROMEDRIVER_BIN override the paths), each run
gets a fresh profile, and everything that would phone home is off.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
)


@contextmanager
def chromium(*, token: str | None = None) -> Iterator[webdriver.Chrome]:
    """A browser; with `token`, every request it makes carries the operator credential (Basic)."""
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        if token:
            basic = base64.b64encode(f"operator:{token}".encode()).decode()
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {basic}"}})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def response_statuses(driver: webdriver.Chrome) -> dict[str, int]:
    """HTTP status of every response the browser received since the last call, by URL
    (from Chromium's own network events: what the browser got, not what a client library saw)."""
    statuses: dict[str, int] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.responseReceived":
            response = message["params"]["response"]
            statuses[response["url"]] = int(response["status"])
    return statuses
