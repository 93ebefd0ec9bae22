"""The app in real headless Chromium (Debian's, driven by Playwright): what only a browser shows.

- A fresh server on a fresh workspace: the demo pool prepares itself in the background; the map
  and the k curves appear early (quick PCA map) and the UMAP map replaces the quick one; changing
  k redraws them; selections at k=64 compare in readable charts and download.
- Fresh servers whose very first request is a deep link, one per page: each gets the real
  navigation and the app's sidebar. Viewers see no developer tools; the operator's switch brings
  them back.
- A large synthetic pool (LARGE_MAP_ROWS, 100,000 by default): the map is a capped sample over
  a density layer sent as typed arrays; k changes; a box lists and downloads every row inside.
Screenshots go to test-output/e2e/. Any `stException` element fails.
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

import pandas as pd
import pytest
from playwright.sync_api import expect

from selection_core import __version__

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "test-output" / "e2e"
DEMO_N = 800
LARGE_MAP_ROWS = int(os.environ.get("LARGE_MAP_ROWS", "100000"))
PAGES = {"data": "Data", "clean": "Clean", "": "Clusters", "selection": "Selection",  # the default page is /
         "iterative": "Iterative refinement", "influence": "Influence", "report": "Report",
         "results": "Results"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`streamlit run app.py` on a free port, with its own workspace and log."""

    def __init__(self, workspace: Path, log: Path, demo_n: int = DEMO_N,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log_path = log
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
             "--server.headless", "true", "--server.port", str(self.port),
             "--browser.gatherUsageStats", "false", *args],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "SELECTION_CORE_WORKSPACE": str(workspace),
                 "SELECTION_CORE_DEMO_N": str(demo_n), "HF_HUB_OFFLINE": "1",
                 "PYTHONPATH": str(REPO), **(env or {})})

    def wait_listening(self, timeout_s: float = 90) -> None:
        """Wait for the port to accept connections (no HTTP request: the browser's is first)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        pytest.fail(f"streamlit did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"])
        yield browser
        browser.close()


def new_page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    return context.new_page()


def no_exceptions(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


# --------------------------------------------------------------------------- first start
@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "workspace"


@pytest.fixture(scope="module")
def app_url(workspace: Path) -> Iterator[str]:
    server = Server(workspace, workspace.parent / "streamlit.log")
    server.wait_listening()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def page(browser):
    return new_page(browser)


def map_caption(page) -> str:
    """The map's caption once the page has settled: during a rerun Streamlit may show the
    stale caption beside the new one for a moment."""
    caption = page.get_by_text("drag a lasso")
    expect(caption).to_have_count(1, timeout=30_000)
    return caption.inner_text()


def settled(page) -> None:
    """Wait for the script run to finish: until then Streamlit keeps the previous run's elements
    (marked `data-stale`), so a button clicked early still carries the old run's data."""
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=30_000)
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=30_000)


