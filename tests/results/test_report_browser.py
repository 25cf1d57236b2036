"""The HTML report in headless Chromium: offline, no console error, every image renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Flags for a closed network (no background connections, no sandbox as root).
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1200,2400",
)  # fmt: skip


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.fail(
            "headless Chromium is needed: apt-get install chromium chromium-driver "
            "(.ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def network_requests(driver) -> list[tuple[str, str]]:
    """``(document URL, requested URL)`` of every request the browser logged."""
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            found.append((params.get("documentURL", ""), params["request"]["url"]))
    return found


def test_report_opens_offline_with_no_request_no_console_error_and_every_image(
    browser, final_outcome, tmp_path
):
    page = final_outcome.folder / "report.html"
    browser.get("about:blank")
    browser.get_log("performance")  # drop what came before
    browser.get(page.as_uri())
    title = browser.title
    assert title == f"pneumo-search report: {final_outcome.report['experiment']}"
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);"
    )
    expected = len(final_outcome.report["gallery"]) + len(list((page.parent / "plots").iterdir()))
    expected += len((final_outcome.report.get("label_audit") or {}).get("shown", []))
    assert len(images) == expected
    broken = [alt for alt, complete, width in images if not (complete and width > 0)]
    assert broken == []
    requests = network_requests(browser)
    ours = [url for document, url in requests if document == page.as_uri()]
    assert page.as_uri() in ours
    assert [u for u in ours if not (u == page.as_uri() or u.startswith("data:"))] == []
    assert [u for _, u in requests if u.startswith(("http:", "https:", "ws:", "wss:"))] == []
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []


def test_report_screenshot_shows_the_page(browser, final_outcome, tmp_path):
    from PIL import Image

    browser.get((final_outcome.folder / "report.html").as_uri())
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    # The page is drawn: mostly white background with text, tables and figures on it.
    white = np.mean(np.all(pixels > 245, axis=-1))
    assert 0.3 < white < 0.98
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500
    headline = browser.execute_script(
        "return document.querySelector('.headline').getBoundingClientRect().top;"
    )
    assert 0 < headline < 300  # the test metrics are at the top of the first screen


def test_report_renders_the_model_card_and_fits_700_px_without_overflow(
    browser, final_outcome, tmp_path
):
    from PIL import Image

    browser.set_window_size(700, 1400)
    try:
        browser.get((final_outcome.folder / "report.html").as_uri())
        width, viewport = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];"
        )
        shot = tmp_path / "report-700.png"
        assert browser.save_screenshot(str(shot))
        text = browser.execute_script("return document.body.innerText;")
    finally:
        browser.set_window_size(1200, 2400)
    assert width <= viewport, f"the page is {width} px wide in a {viewport} px window"
    with Image.open(shot) as image:
        assert image.width <= 700
    card = final_outcome.report["model_card"]
    assert "Model card" in text and "Intended use." in text and card["intended_use"] in text
    assert "Known limitations." in text and "PPV" in text and "prevalence" in text
    assert "Test-site check" in text and "nothing here chose the model" in text
    assert "with the site's own threshold" in text
    assert "Shortcut audit" in text and "top 8 rows" in text and "centre 32x32" in text
    assert "rw_auc (recall-weighted AUC) = (1 - w) x ROC AUC" in text
    assert "Expected calibration error (ECE" in text
    assert card["files"]["saved_model"]["sha256"] in text
