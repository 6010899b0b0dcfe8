"""Debian's Chromium, headless, through Debian's chromium-driver and Selenium (which downloads
nothing when it is given the driver): for the report's browser tests and bench/report.py's screenshot."""

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING = ("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run "
           "installs them)")


def open_browser(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium whose console and network events can be read (get_log "browser", "performance")."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=options)