def test_first_start_shows_the_quick_map_then_umap_and_follows_k(page, app_url: str) -> None:
    started = time.time()
    page.goto(app_url)
    page.get_by_text("Preparing demo-").first.wait_for(timeout=60_000)  # the self-starting job
    page.screenshot(path=str(SHOTS / "01-preparing.png"))
    page.get_by_text("drag a lasso").first.wait_for(timeout=300_000)
    first_view = time.time() - started
    seen, refining = [], False
    while time.time() - started < 400:  # poll what the page shows until the UMAP map is in
        captions = page.get_by_text("drag a lasso").all_inner_texts()
        text = captions[0] if len(captions) == 1 else ""  # two while a rerun swaps them
        kind = text.split(" · ")[0]
        if kind and (not seen or seen[-1] != kind):
            seen.append(kind)
            if kind.startswith("Quick map"):
                page.locator(".js-plotly-plot .gl-container canvas").first.wait_for()
                # once: while a rerun is under way Streamlit may show the stale chart beside
                # the new one for a moment, so this waits for the page to settle
                expect(page.get_by_text("Silhouette (higher is better)")).to_have_count(
                    1, timeout=30_000)
                refining = page.get_by_text("Still preparing in the background").count() >= 1
                page.screenshot(path=str(SHOTS / "02-quick-map.png"))
        if kind == "UMAP map" and page.get_by_text("Still preparing").count() == 0:
            break
        page.wait_for_timeout(250)
    print(f"\ndemo pool ({DEMO_N} rows): first view after {first_view:.0f} s, UMAP map after "
          f"{time.time() - started:.0f} s; map captions seen: {seen}")
    assert seen[0].startswith("Quick map") and refining  # shown early, with progress for the rest
    assert seen[-1] == "UMAP map"  # then replaced, without a reload
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=60_000)
    no_exceptions(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 3
    assert page.locator(".js-plotly-plot .gl-container canvas").count() >= 1  # WebGL map
    page.screenshot(path=str(SHOTS / "03-clusters.png"))

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
    expect(page.get_by_text(f"The {k} clusters")).to_have_count(1, timeout=30_000)
    no_exceptions(page)
    page.screenshot(path=str(SHOTS / "04-k-changed.png"))


CHART_GEOMETRY = """title => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
        p => (p.querySelector('.gtitle')?.textContent || '').startsWith(title));
    if (!plot) return null;
    const rect = e => { const r = e.getBoundingClientRect();
                        return [r.left, r.right, r.top, r.bottom]; };
    const main = document.querySelector('[data-testid="stMainBlockContainer"]');
    const style = getComputedStyle(main), [left, right] = rect(main);
    return {box: rect(plot),
            main: [left + parseFloat(style.paddingLeft), right - parseFloat(style.paddingRight)],
            xticks: [...plot.querySelectorAll('.xtick text')].map(rect),
            yticks: [...plot.querySelectorAll('.ytick text')].map(rect),
            bars: plot.querySelectorAll('.bars .point').length};
}"""


def chart(page, title: str) -> dict:
    page.wait_for_function(f"({CHART_GEOMETRY})({json.dumps(title)}) !== null", timeout=60_000)
    return page.evaluate(f"({CHART_GEOMETRY})({json.dumps(title)})")


def inside(boxes: list, box: list) -> bool:
    return all(b[0] >= box[0] - 1 and b[1] <= box[1] + 1 and b[2] >= box[2] - 1 and
               b[3] <= box[3] + 1 for b in boxes)


def apart(boxes: list) -> bool:
    boxes = sorted(boxes)
    return all(a[1] <= b[0] + 1 for a, b in zip(boxes, boxes[1:]))


def test_selections_at_k64_compare_in_readable_charts_and_download(page, app_url: str,
                                                                   tmp_path: Path) -> None:
    page.get_by_text("Try a k that was not swept").click()
    number = page.get_by_label("k", exact=True)
    number.fill("64")
    number.press("Enter")
    page.get_by_role("button", name="Cluster at this k").click()
    page.get_by_text("k=64: 64 clusters").wait_for(timeout=60_000)
    page.get_by_role("link", name="Selection").click()
    page.get_by_role("button", name="Run selection").wait_for(timeout=60_000)
    page.get_by_role("button", name="Run selection").click()
    page.get_by_text("Side by side").wait_for(timeout=60_000)
    page.get_by_role("combobox", name="Method").click()  # a second selection, to compare
    page.get_by_role("option", name="random", exact=True).click()
    page.get_by_role("button", name="Run selection").click()
    page.get_by_text("random · k=64").first.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 4",
                           timeout=60_000)
    page.wait_for_timeout(1500)
    settled(page)
    no_exceptions(page)
    composition = chart(page, "Composition by cluster")
    box, main = composition["box"], composition["main"]
    assert box[1] - box[0] >= 0.95 * (main[1] - main[0])  # the full width of the page
    assert composition["bars"] <= 3 * 21  # ≤ 20 clusters + "other", pool + 2 selections
    assert inside(composition["xticks"], box) and apart(composition["xticks"])
    overlap = chart(page, "Overlap (Jaccard)")
    assert len(overlap["yticks"]) == 2 and inside(overlap["yticks"] + overlap["xticks"],
                                                  overlap["box"])  # labels not cut off
    quality = chart(page, "Quality of the selected rows")
    assert inside(quality["xticks"], quality["box"]) and apart(quality["xticks"])
    page.screenshot(path=str(SHOTS / "05-selection-k64.png"), full_page=True)
    settled(page)
    with page.expect_download(timeout=30_000) as download_info:
        page.get_by_role("button", name="JSONL").first.click()
    target = tmp_path / "selection.jsonl"
    download_info.value.save_as(target)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 300
    assert {"id", "prompt", "response", "cluster", "quality"} <= set(rows[0])
    assert {row["cluster"] for row in rows} <= set(range(64))
    no_exceptions(page)


