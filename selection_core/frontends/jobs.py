"""Background jobs: a chain of stages run through the runner in their own process.

Why: embedding a pool, scoring with a language model or training take longer than a UI request
should block. A page builds configs and starts `start_job(store, NAME, chain)`, where the chain
is a list of (stage name, config as JSON) — a serialised config, never argv; the job
(`python -m selection_core.frontends.jobs RUN NAME`, in a new session, so it survives page
reloads) runs the stages in order through `runner.run`, each reusing its finished key, writes
its log to `jobs/NAME.log`, its state and current step to `jobs/NAME.json` and its progress to
`progress/NAME.json`. Pages only poll. The CLI is the other front end of the same runner.

Every job here is heavy (embedding, scoring, training, features): at most one runs at a time
per workspace, the others wait in its queue, first come first served (`heavy_slot`, `queue`):
two trainings on one GPU server would only slow each other down or run out of memory.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spine import runner
from . import workspace
from ..spine.errors import SelectionError
from ..spine.store import RunStore, read_json, write_json

Chain = list[tuple[str, dict[str, Any]]]

_LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class JobStatus:
    """What a page needs to show a job: state, outcome and the end of its log."""

    name: str
    state: str  # "absent", "queued" (waiting for the heavy-job slot), "running", "done", "failed"
    returncode: int | None
    message: str
    log_tail: str
    started: float | None
    step: int = 0  # the chain's current stage (its index), or its length once done
    steps: int = 0
    chain: tuple[tuple[str, Any], ...] = ()

    @property
    def stage(self) -> str | None:
        """The name of the stage the job is running (None once done)."""
        return self.chain[self.step][0] if self.step < len(self.chain) else None

    @property
    def running(self) -> bool:
        """Started and not ended: running or waiting in the queue."""
        return self.state in ("running", "queued")

    @property
    def queued(self) -> bool:
        return self.state == "queued"


def _job_file(store: RunStore, name: str) -> Path:
    return store.path("jobs", f"{name}.json")


def _log_file(store: RunStore, name: str) -> Path:
    return store.path("jobs", f"{name}.log")


def link(stage_name: str, config: Any) -> tuple[str, dict[str, Any]]:
    """One link of a chain: a stage's name and its config as JSON."""
    return stage_name, json.loads(json.dumps(config.to_dict(), default=str))


def start_job(store: RunStore, name: str, chain: Chain) -> JobStatus:
    """Run `chain` (stage name, config as JSON) in the background unless the job already runs.
    Every config is checked here (a bad one raises before anything starts)."""
    current = job_status(store, name)
    if current.running:
        return current
    _load_stages()
    for stage_name, config in chain:
        runner.get_stage(stage_name).load_config(config)
    log_path = _log_file(store, name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(_job_file(store, name), {"name": name, "chain": chain, "state": "starting",
                                        "step": 0, "started": time.time()})
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    repo_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "selection_core.frontends.jobs", str(store.root), name],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    info = read_json(_job_file(store, name))
    if info.get("state") == "starting":  # the job may already have written its own state
        write_json(_job_file(store, name), {**info, "pid": process.pid, "state": "queued"})
    return job_status(store, name)


def _load_stages() -> None:
    """Import the modules that register stages (runner.STAGES)."""
    from ..experiment import plan  # noqa: F401
    from ..influence import pipeline  # noqa: F401
    from ..iterative import loop  # noqa: F401
    from ..select import clean, stages  # noqa: F401


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
    if state == "starting":
        state = "queued"
    message = info.get("message", "")
    if state in ("running", "queued") and "pid" in info and not _alive(int(info["pid"])):
        state, message = "failed", "the job's process ended without reporting (killed?)"
    log_tail = ""
    log_path = _log_file(store, name)
    if log_path.exists():
        text = log_path.read_text(encoding="utf-8", errors="replace")
        log_tail = text[-_LOG_TAIL_CHARS:]
        if state == "failed" and not message:  # the CLI's one-line error, when it printed one
            errors = [line for line in text.splitlines() if line.startswith("error: ")]
            message = errors[-1][len("error: "):] if errors else "see the log"
    chain = tuple((stage, config) for stage, config in info.get("chain", []))
    return JobStatus(name, state, info.get("returncode"), message, log_tail, info.get("started"),
                     int(info.get("step", 0)), len(chain), chain)


