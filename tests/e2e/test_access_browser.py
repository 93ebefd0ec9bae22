"""Issue 27 in real headless Chromium: the app is private by default, asks for a login whenever
it is shared, gives a viewer no controls that act, and reads server paths only under the data
roots. Servers are started as in test_browser.py (its `Server` and `browser`).

The crafted-request case is a raw websocket message (Streamlit's protobuf BackMsg) pressing a
button a viewer does not have; tests/app/test_access_pages.py also calls the guarded actions
directly in a viewer's session.
"""
from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from selection_core.frontends import access


def _browser_helpers():
    spec = importlib.util.spec_from_file_location("e2e_browser_helpers",
                                                  Path(__file__).with_name("test_browser.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _browser_helpers()
browser = helpers.browser  # the module's Chromium (a fixture)
pytestmark = helpers.pytestmark
Server, new_page, no_exceptions, SHOTS = (helpers.Server, helpers.new_page,
                                          helpers.no_exceptions, helpers.SHOTS)
SECRET = "PRIVATE-ROW-4711"
NO_TOKENS = {access.OPERATOR_TOKEN_ENV: "", access.VIEWER_TOKEN_ENV: ""}
OPERATOR, VIEWER = "browser-operator-token", "browser-viewer-token"


def outward_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
            address = probe.getsockname()[0]
    except OSError:
        address = None
    if address is None or access.is_loopback(address):
        listed = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        address = next((a for a in listed if ":" not in a and not access.is_loopback(a)), None)
    return address


def body(page) -> str:
    """All the page holds: its HTML (a table's cells are in the DOM, not in its text)."""
    return page.content()


def start(server: Server) -> Server:
    server.wait_listening()
    return server


# --------------------------------------------------------------------------- private by default
@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("access-e2e")
    data, outside = base / "data", base / "outside"
    data.mkdir()
    outside.mkdir()
    (data / "inside.jsonl").write_text('{"prompt": "INSIDE-ROW", "response": "fine"}\n')
    private = outside / "private.jsonl"
    private.write_text(f'{{"prompt": "{SECRET}", "response": "{SECRET}"}}\n')
    (data / "link.jsonl").symlink_to(private)
    return {"base": base, "data": data, "private": private}


@pytest.fixture(scope="module")
def private_server(roots: dict[str, Path]) -> Iterator[Server]:
    """`streamlit run app.py` as it comes: no address given, no login configured."""
    server = start(Server(roots["base"] / "workspace", roots["base"] / "private.log",
                          env={**NO_TOKENS, access.DATA_ROOTS_ENV: str(roots["data"])}))
    yield server
    server.stop()


def test_the_default_server_is_not_reachable_beyond_loopback(browser, private_server: Server
                                                              ) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to try")
    page = new_page(browser)
    with pytest.raises(Exception, match="ERR_CONNECTION_REFUSED"):
        page.goto(f"http://{address}:{private_server.port}/data", timeout=30_000)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, private_server.port), timeout=5).close()
    page.context.close()
    page = new_page(browser)  # the same server on loopback: the app, no login
    page.goto(f"{private_server.url}/data")
    page.get_by_role("heading", name="Data", exact=True).wait_for(timeout=90_000)
    no_exceptions(page)
    page.context.close()


def test_a_path_outside_the_data_roots_is_refused_without_content(
        browser, private_server: Server, roots: dict[str, Path]) -> None:
    page = new_page(browser)
    page.goto(f"{private_server.url}/data")
    page.get_by_text("Local path or Hugging Face dataset").click()
    box = page.locator("textarea")

    def try_path(path: Path) -> None:
        box.fill(str(path))
        box.press("Control+Enter")
        page.wait_for_timeout(500)

    try_path(roots["data"] / "inside.jsonl")  # under the roots: read and shown
    page.get_by_text("How the inputs map onto the pool schema").wait_for(timeout=60_000)
    page.wait_for_function("document.body.innerHTML.includes('INSIDE-ROW')", timeout=30_000)
    for refused in (roots["private"], roots["data"] / "link.jsonl",
                    roots["data"] / ".." / "outside" / "private.jsonl"):
        try_path(refused)
        page.get_by_text("outside the data roots").wait_for(timeout=30_000)
        page.wait_for_timeout(1000)
        assert SECRET not in body(page) and "INSIDE-ROW" not in body(page)
        assert page.get_by_text("How the inputs map onto the pool schema").count() == 0
    page.screenshot(path=str(SHOTS / "30-path-refused.png"))
    no_exceptions(page)
    page.context.close()


