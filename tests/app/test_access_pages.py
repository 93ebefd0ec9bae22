"""Issue 27 in the page wiring (AppTest): the login gate shows nothing of the workspace, tokens
grant their role once and are rate-limited, a viewer gets no upload, path, job or stop controls
on any page, and the guarded actions refuse a viewer even when called directly — what a crafted
widget message for an absent button would reach."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages import _access
from selection_core.frontends import access, jobs, workspace
from selection_core.select import stages as pipeline
from selection_core.spine.store import RunStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")
OPERATOR, VIEWER = "operator-token-for-tests", "viewer-token-for-tests"
DEMO_N = 300
SWEPT_K = (3, 4)  # conftest's prepared_workspace
PAGES = ("clusters", "data", "selection", "iterative", "influence", "report", "results")
# what only an operator gets, by page (buttons, text boxes, uploaders, radio options)
OPERATOR_ONLY = {
    "clusters": {"Try a k that was not swept", "Cluster at this k"},
    "data": {"Open the demo pool", "Upload a file", "Local path or Hugging Face dataset"},
    "selection": {"Quality scorer", "Scorer model (perplexity / reward)"},
    "iterative": {"Start", "…or another causal LM (HF name or local path)"},
    "influence": {"Upload A.npy + val_tasks.txt", "Compute a small matrix here (tiny CPU model)"},
    "report": set(),
    "results": {"Run the quick demo experiment"},
}
EVERY_PAGE_OPERATOR = {"Stop"}  # the job queue in the sidebar


@pytest.fixture
def tokens(prepared_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(prepared_workspace))
    monkeypatch.setenv("SELECTION_CORE_DEMO_N", str(DEMO_N))
    monkeypatch.setenv(access.OPERATOR_TOKEN_ENV, OPERATOR)
    monkeypatch.setenv(access.VIEWER_TOKEN_ENV, VIEWER)
    monkeypatch.setattr(_access, "FAILED", access.FailedLogins())


@pytest.fixture
def queued_job(prepared_workspace: Path, job_in_queue) -> None:
    job_in_queue(prepared_workspace, "x", "score")


def open_app(token: str | None, page: str = "clusters") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if token is not None:
        at.query_params["token"] = token
    if page != "clusters":  # a deep link: the page is the first request
        at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown_text(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "markdown", "caption", "info", "error", "subheader",
                                  "text", "code") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def controls(at: AppTest) -> set[str]:
    """Labels of everything that acts: buttons, text boxes, select boxes, uploaders, radio
    options, expanders."""
    found = {b.label for b in at.button} | {t.label for t in at.text_input} | \
        {t.label for t in at.text_area} | {e.label for e in at.expander} | \
        {s.label for s in at.selectbox}
    found |= {u.proto.label for u in at.get("file_uploader")}
    found |= {option for radio in at.radio for option in radio.options}
    return found


def test_without_a_token_a_visitor_sees_the_login_box_and_nothing_else(tokens: None) -> None:
    for page in PAGES:
        at = open_app(None, page)
        assert [t.value for t in at.title] == ["Log in"]
        assert [t.label for t in at.text_input] == ["Access token"]
        text = shown_text(at) + "".join(str(e.proto) for e in at.sidebar)
        assert "demo-" not in text and "Current pool" not in text and "runs" not in text
        assert not at.get("plotly_chart") and not at.dataframe and not at.sidebar.children


def test_a_token_grants_its_role_once_and_leaves_the_address_bar(tokens: None) -> None:
    at = open_app("not-the-token")
    assert [t.value for t in at.title] == ["Log in"]
    assert any("not valid" in e.value for e in at.error)
    at = open_app(VIEWER)
    assert "token" not in at.query_params  # read once, then held by the session
    assert any(c.value == "Logged in as viewer" for c in at.sidebar.caption)
    at.switch_page("pages/report.py").run()  # held across pages
    assert [t.value for t in at.title] == ["Report"]
    at = open_app(None)
    at.text_input[0].input(OPERATOR)
    at.button[0].click().run()
    assert any(c.value == "Logged in as operator" for c in at.sidebar.caption)


def test_failed_logins_are_rate_limited(tokens: None) -> None:
    at = open_app(None)
    for _ in range(5):
        at.text_input[0].input("guess")
        at.button[0].click().run()
    at.text_input[0].input(OPERATOR)  # even the right token waits now
    at.button[0].click().run()
    assert any("Too many failed attempts" in e.value for e in at.error)
    assert [t.value for t in at.title] == ["Log in"]


@pytest.mark.parametrize("page", PAGES)
def test_a_viewer_gets_no_upload_path_job_or_stop_controls(tokens: None, queued_job: None,
                                                           page: str) -> None:
    operator = controls(open_app(OPERATOR, page))
    assert OPERATOR_ONLY[page] | EVERY_PAGE_OPERATOR <= operator  # the check can fail
    viewer_app = open_app(VIEWER, page)
    viewer = controls(viewer_app)
    assert not viewer & (OPERATOR_ONLY[page] | EVERY_PAGE_OPERATOR), viewer
    assert not viewer_app.get("file_uploader") and not viewer_app.text_area
    assert {t.label for t in viewer_app.text_input} <= {"Search these rows", "Title"}
    assert any("score" in m.value for m in viewer_app.sidebar.markdown)  # the queue is shown


def _crafted(run_dir: str) -> None:
    """A viewer's session that reaches the guarded actions without their widgets."""
    import streamlit as st

    from pages import _access as auth
    from selection_core.frontends import jobs
    from selection_core.select import stages as pipeline
    from selection_core.spine.store import RunStore

    role = auth.gate()
    st.caption(f"role: {role.value if role else None}")
    store = RunStore(run_dir)
    attempts = {
        "start": lambda: auth.start_job(store, "prepare",
                                        [jobs.link(pipeline.PREPARE.name,
                                                   pipeline.PrepareConfig(demo_n=100))]),
        "stop": lambda: auth.stop_job(store, "prepare"),
        "upload": lambda: auth.save_upload("x.jsonl", b'{"prompt": "p"}\n'),
        "path": lambda: auth.check_inputs(["/etc/hostname"])}
    for name, attempt in attempts.items():
        try:
            attempt()
            st.error(f"{name}: allowed")
        except Exception as exc:  # noqa: BLE001 — the refusal is the point
            st.error(f"{name}: {type(exc).__name__}: {exc}")


