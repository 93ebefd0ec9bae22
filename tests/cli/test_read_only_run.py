"""A read-only run directory (issue 29 §3): reading it needs no write, so `report` and `status`
work; every command that stores results in it stops with one line saying so. The run is made
read-only by a bubblewrap read-only bind mount (chmod binds nobody when tests run as root)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selection_core.cli import main

REPO = Path(__file__).resolve().parents[2]
# every command inside one process (the imports are paid once): (code, stderr) per command
SCRIPT = """
import contextlib, io, json, sys
from selection_core.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def _bwrap_works(folder: Path) -> bool:
    if not shutil.which("bwrap"):
        return False
    probe = subprocess.run(["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(folder),
                            str(folder), "true"], capture_output=True)
    return probe.returncode == 0


def test_a_read_only_run_is_read_and_writers_say_so(tmp_path: Path) -> None:
    if not _bwrap_works(tmp_path):
        pytest.skip("needs bubblewrap able to make a read-only bind mount")
    data, run = tmp_path / "d.jsonl", tmp_path / "run"
    assert main(["demo", "--out", str(data), "--n", "120", "--seed", "2"]) == 0
    assert main(["embed", "--data", str(data), "--run", str(run)]) == 0
    assert main(["cluster", "--run", str(run), "--k", "3"]) == 0
    assert main(["umap", "--run", str(run)]) == 0
    assert main(["score", "--run", str(run)]) == 0
    before = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    out = tmp_path / "out"
    out.mkdir()
    writers = [["select", "--run", str(run), "--method", "kmq", "--k", "3", "--budget", "10",
                "--out", str(out / "s.jsonl")],
               ["cluster", "--run", str(run), "--k", "4"],
               ["sweep", "--run", str(run), "--k", "2,3"],
               ["umap", "--run", str(run), "--seed", "1"],
               ["embed", "--data", str(data), "--run", str(run)],
               ["score", "--run", str(run)],
               ["report", "--run", str(run), "--k", "4", "--out", str(out / "r4.html")]]
    readers = [["status", "--run", str(run)],
               ["report", "--run", str(run), "--k", "3", "--out", str(out / "r.html")]]
    result = subprocess.run(
        ["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(run), str(run),
         sys.executable, "-c", SCRIPT, json.dumps(writers + readers)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    for argv, (code, err) in zip(writers, outcomes, strict=False):
        err = err.strip()
        assert code == 2 and "\n" not in err and "Traceback" not in err, (argv, err)
        if argv[0] == "report":  # a reader that would have to compute k = 4
            assert err.startswith(f"error: {run}/") and err.endswith(
                "cannot be written (Read-only file system); `report` needed to store a result "
                "there"), err
            continue
        assert err == (f"error: {run} cannot be written (Read-only file system): `{argv[0]}` "
                       "stores its results in the run directory; run it on a writable copy "
                       "of the run"), err
    for argv, (code, err) in zip(readers, outcomes[len(writers):], strict=True):
        assert code == 0, (argv, err)
    assert "<html" in (out / "r.html").read_text()[:500].lower()
    assert not (out / "s.jsonl").exists() and not (out / "r4.html").exists()
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == before
