"""The app in real headless Chromium (Debian's, driven by Playwright): what only a browser shows.

One Streamlit server on a free port, opened on a fresh workspace: the demo pool prepares itself
in the background, then the map and the k curves render, changing k redraws them, a selection
runs and downloads. Screenshots go to test-output/e2e/. Any `stException` element fails.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "test-output" / "e2e"
DEMO_N = 800

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "SELECTION_CORE_WORKSPACE": str(root / "workspace"),
           "SELECTION_CORE_DEMO_N": str(DEMO_N), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    log = open(root / "streamlit.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless",
         "true", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"streamlit did not start: {(root / 'streamlit.log').read_text()[-2000:]}")
    yield url
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def page(app_url: str):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1500, "height": 1000},
                                      accept_downloads=True)
        yield context.new_page()
        browser.close()


def no_exceptions(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def map_caption(page) -> str:
    return page.get_by_text("drag a lasso").inner_text()


def test_clusters_page_renders_map_and_curves_and_follows_k(page, app_url: str) -> None:
    started = time.time()
    page.goto(app_url)
    page.get_by_text("Preparing demo-").first.wait_for(timeout=60_000)  # the self-starting job
    page.screenshot(path=str(SHOTS / "01-preparing.png"))
    page.get_by_text("drag a lasso").wait_for(timeout=300_000)
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=60_000)
    print(f"\ndemo pool ({DEMO_N} rows) prepared and shown after {time.time() - started:.0f} s")
    no_exceptions(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 3
    assert page.locator(".js-plotly-plot .gl-container canvas").count() >= 1  # WebGL map
    assert page.get_by_text("Silhouette (higher is better)").count() == 1
    page.screenshot(path=str(SHOTS / "02-clusters.png"))

    before = map_caption(page)
    slider = page.get_by_role("slider")
    slider.focus()
    slider.press("ArrowLeft")  # one swept k down
    page.wait_for_function(
        "before => !document.body.innerText.includes(before)", arg=before, timeout=30_000)
    page.wait_for_timeout(1500)
    after = map_caption(page)
    assert after != before
    k = int(after.split("k=")[1].split(":")[0])
    assert page.get_by_text(f"The {k} clusters").count() == 1
    no_exceptions(page)
    page.screenshot(path=str(SHOTS / "03-k-changed.png"))


def test_run_a_selection_and_download_it(page, app_url: str, tmp_path: Path) -> None:
    page.get_by_role("link", name="Selection").click()
    page.get_by_role("button", name="Run selection").wait_for(timeout=60_000)
    page.get_by_role("button", name="Run selection").click()
    page.get_by_text("Side by side").wait_for(timeout=60_000)
    page.get_by_role("button", name="JSONL").first.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3",
                           timeout=60_000)
    page.wait_for_timeout(1000)
    no_exceptions(page)
    page.screenshot(path=str(SHOTS / "04-selection.png"), full_page=True)
    with page.expect_download(timeout=30_000) as download_info:
        page.get_by_role("button", name="JSONL").first.click()
    target = tmp_path / "selection.jsonl"
    download_info.value.save_as(target)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 300
    assert {"id", "prompt", "response", "cluster", "quality"} <= set(rows[0])
    no_exceptions(page)