# --------------------------------------------------------------------------- deep links
@pytest.fixture(scope="module")
def prepared_workspace(workspace: Path) -> Path:
    """The first-start test's workspace once its demo run is prepared (prepared here when that
    test did not run), so every page renders at once."""
    from selection_core.frontends import jobs
    from selection_core.select import stages as pipeline
    from selection_core.spine.store import RunStore

    store = RunStore(workspace / "runs" / f"demo-n{DEMO_N}-s0")
    jobs.wait_for_job(store, "prepare")
    if not (store.stage_info("umap") or {}).get("status") == "done":
        pipeline.ingest_demo(store, n=DEMO_N)
        pipeline.prepare(store)
    return workspace


@pytest.fixture(scope="module")
def fresh_servers(prepared_workspace: Path) -> Iterator[dict[str, Server]]:
    """One fresh server per page (and one for the operator's developer mode), started together;
    none has served a request yet."""
    logs = prepared_workspace.parent
    servers = {path: Server(prepared_workspace, logs / f"page-{path or 'default'}.log")
               for path in PAGES}
    servers["developer"] = Server(prepared_workspace, logs / "developer.log",
                                  env={"STREAMLIT_CLIENT_TOOLBAR_MODE": "developer"})
    for server in servers.values():
        server.wait_listening()
    yield servers
    for server in servers.values():  # all at once: each takes a few seconds to shut down
        server.process.terminate()
    for server in servers.values():
        server.stop()


@pytest.mark.parametrize("path", list(PAGES), ids=lambda path: path or "default")
def test_a_deep_link_works_as_the_first_request_of_a_server(browser, fresh_servers, path: str
                                                            ) -> None:
    page = new_page(browser)
    page.goto(f"{fresh_servers[path].url}/{path}")
    page.get_by_role("heading", name=PAGES[path], exact=True).wait_for(timeout=90_000)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Current pool").wait_for(timeout=30_000)  # app.py's sidebar ran
    links = page.locator('[data-testid="stSidebarNavLink"]')
    links.first.wait_for()
    assert [link.inner_text().split("\n")[-1] for link in links.all()] == list(PAGES.values())
    assert page.get_by_text("Page not found").count() == 0
    assert page.url.endswith(f"/{path}")
    page.wait_for_function("document.title.includes('selection_core')", timeout=10_000)
    assert page.title() == f"{PAGES[path]} · selection_core {__version__}"
    no_exceptions(page)
    page.screenshot(path=str(SHOTS / f"10-deep-link-{path or 'default'}.png"))
    page.context.close()


def menu_items(page) -> list[str]:
    page.get_by_test_id("stMainMenu").click()
    popover = page.get_by_test_id("stMainMenuPopover")
    popover.wait_for()
    return [line.strip() for line in popover.inner_text().splitlines() if line.strip()]


def test_viewers_get_no_developer_tools_and_an_about_entry(browser, fresh_servers) -> None:
    page = new_page(browser)
    page.goto(fresh_servers[""].url)
    page.get_by_test_id("stSidebar").get_by_text("Current pool").wait_for(timeout=90_000)
    assert page.get_by_test_id("stAppDeployButton").count() == 0
    items = menu_items(page)
    assert "About" in items and not {"Rerun", "Clear cache", "Deploy this app"} & set(items)
    page.get_by_test_id("stMainMenuPopover").get_by_text("About", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"selection_core {__version__}").wait_for(timeout=10_000)
    page.screenshot(path=str(SHOTS / "11-about.png"))
    favicon = page.locator("link[rel='shortcut icon'], link[rel='icon']").first
    assert "/media/" in favicon.get_attribute("href")  # our favicon.png, not Streamlit's
    page.context.close()


