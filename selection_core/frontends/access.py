"""Who may do what in the app, and what the app may read (issue 27). Pure: no streamlit here.

Why: the app is shown to stakeholders on shared GPU servers. Listening beyond loopback always
needs a login (tokens, Jupyter-style, or Streamlit's OIDC); a login has a role — an operator
does everything, a viewer only looks — and the functions that start or stop jobs, upload or read
server paths check the role themselves (`require`), so a crafted request that skips the
widgets is refused too. The page glue (`pages/_access.py`) only asks these functions.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..data.loaders import DataSpec, is_hub_name
from ..spine.errors import SelectionError

OPERATOR_TOKEN_ENV = "SELECTION_CORE_OPERATOR_TOKEN"
VIEWER_TOKEN_ENV = "SELECTION_CORE_VIEWER_TOKEN"
OPERATORS_ENV = "SELECTION_CORE_OPERATORS"  # OIDC e-mail addresses that are operators
DATA_ROOTS_ENV = "SELECTION_CORE_DATA_ROOTS"  # os.pathsep-separated folders the path box reads
QUOTA_ENV = "SELECTION_CORE_WORKSPACE_QUOTA"  # e.g. "50G"; "0" or "none" for no quota
VIEW_RUN_ENV = "SELECTION_CORE_VIEW_RUN"  # `make view RUN=…`: one finished run, read only
DEFAULT_QUOTA = 50 * 1024 ** 3
REPO = Path(__file__).resolve().parents[2]


class Role(str, Enum):
    OPERATOR = "operator"
    VIEWER = "viewer"


class Action(str, Enum):
    """What a viewer may not do; the value completes "viewers cannot …"."""

    START_JOB = "start background jobs"
    STOP_JOB = "stop background jobs"
    UPLOAD = "upload files"
    READ_PATH = "read server paths"
    CHANGE_RUN = "change what a run holds"


class AccessDenied(SelectionError):
    """A role asked for an action it does not have (a crafted request: the page shows none)."""


class QuotaExceeded(SelectionError):
    """The workspace would grow past its size quota."""


def require(role: Role | None, action: Action) -> None:
    """Raise unless `role` may do `action`: only an operator may do anything of `Action`."""
    if role is not Role.OPERATOR:
        who = "viewers" if role is Role.VIEWER else "visitors who are not logged in"
        raise AccessDenied(f"{who} cannot {action.value}")


# --------------------------------------------------------------------------- who is asking
def is_loopback(address: str | None) -> bool:
    """Whether a listening address reaches this machine only. None or "" is Streamlit's
    default: every interface."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name: resolved by the OS, possibly to any interface
        return False


@dataclass(frozen=True)
class Tokens:
    """The access tokens; never printed (repr hides them)."""

    operator: str | None = field(default=None, repr=False)
    viewer: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Tokens:
        return cls(environ.get(OPERATOR_TOKEN_ENV) or None, environ.get(VIEWER_TOKEN_ENV) or None)

    @property
    def configured(self) -> bool:
        return bool(self.operator or self.viewer)

    def role_of(self, given: str) -> Role | None:
        """The role a token grants, compared in constant time against both tokens (the time
        says nothing about which token, or how much of one, matched)."""
        found = None
        for role, token in ((Role.OPERATOR, self.operator), (Role.VIEWER, self.viewer)):
            if token and hmac.compare_digest(given.encode(), token.encode()):
                found = found or role
        return found


def generate_token() -> str:
    return secrets.token_urlsafe(24)


def login_required(address: str | None, tokens: Tokens, oidc: bool) -> bool:
    """A login is needed when the server listens beyond loopback, and whenever one is
    configured (a token or OIDC), loopback included."""
    return not is_loopback(address) or tokens.configured or oidc


def oidc_role(email: str | None, operators: Iterable[str]) -> Role:
    """An OIDC identity is an operator only when listed (case-insensitive); anyone else the
    identity provider lets in is a viewer."""
    listed = {entry.strip().lower() for entry in operators if entry.strip()}
    return Role.OPERATOR if email and email.strip().lower() in listed else Role.VIEWER