def test_the_guarded_actions_refuse_a_viewer_called_directly(tokens: None,
                                                             prepared_workspace: Path) -> None:
    """The crafted-request case: the absent button's action, called as its widget message
    would have it, in a viewer's session (AppTest, not a raw websocket message)."""
    prepared = prepared_workspace
    run = prepared / "runs" / "crafted"
    at = AppTest.from_function(_crafted, args=(str(run),), default_timeout=60)
    at.query_params["token"] = VIEWER
    at.run()
    assert [c.value for c in at.caption] == ["role: viewer"]
    assert [e.value for e in at.error] == [
        "start: AccessDenied: viewers cannot start background jobs",
        "stop: AccessDenied: viewers cannot stop background jobs",
        "upload: AccessDenied: viewers cannot upload files",
        "path: AccessDenied: viewers cannot read server paths"]
    assert jobs.job_status(RunStore(run, create=False), "prepare").state == "absent"
    assert not (prepared / "uploads").exists()
    at = AppTest.from_function(_crafted, args=(str(run),), default_timeout=60)
    at.query_params["token"] = OPERATOR  # the same calls as an operator get through
    at.run()
    assert [e.value.split(":")[0] for e in at.error if e.value.endswith("allowed")] == [
        "start", "stop", "upload"]
    assert any(e.value.startswith("path: AccessDenied: /etc/hostname: outside the data roots")
               for e in at.error)
    jobs.stop_job(RunStore(run), "prepare")


def test_with_oidc_configured_the_login_page_offers_the_identity_provider(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit's own OIDC login, configured in secrets.toml ([auth]): a visitor gets its
    button (no token box: none is configured) and nothing of the workspace."""
    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(tmp_path))
    for name in (access.OPERATOR_TOKEN_ENV, access.VIEWER_TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "c", "client_id": "i", "client_secret": "s",
                          "server_metadata_url": "https://idp.example/.well-known/"
                                                 "openid-configuration"}
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Log in"]
    assert [b.label for b in at.button] == ["Log in with your identity provider"]
    assert not at.text_input and not at.sidebar.children


def test_make_view_presents_one_finished_run_read_only(prepared_workspace: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(prepared_workspace))
    monkeypatch.setenv("SELECTION_CORE_DEMO_N", str(DEMO_N))
    for name in (access.OPERATOR_TOKEN_ENV, access.VIEWER_TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    unfinished = RunStore(prepared_workspace / "runs" / "unfinished")
    pipeline.ingest_demo(unfinished, n=100)  # a second run, not prepared
    operator = open_app(None)  # loopback, no login: the operator, who may switch runs
    assert "Switch to" in controls(operator) and "Try a k that was not swept" in controls(operator)
    monkeypatch.setenv(access.VIEW_RUN_ENV, str(workspace.demo_run().root))
    presenting = open_app(None)
    assert [c.value for c in presenting.sidebar.caption][0] == "Presenting (read only)"
    assert not controls(presenting) & {"Switch to", "Try a k that was not swept", "Stop"}
    assert len(presenting.get("plotly_chart")) >= 3  # the run itself, browsable
    monkeypatch.setenv(access.VIEW_RUN_ENV, str(unfinished.root))
    refused = open_app(None)
    assert any("is not a finished run" in e.value for e in refused.error)
    assert not refused.get("plotly_chart")


def test_pages_act_only_through_the_guarded_actions() -> None:
    """Starting or stopping a job and storing an upload go through pages/_access.py, whose
    functions check the role: no page calls the core's unguarded ones."""
    unguarded = re.compile(r"\b(jobs\.start_job|jobs\.stop_job|workspace\.upload_path)\(")
    pages = Path(APP).parent / "pages"
    offenders = {path.name: unguarded.findall(path.read_text(encoding="utf-8"))
                 for path in [Path(APP), *pages.glob("*.py")] if path.name != "_access.py"}
    assert {name: calls for name, calls in offenders.items() if calls} == {}
    assert unguarded.findall((pages / "_access.py").read_text(encoding="utf-8"))  # it does