def test_the_operator_gets_the_developer_tools_back(browser, fresh_servers) -> None:
    page = new_page(browser)
    page.goto(fresh_servers["developer"].url)
    page.get_by_test_id("stSidebar").get_by_text("Current pool").wait_for(timeout=90_000)
    assert {"Rerun", "Clear cache"} <= set(menu_items(page))
    assert page.get_by_test_id("stAppDeployButton").count() == 1
    page.context.close()


# --------------------------------------------------------------------------- a large pool
AXES = """() => {
    const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
    const box = plot.querySelector('.nsewdrag').getBoundingClientRect();
    const points = plot._fullData.filter(t => t.type === 'scattergl');
    return {box: [box.left, box.top, box.width, box.height],
            x: [xa.p2d(0), xa.p2d(box.width)], y: [ya.p2d(box.height), ya.p2d(0)],
            drawn: points.reduce((n, t) => n + t.x.length, 0),
            typed: plot.data.filter(t => t.type !== 'scatter').every(
                t => ['x', 'y', 'customdata', 'z'].every(key => !(key in t) || (
                    typeof t[key].bdata === 'string' && ['f4', 'i4'].includes(t[key].dtype))))};
}"""


def bench_million():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_million",
                                                  REPO / "benchmarks" / "bench_million.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def large_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(workspace, run): the synthetic run sits where the app's default run is, so it opens
    first (and, being prepared, starts no job)."""
    from selection_core.spine.store import RunStore

    workspace = tmp_path_factory.mktemp("large") / "workspace"
    run = workspace / "runs" / f"demo-n{LARGE_MAP_ROWS}-s0"
    bench_million().app_run(RunStore(run), LARGE_MAP_ROWS)
    return workspace, run


def browser_memory(page) -> dict:
    session = page.context.new_cdp_session(page)
    session.send("Performance.enable")
    metrics = session.send("Performance.getMetrics")["metrics"]
    values = {m["name"]: m["value"] for m in metrics}
    return {"js_heap_used_mib": round(values.get("JSHeapUsedSize", 0) / 2**20),
            "js_heap_total_mib": round(values.get("JSHeapTotalSize", 0) / 2**20)}


def test_a_large_map_renders_changes_k_and_a_box_lists_and_downloads_its_rows(
        browser, large_run: tuple[Path, Path], tmp_path: Path) -> None:
    """The Clusters page on a large pool (issue 15 §4): the map renders from binary typed arrays
    as a capped random subset over a density layer, k changes, and a box drawn on the map lists
    and downloads every row inside it — resolved on the server over all rows, including those
    the browser never drew. The pool is bench_million's generator (`app_run`): LARGE_MAP_ROWS
    rows, 100,000 by default (CI has 2 cores); it prints the time to the first map, the k change
    time and the browser's memory."""
    from selection_core.select import stages as pipeline
    from selection_core.spine.store import RunStore
    from selection_core.viz.map_view import MAP_POINTS

    workspace, run = large_run
    coords = pipeline.projection(RunStore(run, create=False))  # the map the app shows
    ids = pipeline.load_run_pool(RunStore(run))["id"].to_numpy()
    server = Server(workspace, workspace.parent / "streamlit.log", demo_n=LARGE_MAP_ROWS)
    try:
        server.wait_listening()
        page = new_page(browser)
        started = time.time()
        page.goto(server.url)
        page.get_by_text("drag a lasso").first.wait_for(timeout=300_000)
        page.locator(".js-plotly-plot .gl-container canvas").first.wait_for(timeout=60_000)
        first_map = time.time() - started
        page.wait_for_function(f"({AXES})().drawn > 0", timeout=60_000)
        axes = page.evaluate(f"({AXES})()")
        assert axes["typed"]  # coordinates, rows, density arrived as base64 typed arrays
        assert axes["drawn"] == min(MAP_POINTS, LARGE_MAP_ROWS)
        caption = map_caption(page)
        assert f"{LARGE_MAP_ROWS:,} prompts" in caption and f"random {MAP_POINTS:,} of the {LARGE_MAP_ROWS:,}" \
            in caption
        memory = browser_memory(page)
        no_exceptions(page)
        page.screenshot(path=str(SHOTS / "20-large-map.png"))

        slider = page.get_by_role("slider")
        slider.focus()
        k_before = int(caption.split("k=")[1].split(":")[0])  # app_run sweeps 10, 20, 40
        k_after = 20 if k_before != 20 else 40
        k_started = time.time()
        slider.press("ArrowRight" if k_after > k_before else "ArrowLeft")  # one swept k
        page.get_by_text(f"k={k_after}: {k_after} clusters").wait_for(timeout=60_000)
        page.get_by_text(f"The {k_after} clusters").wait_for(timeout=60_000)
        k_change = time.time() - k_started
        no_exceptions(page)
        for k in (k_before, k_after):  # and back, and again: every move counts (a widget
            page.wait_for_timeout(500)  # re-made on each change used to drop every other one)
            slider = page.get_by_role("slider")
            slider.focus()
            slider.press("ArrowRight" if k > int(slider.get_attribute("aria-valuetext"))
                         else "ArrowLeft")
            page.get_by_text(f"k={k}: {k} clusters").wait_for(timeout=60_000)

        page.locator('[data-testid="stPlotlyChart"]').first.hover()
        page.locator('.modebar-btn[data-title="Box Select"]').first.click()
        page.wait_for_timeout(500)
        axes = page.evaluate(f"({AXES})()")  # the map as redrawn at the new k
        left, top, width, height = axes["box"]
        x0, y0, x1, y1 = left + 0.45 * width, top + 0.40 * height, left + 0.60 * width, \
            top + 0.55 * height
        # The box as plotly reports it to Streamlit (its `plotly_selected` event), caught as it
        # fires: the rerun that follows may redraw the chart and drop the drawn box from the DOM.
        page.evaluate("""() => {
            const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
            window.__box = null;
            plot.on('plotly_selected', e => { if (e && e.range) window.__box = e.range; }); }""")
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
        page.mouse.move(x1, y1, steps=5)
        page.mouse.up()
        page.wait_for_function("() => window.__box !== null", timeout=30_000)
        drawn_box = page.evaluate("() => [...window.__box.x, ...window.__box.y]")
        page.get_by_text("rows chosen on the map").wait_for(timeout=60_000)
        # the rows the box holds, from every row's coordinates (the browser drew a subset)
        bx, by = sorted(drawn_box[:2]), sorted(drawn_box[2:])
        inside = (coords[:, 0] >= bx[0]) & (coords[:, 0] <= bx[1]) & \
            (coords[:, 1] >= by[0]) & (coords[:, 1] <= by[1])
        heading = page.get_by_text("rows chosen on the map").inner_text()
        chosen = int(heading.split(" rows")[0].replace(",", ""))
        assert chosen == inside.sum() > axes["drawn"] * inside.mean()  # more than were drawn
        page.get_by_text(f"of {chosen:,}").first.wait_for(timeout=30_000)  # the paged table
        no_exceptions(page)
        page.screenshot(path=str(SHOTS / "21-large-map-box.png"), full_page=True)
        settled(page)
        with page.expect_download(timeout=60_000) as download_info:
            page.get_by_role("button", name=f"Download these {chosen:,} rows").click()
        target = tmp_path / "box.jsonl"
        download_info.value.save_as(target)
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert len(rows) == chosen
        assert {row["id"] for row in rows} == set(ids[inside])
        assert {"id", "cluster", "quality", "prompt", "response"} <= set(rows[0])
        print(f"\nlarge map ({LARGE_MAP_ROWS:,} rows, load {os.getloadavg()[0]:.1f}): first map after "
              f"{first_map:.1f} s, k change {k_change:.1f} s, browser {memory}, box: {chosen:,} "
              f"rows ({MAP_POINTS:,} drawn of {LARGE_MAP_ROWS:,})")
        page.context.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------- the Clean page
