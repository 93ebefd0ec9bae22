"""Influence stages over a run directory: warmup → features → attribution matrix → selection.

Each is a stage of the one runner (`runner.py`), keyed by its config and its inputs' keys:
  stages/influence-warmup/<key>/     LoRA checkpoints per epoch (adapter, AdamW moments, mean
                                     lr), warmup.json (model, fraction, rows used); key: model,
                                     fraction, LoRA settings, the pool's fingerprint
  stages/influence-features/<key>/   validation.jsonl (the validation instances),
                                     epoch<E>/{train,val}.npy (projected, L2-normalised
                                     gradients), rds/{train,val}.npy (last-token hidden states,
                                     RDS baseline); key: FeatureSettings + the warmup's key
  stages/influence-matrix/<key>/     attribution.npy, val_tasks.txt; key: the features' key
  attribution.npy, val_tasks.txt     the latest matrix at the run's root — the `matrix` contract

A new warmup is a new key, so features of an older warmup are never resumed nor returned: they
stay under their own key (`runner.latest` refuses them once the warmup changed).

Defaults follow the pipeline BIDS ran, LESS's: the `less` warmup preset, ε inside the root of the
Adam preconditioner, validation text without EOS, RDS from the warmup checkpoint. The previous
variants stay as named options (`preconditioner="adam"`, `validation_eos=True`,
`rds_model="base"`).
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from ..select import stages as pipeline
from ..spine import runner
from ..spine.config import HashedConfig, LoRAConfig, param
from ..spine.errors import ConfigError, MissingStageError, SelectionError
from ..spine.progress import Progress
from ..spine.runner import Stage, StageContext
from ..spine.store import RunStore, atomic_path, memmap_compute, read_json, read_npy, write_json, \
    write_jsonl, write_npy, write_text
from ..evaluate.splits import SPLIT_RULES, VALIDATION_PER_TASK, VALIDATION_SEED, \
    VALIDATION_TASKS
from .validation import build_validation_set

FEATURE_CHUNK_ROWS = 256


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    path: Path
    mean_lr: float


# --------------------------------------------------------------------------- warmup
@dataclass(frozen=True)
class WarmupPreset:
    """A published warmup: the share of the pool it trains on and the LoRA settings.

    `lora.batch_size × lora.grad_accumulation` is the batch of one optimizer step; a different
    per-step batch keeps that product (the accumulation is recomputed)."""

    name: str
    fraction: float
    lora: LoRAConfig
    source: str

    @property
    def effective_batch(self) -> int:
        return self.lora.batch_size * self.lora.grad_accumulation


_LESS_LORA = LoRAConfig(r=128, alpha=512, dropout=0.1, target_modules=None, epochs=4,
                        learning_rate=2e-5, weight_decay=0.0, warmup_ratio=0.03,
                        lr_scheduler="linear", batch_size=1, grad_accumulation=32,
                        max_length=2048)
WARMUP_PRESETS = {
    "less": WarmupPreset("less", 0.05, _LESS_LORA,
                         "LESS warmup_lora_train.sh: 5% of the pool, 4 epochs, batch 1 × 32 "
                         "accumulated, linear decay after a 3% warm-up, lr 2e-5"),
    "bids": WarmupPreset("bids", 1.0, replace(_LESS_LORA, grad_accumulation=128,
                                              lr_scheduler="cosine"),
                         "BIDS A.2: the full pool, 4 epochs, batch 128 by accumulation, linear "
                         "warm-up then cosine decay (lr 2e-5 and 3% warm-up as LESS, which BIDS "
                         "follows)"),
}
DEFAULT_PRESET = "less"


def warmup_settings(preset: str = DEFAULT_PRESET, fraction: float | None = None,
                    batch_size: int | None = None, effective_batch: int | None = None,
                    **lora: Any) -> tuple[float, LoRAConfig]:
    """The preset's fraction and LoRA settings with the given values in their place.

    Changing r alone keeps LESS's α = 4·r. A per-step `batch_size` keeps the preset's effective
    batch through accumulation (it must divide it); `effective_batch` changes that batch."""
    if preset not in WARMUP_PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; use {', '.join(WARMUP_PRESETS)}")
    chosen = WARMUP_PRESETS[preset]
    unknown = set(lora) - {f.name for f in fields(LoRAConfig)}
    if unknown:
        raise ConfigError(f"unknown LoRA setting(s): {', '.join(sorted(unknown))}")
    given = {key: value for key, value in lora.items() if value is not None}
    if "r" in given and "alpha" not in given:
        given["alpha"] = 4 * given["r"]
    micro = batch_size or chosen.lora.batch_size
    total = effective_batch or chosen.effective_batch
    if micro < 1 or total < 1 or total % micro:
        raise ConfigError(f"the effective batch {total} must be a positive multiple of the "
                          f"per-step batch {micro}")
    config = replace(chosen.lora, **given, batch_size=micro, grad_accumulation=total // micro)
    return (chosen.fraction if fraction is None else fraction), config


def describe_warmup(preset: str, fraction: float, lora: LoRAConfig) -> str:
    """Every value a warmup runs with, for the log: nothing a reader has to look up."""
    modules = ",".join(lora.target_modules) if lora.target_modules else \
        "q_proj,k_proj,v_proj,o_proj (all linear layers where a model has none)"
    return (f"preset {preset} ({WARMUP_PRESETS[preset].source})\n"
            f"values used: fraction {fraction:g} of the pool, {lora.epochs} epochs"
            f"{f' (at most {lora.max_steps} steps)' if lora.max_steps else ''}, learning rate "
            f"{lora.learning_rate:g}, {lora.lr_scheduler} decay after a {lora.warmup_ratio:g} "
            f"warm-up, weight decay {lora.weight_decay:g}, batch {lora.batch_size} × "
            f"{lora.grad_accumulation} accumulated = "
            f"{lora.batch_size * lora.grad_accumulation}, max length {lora.max_length}, LoRA "
            f"r {lora.r} alpha {lora.alpha} dropout {lora.dropout:g} on {modules}, seed "
            f"{lora.seed}")


@dataclass(frozen=True)
class WarmupConfig(HashedConfig):
    """A LoRA warmup (defaults: the `less` preset); its key also holds the pool's fingerprint."""

    model: str
    fraction: float = WARMUP_PRESETS[DEFAULT_PRESET].fraction
    lora: LoRAConfig = WARMUP_PRESETS[DEFAULT_PRESET].lora

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"--fraction must be in (0, 1], got {self.fraction}")

    def hash_fields(self) -> dict[str, Any]:
        return {"model": self.model, "fraction": self.fraction, "lora": self.lora.hash_fields()}



