"""The Ray path's settings and its one-line errors, without starting Ray (fast)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from selection_core.cli import main
from selection_core.spine.errors import ConfigError
from selection_core.scale import ScaleConfig
from selection_core.scale.cluster import check_reachable
from selection_core.scale.shards import worker_count


def _demo_run(tmp_path: Path) -> Path:
    from selection_core.select import stages as pipeline
    from selection_core.data.demo import write_demo_pool
    from selection_core.spine.store import RunStore

    run = tmp_path / "run"
    pipeline.ingest(RunStore(run), [str(write_demo_pool(tmp_path / "demo.jsonl", n=40))])
    return run


def test_an_unreachable_address_is_one_line_within_seconds(tmp_path: Path, capsys) -> None:
    run = _demo_run(tmp_path)
    assert main(["embed", "--run", str(run), "--ray", "127.0.0.1:9", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Ray cluster at 127.0.0.1:9")
    assert len(err.splitlines()) == 1
    assert not (run / "embeddings.npy").exists()


def test_ray_not_installed_is_one_line_with_the_install_command(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _demo_run(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["score", "--run", str(run), "--ray", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ('error: --ray needs Ray, which is not installed: '
                   'pip install "ray[data]==2.60.0"')


def test_address_forms() -> None:
    check_reachable("auto")  # Ray resolves it (RAY_ADDRESS or the local head): nothing to check
    with pytest.raises(ConfigError, match="not a Ray address"):
        check_reachable("head:port")
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster at ray://127.0.0.1:9"):
        check_reachable("ray://127.0.0.1:9")


def test_workers_need_ray_and_default_to_the_clusters_capacity() -> None:
    with pytest.raises(ConfigError, match="need --ray"):
        ScaleConfig(workers=2)
    assert ScaleConfig().hash_fields() == {}  # speed only: no artefact key changes
    cpus = ScaleConfig(ray="local")
    assert worker_count(cpus, {"CPU": 16.0}, shards=100) == 16
    assert worker_count(cpus, {"CPU": 16.0}, shards=3) == 3  # never idle workers
    gpus = ScaleConfig(ray="local", gpus_per_worker=0.5)
    assert worker_count(gpus, {"CPU": 64.0, "GPU": 8.0}, shards=100) == 16
    assert worker_count(ScaleConfig(ray="local", workers=4), {"CPU": 1.0}, shards=100) == 4