# --------------------------------------------------------------------------- shared
def workspace_shown(text: str, workspace: Path) -> list[str]:
    """What of the workspace a page text shows: run names, paths, the sidebar's run."""
    return [needle for needle in ("demo-n", str(workspace), "Current pool", "Run directory")
            if needle in text]


def test_a_shared_server_without_login_config_shows_nothing_without_its_generated_token(
        browser, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    log = tmp_path / "shared.log"
    server = start(Server(workspace, log, env=NO_TOKENS, args=("--server.address", "0.0.0.0")))
    try:
        host = outward_address() or "127.0.0.1"
        page = new_page(browser)
        for path in ("", "data", "selection?token=guess"):
            page.goto(f"http://{host}:{server.port}/{path}")
            page.get_by_role("heading", name="Log in").wait_for(timeout=90_000)
            page.wait_for_timeout(500)
            assert workspace_shown(body(page), workspace) == []
            assert page.locator('[data-testid="stSidebarNavLink"]').count() == 0
        page.screenshot(path=str(SHOTS / "31-shared-login.png"))
        printed = re.findall(r"Operator token \(shown once\):\s+(\S+)", log.read_text())
        assert len(printed) == 1  # printed once, for every visitor
        page.goto(f"http://{host}:{server.port}/data?token={printed[0]}")
        page.get_by_role("heading", name="Data", exact=True).wait_for(timeout=90_000)
        page.get_by_text("Logged in as operator").wait_for(timeout=30_000)
        page.wait_for_function("!location.search.includes('token')", timeout=10_000)
        no_exceptions(page)
        page.context.close()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    workspace = tmp_path_factory.mktemp("tokens") / "workspace"
    server = start(Server(workspace, workspace.parent / "tokens.log",
                          env={access.OPERATOR_TOKEN_ENV: OPERATOR,
                               access.VIEWER_TOKEN_ENV: VIEWER},
                          args=("--server.address", "0.0.0.0")))
    yield server, workspace
    server.stop()


def log_in(page, token: str) -> None:
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Log in").click()


def test_with_tokens_no_token_shows_the_login_box_and_the_right_one_the_app(
        browser, token_server: tuple[Server, Path]) -> None:
    server, workspace = token_server
    page = new_page(browser)
    page.goto(f"{server.url}/data")
    page.get_by_role("heading", name="Log in").wait_for(timeout=90_000)
    assert workspace_shown(body(page), workspace) == []
    assert page.get_by_role("heading", name="Data").count() == 0
    log_in(page, "wrong")
    page.get_by_text("That token is not valid.").wait_for(timeout=30_000)
    assert workspace_shown(body(page), workspace) == []
    log_in(page, OPERATOR)
    page.get_by_role("heading", name="Data", exact=True).wait_for(timeout=90_000)
    page.get_by_text("Logged in as operator").wait_for(timeout=30_000)
    assert "demo-n" in body(page)  # the app itself, with its current run
    no_exceptions(page)
    page.context.close()


@pytest.fixture
def running_job(token_server: tuple[Server, Path], job_in_queue) -> None:
    """A live heavy job in the workspace's queue, so the queue and its Stop button show."""
    job_in_queue(token_server[1], "other", "score")


ACTING = ("Open the demo pool", "Upload a file", "Local path or Hugging Face dataset", "Stop",
          "Run the quick demo experiment")


def acting_controls(page) -> list[str]:
    found = [label for label in ACTING if page.get_by_text(label, exact=True).count()
             or page.get_by_role("radio", name=label, exact=True).count()]
    found += ["file input"] * page.locator("input[type=file]").count()
    found += ["text area"] * page.locator("textarea").count()
    return found


def test_a_viewer_sees_no_upload_path_job_or_stop_controls(
        browser, token_server: tuple[Server, Path], running_job: None) -> None:
    server, _ = token_server
    seen = {}
    for token in (OPERATOR, VIEWER):
        page = new_page(browser)
        page.goto(f"{server.url}/data?token={token}")
        page.get_by_text(f"Logged in as {'operator' if token == OPERATOR else 'viewer'}"
                         ).wait_for(timeout=90_000)
        page.get_by_text("score · other").wait_for(timeout=30_000)  # the queue, for both
        page.get_by_text("The current pool is still being loaded").wait_for(timeout=60_000)
        marker = page.get_by_role("button", name="Open the demo pool") if token == OPERATOR \
            else page.get_by_text("Viewers look at prepared runs")
        marker.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        seen[token, "data"] = acting_controls(page)
        page.get_by_role("link", name="Results").click()
        page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        seen[token, "results"] = acting_controls(page)
        if token == VIEWER:
            page.screenshot(path=str(SHOTS / "32-viewer-results.png"))
        no_exceptions(page)
        page.context.close()
    assert set(seen[OPERATOR, "data"]) >= {"Open the demo pool", "Upload a file", "Stop"}
    assert "Run the quick demo experiment" in seen[OPERATOR, "results"]
    assert seen[VIEWER, "data"] == [] and seen[VIEWER, "results"] == []
    log = server.log_path.read_text()
    assert OPERATOR not in log and VIEWER not in log  # tokens given in URLs are not logged


# --------------------------------------------------------------------------- a crafted message
def script_run(server: Server, token: str, page: str, pressed: tuple[str, ...] = ()
               ) -> tuple[dict[str, str], list[str]]:
    """One script run over Streamlit's websocket, as a browser would ask for it, with the
    buttons `pressed` (widget ids) in its widget states: the buttons the run drew (label → id)
    and its headings."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    request = BackMsg()
    request.rerun_script.query_string = f"token={token}"
    request.rerun_script.page_name = page
    for widget in pressed:
        state = request.rerun_script.widget_states.widgets.add()
        state.id, state.trigger_value = widget, True
    buttons, headings = {}, []
    with connect(f"ws://127.0.0.1:{server.port}/_stcore/stream") as socket_:
        socket_.send(request.SerializeToString())
        while True:
            message = ForwardMsg()
            message.ParseFromString(socket_.recv(timeout=90))
            if message.WhichOneof("type") == "script_finished":
                return buttons, headings
            element = message.delta.new_element
            if element.WhichOneof("type") == "button":
                buttons[element.button.label] = element.button.id
            elif element.WhichOneof("type") == "heading":
                headings.append(element.heading.body)


def test_a_crafted_widget_message_starts_no_job_for_a_viewer(
        token_server: tuple[Server, Path]) -> None:
    """A raw websocket message pressing "Open the demo pool" (which starts the demo's
    preparation job) in a viewer's session: refused; the same message from an operator's
    fresh session starts the job, so the message itself is well formed."""
    from selection_core.frontends import jobs
    from selection_core.spine.store import RunStore

    server, workspace = token_server
    run = workspace / "runs" / f"demo-n{helpers.DEMO_N}-s0"

    def prepare_job() -> str:
        return jobs.job_status(RunStore(run, create=False), "prepare").state if run.exists() \
            else "absent"

    operator_buttons, _ = script_run(server, OPERATOR, "data")
    press = operator_buttons["Open the demo pool"]
    viewer_buttons, headings = script_run(server, VIEWER, "data", pressed=(press,))
    assert "Data" in headings and "Open the demo pool" not in viewer_buttons
    time.sleep(2)
    assert prepare_job() == "absent"  # no job started
    script_run(server, OPERATOR, "data", pressed=(press,))
    deadline = time.time() + 30
    while prepare_job() == "absent" and time.time() < deadline:
        time.sleep(0.2)
    try:
        assert prepare_job() in ("queued", "running")
    finally:
        if run.exists():
            jobs.stop_job(RunStore(run, create=False), "prepare")