def _pool_input(store: RunStore, config: Any) -> dict[str, Any]:
    return {"pool": pipeline.run_pool_fingerprint(store)}


def _run_warmup(ctx: StageContext, config: WarmupConfig, progress: Progress) -> dict[str, Any]:
    """Train on a seeded random `fraction` of the pool, saving per epoch the adapter, the
    optimizer state and the epoch's mean learning rate; resumes after the last saved epoch."""
    from ..train.lora import LoRATrainer

    pool = pipeline.load_run_pool(ctx.store)
    lora = config.lora
    n = max(1, round(config.fraction * len(pool)))
    rows = np.sort(np.random.default_rng(lora.seed).choice(len(pool), n, replace=False))
    subset = pool.iloc[rows]
    trainer = LoRATrainer(config.model, lora).fit(subset["prompt"].tolist(),
                                                  subset["response"].tolist(), ctx.folder,
                                                  progress=progress)
    write_json(ctx.folder / "warmup.json", {
        "model": config.model, "fraction": config.fraction, "rows": len(rows),
        "ids": subset["id"].tolist(), "lora": lora.to_dict(),
        "checkpoints": [str(c) for c in trainer.checkpoints_]})
    return {"rows": len(rows), "epochs": len(trainer.checkpoints_)}


WARMUP = runner.register(Stage("influence-warmup", WarmupConfig, _run_warmup, _pool_input,
                               resumable=True, record=lambda c: "influence:warmup"))
WARMUP_HINT = "run `python -m selection_core influence warmup --run DIR --model …`"


