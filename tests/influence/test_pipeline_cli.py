"""`python -m selection_core influence warmup|features|matrix|select` end to end on a tiny run:
40 real Alpaca rows, the tiny random llama, 2 warmup epochs, d=64, 2 validation instances per
task; then the CLI's file contract, resuming features, and clear errors on bad matrix files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.cli import main
from selection_core.influence.pipeline import checkpoint_weights, checkpoints, current_features
from selection_core.influence.select import select_on_matrix
from selection_core.influence.validation import VALIDATION_TASKS
from selection_core.store import RunStore

pytestmark = [pytest.mark.shared_data, pytest.mark.usefixtures("one_torch_thread")]

REPO = Path(__file__).resolve().parents[2]
N, PER_TASK, DIM = 40, 2, 64
M = len(VALIDATION_TASKS) * PER_TASK
WARMUP = ["influence", "warmup", "--model", "tiny-random-llama", "--fraction", "0.5",
          "--epochs", "2", "--lora-r", "4", "--batch-size", "4", "--max-length", "64",
          "--device", "cpu"]
FEATURES = ["influence", "features", "--dim", str(DIM), "--val-per-task", str(PER_TASK),
            "--max-length", "64", "--val-max-new-tokens", "8", "--device", "cpu"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "selection_core", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def influence_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path,
                  one_torch_thread: None) -> Path:
    """warmup → features → matrix through the CLI's entry point (in process: fast)."""
    import gzip
    import itertools

    root = tmp_path_factory.mktemp("influence")
    pool = root / "pool.jsonl"
    with gzip.open(shared_data / "alpaca" / "alpaca_random_9k.jsonl.gz", "rt") as source:
        pool.write_text("".join(itertools.islice(source, N)))
    run = root / "run"
    assert main([*WARMUP, "--run", str(run), "--data", str(pool), "--lr", "1e-3"]) == 0
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert main(["influence", "matrix", "--run", str(run)]) == 0
    return run


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each `gradient_features` call: the features stage makes one per chunk."""
    from selection_core.influence import gradients

    rows: list[int] = []
    real = gradients.gradient_features

    def counting(model, tokenizer, prompts, *args, **kwargs) -> np.ndarray:
        rows.append(len(prompts))
        return real(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(gradients, "gradient_features", counting)
    return rows


def test_stages_write_features_and_the_matrix_contract(influence_run: Path) -> None:
    store = RunStore(influence_run, create=False)
    assert json.loads((influence_run / "influence" / "warmup.json").read_text())["rows"] == N // 2
    found = checkpoints(store)
    assert [c.epoch for c in found] == [1, 2] and all(c.mean_lr > 0 for c in found)
    folder = current_features(store)
    val = pd.read_json(influence_run / "influence" / f"validation-{folder.name}.jsonl",
                       lines=True)
    assert val["task"].tolist() == [t for t in VALIDATION_TASKS for _ in range(PER_TASK)]
    assert val["generated"].tolist() == [t == "ifeval" for t in val["task"]]
    train, valid = [], []
    for c in found:
        train.append(np.load(folder / f"epoch{c.epoch}" / "train.npy"))
        valid.append(np.load(folder / f"epoch{c.epoch}" / "val.npy"))
        for features, rows in ((train[-1], N), (valid[-1], M)):
            assert features.shape == (rows, DIM) and np.isfinite(features).all()
            assert np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    assert not np.allclose(train[0], train[1])  # two checkpoints, two sets of features
    progress = store.progress("influence")  # what the app's progress bar reads
    assert progress["done"] == progress["total"] and progress["message"].startswith("epoch")
    for split, rows in (("train", N), ("val", M)):
        rds = np.load(folder / "rds" / f"{split}.npy")
        assert rds.shape[0] == rows and np.allclose(np.linalg.norm(rds, axis=1), 1, atol=1e-5)

    A = np.load(influence_run / "attribution.npy")
    assert A.shape == (N, M) and A.dtype == np.float32 and np.isfinite(A).all()
    weights = checkpoint_weights(found)
    np.testing.assert_allclose(A, sum(w * t @ v.T for w, t, v in zip(weights, train, valid)),
                               atol=1e-5)
    assert np.abs(A).max() <= 1 + 1e-5  # a convex combination of cosines
    tasks = (influence_run / "val_tasks.txt").read_text().splitlines()
    assert tasks == val["task"].tolist() and len(tasks) == M


def test_select_through_python_m(influence_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bids.txt"
    result = run_cli("influence", "select", "--matrix", str(influence_run / "attribution.npy"),
                     "--val-tasks", str(influence_run / "val_tasks.txt"), "--method", "bids",
                     "--budget", "10%", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = [int(line) for line in out.read_text().splitlines()]
    assert len(rows) == N // 10 == len(set(rows)) and all(0 <= r < N for r in rows)
    A = np.load(influence_run / "attribution.npy")
    tasks = np.array((influence_run / "val_tasks.txt").read_text().splitlines())
    assert rows == select_on_matrix(A, tasks, "bids", N // 10).tolist()  # selection order


def test_features_resume_after_the_last_finished_chunk(influence_run: Path, tmp_path: Path,
                                                       computed: list[int]) -> None:
    """A crash after 16 rows of epoch 2's training features: the rerun computes only the other
    24 rows, gets the features of the uninterrupted run, and a further rerun computes nothing."""
    run = tmp_path / "run"
    shutil.copytree(influence_run, run)
    folder = current_features(RunStore(run, create=False))
    target = folder / "epoch2" / "train.npy"
    finished = np.load(target)
    partial = np.load(target, mmap_mode="r+")
    partial[16:] = 0  # as left by a crash: later rows not written
    partial.flush()
    del partial
    marker = target.with_name("train.npy.progress.json")
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "rows_done": 16}))
    (folder.parent / "current.txt").unlink()
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert computed == [N - 16]
    np.testing.assert_allclose(np.load(target), finished, atol=1e-5)
    assert (folder.parent / "current.txt").read_text().strip() == folder.name
    computed.clear()
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert computed == []


def test_a_new_warmup_never_reuses_old_checkpoints_or_features(
        influence_run: Path, tmp_path: Path, computed: list[int],
        capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.copytree(influence_run, run)
    folder = current_features(RunStore(run, create=False))
    before = np.load(folder / "epoch1" / "train.npy")
    assert main([*WARMUP, "--run", str(run), "--lr", "5e-4"]) == 2
    assert f"{run / 'influence' / 'warmup'} holds the checkpoints of a warmup with other " \
           "settings" in capsys.readouterr().err
    shutil.rmtree(run / "influence" / "warmup")
    assert main([*WARMUP, "--run", str(run), "--lr", "5e-4"]) == 0
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert computed == [N, M, N, M]  # every chunk again, none resumed
    assert not np.allclose(np.load(folder / "epoch1" / "train.npy"), before)


def test_bad_matrix_files_give_one_line_errors(influence_run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    A = np.load(influence_run / "attribution.npy")
    tasks = influence_run / "val_tasks.txt"
    bad = tmp_path / "nonfinite.npy"
    A_bad = A.copy()
    A_bad[1, 2] = np.nan
    np.save(bad, A_bad)
    result = run_cli("influence", "select", "--matrix", str(bad), "--val-tasks", str(tasks),
                     "--method", "bids", "--budget", "4", "--out", str(tmp_path / "x.txt"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}: non-finite value nan at (row 1, column 2)")
    assert "Traceback" not in result.stderr and not (tmp_path / "x.txt").exists()

    short = tmp_path / "tasks13.txt"
    short.write_text("\n".join(tasks.read_text().splitlines()[:-1]) + "\n")
    matrix = str(influence_run / "attribution.npy")
    cases = [(["--matrix", matrix, "--val-tasks", str(short), "--method", "bids"],
              f"{short}: {M - 1} task names, but the matrix {matrix} has {M} columns"),
             (["--matrix", matrix, "--val-tasks", str(tasks), "--method", "nope"],
              "unknown method 'nope'")]
    for args, message in cases:
        code = main(["influence", "select", *args, "--budget", "4",
                     "--out", str(tmp_path / "x.txt")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err

    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert main(["influence", "matrix", "--run", str(empty)]) == 2
    assert "run `python -m selection_core influence features" in capsys.readouterr().err
