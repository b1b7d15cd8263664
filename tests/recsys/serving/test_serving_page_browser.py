"""The web page in a real headless Chromium (Debian's chromium + chromedriver, via Selenium).

The page is served by a real uvicorn on 127.0.0.1; the test picks a user, checks the rendered
rows against ``recommend_users``, then asks for someone new by title, and saves screenshots
under ``tmp_path`` and ``test-artifacts/`` (git-ignored). Skips with the reason when the
browser, its driver or Selenium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from _serving_helpers import free_port

from crossent.recsys.serving.app import create_app
from crossent.recsys.serving.checkpoint import load_checkpoint
from crossent.recsys.serving.recommend import recommend_histories, recommend_users

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
    pytest.skip(
        f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(two_stage):
    """``http://127.0.0.1:PORT`` of a uvicorn serving ``two_stage`` in a thread."""
    port = free_port()
    config = uvicorn.Config(create_app(two_stage), host="127.0.0.1", port=port, log_level="error")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1200,1000")
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def _screenshot(browser, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 0
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)


def _rows(browser) -> list[list[str]]:
    WebDriverWait(browser, 20).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, "#recs tbody tr.rec")
    )
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#recs tbody tr.rec")
    ]


def test_the_page_shows_a_users_watches_and_recommendations(server, browser, two_stage, tmp_path):
    checkpoint = load_checkpoint(two_stage)
    reference = recommend_users(checkpoint, np.array([7]), 5)
    browser.get(server + "/")
    WebDriverWait(browser, 20).until(lambda driver: driver.execute_script(
        "return document.body.dataset.ready === 'true'"
    ))  # fmt: skip
    assert browser.find_elements(By.CSS_SELECTOR, "#user-list option")  # users to pick from
    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys("5")
    browser.find_element(By.ID, "user").send_keys("507")
    browser.find_element(By.ID, "go").click()
    rows = _rows(browser)
    assert [row[1] for row in rows] == [
        str(item) for item in checkpoint.item_ids[reference.items[0]]
    ]
    assert [row[2] for row in rows] == [str(t) for t in checkpoint.titles[reference.items[0]]]
    shown = [float(row[3].rstrip("%")) / 100 for row in rows]
    np.testing.assert_allclose(shown, reference.probability[0], atol=0.00006)
    np.testing.assert_allclose([float(row[5]) for row in rows], reference.p_watch[0], atol=6e-4)
    history = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    start, stop = checkpoint.watch_indptr[7], checkpoint.watch_indptr[8]
    assert len(history) == min(10, stop - start)
    latest = checkpoint.item_ids[checkpoint.watch_items[stop - 1]]
    assert history[0].find_element(By.TAG_NAME, "td").text == str(latest)
    _screenshot(browser, tmp_path, "serve-page-user.png")


def test_the_page_recommends_for_someone_new_from_titles(server, browser, two_stage, tmp_path):
    checkpoint = load_checkpoint(two_stage)
    titles = [str(checkpoint.titles[item]) for item in (10, 20)]
    # the reference: the library asked directly for the same two watches, oldest first
    reference = recommend_histories(checkpoint, np.array([0, 2]), np.array([10, 20]), 10)
    browser.get(server + "/")
    WebDriverWait(browser, 20).until(lambda driver: driver.execute_script(
        "return document.body.dataset.ready === 'true'"
    ))  # fmt: skip
    browser.find_element(By.ID, "mode-new").click()
    for title in titles:
        browser.find_element(By.ID, "title").send_keys(title)
        browser.find_element(By.ID, "add").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chosen .chip")) == 2
    browser.find_element(By.ID, "go-new").click()
    rows = _rows(browser)
    assert [row[1] for row in rows] == [
        str(item) for item in checkpoint.item_ids[reference.items[0]]
    ]
    assert not {row[2] for row in rows} & set(titles)  # what was given is not recommended again
    history = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")]
    assert [line.split(" ", 1)[1] for line in history] == titles[::-1]
    _screenshot(browser, tmp_path, "serve-page-someone-new.png")