def test_the_clean_page_marks_shared_ngrams_recounts_and_downloads(browser,
                                                                   prepared_workspace: Path
                                                                   ) -> None:
    """Issue 26: the flagged rows' shared n-grams are highlighted in the browser, the ε slider
    recounts at once, and the removed ids download as the CLI's flag table."""
    from selection_core.select import clean
    from selection_core.spine.store import RunStore

    store = RunStore(prepared_workspace / "runs" / f"demo-n{DEMO_N}-s0")
    result = clean.clean(store, clean.CleanConfig(benchmarks=("demo",)))
    server = Server(prepared_workspace, prepared_workspace.parent / "clean.log")
    server.wait_listening()
    try:
        page = new_page(browser)
        page.goto(f"{server.url}/clean")
        page.get_by_role("heading", name="Clean", exact=True).wait_for(timeout=90_000)
        flagged = page.get_by_test_id("stMetric").filter(has_text="Rows flagged")
        flagged.get_by_text(f"{len(result.flags):,}", exact=True).wait_for(timeout=60_000)
        marks = page.locator("mark")
        marks.first.wait_for(timeout=30_000)
        assert marks.count() >= 2  # both sides of the first flagged row
        assert marks.first.evaluate("m => getComputedStyle(m).backgroundColor") not in (
            "rgba(0, 0, 0, 0)", "transparent")  # a visible highlight, not bare text
        no_exceptions(page)
        looser = clean.flag_table(result.scores(), result.items(),
                                  clean.CleanConfig(benchmarks=("demo",), semantic_eps=0.2))
        page.get_by_role("slider").first.focus()
        page.keyboard.press("End")  # ε = 0.2
        flagged.get_by_text(f"{len(looser):,}", exact=True).wait_for(timeout=30_000)
        settled(page)  # the metric is drawn before the download button is replaced
        with page.expect_download() as download:
            page.get_by_role("button", name="Download the removed ids (CSV)").click()
        table = pd.read_csv(download.value.path(), dtype=str, keep_default_na=False)
        assert list(table.columns) == ["id", "kind", "of", "benchmark", "similarity"]
        assert len(table) == len(looser)
        page.screenshot(path=str(SHOTS / "clean.png"), full_page=True)
    finally:
        server.stop()