def warmup(store: RunStore, model: str, fraction: float = WARMUP_PRESETS[DEFAULT_PRESET].fraction,
           lora: LoRAConfig = WARMUP_PRESETS[DEFAULT_PRESET].lora,
           progress: Progress | None = None) -> list[Checkpoint]:
    """LoRA warmup on a seeded random `fraction` of the pool (the warmup stage; defaults: the
    `less` preset); the run's checkpoints afterwards."""
    runner.run(store, WARMUP, WarmupConfig(model, fraction, lora), progress)
    return checkpoints(store)


def warmup_folder(store: RunStore) -> Path:
    """The latest warmup of the run's current pool."""
    return runner.require_latest(store, WARMUP, WARMUP_HINT.replace("DIR", str(store.root)))


def warmup_info(store: RunStore) -> dict[str, Any]:
    return read_json(warmup_folder(store) / "warmup.json")


def checkpoints(store: RunStore) -> list[Checkpoint]:
    """The latest warmup's epoch checkpoints with their mean learning rates."""
    found = []
    for path in sorted(warmup_folder(store).glob("checkpoint-epoch*")):
        state = read_json(path / "state.json")
        found.append(Checkpoint(int(state["epoch"]), path, float(state["mean_lr"])))
    if not found:
        raise MissingStageError(f"no warmup checkpoints in {store.root}: "
                                + WARMUP_HINT.replace("DIR", str(store.root)))
    return sorted(found, key=lambda c: c.epoch)


def checkpoint_weights(found: Sequence[Checkpoint]) -> np.ndarray:
    """w_c = the epoch's mean learning rate, normalised to sum to 1 (LESS: Xia et al., 2024)."""
    rates = np.array([c.mean_lr for c in found], dtype=np.float64)
    if rates.sum() <= 0:
        return np.full(len(found), 1.0 / len(found))
    return rates / rates.sum()


# --------------------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureSettings(HashedConfig):
    """What the features stage computes; with the warmup's key it keys the features' folder,
    so any change recomputes."""

    dim: int = param(8192, help="projection dimension (LESS: 8192)", low=1)
    val_per_task: int = param(VALIDATION_PER_TASK, help="validation instances per task (BIDS: 50)",
                              low=1)
    tasks: tuple[str, ...] = VALIDATION_TASKS
    seed: int = param(VALIDATION_SEED, help="projection and validation sample")
    preconditioner: Literal["less", "adam"] = param(
        "less", help="less: m / sqrt(v + eps), LESS's code; adam: m / (sqrt(v) + eps)",
        choices=("less", "adam"))
    validation_eos: bool = param(False, help="end validation responses with EOS (LESS does not)")
    rds_model: Literal["warmup", "base"] = param(
        "warmup", help="RDS hidden states from the final warmup checkpoint (as BIDS) or the base "
                       "model", choices=("warmup", "base"))
    max_length: int = param(2048, help="tokens per sequence (LESS's)", low=1)
    batch_size: int = param(8, help="speed only: per-example gradients do not depend on it",
                            low=1, hash=False)
    val_max_new_tokens: int = param(256, help="answer length generated for tasks without "
                                              "reference responses (IFEval), by the warmed-up "
                                              "model", low=1)
    data_paths: tuple[tuple[str, str], ...] = ()  # (task, local file) for validation data
    validation_split: Literal["papers", "test"] = param(
        "papers", help="papers: validation instances from a task's validation split where it "
                       "has one (BIDS A.2: MMLU, MBPP), else from test; test: always from test",
        choices=SPLIT_RULES)
    device: str = param("auto", help="auto, cpu, cuda, cuda:1 …", hash=False)



# what computes the features files instead of this process: (model, checkpoints, pool,
# validation, folder, settings, progress)
FeatureRunner = Callable[[str, Sequence["Checkpoint"], pd.DataFrame, pd.DataFrame, Path,
                          FeatureSettings, Progress | None], None]


@dataclass(frozen=True)
class FeatureResources:
    """Speed only, never in the key: computes the features' files another way (e.g. on Ray
    workers), the same numbers."""

    feature_runner: FeatureRunner


