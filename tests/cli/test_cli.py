"""The CLI contract other checks rely on: commands, output files and columns, clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.cli import main

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "selection_core", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    data = root / "demo.jsonl"
    assert main(["demo", "--out", str(data), "--n", "300", "--seed", "1"]) == 0
    run = root / "run"
    assert main(["embed", "--data", str(data), "--run", str(run)]) == 0
    return data, run


def test_demo_command_through_python_m(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    result = run_cli("demo", "--out", str(out), "--n", "50", "--seed", "3")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 50 and {"id", "prompt", "response", "is_noise"} <= set(rows[0])


def test_embed_writes_pool_embeddings_and_manifest(small_run: tuple[Path, Path]) -> None:
    _, run = small_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["embed"]["status"] == "done"
    assert manifest["stages"]["embed"]["rows"] == 300
    assert "torch" in manifest["versions"]
    assert (run / "pool.parquet").exists() and (run / "embeddings.npy").exists()


def test_sweep_cluster_select_contract(small_run: tuple[Path, Path], capsys) -> None:
    _, run = small_run
    assert main(["sweep", "--run", str(run), "--k", "2,4,8", "--sample", "200"]) == 0
    printed = capsys.readouterr().out
    sweep = pd.read_csv(run / "sweep.csv")
    assert list(sweep.columns[:4]) == ["k", "inertia", "silhouette", "simplified_silhouette"]
    assert sweep["k"].tolist() == [2, 4, 8]
    assert "recommended k:" in printed

    assert main(["cluster", "--run", str(run), "--k", "4", "--seed", "0"]) == 0
    clusters = pd.read_csv(run / "clusters.csv")
    pool = pd.read_parquet(run / "pool.parquet")
    assert list(clusters.columns) == ["id", "cluster"]
    assert clusters["id"].astype(str).tolist() == pool["id"].tolist()
    assert set(clusters["cluster"]) == {0, 1, 2, 3}

    for method in ("kmq", "kmeans-random", "kmeans-closest", "random", "quality-top"):
        out = run.parent / f"{method}.jsonl"
        assert main(["select", "--run", str(run), "--method", method, "--k", "4",
                     "--budget", "37", "--seed", "2", "--out", str(out)]) == 0
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 37 and len({r["id"] for r in rows}) == 37
        assert {"id", "prompt", "response", "source", "cluster", "quality", "skill"} <= set(rows[0])
    again = run.parent / "again.jsonl"
    main(["select", "--run", str(run), "--method", "kmq", "--k", "4", "--budget", "37",
          "--seed", "2", "--out", str(again)])
    assert again.read_text() == (run.parent / "kmq.jsonl").read_text()
    assert main(["select", "--run", str(run), "--method", "kmq", "--k", "4", "--budget", "10%",
                 "--out", str(again)]) == 0
    assert len(again.read_text().splitlines()) == 30


@pytest.mark.parametrize("args, message", [
    (["--method", "kmq", "--k", "4", "--budget", "301"], "budget 301 must be between 1 and"),
    (["--method", "kmq", "--k", "0", "--budget", "10"], "argument --k: must be at least 1"),
    (["--method", "kmq", "--k", "301", "--budget", "10"], "--k must be between 1 and"),
    (["--method", "best", "--k", "4", "--budget", "10"], "unknown method 'best'"),
    (["--method", "kmq", "--k", "4", "--budget", "ten"], "neither a count nor a finite percentage"),
    (["--method", "kmq", "--k", "4", "--budget", "10", "--scorer", "reward"], "needs a model"),
])
def test_select_errors_are_clear(small_run: tuple[Path, Path], tmp_path: Path, capsys,
                                 args: list[str], message: str) -> None:
    _, run = small_run
    code = main(["select", "--run", str(run), "--out", str(tmp_path / "x.jsonl"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "x.jsonl").exists()


def test_bad_data_file_reports_file_line_field_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n')
    result = run_cli("embed", "--data", str(bad), "--run", str(tmp_path / "run"))
    assert result.returncode == 2
    assert f"error: {bad}, line 2, field 'output'" in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_on_a_missing_run_explain_what_to_do(tmp_path: Path) -> None:
    result = run_cli("sweep", "--run", str(tmp_path / "nowhere"), "--k", "2,4")
    assert result.returncode == 2 and "does not exist" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("cluster", "--run", str(empty), "--k", "2")
    assert result.returncode == 2 and "embed" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- hostile use
def one_line_error(capsys: pytest.CaptureFixture, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


def select_args(run: Path, out: Path | str, *extra: str) -> list[str]:
    return ["select", "--run", str(run), "--method", "kmq", "--k", "4", "--budget", "10",
            "--out", str(out), *extra]


def test_select_never_overwrites_its_inputs_or_the_run(small_run: tuple[Path, Path],
                                                       tmp_path: Path, capsys) -> None:
    data, run = small_run
    lines = data.read_text().count("\n")
    for out in (data, run / "manifest.json", run / "pool.parquet"):
        before = out.read_bytes()
        err = one_line_error(capsys, main(select_args(run, out)))
        assert "is an input of this command" in err or "is inside the run directory" in err
        assert out.read_bytes() == before
    assert data.read_text().count("\n") == lines == 300
    for out, reason in ((tmp_path, "is a directory"),
                        ("/proc/selection-core/x.jsonl", "cannot be written")):
        assert reason in one_line_error(capsys, main(select_args(run, out)))
    assert main(select_args(run, tmp_path / "ok.jsonl")) == 0  # the run still works


@pytest.mark.parametrize("extra, message", [
    (["--budget", "inf%"], "neither a count nor a finite percentage"),
    (["--budget", "nan%"], "neither a count nor a finite percentage"),
    (["--tau", "nan"], "argument --tau: must be a finite number"),
    (["--tau", "0"], "argument --tau: must be positive"),
    (["--device", "cuda:7"], "cuda:7"),
])
def test_select_arguments_that_would_mislead(small_run: tuple[Path, Path], tmp_path: Path,
                                             capsys, extra: list[str], message: str) -> None:
    _, run = small_run
    assert message in one_line_error(capsys, main(select_args(run, tmp_path / "x.jsonl", *extra)))
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (["--limit", "0"], "argument --limit: must be at least 1"),
    (["--limit", "-1"], "argument --limit: must be at least 1"),
    (["--max-rows", "0"], "argument --max-rows: must be at least 1"),
    (["--device", "cuda:7"], "cuda:7"),
])
def test_embed_arguments_that_would_mislead(small_run: tuple[Path, Path], tmp_path: Path,
                                            capsys, extra: list[str], message: str) -> None:
    data, _ = small_run
    code = main(["embed", "--data", str(data), "--run", str(tmp_path / "run"), *extra])
    assert message in one_line_error(capsys, code)
    assert not (tmp_path / "run" / "pool.parquet").exists()


def test_hostile_data_files_get_one_line(tmp_path: Path, capsys) -> None:
    import gzip
    import pickle

    corrupt = tmp_path / "corrupt.jsonl.gz"
    body = b'{"prompt": "p", "response": "r"}\n' * 5000
    second = bytearray(gzip.compress(body))
    second[10] |= 0b110  # a reserved deflate block type: zlib.error inside the body
    corrupt.write_bytes(gzip.compress(body) + bytes(second))
    pickled = tmp_path / "pool.pkl"
    pickled.write_bytes(pickle.dumps([{"prompt": "p", "response": "r"}]))
    for path, message in ((corrupt, ", line 5001: not a valid gzip file"),
                          (pickled, ": pickle files are never loaded")):
        code = main(["embed", "--data", str(path), "--run", str(tmp_path / "run")])
        assert f"{path}{message}" in one_line_error(capsys, code)


def test_a_user_quality_column_survives_the_export(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Question number {i} about topic {i % 5}?",
                                        "response": f"Answer {i}.", "quality": i / 100}) + "\n"
                            for i in range(40)))
    run, out = tmp_path / "run", tmp_path / "selected.jsonl"
    assert main(["embed", "--data", str(data), "--run", str(run)]) == 0
    assert main(["select", "--run", str(run), "--method", "kmq", "--k", "3", "--budget", "8",
                 "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {f"q:{i + 1}": i / 100 for i in range(40)}
    assert all(row["input_quality"] == by_id[row["id"]] for row in rows)
    assert {"quality", "cluster"} <= set(rows[0])  # the scores the selection used, beside


def test_influence_select_never_overwrites_its_matrix(tmp_path: Path, capsys) -> None:
    matrix, tasks = tmp_path / "A.npy", tmp_path / "tasks.txt"
    np.save(matrix, np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32))
    tasks.write_text("a\nb\n")
    before = matrix.read_bytes()
    for out in (matrix, tasks):
        code = main(["influence", "select", "--matrix", str(matrix), "--val-tasks", str(tasks),
                     "--method", "bids", "--budget", "4", "--out", str(out)])
        assert "is an input of this command" in one_line_error(capsys, code)
    assert matrix.read_bytes() == before


def test_evaluate_never_overwrites_its_predictions(tmp_path: Path, capsys) -> None:
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": 0, "completion": "4"}) + "\n")
    code = main(["evaluate", "--benchmark", "gsm8k", "--predictions", str(predictions),
                 "--out", str(predictions)])
    assert "is an input of this command" in one_line_error(capsys, code)
    assert predictions.read_text().startswith('{"id": 0')


def test_a_second_writer_on_a_run_stops_and_writes_nothing(small_run: tuple[Path, Path],
                                                           tmp_path: Path, capsys,
                                                           hold_run_lock) -> None:
    _, run = small_run
    manifest = (run / "manifest.json").read_bytes()
    hold_run_lock(run)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    code = main(["embed", "--data", str(other), "--run", str(run)])
    assert "is in use by `embed`" in one_line_error(capsys, code)
    assert (run / "manifest.json").read_bytes() == manifest


# --------------------------------------------------------------------------- issue 29
def influence_args(matrix: Path, tasks: Path, out: Path, *extra: str) -> list[str]:
    return ["influence", "select", "--matrix", str(matrix), "--val-tasks", str(tasks),
            "--method", "bids", "--budget", "10%", "--out", str(out), *extra]


def test_every_output_goes_through_the_one_guard(small_run: tuple[Path, Path], tmp_path: Path,
                                                  capsys) -> None:
    _, run = small_run
    matrix, tasks, out = tmp_path / "A.npy", tmp_path / "vt.txt", tmp_path / "bids.txt"
    np.save(matrix, np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32))
    tasks.write_text("a\nb\n")
    saved = {path: path.read_bytes() for path in (matrix, tasks)}
    missing = tmp_path / "nonexistent" / "dir"
    for explain, message in ((matrix, "is an input of this command"),
                             (tasks, "is an input of this command"),
                             (out, "--explain " + str(out) + " is also the --out file"),
                             (run / "why.jsonl", "is inside the run directory"),
                             (missing / "x.jsonl", f"the folder {missing} does not exist"),
                             (tmp_path, "is a directory")):
        code = main(influence_args(matrix, tasks, out, "--explain", str(explain)))
        assert message in one_line_error(capsys, code)
        assert not out.exists() and not missing.parent.exists() and not (run / "why.jsonl").exists()
        assert all(path.read_bytes() == data for path, data in saved.items())
    assert main(influence_args(matrix, tasks, out, "--explain", str(tmp_path / "why.jsonl"))) == 0
    assert len((tmp_path / "why.jsonl").read_text().splitlines()) == 2
    for bad in (missing / "x.txt", tmp_path):  # --out: the same guard, nothing created
        assert main(influence_args(matrix, tasks, bad)) == 2
        assert not missing.parent.exists()


def test_the_report_png_zip_goes_through_the_guard(small_run: tuple[Path, Path], tmp_path: Path,
                                                   capsys) -> None:
    _, run = small_run
    (tmp_path / "r-figures.zip").mkdir()  # where --png would write
    code = main(["report", "--run", str(run), "--k", "3", "--out", str(tmp_path / "r.html"),
                 "--png"])
    assert "r-figures.zip: is a directory" in one_line_error(capsys, code)
    assert not (tmp_path / "r.html").exists()
