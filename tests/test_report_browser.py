"""synthgen report in a real browser: Debian's Chromium, headless, driven by Selenium through Debian's
chromium-driver (nothing downloaded). The page loads with no console error and no request but its
own file, every chart is drawn, a kind filter leaves that kind's rows alone, the search finds a
planted string (whose markup and URL stay text), and a screenshot of the top is saved."""

import json

import pytest
import report_data
from browser import CHROMIUM, DRIVER, MISSING, open_browser

pytest.importorskip("matplotlib")
pytest.importorskip("selenium", reason="selenium (the test extra) drives the browser")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=MISSING)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    from synthgen.report.build import report

    made = report_data.make(tmp_path_factory.mktemp("report-data"))
    out = tmp_path_factory.mktemp("report") / "report.html"
    report([made["raw"], made["curated"]], out, evals=[made["passkey"], made["retrieval"]])
    return out


@pytest.fixture(scope="module")
def browser(report_file):
    driver = open_browser()
    try:
        driver.get(report_file.as_uri())
        yield driver
    finally:
        driver.quit()


def requests_sent(driver) -> list[str]:
    """The URL of every request the page made, from the DevTools network events."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_it_loads_with_no_console_error_and_no_request_but_its_own_file(browser, report_file):
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title.startswith("synthgen report")
    problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert problems == []
    assert set(requests_sent(browser)) == {report_file.as_uri()}  # the log works: it saw the page itself
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    # The page's own script ran (the policy allows it by its hash): the browser is built.
    assert browser.execute_script("return document.querySelectorAll('#rows article.row').length") > 0


def test_every_chart_is_drawn(browser):
    charts = browser.execute_script("""
        return Array.from(document.querySelectorAll('figure.chart-box')).map(function (f) {
            var svg = f.querySelector('svg');
            if (!svg) { return null; }
            var box = svg.getBBox();
            return {caption: f.querySelector('figcaption').textContent, shapes: svg.querySelectorAll('path, rect, use').length,
                    texts: svg.querySelectorAll('text').length, width: box.width, height: box.height,
                    shown: svg.getBoundingClientRect().width};
        });""")
    assert len(charts) >= 15
    for chart in charts:
        assert chart is not None
        assert chart["shapes"] > 5 and chart["texts"] > 2 and chart["width"] > 100 and chart["height"] > 50, chart
        assert chart["shown"] > 300, chart


def select(driver, key: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", f"filter-{key}")).select_by_value(value)


def shown(driver) -> list[dict]:
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#rows article.row')).map(function (a) {
            return {kind: a.dataset.kind, type: a.dataset.type, text: a.textContent}; });""")


def test_filtering_by_a_kind_leaves_only_that_kinds_rows(browser):
    select(browser, "kind", "sts")
    rows = shown(browser)
    assert rows and {row["kind"] for row in rows} == {"sts"}
    count = browser.find_element("id", "count").text
    assert count.startswith(f"{len(rows)} of ")
    select(browser, "kind", "")
    select(browser, "outcome", "dropped: inconsistent")
    rows = shown(browser)
    assert len(rows) == 1 and rows[0]["type"] == "dropped" and "rank" in rows[0]["text"]
    select(browser, "outcome", "")
    select(browser, "outcome", "rejected: invalid_json")
    rows = shown(browser)
    assert len(rows) == 1 and "no JSON value in the answer" in rows[0]["text"]
    select(browser, "outcome", "")


def test_the_search_finds_the_planted_string_and_keeps_its_markup_as_text(browser):
    box = browser.find_element("id", "search")
    box.clear()
    box.send_keys(report_data.PLANTED.upper())
    rows = shown(browser)
    assert len(rows) == 1
    assert report_data.HOSTILE in rows[0]["text"]  # shown as it is: a URL, a tag, a </script>, as text
    assert browser.execute_script("return document.querySelectorAll('#rows img, #rows script').length") == 0
    assert browser.execute_script("return window.pwned === undefined")
    box.clear()
    box.send_keys("no such words anywhere")
    assert shown(browser) == []
    box.clear()
    box.send_keys(" ")
    assert len(shown(browser)) == 50  # the first page of all the records
    assert not [url for url in requests_sent(browser) if not url.startswith("file:")]


def test_a_screenshot_of_the_top(report_file, tmp_path):
    path = tmp_path / "report.png"  # bench/report.py saves the README's, of a large dataset
    driver = open_browser(1280, 1000)
    try:
        driver.get(report_file.as_uri())
        assert driver.save_screenshot(str(path))
    finally:
        driver.quit()
    assert path.stat().st_size > 20_000
