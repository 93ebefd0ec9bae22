"""Issue 27, the pure core of access control: roles, tokens (constant time, rate-limited), when
a login is needed, the data roots of the path box (symlinks and `..` resolved), the workspace
quota, and the heavy-job queue (one at a time, first come first served, stoppable)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selection_core.frontends import access, jobs, workspace
from selection_core.frontends.access import AccessDenied, Action, Role, Tokens
from selection_core.spine.store import RunStore, write_json

REPO = Path(__file__).resolve().parents[1]
SECRET = "PRIVATE-ROW-CONTENT-4711"


# --------------------------------------------------------------------------- roles and logins
def test_only_an_operator_may_act() -> None:
    access.require(Role.OPERATOR, Action.START_JOB)
    for action in Action:
        with pytest.raises(AccessDenied, match=f"viewers cannot {action.value}"):
            access.require(Role.VIEWER, action)
    with pytest.raises(AccessDenied, match="not logged in"):
        access.require(None, Action.UPLOAD)


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("", False), (None, False), ("::", False),
    ("192.0.2.7", False), ("myhost.example", False)])
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert access.is_loopback(address) is loopback


def test_a_login_is_needed_beyond_loopback_and_whenever_one_is_configured() -> None:
    none, token = Tokens(), Tokens(viewer="v")
    assert not access.login_required("127.0.0.1", none, oidc=False)
    assert access.login_required("127.0.0.1", token, oidc=False)
    assert access.login_required("127.0.0.1", none, oidc=True)
    assert access.login_required("0.0.0.0", none, oidc=False)
    assert access.login_required(None, none, oidc=False)  # Streamlit's default: every interface


def test_tokens_grant_their_role_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    tokens = Tokens.from_env({access.OPERATOR_TOKEN_ENV: "op-secret",
                              access.VIEWER_TOKEN_ENV: "view-secret"})
    compared = []
    real = access.hmac.compare_digest
    monkeypatch.setattr(access.hmac, "compare_digest",
                        lambda a, b: compared.append((a, b)) or real(a, b))
    assert tokens.role_of("op-secret") is Role.OPERATOR
    assert len(compared) == 2  # both tokens compared, also once the first matched
    assert tokens.role_of("view-secret") is Role.VIEWER
    assert tokens.role_of("op-secre") is None and tokens.role_of("") is None
    assert "secret" not in repr(tokens)
    assert Tokens.from_env({access.OPERATOR_TOKEN_ENV: ""}) == Tokens()  # empty: not set
    generated = {access.generate_token() for _ in range(3)}
    assert len(generated) == 3 and all(len(t) >= 32 for t in generated)


def test_oidc_identities_are_viewers_unless_listed_as_operators() -> None:
    operators = access.operators_from_env({access.OPERATORS_ENV: "Ana@Example.org, bo@x.io,"})
    assert operators == ["Ana@Example.org", " bo@x.io"]
    assert access.oidc_role("ana@example.org", operators) is Role.OPERATOR
    assert access.oidc_role("eve@example.org", operators) is Role.VIEWER
    assert access.oidc_role(None, operators) is Role.VIEWER


def test_failed_logins_are_rate_limited_per_client_and_in_all() -> None:
    failed = access.FailedLogins(limit=3, window_s=60, global_limit=5)
    for second in range(3):
        assert failed.wait_s("a", now=100 + second) == 0
        failed.failed("a", now=100 + second)
    assert failed.wait_s("a", now=103) == pytest.approx(57)
    assert failed.wait_s("b", now=103) == 0  # another client may still try
    failed.failed("b", now=104)
    failed.failed("c", now=105)
    assert failed.wait_s("d", now=106) == pytest.approx(54)  # five in all: everybody waits
    assert failed.wait_s("a", now=166) == 0  # the window has passed


# --------------------------------------------------------------------------- server paths
@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    (data / "set").mkdir(parents=True)
    outside.mkdir()
    (data / "set" / "ok.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    private = outside / "private.jsonl"
    private.write_text(f'{{"prompt": "{SECRET}", "response": "r"}}\n')
    (data / "link.jsonl").symlink_to(private)
    (data / "linked-folder").mkdir()
    (data / "linked-folder" / "part.jsonl").symlink_to(private)
    return {"data": data, "outside": outside, "private": private}


def test_the_path_box_reads_only_under_the_data_roots(roots: dict[str, Path]) -> None:
    data, private = roots["data"], roots["private"]
    allowed = [data.resolve()]
    access.check_inputs([str(data / "set" / "ok.jsonl"), f"mine={data / 'set'}",
                         str(data / "set" / ".." / "set" / "ok.jsonl"), "tatsu-lab/alpaca@train"],
                        allowed)
    refused = [str(private), str(data / "link.jsonl"), str(data / ".." / "elsewhere"),
               f"src={data / 'set' / '..' / '..' / 'elsewhere' / 'private.jsonl'}",
               str(data / "linked-folder"), "/etc/hostname", "~"]
    for text in refused:
        with pytest.raises(AccessDenied, match="outside the data roots") as caught:
            access.check_inputs([text], allowed)
        assert SECRET not in str(caught.value)


def test_the_default_data_roots_are_shared_data_and_the_workspace(tmp_path: Path) -> None:
    assert access.data_roots(tmp_path, {}) == [(REPO.parent / "shared" / "data").resolve(),
                                               tmp_path.resolve()]
    other = tmp_path / "more"
    assert access.data_roots(tmp_path, {access.DATA_ROOTS_ENV: f"{other}{os.pathsep}"}) == [
        other.resolve(), tmp_path.resolve()]


# --------------------------------------------------------------------------- the quota
def test_sizes_parse() -> None:
    assert access.parse_size("50G") == 50 * 1024 ** 3
    assert access.parse_size("1.5m") == int(1.5 * 1024 ** 2)
    assert access.parse_size("2GiB") == 2 * 1024 ** 3
    assert access.parse_size("1024") == 1024
    assert access.parse_size("none") is None and access.parse_size("0") is None
    with pytest.raises(access.SelectionError, match="not a size"):
        access.parse_size("lots")
    assert access.quota({}) == access.DEFAULT_QUOTA


def test_an_upload_beyond_the_quota_gets_one_line(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv(access.QUOTA_ENV, "10K")
    first = workspace.upload_path("a.jsonl", b"x" * 6000)
    assert workspace.upload_path("a.jsonl", b"x" * 6000) == first  # stored already: no growth
    with pytest.raises(access.QuotaExceeded) as caught:
        workspace.upload_path("b.jsonl", b"y" * 6000)
    message = str(caught.value)
    assert "\n" not in message and "quota" in message and access.QUOTA_ENV in message
    assert not list((tmp_path / "ws" / "uploads").glob("*/b.jsonl"))
    monkeypatch.setenv(access.QUOTA_ENV, "none")
    assert workspace.upload_path("b.jsonl", b"y" * 6000).exists()


# --------------------------------------------------------------------------- the job queue
HOLDER = """
import sys, time
from selection_core.frontends import jobs
from selection_core.spine.store import RunStore, write_json
with jobs.heavy_slot(RunStore(sys.argv[1]), sys.argv[2], poll_s=0.05):
    print(f"start {time.time()}", flush=True)
    time.sleep(float(sys.argv[3]))
    print(f"end {time.time()}", flush=True)
