"""The app's bundled demo (issue 30): real results on the default demo pool before anyone runs a
job.

`build_demo_bundle` computes, on the pool of an experiment TOML (the demo pool), that experiment
(its `iterative-kmq` entries are iterative kMQ runs) and a LESS attribution matrix (warmup,
gradient features, matrix at a CPU-sized projection), all through the runner, and copies their
results — never model weights — beside a manifest naming the command, the code version and
every stage's record (name, key, config, inputs). The Iterative and Influence pages fall back to
the bundle when the open run's pool has the bundle's content fingerprint; the Results page lists
its experiment. `check_bundle` recomputes every recorded key with the current code, so a test
turns a bundle that the code no longer reads the same way into a CI failure, not wrong figures.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from . import workspace
from .report import NamedSelection, rationale_of, row_positions
from .. import __version__
from ..experiment.plan import ExperimentRunner, export_experiment, load_experiment_config
from ..influence import pipeline as influence
from ..iterative.loop import completed_rounds, list_iterative_runs, run_config, selection_frame
from ..select import stages as pipeline
from ..spine import runner
from ..spine.config import HashedConfig, param
from ..spine.errors import InputError, StaleStageError
from ..spine.progress import Progress
from ..spine.store import RunStore, atomic_dir, read_json, read_npy, stage_key, write_json

REPO = Path(__file__).resolve().parents[2]
BUNDLE_ROOT = REPO / "assets" / "demo"  # experiments/ (the Results page's), iterative/, influence/
MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = 1
ITERATIVE_FILES = ("config.json", "rounds.csv", runner.RECORD)
ROUND_FILES = ("added.npy", "clusters.csv", "summary.json", "generations.jsonl")
INFLUENCE_STAGES = (influence.WARMUP, influence.FEATURES, influence.MATRIX_STAGE)


@dataclass(frozen=True)
class DemoBundleConfig(HashedConfig):
    """What the bundle computes. The influence settings are LESS's (the `less` warmup preset,
    its projection and preconditioner) scaled to a CPU: one warmup epoch (one checkpoint), a
    rank-8 adapter, 1,024 dimensions and 10 validation instances per task instead of 4, 128,
    8,192 and 50 — each feature pass over the 3,000-row pool takes about 25 minutes on 2 cores."""

    experiment: str = param("configs/demo_smollm2_cpu.toml",
                            help="experiment TOML: its pool is the bundle's; its iterative-kmq "
                                 "entries are the bundled iterative runs")
    influence_model: str = param("smollm2-135m-instruct",
                                 help="causal LM of the LESS warmup and gradient features")
    warmup_epochs: int = param(1, help="warmup epochs, one checkpoint each (LESS: 4)", low=1)
    lora_r: int = param(8, help="warmup LoRA rank (LESS: 128)", low=1)
    lora_alpha: int = param(32, help="warmup LoRA alpha (LESS: 512)", low=1)
    max_length: int = param(512, help="tokens per warmup and feature sequence (LESS: 2048)",
                            low=1)
    batch_size: int = param(4, help="warmup examples per forward pass; the preset's effective "
                                    "batch of 32 is kept by accumulation", low=1)
    dim: int = param(1024, help="gradient projection dimension (LESS: 8192)", low=1)
    val_per_task: int = param(10, help="validation instances per task (BIDS: 50)", low=1)

    def warmup(self) -> influence.WarmupConfig:
        fraction, lora = influence.warmup_settings(
            influence.DEFAULT_PRESET, batch_size=self.batch_size, r=self.lora_r,
            alpha=self.lora_alpha, max_length=self.max_length, epochs=self.warmup_epochs)
        return influence.WarmupConfig(self.influence_model, fraction, lora)

    def features(self) -> influence.FeatureSettings:
        return influence.FeatureSettings(dim=self.dim, val_per_task=self.val_per_task,
                                         max_length=self.max_length)


def _stage_record(folder: Path) -> dict[str, Any]:
    record = read_json(folder / runner.RECORD)
    return {name: record[name] for name in ("stage", "key", "config", "inputs")}


def _copy_files(source: Path, target: Path, names: tuple[str, ...]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(source / name, target / name)


def _timed(log: Callable[[str], None], what: str, work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    log(f"demo-bundle: {what} …")
    work()
    seconds = time.perf_counter() - started
    log(f"demo-bundle: {what} — {seconds:.0f} s")
    return seconds


def build_demo_bundle(config: DemoBundleConfig, work: str | Path, out: str | Path,
                      command: str, log: Callable[[str], None] = print,
                      progress: Progress | None = None) -> Path:
    """Compute (or reuse, key by key, from `work`) the experiment and the LESS matrix on the
    experiment's pool, then replace the bundle in `out`. Returns the manifest's path."""
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError("cannot be written (its parent folder does not exist)", path=str(out))
    experiment = load_experiment_config(config.experiment)
    store = RunStore(work)
    wall = {"experiment": _timed(log, f"experiment {experiment.name}",
                                 ExperimentRunner(experiment, store.root, log=log).run)}
    warmup, features = config.warmup(), config.features()

    def less_matrix() -> None:
        runner.run(store, influence.WARMUP, warmup, progress)
        influence.features(store, features, progress=progress)
        influence.matrix(store)

    wall["influence"] = _timed(log, "LESS warmup, features and matrix", less_matrix)
    iterative = [folder for folder in list_iterative_runs(store)
                 if (folder / runner.RECORD).exists()
                 and completed_rounds(folder) == run_config(folder)["rounds"]]
    if not iterative:
        raise InputError("holds no iterative-kmq entry: the bundle needs one for the Iterative "
                         "page", path=config.experiment)
    stages = [_stage_record(folder) for folder in iterative]
    stages += [_stage_record(runner.finished(store, stage, stage_config))
               for stage, stage_config in zip(
                   INFLUENCE_STAGES, (warmup, features, influence.MatrixConfig()), strict=True)]
    (out / "experiments").mkdir(parents=True, exist_ok=True)
    export_experiment(store.root, out / "experiments" / experiment.name, command)
    with atomic_dir(out / "iterative") as tmp:
        for folder in iterative:
            _copy_files(folder, tmp / folder.name, ITERATIVE_FILES)
            for number in range(1, completed_rounds(folder) + 1):
                name = f"round-{number}"
                _copy_files(folder / name, tmp / folder.name / name, ROUND_FILES)
    with atomic_dir(out / "influence") as tmp:
        for path in influence.matrix_paths(store):
            shutil.copy2(path, tmp / path.name)
    return write_json(out / MANIFEST_NAME, {
        "format": BUNDLE_FORMAT, "command": command, "code_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        # this build's seconds per part: a key reused from --run costs nothing here
        "build_wall_s": {k: round(v, 1) for k, v in wall.items()},
        "pool": {"fingerprint": pipeline.run_pool_fingerprint(store),
                 "rows": len(read_npy(influence.matrix_paths(store)[0], mmap=True)),
                 "demo_n": experiment.demo_n, "demo_seed": experiment.demo_seed},
        "models": {"iterative": experiment.model, "influence": config.influence_model},
        "experiment": f"experiments/{experiment.name}",
        "iterative": [f"iterative/{folder.name}" for folder in iterative],
        "influence": {"matrix": f"influence/{influence.MATRIX}",
                      "tasks": f"influence/{influence.TASKS}"},
        "stages": stages})


# ------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class DemoBundle:
    """A bundle on disk and its manifest."""

    root: Path
    manifest: dict[str, Any]

    @property
    def built(self) -> str:
        return self.manifest["created"][:10]

    def label(self, part: str) -> str:
        """What a page says it shows: the bundled demo, its model, settings and date."""
        config = self.manifest["config"]
        if part == "influence":
            return (f"bundled demo: LESS attribution matrix of {config['influence_model']} "
                    f"({config['warmup_epochs']} warmup epoch(s), LoRA r {config['lora_r']}, "
                    f"{config['dim']:,} dimensions, {config['val_per_task']} validation "
                    f"instances per task), built {self.built} by `{self.manifest['command']}`")
        return (f"bundled demo: iterative kMQ with {self.manifest['models']['iterative']}, "
                f"built {self.built} by `{self.manifest['command']}`")

    def iterative_runs(self) -> list[Path]:
        return [self.root / path for path in self.manifest["iterative"]]

    def matrix_paths(self) -> tuple[Path, Path]:
        return (self.root / self.manifest["influence"]["matrix"],
                self.root / self.manifest["influence"]["tasks"])


def read_bundle(root: Path | None = None) -> DemoBundle | None:
    """The bundle in `root` (default: the project's), or None where there is none."""
    root = Path(root or BUNDLE_ROOT)
    path = root / MANIFEST_NAME
    return DemoBundle(root, read_json(path)) if path.exists() else None


def bundle_for(store: RunStore, root: Path | None = None) -> DemoBundle | None:
    """The bundle when the run's pool is the bundle's pool (the same content), else None: its
    rows then index this pool, and its results describe it."""
    bundle = read_bundle(root)
    if bundle is None:
        return None
    pool = bundle.manifest["pool"]
    if pipeline.has_pool(store):
        same = pipeline.run_pool_fingerprint(store) == pool["fingerprint"]
    else:  # the app's demo run before its pool is written: the seeded generator gives the
        # bundle's pool (the committed bundle's test proves it)
        same = store.root == workspace.demo_run(pool["demo_n"], pool["demo_seed"]).root
    return bundle if same else None


def bundled_selections(store: RunStore, pool: pd.DataFrame) -> dict[str, NamedSelection]:
    """The final selections of the bundled iterative runs, as reports list selections (the
    demo pool only): the Report page offers them beside the run's own."""
    bundle = bundle_for(store)
    found = {}
    for folder in bundle.iterative_runs() if bundle else []:
        config = {**run_config(folder), "method": "iterative-kmq"}
        frame = selection_frame(store, folder)
        name = f"iterative-kmq · k={config['k']} · {config['budget']} rows (bundled demo)"
        found[name] = NamedSelection(name, row_positions(pool, frame["id"], folder), config,
                                     rationale_of(frame))
    return found


def check_bundle(bundle: DemoBundle) -> None:
    """Raise StaleStageError unless the current code gives every recorded stage the key it was
    stored under and finds every file the pages read."""
    if bundle.manifest.get("format") != BUNDLE_FORMAT:
        raise StaleStageError(f"{bundle.root}: bundle format {bundle.manifest.get('format')}, "
                              f"the code reads {BUNDLE_FORMAT}: rebuild it with demo-bundle")
    for record in bundle.manifest["stages"]:
        stage = runner.get_stage(record["stage"])
        config = stage.load_config(record["config"])
        key = stage_key({"stage": stage.name, "config": config.hash_fields(),
                         "inputs": record["inputs"]})
        if key != record["key"]:
            raise StaleStageError(f"{bundle.root}: the {stage.name} stage is keyed {key} by "
                                  f"this code but was built as {record['key']}: rebuild the "
                                  "bundle with demo-bundle")
    expected = [*bundle.matrix_paths(), bundle.root / bundle.manifest["experiment"]]
    for folder in bundle.iterative_runs():
        expected += [folder / name for name in ITERATIVE_FILES]
        expected += [folder / f"round-{n}" / name for n in range(1, completed_rounds(folder) + 1)
                     for name in ROUND_FILES]
    missing = [str(path.relative_to(bundle.root)) for path in expected if not path.exists()]
    if missing:
        raise StaleStageError(f"{bundle.root}: missing {', '.join(missing)}: rebuild the bundle "
                              "with demo-bundle")
