"""Shared fixtures: an isolated cache per session, the ../shared data location, tiny pools."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Never read or fill the user's real cache from tests."""
    cache = tmp_path_factory.mktemp("selection_core_cache")
    os.environ["SELECTION_CORE_CACHE"] = str(cache)
    return cache


@pytest.fixture
def bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runs model-written code under bubblewrap: skipped where bubblewrap cannot run,
    except in CI (SELECTION_CORE_REQUIRE_SANDBOX=1), where that is a failure."""
    from selection_core.spine import sandbox

    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    try:
        sandbox.require_sandbox()
    except sandbox.SandboxUnavailable as exc:
        if os.environ.get("SELECTION_CORE_REQUIRE_SANDBOX") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (../shared beside the "
                    "checkout holds it in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """The default demo pool (3000 rows) loaded and embedded once per test session."""
    from selection_core.select import stages as pipeline
    from selection_core.spine.config import EmbedConfig
    from selection_core.data.demo import write_demo_pool
    from selection_core.spine.store import RunStore

    root = tmp_path_factory.mktemp("demo_run")
    data = write_demo_pool(root / "demo.jsonl")
    store = RunStore(root / "run")
    pipeline.ingest(store, [str(data)])
    pipeline.embed(store, EmbedConfig())
    return store


@pytest.fixture
def hold_run_lock():
    """Start another process that holds a run directory's lock (as a running `embed` would);
    returns it once the lock is held, and ends it after the test."""
    import subprocess
    import sys

    holders: list[subprocess.Popen] = []

    def hold(run: Path, command: str = "embed") -> subprocess.Popen:
        code = ("import time\nfrom selection_core.spine.store import RunStore\n"
                f"with RunStore({str(run)!r}).lock({command!r}):\n"
                "    print('held', flush=True)\n    time.sleep(120)\n")
        holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                                  text=True)
        holders.append(holder)
        assert holder.stdout.readline().strip() == "held"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


@pytest.fixture
def job_in_queue():
    """Put a live job into a workspace's heavy-job queue (a sleeping process holding a ticket,
    shown as running); the processes and tickets are removed after the test."""
    import subprocess
    import sys
    import time

    from selection_core.spine.store import write_json

    added: list[tuple[subprocess.Popen, Path]] = []

    def add(workspace: Path, run_name: str, name: str) -> None:
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        ticket = workspace / "queue" / f"{time.time_ns():020d}-{sleeper.pid}.json"
        write_json(ticket, {"run": str(workspace / "runs" / run_name), "name": name,
                            "pid": sleeper.pid, "state": "running"})
        added.append((sleeper, ticket))

    yield add
    for sleeper, ticket in added:
        sleeper.kill()
        sleeper.wait()
        ticket.unlink(missing_ok=True)