# --------------------------------------------------------------------------- the bundled demo
def test_a_fresh_workspace_shows_the_bundled_results_within_a_minute(
        browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 30: on the default demo pool of a fresh workspace the Iterative, Influence and
    Results pages draw the bundled demo's figures within 60 s of the server's start, labelled
    as the bundled demo, without anyone starting a job."""
    from selection_core.frontends.bundle import read_bundle
    from selection_core.frontends.workspace import DEMO_N as APP_DEMO_N

    bundle = read_bundle()
    assert bundle is not None and bundle.manifest["pool"]["demo_n"] == APP_DEMO_N
    root = tmp_path_factory.mktemp("fresh-bundle")
    started = time.time()
    server = Server(root / "workspace", root / "server.log", demo_n=APP_DEMO_N)
    try:
        server.wait_listening()
        page = new_page(browser)
        for path, label in (("influence", "bundled demo: LESS attribution matrix"),
                            ("results", "(bundled demo)"),
                            ("iterative", "bundled demo: iterative kMQ")):  # starts the prepare
            page.goto(f"{server.url}/{path}")
            page.get_by_text(label).first.wait_for(timeout=60_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            no_exceptions(page)
            page.screenshot(path=str(SHOTS / f"30-bundled-{path}.png"), full_page=True)
        elapsed = time.time() - started
        assert elapsed < 60, f"the bundled figures took {elapsed:.0f} s from the server's start"
    finally:
        server.stop()
