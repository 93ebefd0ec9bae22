"""Influence stages over a run directory: warmup → features → attribution matrix → selection.

  influence/warmup.json            model, fraction, rows used, checkpoints
  influence/warmup/                LoRA checkpoints per epoch (adapter, AdamW moments, mean lr),
                                   settings.json (the settings they were trained with)
  influence/validation-<key>.jsonl the validation instances (task, prompt, response)
  influence/features/<key>/epoch<E>/{train,val}.npy   projected, L2-normalised gradients
  influence/features/<key>/rds/{train,val}.npy        last-token hidden states (RDS baseline)
                                                      of the final warmup checkpoint
  influence/features/<key>/warmup.json                the warmup they were computed from
  attribution.npy, val_tasks.txt   A (N × M) and one task per column — the `matrix` contract

<key> is `FeatureSettings.key()`: d<dim>-<hash of the settings that change the features>.

Defaults follow the pipeline BIDS ran, LESS's: the `less` warmup preset, ε inside the root of the
Adam preconditioner, validation text without EOS, RDS from the warmup checkpoint. The previous
variants stay as named options (`preconditioner="adam"`, `validation_eos=True`,
`rds_model="base"`).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from .. import pipeline
from ..config import LoRAConfig
from ..errors import ConfigError, MissingStageError, SelectionError
from ..progress import Progress
from ..store import RunStore, memmap_compute, read_json, read_npy, write_json, write_jsonl, \
    write_npy, write_text
from .validation import VALIDATION_TASKS, build_validation_set

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


def warmup(store: RunStore, model: str, fraction: float = WARMUP_PRESETS[DEFAULT_PRESET].fraction,
           lora: LoRAConfig = WARMUP_PRESETS[DEFAULT_PRESET].lora,
           progress: Progress | None = None) -> list[Checkpoint]:
    """LoRA warmup on a seeded random `fraction` of the pool, saving per epoch the adapter, the
    optimizer state and the epoch's mean learning rate (defaults: the `less` preset)."""
    from ..train.lora import LoRATrainer

    pool = pipeline.load_run_pool(store)
    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], got {fraction}")
    n = max(1, round(fraction * len(pool)))
    rows = np.sort(np.random.default_rng(lora.seed).choice(len(pool), n, replace=False))
    subset = pool.iloc[rows]
    out = store.path("influence", "warmup")
    # the trainer resumes after the last checkpoint it finds: never those of other settings
    wanted = {"model": model, "fraction": fraction, "lora": lora.config_hash()}
    marker = out / "settings.json"
    if marker.exists() and read_json(marker) != wanted:
        raise ConfigError(f"{out} holds the checkpoints of a warmup with other settings "
                          f"({read_json(marker)}); resuming them would mix the two: use another "
                          "--run, or delete that folder to start over")
    write_json(marker, wanted)
    with store.stage("influence:warmup", {"model": model, "fraction": fraction,
                                          **lora.to_dict()}) as info:
        trainer = LoRATrainer(model, lora).fit(subset["prompt"].tolist(),
                                               subset["response"].tolist(), out,
                                               progress=progress)
        write_json(store.path("influence", "warmup.json"), {
            "model": model, "fraction": fraction, "rows": len(rows),
            "ids": subset["id"].tolist(), "lora": lora.to_dict(),
            "checkpoints": [str(c) for c in trainer.checkpoints_]})
        info.update(rows=len(rows), epochs=len(trainer.checkpoints_))
    return checkpoints(store)


def warmup_info(store: RunStore) -> dict[str, Any]:
    path = store.require("influence/warmup.json", hint="run `python -m selection_core influence "
                                                       f"warmup --run {store.root} --model …`")
    return read_json(path)


def checkpoints(store: RunStore) -> list[Checkpoint]:
    """The warmup's epoch checkpoints with their mean learning rates."""
    found = []
    for path in sorted(store.path("influence", "warmup").glob("checkpoint-epoch*")):
        state = read_json(path / "state.json")
        found.append(Checkpoint(int(state["epoch"]), path, float(state["mean_lr"])))
    if not found:
        raise MissingStageError(f"no warmup checkpoints in {store.root}: run `python -m "
                                f"selection_core influence warmup --run {store.root} --model …`")
    return sorted(found, key=lambda c: c.epoch)