def stop_job(store: RunStore, name: str) -> JobStatus:
    """End a running or queued job (its whole process group: the job started a session) and
    record it as failed, so the page offers to start it again rather than restarting it."""
    status = job_status(store, name)
    info = read_json(_job_file(store, name)) if status.running else {}
    if "pid" in info:
        try:
            os.killpg(int(info["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    if status.running:
        write_json(_job_file(store, name), {**info, "state": "failed", "returncode": -15,
                                            "message": "stopped by an operator",
                                            "finished": time.time()})
    return job_status(store, name)


# --------------------------------------------------------------------------- the heavy-job queue
def _queue_dir() -> Path:
    folder = workspace.workspace_root() / "queue"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _tickets() -> list[tuple[Path, dict[str, Any]]]:
    """The queue's tickets of live jobs, oldest first; those of dead ones are removed."""
    found = []
    for ticket in sorted(_queue_dir().glob("*.json")):
        try:
            info = read_json(ticket)
        except (OSError, ValueError):  # removed or being written meanwhile
            continue
        if _alive(int(info["pid"])):
            found.append((ticket, info))
        else:
            ticket.unlink(missing_ok=True)
    return found


@contextmanager
def heavy_slot(store: RunStore, name: str, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the workspace's one heavy-job slot: take a ticket, wait until every older live
    ticket is gone and the slot's lock is free, run, give both back. The lock is the kernel's
    (flock), so a killed job frees the slot; its ticket is then skipped as dead."""
    folder = _queue_dir()
    ticket = folder / f"{time.time_ns():020d}-{os.getpid()}.json"
    record = {"run": str(store.root), "name": name, "pid": os.getpid(), "state": "queued"}
    write_json(ticket, record)
    with open(folder / "slot.lock", "a") as lock:
        try:
            while True:
                if all(other.name >= ticket.name for other, _ in _tickets()):
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        pass
                time.sleep(poll_s)
            write_json(ticket, {**record, "state": "running"})
            yield
        finally:
            ticket.unlink(missing_ok=True)


def queue() -> list[dict[str, Any]]:
    """The workspace's heavy jobs in order: the running one first (state "running"), then those
    waiting ("queued"), each with its run directory and job name."""
    return [info for _, info in _tickets()]


def wait_for_job(store: RunStore, name: str, timeout_s: float = 600.0,
                 poll_s: float = 0.5) -> JobStatus:
    """Block until the job ends (for the CLI and tests; pages poll instead)."""
    deadline = time.time() + timeout_s
    status = job_status(store, name)
    while status.running and time.time() < deadline:
        time.sleep(poll_s)
        status = job_status(store, name)
    return status


def run_chain(store: RunStore, chain: Chain, progress: Any = None,
              on_step: Any = None) -> list[Path]:
    """Run each (stage name, config as JSON) of `chain` through the runner, in order; the
    folders of their keys. `on_step(i)` is told before stage i starts."""
    _load_stages()
    links = [(runner.get_stage(stage), runner.get_stage(stage).load_config(config))
             for stage, config in chain]
    folders = []
    for number, (stage, config) in enumerate(links):
        if on_step:
            on_step(number)
        print(f"[{number + 1}/{len(links)}] {stage.name}", flush=True)
        folders.append(runner.run(store, stage, config, progress))
    return folders


def _run(run_dir: str, name: str) -> int:
    from ..spine.progress import fan_out, tqdm_progress

    store = RunStore(run_dir)
    path = _job_file(store, name)
    info = read_json(path)
    info.update(pid=os.getpid(), state="queued", started=info.get("started", time.time()))
    write_json(path, info)

    def on_step(number: int) -> None:
        info["step"] = number
        write_json(path, info)

    progress = fan_out(tqdm_progress(name), store.progress_callback(name))
    try:
        with heavy_slot(store, name):
            info.update(state="running", started=time.time())
            write_json(path, info)
            run_chain(store, info["chain"], progress, on_step)
    except SelectionError as exc:  # a message for the page, as the CLI prints it
        print(f"error: {exc}", flush=True)
        write_json(path, {**info, "state": "failed", "returncode": 2, "message": str(exc),
                          "finished": time.time()})
        return 2
    except BaseException as exc:  # record anything, then let it propagate to the log
        write_json(path, {**info, "state": "failed", "returncode": 1,
                          "message": f"{type(exc).__name__}: {exc}", "finished": time.time()})
        raise
    write_json(path, {**info, "state": "done", "returncode": 0, "step": len(info["chain"]),
                      "finished": time.time()})
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m selection_core.frontends.jobs RUN_DIR NAME (the job's chain "
                 "is in RUN_DIR/jobs/NAME.json)")
    sys.exit(_run(sys.argv[1], sys.argv[2]))
