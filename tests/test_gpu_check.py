"""benchmarks/gpu_check.py on the CPU in its quick mode, so the GPU check script cannot rot: every
check runs, prints one JSON line with its ratio, and agrees with its reference."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_every_check_runs_on_the_cpu_and_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--device", "cpu", "--quick"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    assert [line["check"] for line in lines] == ["kmeans", "embed", "gradients", "lora_step",
                                                 "generate"]
    for line in lines:
        assert line["ok"] and line["device"] == "cpu", line
        assert math.isfinite(line["ratio"]) and line["ratio"] > 0, line
    by_check = {line["check"]: line for line in lines}
    assert by_check["lora_step"]["steps"] == module.SIZES["quick"]["lora_steps"]
    assert by_check["gradients"]["agreement"]["min_cosine"] >= 0.999