def checkpoint_weights(found: Sequence[Checkpoint]) -> np.ndarray:
    """w_c = the epoch's mean learning rate, normalised to sum to 1 (METHODS §2.1)."""
    rates = np.array([c.mean_lr for c in found], dtype=np.float64)
    if rates.sum() <= 0:
        return np.full(len(found), 1.0 / len(found))
    return rates / rates.sum()


# --------------------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureSettings:
    """What the features stage computes; `key()` names its folder, so any change recomputes."""

    dim: int = 8192  # LESS's projection dimension
    val_per_task: int = 50  # BIDS: 50 per task
    tasks: tuple[str, ...] = VALIDATION_TASKS
    seed: int = 0
    preconditioner: Literal["less", "adam"] = "less"  # LESS: m / √(v + ε)
    validation_eos: bool = False  # LESS tokenises validation text without EOS
    rds_model: Literal["warmup", "base"] = "warmup"  # RDS from the last warmup checkpoint
    max_length: int = 2048  # LESS's
    batch_size: int = 8  # speed only: per-example gradients do not depend on it
    val_max_new_tokens: int = 256  # answer length for tasks without references (IFEval)

    def __post_init__(self) -> None:
        if self.preconditioner not in ("less", "adam"):
            raise ConfigError(f"unknown preconditioner '{self.preconditioner}'; use less or adam")
        if self.rds_model not in ("warmup", "base"):
            raise ConfigError(f"unknown RDS model '{self.rds_model}'; use warmup or base")

    def key(self) -> str:
        payload = json.dumps({"dim": self.dim, "val": self.val_per_task, "tasks": self.tasks,
                              "seed": self.seed, "preconditioner": self.preconditioner,
                              "validation_eos": self.validation_eos, "rds": self.rds_model,
                              "max_length": self.max_length,
                              "val_max_new_tokens": self.val_max_new_tokens}, sort_keys=True)
        return f"d{self.dim}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


# what computes the features files instead of this process: (model, checkpoints, pool,
# validation, folder, settings, progress)
FeatureRunner = Callable[[str, Sequence["Checkpoint"], pd.DataFrame, pd.DataFrame, Path,
                          FeatureSettings, Progress | None], None]


def _load_for_gradients(base_model: str, checkpoint: Path, device: str) -> tuple[Any, Any]:
    from peft import PeftModel

    from ..lm.loading import load_causal_lm

    base, tokenizer = load_causal_lm(base_model, device=device, dtype="float32", cache=False)
    return PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True), tokenizer


def _validation_path(store: RunStore, key: str) -> Path:
    return store.path("influence", f"validation-{key}.jsonl")


def validation_set(store: RunStore, settings: FeatureSettings,
                   data_paths: dict[str, str] | None = None, device: str = "auto"
                   ) -> pd.DataFrame:
    """Build (once) and return the run's validation instances; IFEval-like tasks without
    references get the warmed-up model's greedy answers."""
    path = _validation_path(store, settings.key())
    if path.exists():  # dtype=False: a response such as "42" must stay text
        return pd.read_json(path, lines=True, dtype=False)

    def respond(prompts: list[str]) -> list[str]:
        from ..train.generate import generate
        from ..train.lora import load_trained

        info = warmup_info(store)
        model, tokenizer = load_trained(info["model"], checkpoints(store)[-1].path, device=device)
        return generate(model, tokenizer, prompts, max_new_tokens=settings.val_max_new_tokens,
                        batch_size=settings.batch_size)

    frame = build_validation_set(settings.tasks, settings.val_per_task, settings.seed, data_paths,
                                 respond)
    write_jsonl(path, frame.to_dict(orient="records"))
    return frame


