"""Background jobs: a chain of stages run through the runner in their own process.

Why: embedding a pool, scoring with a language model or training take longer than a UI request
should block. A page builds configs and starts `start_job(store, NAME, chain)`, where the chain
is a list of (stage name, config as JSON) — a serialised config, never argv; the job
(`python -m selection_core.jobs RUN NAME`, in a new session, so it survives page reloads) runs
the stages in order through `runner.run`, each reusing its finished key, writes its log to
`jobs/NAME.log`, its state and current step to `jobs/NAME.json` and its progress to
`progress/NAME.json`. Pages only poll. The CLI is the other front end of the same runner.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runner
from .errors import SelectionError
from .store import RunStore, read_json, write_json

Chain = list[tuple[str, dict[str, Any]]]

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
    step: int = 0  # the chain's current stage (its index), or its length once done
    steps: int = 0
    chain: tuple[tuple[str, Any], ...] = ()

    @property
    def stage(self) -> str | None:
        """The name of the stage the job is running (None once done)."""
        return self.chain[self.step][0] if self.step < len(self.chain) else None

    @property
    def running(self) -> bool:
        return self.state == "running"


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
    repo_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "selection_core.jobs", str(store.root), name],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    info = read_json(_job_file(store, name))
    if info.get("state") == "starting":  # the job may already have written its own state
        write_json(_job_file(store, name), {**info, "pid": process.pid, "state": "running"})
    return job_status(store, name)


def _load_stages() -> None:
    """Import the modules that register stages (runner.STAGES)."""
    from . import clean, experiment, iterate, pipeline  # noqa: F401
    from .influence import pipeline as influence_pipeline  # noqa: F401


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
        state = "running"
    message = info.get("message", "")
    if state == "running" and "pid" in info and not _alive(int(info["pid"])):
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
    from .progress import fan_out, tqdm_progress

    store = RunStore(run_dir)
    path = _job_file(store, name)
    info = read_json(path)
    info.update(pid=os.getpid(), state="running", started=info.get("started", time.time()))
    write_json(path, info)

    def on_step(number: int) -> None:
        info["step"] = number
        write_json(path, info)

    progress = fan_out(tqdm_progress(name), store.progress_callback(name))
    try:
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
        sys.exit("usage: python -m selection_core.jobs RUN_DIR NAME (the job's chain is in "
                 "RUN_DIR/jobs/NAME.json)")
    sys.exit(_run(sys.argv[1], sys.argv[2]))
