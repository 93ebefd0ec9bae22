"""The smaller cases of issue 29 ("nothing lost, nothing hangs"), each as a user meets it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from selection_core import api
from selection_core.select import stages as pipeline
from selection_core.cli import main
from selection_core.cluster.kmeans import FaissKMeans
from selection_core.spine.config import EmbedConfig, SweepConfig
from selection_core.spine.errors import ConfigError
from selection_core.spine.store import RunStore, write_text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("round-two")
    data = root / "pool.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"topic {i % 6} question {i}: why {i % 7}?",
                                        "response": f"answer {i}"}) + "\n" for i in range(60)))
    store = RunStore(root / "run")
    pipeline.ingest(store, [str(data)])
    pipeline.embed(store, EmbedConfig())
    return root / "run"


@pytest.fixture
def run(embedded: Path, tmp_path: Path) -> Path:
    shutil.copytree(embedded, tmp_path / "run")
    return tmp_path / "run"


def killed_inside(code: str) -> None:
    """Run `code` (with the store's helpers imported) in a process that kill -9s itself where
    `code` says KILL, as a user's kill would."""
    script = ("import os, signal\nfrom pathlib import Path\n"
              "from selection_core.spine.store import RunStore, atomic_dir, atomic_path\n"
              + code.strip().replace("KILL", "os.kill(os.getpid(), signal.SIGKILL)"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == -9, result.stderr


def test_status_says_interrupted_after_a_kill(run: Path, capsys: pytest.CaptureFixture) -> None:
    killed_inside(f"with RunStore({str(run)!r}).stage('umap'):\n    KILL")
    RunStore(run).set_stage("quick_map", status="running", pid=os.getpid())  # alive: running
    capsys.readouterr()
    assert main(["status", "--run", str(run)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["umap"].split()[1] == "interrupted" and "run the command again" in lines["umap"]
    assert lines["quick_map"].split()[1] == "running"
    assert lines["embed"].split()[1] == "done"


def test_what_a_killed_writer_leaves_is_removed_by_the_next_write(run: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    killed_inside(f"""
with atomic_dir(Path({str(run)!r}, 'stages', 'umap', 'abc')) as folder:
    (folder / 'coords.npy').write_bytes(b'half')
    with atomic_path(Path({str(out)!r}, 'r-figures.zip')) as tmp:
        tmp.write_bytes(b'half')
        KILL
""")
    umap_dir = run / "stages" / "umap"
    assert [p.name.startswith(".abc.") for p in umap_dir.iterdir()] == [True]
    assert [p.name.startswith(".r-figures.zip.") for p in out.iterdir()] == [True]
    assert main(["umap", "--run", str(run), "--neighbors", "5"]) == 0  # a later run
    write_text(out / "r.html", "<html></html>")  # the report's next write there
    assert [p.name for p in umap_dir.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in out.iterdir()] == ["r.html"]


def test_a_sweep_stopped_at_10_of_11_k_keeps_the_10(run: Path) -> None:
    store, config = RunStore(run), SweepConfig(ks=tuple(range(2, 13)), niter=20, nredo=1)

    def stop_after_ten(done: int, total: int, message: str = "") -> None:
        if done == 10:
            raise KeyboardInterrupt  # Ctrl-C; kill -9 would stop at the same place

    with pytest.raises(KeyboardInterrupt):
        pipeline.sweep(store, config, progress=stop_after_ten)
    kept = [k for k in config.ks if pipeline.cached_clustering(store, config.kmeans(k))]
    assert kept == list(range(2, 12))


def test_select_random_needs_no_k(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "random.jsonl"
    assert main(["select", "--run", str(run), "--method", "random", "--budget", "5",
                 "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5


def test_a_budget_share_over_100_percent_is_named_as_given(run: Path, tmp_path: Path,
                                                           capsys) -> None:
    code = main(["select", "--run", str(run), "--method", "kmq", "--k", "3", "--budget", "101%",
                 "--out", str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("error: budget 101% (61 rows) must be between 1 and the pool "
                                 "size (60)"), err


def test_library_budgets_follow_the_cli(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    assert len(api.KMQSelector(k=2, budget="10%").fit(X).selected_) == 4
    assert len(api.KMQSelector(k=2, budget=6.0).fit(X).selected_) == 6
    with pytest.raises(ConfigError, match="budget '10.7' is neither a count"):
        api.KMQSelector(k=2, budget=10.7).fit(X)
    tasks = ["a", "b"]
    assert len(api.BIDSSelector(budget="25%").fit(X[:, :2], tasks).selected_) == 10
    with pytest.raises(ConfigError, match="budget 50 must be between 1 and the number of rows"):
        api.BIDSSelector(budget=50).fit(X[:, :2], tasks)


def test_iterative_work_dir_that_is_a_file_gets_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "work"
    afile.write_text("not a folder")
    loop = api.IterativeKMQ(k=2, budget=4, model=types.SimpleNamespace(name="m"),
                            work_dir=afile)
    with pytest.raises(ConfigError, match=f"work_dir {afile} is a file"):
        loop.fit(np.ones((10, 3)), ["p"] * 10, ["r"] * 10)
    assert afile.read_text() == "not a folder"


def test_all_zero_vectors_cluster_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="all 30 vectors are zero"):
        FaissKMeans(n_clusters=3, niter=5, nredo=1).fit(np.zeros((30, 4), dtype=np.float32))
    with pytest.warns(UserWarning, match="all 30 vectors are identical"):
        api.KMQSelector(k=3, budget=5).fit(np.ones((30, 4)))
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ordinary vectors: no warning
        FaissKMeans(n_clusters=3, niter=5, nredo=1).fit(rng.normal(size=(30, 4)))