def features(store: RunStore, settings: FeatureSettings = FeatureSettings(),
             data_paths: dict[str, str] | None = None, device: str = "auto",
             progress: Progress | None = None, runner: FeatureRunner | None = None) -> Path:
    """Projected gradient features of every pool row (Adam-preconditioned) and every validation
    instance (plain), per warmup checkpoint, plus RDS features. Resumes per chunk of rows.
    `runner` computes the same files another way (`influence.ray_features`: on Ray workers)."""
    from ..devices import resolve_device

    device = resolve_device(device)
    info = warmup_info(store)
    pool = pipeline.load_run_pool(store)
    folder = store.path("influence", "features", settings.key())
    source = {"model": info["model"], "fraction": info["fraction"], "ids": info["ids"],
              "lora": LoRAConfig(**info["lora"]).config_hash()}
    if (folder / "warmup.json").exists() and read_json(folder / "warmup.json") != source:
        # computed from an earlier warmup: finished chunks must not be resumed, nor the
        # validation answers its model generated be reused
        shutil.rmtree(folder)
        _validation_path(store, settings.key()).unlink(missing_ok=True)
    write_json(folder / "warmup.json", source)
    val = validation_set(store, settings, data_paths, device)
    with store.stage("influence:features", {**settings.__dict__, "tasks": list(settings.tasks)}
                     ) as stage:
        found = checkpoints(store)
        if runner is not None:
            runner(info["model"], found, pool, val, folder, settings, progress)
        else:
            for checkpoint in found:
                _checkpoint_features(checkpoint, info["model"], pool, val, folder, device,
                                     settings, store, progress)
            _rds_features(info["model"], found[-1], pool, val, folder, device, settings)
        write_text(store.path("influence", "features", "current.txt"), settings.key() + "\n")
        stage.update(rows=len(pool), validation=len(val), checkpoints=len(found))
    return folder


def _checkpoint_features(checkpoint: Checkpoint, model_name: str, pool: pd.DataFrame,
                         val: pd.DataFrame, folder: Path, device: str, settings: FeatureSettings,
                         store: RunStore,
                         progress: Progress | None) -> None:
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
                       compute,
                       (lambda d, n, m="", name=name: progress(d, n, name)) if progress
                       else store.progress_callback(f"features-{name}"))
    write_checkpoint_info(target, checkpoint, loaded.parameters, settings)


class GradientModel(NamedTuple):
    """What one checkpoint's features need loaded: its model, the projection, its moments."""

    model: Any
    tokenizer: Any
    projector: Any
    state: Any
    parameters: int


def gradient_model(model_name: str, checkpoint: Path, settings: FeatureSettings,
                   device: str) -> GradientModel:
    """Load one checkpoint for its features (in this process or once per Ray worker)."""
    from .gradients import PerExampleGradients, RademacherProjector, adam_state

    model, tokenizer = _load_for_gradients(model_name, checkpoint, device)
    hooks = PerExampleGradients(model)
    names, dim_in = hooks.names, hooks.dim
    hooks.close()
    projector = RademacherProjector(dim_in, settings.dim, settings.seed, device=device)
    return GradientModel(model, tokenizer, projector, adam_state(checkpoint, names, device),
                         dim_in)


def split_features(loaded: GradientModel, split: str, prompts: list[str], responses: list[str],
                   settings: FeatureSettings) -> np.ndarray:
    """Training rows: Adam-preconditioned, with EOS; validation rows: plain, EOS as set."""
    from .gradients import gradient_features

    train = split == "train"
    return gradient_features(loaded.model, loaded.tokenizer, prompts, responses,
                             loaded.projector, loaded.state if train else None,
                             settings.preconditioner, train or settings.validation_eos,
                             settings.batch_size, settings.max_length)


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
    marker = store.require("influence/features/current.txt",
                           hint="run `python -m selection_core influence features --run DIR`")
    return store.path("influence", "features", marker.read_text().strip())


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


def matrix(store: RunStore) -> np.ndarray:
    """Write `attribution.npy` and `val_tasks.txt` at the run's root (the CLI contract)."""
    folder = current_features(store)
    found = checkpoints(store)
    weights = checkpoint_weights(found)
    with store.stage("influence:matrix", {"features": folder.name,
                                          "weights": weights.tolist()}) as info:
        train = [read_npy(folder / f"epoch{c.epoch}" / "train.npy", mmap=True) for c in found]
        val = [read_npy(folder / f"epoch{c.epoch}" / "val.npy", mmap=True) for c in found]
        A = attribution_matrix(train, val, weights)
        tasks = pd.read_json(_validation_path(store, folder.name), lines=True)["task"]
        matrix_path, tasks_path = matrix_paths(store)
        write_npy(matrix_path, A)
        write_text(tasks_path, "\n".join(tasks) + "\n")
        info.update(shape=list(A.shape))
    return A


def rds_scores_for_run(store: RunStore) -> np.ndarray:
    from ..select.bids import rds_scores

    folder = current_features(store) / "rds"
    return rds_scores(read_npy(folder / "train.npy"), read_npy(folder / "val.npy"))
