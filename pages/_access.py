"""Streamlit glue of `selection_core.frontends.access` (issue 27): the login gate, the
session's role, and the guarded actions — the only way pages start or stop jobs, store uploads
or read server paths. Each guarded action checks the role itself, so a request that skips the
widgets (a crafted widget message) is refused as the absent button would be.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import streamlit as st

from selection_core.frontends import access, jobs, workspace
from selection_core.frontends.access import Action, Role
from selection_core.spine.store import RunStore

ROLE_KEY = "_selection_core_role"  # set by the gate only: no widget has this key
LOGIN_MESSAGE = "_selection_core_login_message"
FAILED = access.FailedLogins()  # one per server process: every session's attempts count
_generated: dict[str, str] = {}
_generated_lock = threading.Lock()


# --------------------------------------------------------------------------- configuration
def address() -> str | None:
    return st.get_option("server.address")


def oidc_configured() -> bool:
    """Streamlit's OIDC login is configured: an [auth] section in .streamlit/secrets.toml."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 — no secrets file at all (Streamlit raises its own types)
        return False


def operators() -> list[str]:
    """OIDC identities that are operators: $SELECTION_CORE_OPERATORS, or `operators` under
    [selection_core] in secrets.toml."""
    listed = access.operators_from_env()
    if not listed:
        try:
            listed = list(st.secrets.get("selection_core", {}).get("operators", []))
        except Exception:  # noqa: BLE001 — no secrets file
            listed = []
    return listed


def tokens() -> access.Tokens:
    """The configured tokens; on a shared start with none and no OIDC, an operator token
    generated once per server process and printed once in its console."""
    configured = access.Tokens.from_env()
    if configured.configured or oidc_configured() or access.is_loopback(address()):
        return configured
    with _generated_lock:
        if "operator" not in _generated:
            _generated["operator"] = access.generate_token()
            port = st.get_option("server.port")
            print(f"\nselection_core is shared ({address() or 'every interface'}:{port}) with no "
                  f"login configured. Operator token (shown once):\n\n    "
                  f"{_generated['operator']}\n\nOpen http://HOST:{port}/?token=<token>, or set "
                  f"{access.OPERATOR_TOKEN_ENV} / {access.VIEWER_TOKEN_ENV}.\n",
                  file=sys.stderr, flush=True)
    return access.Tokens(operator=_generated["operator"])


def view_run() -> Path | None:
    """The run `make view RUN=…` presents, read only."""
    text = os.environ.get(access.VIEW_RUN_ENV)
    return Path(text).expanduser().resolve() if text else None


# --------------------------------------------------------------------------- the gate
def role() -> Role | None:
    return st.session_state.get(ROLE_KEY)


def is_operator() -> bool:
    return role() is Role.OPERATOR


def _grant(granted: Role) -> Role:
    """Hold `granted` for the session (a viewer, whatever it is, when presenting one run)."""
    st.session_state[ROLE_KEY] = Role.VIEWER if view_run() is not None else granted
    return st.session_state[ROLE_KEY]


def _try_token(given: str) -> Role | None:
    ip = st.context.ip_address  # None on localhost
    client = ip if isinstance(ip, str) else "local"
    wait = FAILED.wait_s(client)
    if wait > 0:
        st.session_state[LOGIN_MESSAGE] = (f"Too many failed attempts: try again in "
                                           f"{wait:.0f} s.")
        return None
    granted = tokens().role_of(given)
    if granted is None:
        FAILED.failed(client)
        st.session_state[LOGIN_MESSAGE] = "That token is not valid."
        return None
    st.session_state.pop(LOGIN_MESSAGE, None)
    return _grant(granted)


def gate() -> Role | None:
    """The session's role: held, granted without a login (loopback with none configured), from
    the OIDC identity, or from `?token=` (removed from the address bar once read); None when
    the visitor must log in first."""
    held = role()
    if held is not None:
        return held
    oidc = oidc_configured()
    if not access.login_required(address(), tokens(), oidc):
        return _grant(Role.OPERATOR)
    if oidc and st.user.get("is_logged_in", False):
        return _grant(access.oidc_role(st.user.get("email"), operators()))
    given = st.query_params.get("token")
    if given is not None:
        del st.query_params["token"]
        return _try_token(given)
    return None


def login_page() -> None:
    """All a visitor sees before logging in: nothing of the workspace."""
    st.title("Log in")
    notice = st.empty()  # filled last: the outcome of this run's attempt
    if oidc_configured():
        if st.button("Log in with your identity provider", type="primary"):
            st.login()
    if tokens().configured:
        with st.form("login"):
            given = st.text_input("Access token", type="password")
            if st.form_submit_button("Log in") and given and _try_token(given) is not None:
                st.rerun()
        if _generated:
            st.caption("This server was shared with no login configured: its operator token "
                       "was printed in the server's console.")
    if st.session_state.get(LOGIN_MESSAGE):
        notice.error(st.session_state[LOGIN_MESSAGE])


def logout() -> None:
    """on_click of the sidebar's Log out."""
    st.session_state.pop(ROLE_KEY, None)
    if oidc_configured() and st.user.get("is_logged_in", False):
        st.logout()


def shows_logout() -> bool:
    return access.login_required(address(), tokens(), oidc_configured())


# --------------------------------------------------------------------------- guarded actions
def start_job(store: RunStore, name: str, chain: jobs.Chain) -> jobs.JobStatus:
    access.require(role(), Action.START_JOB)
    return jobs.start_job(store, name, chain)


def stop_job(store: RunStore, name: str) -> jobs.JobStatus:
    access.require(role(), Action.STOP_JOB)
    return jobs.stop_job(store, name)


def save_upload(name: str, content: bytes) -> Path:
    """Store an upload in the workspace (within its quota)."""
    access.require(role(), Action.UPLOAD)
    return workspace.upload_path(name, content)


def check_inputs(inputs: list[str]) -> None:
    """Refuse server paths outside the data roots before anything of them is read."""
    access.require(role(), Action.READ_PATH)
    access.check_inputs(inputs, access.data_roots(workspace.workspace_root()))