def _load_for_gradients(base_model: str, checkpoint: Path, device: str) -> tuple[Any, Any]:
    from peft import PeftModel

    from ..lm.loading import load_causal_lm

    base, tokenizer = load_causal_lm(base_model, device=device, dtype="float32", cache=False)
    return PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True), tokenizer


def validation_path(features_folder: Path) -> Path:
    """The validation instances (task, prompt, response) a features folder was computed on."""
    return features_folder / "validation.jsonl"


def _validation_set(ctx: StageContext, settings: FeatureSettings, device: str) -> pd.DataFrame:
    """Build (once per key) the validation instances; IFEval-like tasks without references get
    the warmed-up model's greedy answers."""
    path = validation_path(ctx.folder)
    if path.exists():  # dtype=False: a response such as "42" must stay text
        return pd.read_json(path, lines=True, dtype=False)

    def respond(prompts: list[str]) -> list[str]:
        from ..train.generate import generate
        from ..train.lora import load_trained

        info = warmup_info(ctx.store)
        model, tokenizer = load_trained(info["model"], checkpoints(ctx.store)[-1].path,
                                        device=device)
        return generate(model, tokenizer, prompts, max_new_tokens=settings.val_max_new_tokens,
                        batch_size=settings.batch_size,
                        use_chat_template=info["lora"].get("chat_template"))

    frame = build_validation_set(settings.tasks, settings.val_per_task, settings.seed,
                                 dict(settings.data_paths), respond, settings.validation_split)
    write_jsonl(path, frame.to_dict(orient="records"))
    return frame


def _warmup_input(store: RunStore, config: Any) -> dict[str, Any]:
    return {"warmup": warmup_folder(store).name}


def _run_features(ctx: StageContext, settings: FeatureSettings,
                  progress: Progress) -> dict[str, Any]:
    """Projected gradient features of every pool row (Adam-preconditioned) and every validation
    instance (plain), per warmup checkpoint, plus RDS features. Resumes per chunk of rows."""
    from ..spine.devices import resolve_device

    device = resolve_device(settings.device)
    info = warmup_info(ctx.store)
    pool = pipeline.load_run_pool(ctx.store)
    val = _validation_set(ctx, settings, device)
    found = checkpoints(ctx.store)
    feature_runner = ctx.resources.feature_runner if ctx.resources else None
    if feature_runner is not None:
        feature_runner(info["model"], found, pool, val, ctx.folder, settings, progress)
    else:
        for checkpoint in found:
            _checkpoint_features(checkpoint, info["model"], pool, val, ctx.folder, device,
                                 settings, progress)
        _rds_features(info["model"], found[-1], pool, val, ctx.folder, device, settings)
    return {"rows": len(pool), "validation": len(val), "checkpoints": len(found)}


FEATURES = runner.register(Stage("influence-features", FeatureSettings, _run_features,
                                 _warmup_input, resumable=True,
                                 record=lambda c: "influence:features",
                                 resources=FeatureResources))
FEATURES_HINT = "run `python -m selection_core influence features --run DIR`"


def features(store: RunStore, settings: FeatureSettings = FeatureSettings(),
             data_paths: dict[str, str] | None = None, device: str = "auto",
             progress: Progress | None = None,
             feature_runner: FeatureRunner | None = None) -> Path:
    """The features stage on the run's latest warmup (`data_paths`: local validation files per
    task; `device` where the model runs; `feature_runner` computes the same files another way,
    e.g. `influence.ray_features` on Ray workers: speed only, the same key); returns the
    features' folder."""
    settings = replace(settings, device=device,
                       data_paths=tuple(sorted((data_paths or {}).items())) or settings.data_paths)
    resources = FeatureResources(feature_runner) if feature_runner is not None else None
    return runner.run(store, FEATURES, settings, progress, resources)


