"""Issue 30: the bundled demo. The committed bundle is what the current code reads (every stage
key recomputed, the demo pool's fingerprint, the pages' readers); a small bundle rebuilt here
with a tiny model has the committed one's schema; on the demo pool the Iterative and Influence
pages open on the bundle, labelled, and a tampered bundle fails the check."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from selection_core.experiment.plan import load_results
from selection_core.frontends import bundle as demo_bundle
from selection_core.frontends import workspace
from selection_core.influence.attribution import load_attribution
from selection_core.iterative.loop import load_history
from selection_core.select import stages as pipeline
from selection_core.spine.errors import StaleStageError
from selection_core.spine.store import RunStore, read_json, write_json

DEMO_N = 240  # the tiny bundle's pool is the workspace's demo pool
SWEPT_K = (4, 6)  # conftest's prepared_workspace
TINY_TOML = f"""
name = "bundle-tiny"
model = "tiny-random-llama"
seed = 0
[pool]
demo_n = {DEMO_N}
k = 6
[selection]
random_seeds = 1
methods = ["random", "iterative-kmq"]
budgets = [24]
scorer = "heuristic"
[iterative]
rounds = 2
scorer = "perplexity"
eval_per_round = 12
max_new_tokens = 8
[train]
r = 4
alpha = 8
epochs = 1
batch_size = 8
learning_rate = 0.01
max_length = 96
max_steps = 2
[eval]
protocol = "cpu-demo"
benchmarks = ["demo"]
eval_limit = 12
max_new_tokens = 8
include_base = false
"""


def schema(bundle: demo_bundle.DemoBundle) -> dict[str, object]:
    """What a reader relies on: the manifest's fields, the stages in order, each part's files."""
    manifest = bundle.manifest
    first_run = bundle.iterative_runs()[0]
    return {"manifest": sorted(manifest), "config": sorted(manifest["config"]),
            "pool": sorted(manifest["pool"]), "stages": [s["stage"] for s in manifest["stages"]
                                                         if s["stage"] != "iterative"],
            "iterative_files": sorted(p.name for p in first_run.iterdir()
                                      if not p.name.startswith("round-")),
            "round_files": sorted(p.name for p in (first_run / "round-1").iterdir()),
            "influence_files": sorted(p.name for p in bundle.matrix_paths()[0].parent.iterdir()),
            "experiment_files": sorted(p.name for p in
                                       (bundle.root / manifest["experiment"]).iterdir())}


def test_the_committed_bundle_is_what_the_code_reads(tmp_path: Path) -> None:
    committed = demo_bundle.read_bundle()
    assert committed is not None, "assets/demo/manifest.json: build it with demo-bundle"
    demo_bundle.check_bundle(committed)  # every stage key, recomputed by this code
    manifest = committed.manifest
    store = RunStore(tmp_path / "demo")  # the app's default demo pool, as the app makes it
    pipeline.ingest_demo(store, n=manifest["pool"]["demo_n"], seed=manifest["pool"]["demo_seed"])
    assert demo_bundle.bundle_for(store) is not None  # its fingerprint is the bundle's
    A, tasks = load_attribution(*committed.matrix_paths())
    assert A.shape == (manifest["pool"]["rows"], len(tasks)) and len(set(tasks)) >= 3
    for folder in committed.iterative_runs():
        history = load_history(folder)
        assert history.rounds == history.config["rounds"] >= 2
    results = load_results([committed.root / manifest["experiment"]])
    assert {"iterative-kmq", "random"} <= set(results["method"])
    assert {s["stage"] for s in manifest["stages"]} == {
        "iterative", "influence-warmup", "influence-features", "influence-matrix"}


@pytest.fixture(scope="module")
def tiny_bundle(prepared_workspace: Path, shared_data: Path,
                tmp_path_factory: pytest.TempPathFactory) -> demo_bundle.DemoBundle:
    """A bundle built here on the workspace's demo pool: the tiny random llama, a 2-round
    iterative run, a LESS matrix at 64 dimensions (validation data from ../shared)."""
    root = tmp_path_factory.mktemp("bundle")
    toml = root / "tiny.toml"
    toml.write_text(TINY_TOML)
    config = demo_bundle.DemoBundleConfig(
        experiment=str(toml), influence_model="tiny-random-llama", lora_r=4, lora_alpha=8,
        max_length=96, dim=64, val_per_task=2)
    demo_bundle.build_demo_bundle(config, root / "work", root / "demo", "demo-bundle (tiny)",
                                  log=lambda line: None)
    built = demo_bundle.read_bundle(root / "demo")
    assert built is not None
    return built


def test_a_rebuilt_bundle_has_the_committed_schema_and_passes_the_check(
        tiny_bundle: demo_bundle.DemoBundle) -> None:
    demo_bundle.check_bundle(tiny_bundle)
    committed = demo_bundle.read_bundle()
    assert committed is not None
    assert schema(tiny_bundle) == schema(committed)
    assert not list(tiny_bundle.root.rglob("*.safetensors"))  # results only, never weights


def test_a_bundle_the_code_keys_differently_fails_the_check(
        tiny_bundle: demo_bundle.DemoBundle, tmp_path: Path) -> None:
    copy = tmp_path / "demo"
    shutil.copytree(tiny_bundle.root, copy)
    manifest = read_json(copy / demo_bundle.MANIFEST_NAME)
    manifest["stages"][-2]["config"]["dim"] += 1  # as if the features' keying had changed
    write_json(copy / demo_bundle.MANIFEST_NAME, manifest)
    with pytest.raises(StaleStageError, match="influence-features"):
        demo_bundle.check_bundle(demo_bundle.read_bundle(copy))
    (copy / "influence" / "val_tasks.txt").unlink()
    write_json(copy / demo_bundle.MANIFEST_NAME, tiny_bundle.manifest)
    with pytest.raises(StaleStageError, match="val_tasks.txt"):
        demo_bundle.check_bundle(demo_bundle.read_bundle(copy))


def test_the_demo_pool_opens_the_iterative_and_influence_pages_on_the_bundle(
        tiny_bundle: demo_bundle.DemoBundle, monkeypatch: pytest.MonkeyPatch, open_page
) -> None:
    monkeypatch.setattr(demo_bundle, "BUNDLE_ROOT", tiny_bundle.root)
    assert demo_bundle.bundle_for(workspace.demo_run()) is not None
    at = open_page("iterative")
    assert any("bundled demo: iterative kMQ with tiny-random-llama" in i.value for i in at.info)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Per-cluster score across rounds" in titles and "Cluster weights" in titles
    at = open_page("influence")
    assert at.radio(key="influence_source").value == "The bundled demo"
    assert any("bundled demo: LESS attribution matrix of tiny-random-llama" in i.value
               for i in at.info)
    assert at.get("plotly_chart")
    at = open_page("report")
    bundled = [n for n in at.multiselect[0].options if n.endswith("(bundled demo)")]
    assert bundled == ["iterative-kmq · k=6 · 24 rows (bundled demo)"]
    assert bundled[0] in at.multiselect[0].value
    at.button[0].click().run()
    assert not at.exception and any("Report ready" in s.value for s in at.success)


def test_the_demo_run_gets_the_bundle_before_its_pool_lands_and_no_other_pool_does(
        tiny_bundle: demo_bundle.DemoBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELECTION_CORE_WORKSPACE", str(tmp_path / "fresh"))
    fresh = workspace.demo_run()
    assert not pipeline.has_pool(fresh)
    assert demo_bundle.bundle_for(fresh, tiny_bundle.root) is not None
    assert demo_bundle.bundle_for(workspace.demo_run(seed=1), tiny_bundle.root) is None
    other = RunStore(tmp_path / "other")
    pipeline.ingest_demo(other, n=DEMO_N, seed=1)
    assert demo_bundle.bundle_for(other, tiny_bundle.root) is None