"""


def _hold(run: Path, name: str, seconds: float, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(run), name, str(seconds)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)


def test_heavy_jobs_run_one_at_a_time_first_come_first_served(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(tmp_path / "ws"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = _hold(tmp_path / "run-a", "prepare", 8.0, env)
    assert first.stdout.readline().startswith("start")
    second = _hold(tmp_path / "run-b", "score", 0.1, env)
    time.sleep(0.5)
    third = _hold(tmp_path / "run-c", "influence", 0.1, env)
    deadline = time.time() + 20
    while len(jobs.queue()) < 3 and time.time() < deadline:
        time.sleep(0.1)
    shown = [(Path(job["run"]).name, job["name"], job["state"]) for job in jobs.queue()]
    assert shown == [("run-a", "prepare", "running"), ("run-b", "score", "queued"),
                     ("run-c", "influence", "queued")]
    times = {}
    for name, process in (("a", first), ("b", second), ("c", third)):
        out, _ = process.communicate(timeout=60)
        lines = dict(line.split() for line in out.splitlines())
        times[name] = (float(lines.get("start", 0) or 0), float(lines["end"]))
    # one at a time, in the order they asked
    assert times["a"][1] <= times["b"][0] and times["b"][1] <= times["c"][0]


def test_a_stopped_job_ends_and_says_so(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               start_new_session=True)
    write_json(store.path("jobs", "score.json"),
                    {"name": "score", "chain": [], "state": "running", "pid": sleeper.pid,
                     "started": time.time()})
    assert jobs.job_status(store, "score").running
    status = jobs.stop_job(store, "score")
    assert sleeper.wait(timeout=10) != 0
    assert (status.state, status.message) == ("failed", "stopped by an operator")
