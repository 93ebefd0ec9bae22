"""Background jobs: long CLI commands run in their own process, reporting into the run directory.

Why: embedding a pool, scoring with a language model or training take longer than a UI request
should block. The app starts `python -m selection_core.jobs RUN NAME -- <cli args>`; the job runs
the CLI command in a new session (it survives page reloads), writes its log to `jobs/NAME.log`
and its outcome to `jobs/NAME.json`; stages write `progress/<stage>.json`. Pages only poll files.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import RunStore, read_json, write_json

_LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class JobStatus:
    """What a page needs to show a job: state, outcome and the end of its log."""

    name: str
    state: str  # "absent", "running", "done", "failed"
    returncode: int | None
    message: str
    log_tail: str
    started: float | None

    @property
    def running(self) -> bool:
        return self.state == "running"


def _job_file(store: RunStore, name: str) -> Path:
    return store.path("jobs", f"{name}.json")


def _log_file(store: RunStore, name: str) -> Path:
    return store.path("jobs", f"{name}.log")


def start_job(store: RunStore, name: str, cli_args: list[str]) -> JobStatus:
    """Start `python -m selection_core <cli_args>` in the background unless it already runs."""
    current = job_status(store, name)
    if current.running:
        return current
    log_path = _log_file(store, name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    repo_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "selection_core.jobs", str(store.root), name, "--", *cli_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    write_json(_job_file(store, name), {"name": name, "args": cli_args, "pid": process.pid,
                                        "state": "running", "started": time.time()})
    return job_status(store, name)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def job_status(store: RunStore, name: str) -> JobStatus:
    path = _job_file(store, name)
    if not path.exists():
        return JobStatus(name, "absent", None, "", "", None)
    info: dict[str, Any] = read_json(path)
    state = info.get("state", "running")
    message = info.get("message", "")
    if state == "running" and not _alive(int(info.get("pid", -1))):
        state, message = "failed", "the job's process ended without reporting (killed?)"
    log_tail = ""
    log_path = _log_file(store, name)
    if log_path.exists():
        text = log_path.read_text(encoding="utf-8", errors="replace")
        log_tail = text[-_LOG_TAIL_CHARS:]
        if state == "failed" and not message:  # the CLI's one-line error, when it printed one
            errors = [line for line in text.splitlines() if line.startswith("error: ")]
            message = errors[-1][len("error: "):] if errors else "see the log"
    return JobStatus(name, state, info.get("returncode"), message, log_tail, info.get("started"))


def wait_for_job(store: RunStore, name: str, timeout_s: float = 600.0,
                 poll_s: float = 0.5) -> JobStatus:
    """Block until the job ends (for the CLI and tests; pages poll instead)."""
    deadline = time.time() + timeout_s
    status = job_status(store, name)
    while status.running and time.time() < deadline:
        time.sleep(poll_s)
        status = job_status(store, name)
    return status


def _run(run_dir: str, name: str, cli_args: list[str]) -> int:
    from .cli import main

    store = RunStore(run_dir)
    path = _job_file(store, name)
    info = read_json(path) if path.exists() else {"name": name, "args": cli_args}
    info.update(pid=os.getpid(), state="running", started=info.get("started", time.time()))
    write_json(path, info)
    try:
        code = main(cli_args)
    except BaseException as exc:  # record anything, then let it propagate to the log
        write_json(path, {**info, "state": "failed", "returncode": 1,
                          "message": f"{type(exc).__name__}: {exc}", "finished": time.time()})
        raise
    write_json(path, {**info, "state": "done" if code == 0 else "failed", "returncode": code,
                      "finished": time.time()})
    return code


if __name__ == "__main__":
    run_dir, job_name, separator, *args = sys.argv[1:]
    if separator != "--":
        sys.exit("usage: python -m selection_core.jobs RUN_DIR NAME -- CLI ARGS…")
    sys.exit(_run(run_dir, job_name, args))