def _checkpoint_features(checkpoint: Checkpoint, model_name: str, pool: pd.DataFrame,
                         val: pd.DataFrame, folder: Path, device: str, settings: FeatureSettings,
                         progress: Progress) -> None:
    """One checkpoint's train (Adam-preconditioned) and validation (plain) features; a function
    of its own so the model is freed before the next checkpoint loads."""
    loaded = gradient_model(model_name, checkpoint.path, settings, device)
    target = folder / f"epoch{checkpoint.epoch}"
    for split, frame in (("train", pool), ("val", val)):
        prompts, responses = frame["prompt"].tolist(), frame["response"].tolist()

        def compute(start: int, stop: int, split: str = split) -> np.ndarray:
            return split_features(loaded, split, prompts[start:stop], responses[start:stop],
                                  settings)

        name = f"epoch{checkpoint.epoch}-{split}"
        memmap_compute(target / f"{split}.npy", len(frame), settings.dim, FEATURE_CHUNK_ROWS,
                       compute, lambda d, n, m="", name=name: progress(d, n, name))
    write_checkpoint_info(target, checkpoint, loaded.parameters, settings)


class GradientModel(NamedTuple):
    """What one checkpoint's features need loaded: its model, the projection, its moments."""

    model: Any
    tokenizer: Any
    projector: Any
    state: Any
    parameters: int
    chat_template: bool | None  # the format the warmup trained in (its LoRAConfig's)


def gradient_model(model_name: str, checkpoint: Path, settings: FeatureSettings,
                   device: str) -> GradientModel:
    """Load one checkpoint for its features (in this process or once per Ray worker)."""
    from .gradients import PerExampleGradients, RademacherProjector, adam_state

    model, tokenizer = _load_for_gradients(model_name, checkpoint, device)
    hooks = PerExampleGradients(model)
    names, dim_in = hooks.names, hooks.dim
    hooks.close()
    projector = RademacherProjector(dim_in, settings.dim, settings.seed, device=device)
    state = checkpoint / "state.json"
    trained = read_json(state).get("config", {}).get("chat_template") if state.exists() else None
    return GradientModel(model, tokenizer, projector, adam_state(checkpoint, names, device),
                         dim_in, trained)


def split_features(loaded: GradientModel, split: str, prompts: list[str], responses: list[str],
                   settings: FeatureSettings) -> np.ndarray:
    """Training rows: Adam-preconditioned, with EOS; validation rows: plain, EOS as set."""
    from .gradients import gradient_features

    train = split == "train"
    return gradient_features(loaded.model, loaded.tokenizer, prompts, responses,
                             loaded.projector, loaded.state if train else None,
                             settings.preconditioner, train or settings.validation_eos,
                             settings.batch_size, settings.max_length, loaded.chat_template)


def write_checkpoint_info(target: Path, checkpoint: Checkpoint, parameters: int,
                          settings: FeatureSettings) -> None:
    write_json(target / "info.json", {"epoch": checkpoint.epoch, "mean_lr": checkpoint.mean_lr,
                                      "parameters": parameters, "dim": settings.dim})


def _rds_features(model_name: str, checkpoint: Checkpoint, pool: pd.DataFrame,
                  val: pd.DataFrame, folder: Path, device: str,
                  settings: FeatureSettings) -> None:
    """RDS: the final-layer state at the last real token of each sequence, tokenised as for the
    gradients (training rows with EOS, validation as `validation_eos` says), from "the same model
    that computes gradient features" — the final warmup checkpoint — or the base model."""
    missing = [(split, frame) for split, frame in (("train", pool), ("val", val))
               if not (folder / "rds" / f"{split}.npy").exists()]
    if not missing:  # resumed after both were written: load no model
        return
    loaded = rds_model(model_name, checkpoint.path, settings, device)
    for split, frame in missing:
        write_npy(folder / "rds" / f"{split}.npy",
                  rds_split(loaded, split, frame["prompt"].tolist(), frame["response"].tolist(),
                            settings))


def rds_model(model_name: str, checkpoint: Path, settings: FeatureSettings,
              device: str) -> tuple[Any, Any]:
    from ..lm.loading import load_causal_lm
    from ..train.lora import load_trained

    if settings.rds_model == "warmup":
        return load_trained(model_name, checkpoint, device=device, dtype="float32", merge=False)
    return load_causal_lm(model_name, device=device, dtype="float32", cache=False)