def operators_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    return [entry for entry in environ.get(OPERATORS_ENV, "").split(",") if entry.strip()]


class FailedLogins:
    """Failed token attempts per client in a sliding window: past `limit` failures in
    `window_s`, that client waits; past `global_limit` in all, everybody waits (many clients
    guessing together). Thread-safe: one instance serves every session of a server."""

    def __init__(self, limit: int = 5, window_s: float = 60.0, global_limit: int = 50) -> None:
        self.limit, self.window_s, self.global_limit = limit, window_s, global_limit
        self._clients: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def wait_s(self, client: str, now: float | None = None) -> float:
        """Seconds before `client` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._clients.get(client, deque())
            self._trim(times, now)
            self._trim(self._all, now)
            waits = [times[0] + self.window_s - now] if len(times) >= self.limit else []
            if len(self._all) >= self.global_limit:
                waits.append(self._all[0] + self.window_s - now)
            return max(waits, default=0.0)

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._clients.setdefault(client, deque()).append(now)
            self._all.append(now)


# --------------------------------------------------------------------------- server paths
def data_roots(workspace: Path, environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The folders the Local path box reads: $SELECTION_CORE_DATA_ROOTS, else the checkout's
    ../shared/data; the workspace always. Resolved (symlinks, ..)."""
    configured = [Path(p).expanduser() for p in environ.get(DATA_ROOTS_ENV, "").split(os.pathsep)
                  if p.strip()]
    roots = configured or [REPO.parent / "shared" / "data"]
    return [root.resolve() for root in [*roots, workspace]]


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


def check_input(text: str, roots: Sequence[Path], hub_name: bool) -> None:
    """Refuse an input of the path box that reads outside `roots` — checked on the path with
    symlinks and `..` resolved, and for a folder on every file inside it. `hub_name`: the
    loader takes `text` for a Hugging Face dataset name (nothing local is read by name). The
    message names the input, never what it holds."""
    path = Path(text).expanduser()
    if hub_name and not path.exists():
        return
    outside = not _inside(path, roots) or (path.is_dir() and any(
        not _inside(inner, roots) for inner in path.rglob("*")))
    if outside:
        shown = ", ".join(str(root) for root in roots)
        raise AccessDenied(f"{text}: outside the data roots ({shown}); the app reads server "
                           f"paths only there (set {DATA_ROOTS_ENV} to add folders)")


def check_inputs(inputs: Iterable[str], roots: Sequence[Path]) -> None:
    """`check_input` for each input of the path box (`[SOURCE=]LOCATION[@SPLIT]`)."""
    for text in inputs:
        spec = DataSpec.parse(text)
        check_input(spec.location, roots, is_hub_name(spec))


# --------------------------------------------------------------------------- workspace quota
def parse_size(text: str) -> int | None:
    """Bytes of "50G", "500M", "1.5T", "1024"; None for "0" or "none" (no quota)."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text in ("", "0", "NONE"):
        return None
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
    scale = units.get(text[-1], 1)
    try:
        value = float(text[:-1] if text[-1] in units else text)
    except ValueError:
        raise SelectionError(f"{QUOTA_ENV}={text!r}: not a size (e.g. 50G, 500M)") from None
    return int(value * scale)


def quota(environ: Mapping[str, str] = os.environ) -> int | None:
    """The workspace's size quota in bytes ($SELECTION_CORE_WORKSPACE_QUOTA, default 50 GiB)."""
    text = environ.get(QUOTA_ENV)
    return DEFAULT_QUOTA if text is None else parse_size(text)


def folder_bytes(root: Path) -> int:
    """Bytes of the files under `root` (symlinks not followed)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def check_quota(root: Path, adding: int, limit: int | None) -> None:
    """One line when `adding` bytes would take the workspace past its quota."""
    if limit is None:
        return
    used = folder_bytes(root)
    if used + adding > limit:
        raise QuotaExceeded(f"the workspace is full: {used / 1e6:,.1f} MB of its "
                            f"{limit / 1e6:,.0f} MB quota used, this upload needs "
                            f"{adding / 1e6:,.1f} MB more (remove runs or raise {QUOTA_ENV})")
