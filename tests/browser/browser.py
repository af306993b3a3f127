"""Headless Debian Chromium driven by Selenium (python3-selenium, chromium-driver), with bounded
waits. Run with Debian's /usr/bin/python3, which has the selenium module."""

import os
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def start_browser(profile_dir, width=1400, height=1000):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: run scripts/install-deps.sh "
                               "(chromium, chromium-driver, python3-selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={profile_dir}",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def wait_until(what, condition, timeout_s, interval_s=0.05):
    """Polls condition() until it returns a true value (returned) or timeout_s passes (raises
    AssertionError naming `what` and the last value seen)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            last = condition()
        except Exception as error:  # the page may be mid-update (stale element)
            last = error
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")
        time.sleep(interval_s)