def rds_split(loaded: tuple[Any, Any], split: str, prompts: list[str], responses: list[str],
              settings: FeatureSettings) -> np.ndarray:
    from .gradients import last_token_states

    return last_token_states(*loaded, prompts, responses,
                             split == "train" or settings.validation_eos, settings.batch_size,
                             settings.max_length)


def current_features(store: RunStore) -> Path:
    """The features of the run's latest warmup (an error if they were never computed for it)."""
    return runner.require_latest(store, FEATURES, FEATURES_HINT.replace("DIR", str(store.root)))


# --------------------------------------------------------------------------- attribution
def attribution_matrix(train: Sequence[np.ndarray], val: Sequence[np.ndarray],
                       weights: np.ndarray, chunk_rows: int = 8192) -> np.ndarray:
    """A = Σ_c w_c · T_c V_cᵀ (N × M, float32), accumulated in float64 row chunks."""
    n, m = train[0].shape[0], val[0].shape[0]
    out = np.zeros((n, m), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        block = np.zeros((stop - start, m), dtype=np.float64)
        for t, v, w in zip(train, val, weights, strict=True):
            block += w * (np.asarray(t[start:stop], dtype=np.float64) @ np.asarray(v, np.float64).T)
        out[start:stop] = block
    return out


MATRIX, TASKS = "attribution.npy", "val_tasks.txt"


def matrix_paths(store: RunStore) -> tuple[Path, Path]:
    """Where `matrix` writes A and its task names (the CLI contract)."""
    return store.path(MATRIX), store.path(TASKS)


def has_matrix(store: RunStore) -> bool:
    return all(path.is_file() for path in matrix_paths(store))


def has_rds_features(store: RunStore) -> bool:
    """True when the run's current gradient features include the RDS hidden states."""
    try:
        folder = current_features(store) / "rds"
    except SelectionError:
        return False
    return (folder / "train.npy").is_file() and (folder / "val.npy").is_file()


@dataclass(frozen=True)
class MatrixConfig(HashedConfig):
    """The attribution matrix has no settings of its own: the features' key is its input."""


def _features_input(store: RunStore, config: Any) -> dict[str, Any]:
    return {"features": current_features(store).name}


def _run_matrix(ctx: StageContext, config: MatrixConfig, progress: Progress) -> dict[str, Any]:
    folder = current_features(ctx.store)
    found = checkpoints(ctx.store)
    weights = checkpoint_weights(found)
    train = [read_npy(folder / f"epoch{c.epoch}" / "train.npy", mmap=True) for c in found]
    val = [read_npy(folder / f"epoch{c.epoch}" / "val.npy", mmap=True) for c in found]
    A = attribution_matrix(train, val, weights)
    tasks = pd.read_json(validation_path(folder), lines=True)["task"]
    write_npy(ctx.folder / MATRIX, A)
    write_text(ctx.folder / TASKS, "\n".join(tasks) + "\n")
    return {"shape": list(A.shape), "weights": weights.tolist()}


def _publish_matrix(store: RunStore, folder: Path) -> None:
    """The latest matrix at the run's root as `attribution.npy` and `val_tasks.txt` (the CLI
    contract: `influence select --matrix`, the Influence page, a GPU server's copy back)."""
    for name, target in zip((MATRIX, TASKS), matrix_paths(store), strict=True):
        with atomic_path(target) as tmp:
            shutil.copyfile(folder / name, tmp)


MATRIX_STAGE = runner.register(Stage("influence-matrix", MatrixConfig, _run_matrix,
                                     _features_input, record=lambda c: "influence:matrix",
                                     publish=_publish_matrix))


def matrix(store: RunStore) -> np.ndarray:
    """The matrix stage on the run's current features (also placed at the run's root)."""
    runner.run(store, MATRIX_STAGE, MatrixConfig())
    return read_npy(store.path(MATRIX))


def rds_scores_for_run(store: RunStore) -> np.ndarray:
    from ..select.bids import rds_scores

    folder = current_features(store) / "rds"
    return rds_scores(read_npy(folder / "train.npy"), read_npy(folder / "val.npy"))
