"""Where the app keeps its runs: one run directory per pool, named after the pool's inputs.

CLI users pick run directories themselves (`--run`); the app needs stable names so that a pool
opened again reuses its embeddings, clusters and scores. Uploads are stored here too — never in
the working directory.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from . import access
from ..data.loaders import DataSpec
from ..spine.store import MANIFEST, RunStore, atomic_path, default_cache_dir

DEMO_N = 3000
DEMO_SEED = 0
_MAX_NAME = 120  # characters of an uploaded file's name kept


def workspace_root() -> Path:
    """$SELECTION_CORE_WORKSPACE, else `<cache>/workspace`."""
    env = os.environ.get("SELECTION_CORE_WORKSPACE")
    root = Path(env) if env else default_cache_dir() / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    return root


def demo_size() -> tuple[int, int]:
    """The demo pool the app opens on: $SELECTION_CORE_DEMO_N rows (default 3000), seed 0."""
    return int(os.environ.get("SELECTION_CORE_DEMO_N", DEMO_N)), DEMO_SEED


def demo_run(n: int | None = None, seed: int | None = None) -> RunStore:
    default_n, default_seed = demo_size()
    n = default_n if n is None else n
    seed = default_seed if seed is None else seed
    return RunStore(workspace_root() / "runs" / f"demo-n{n}-s{seed}")


def run_for_inputs(inputs: list[str]) -> RunStore:
    """A run directory keyed by the inputs (paths with size and modification time, or names)."""
    digest = hashlib.sha256()
    for item in inputs:
        digest.update(item.encode())
        path = Path(item.split("=", 1)[-1])
        if path.exists():
            stat = path.stat()
            digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", DataSpec.parse(inputs[0]).label)[:40]
    more = f"+{len(inputs) - 1}" if len(inputs) > 1 else ""
    return RunStore(workspace_root() / "runs" / f"{label}{more}-{digest.hexdigest()[:10]}")


def upload_path(file_name: str, content: bytes) -> Path:
    """Save uploaded bytes under the workspace (content-addressed) and return the file path;
    one line (`QuotaExceeded`) when they would take the workspace past its size quota."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(file_name).name) or "upload.jsonl"
    if len(safe) > _MAX_NAME:  # file systems stop at 255 bytes: keep the end, where the type is
        safe = safe[-_MAX_NAME:]
    folder = workspace_root() / "uploads" / hashlib.sha256(content).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe
    if not target.exists():
        access.check_quota(workspace_root(), len(content), access.quota())
        with atomic_path(target) as tmp:
            tmp.write_bytes(content)
    return target


def experiments_root() -> Path:
    """Where `experiment` runs go by default, so the app's Results page finds them."""
    return workspace_root() / "experiments"


EXPERIMENT_RECORD = "experiment.json"  # the parsed config an experiment run writes first


def is_experiment(run: Path) -> bool:
    return (run / EXPERIMENT_RECORD).exists()


# Experiments shipped with the project (results and verdicts, no models): the Results page shows
# what selection buys before anyone has run anything. Read-only; a run in the workspace under
# the same name is listed instead.
BUNDLED_EXPERIMENTS = Path(__file__).resolve().parents[2] / "assets" / "demo" / "experiments"


def is_bundled(run: Path) -> bool:
    return Path(run).resolve().parent == BUNDLED_EXPERIMENTS.resolve()


def list_experiments() -> list[Path]:
    """Experiment run directories in the workspace, most recent first, then the bundled ones
    that no workspace run shadows."""
    runs = [p.parent for p in experiments_root().glob(f"*/{EXPERIMENT_RECORD}")]
    runs.sort(key=lambda p: (p / EXPERIMENT_RECORD).stat().st_mtime, reverse=True)
    names = {run.name for run in runs}
    return runs + sorted(p.parent for p in BUNDLED_EXPERIMENTS.glob(f"*/{EXPERIMENT_RECORD}")
                         if p.parent.name not in names)


def list_runs() -> list[Path]:
    """Run directories in the workspace, most recently used first."""
    runs = [p.parent for p in (workspace_root() / "runs").glob(f"*/{MANIFEST}")]
    return sorted(runs, key=lambda p: (p / MANIFEST).stat().st_mtime, reverse=True)
