"""Influence stages over a run directory: warmup → features → attribution matrix → selection.

  influence/warmup.json            model, fraction, rows used, checkpoints
  influence/warmup/                LoRA checkpoints per epoch (adapter, AdamW moments, mean lr),
                                   settings.json (the settings they were trained with)
  influence/validation-<key>.jsonl the validation instances (task, prompt, response)
  influence/features/<key>/epoch<E>/{train,val}.npy   projected, L2-normalised gradients
  influence/features/<key>/rds/{train,val}.npy        last-token hidden states (RDS baseline)
  influence/features/<key>/warmup.json                the warmup they were computed from
  attribution.npy, val_tasks.txt   A (N × M) and one task per column — the `matrix` contract

<key> is `FeatureSettings.key()`: d<dim>-<hash of the settings that change the features>.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import pipeline
from ..errors import ConfigError, MissingStageError
from ..store import RunStore, memmap_compute, read_json, read_npy, write_json, write_jsonl, \
    write_npy, write_text
from .validation import VALIDATION_TASKS, build_validation_set

if TYPE_CHECKING:  # importing train.lora imports torch: only where a stage needs it
    from ..train.lora import LoRAConfig

FEATURE_CHUNK_ROWS = 256


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    path: Path
    mean_lr: float


# --------------------------------------------------------------------------- warmup
def warmup(store: RunStore, model: str, fraction: float = 0.05, lora: LoRAConfig | None = None,
           progress: pipeline.Progress | None = None) -> list[Checkpoint]:
    """LoRA warmup on a seeded random `fraction` of the pool (LESS: 5%, 4 epochs), saving per
    epoch the adapter, the optimizer state and the epoch's mean learning rate.

    `lora` defaults to LESS's warmup: r=128, alpha=512, dropout 0.1, 4 epochs, lr 2e-5."""
    from ..train.lora import LoRAConfig, LoRATrainer

    if lora is None:
        lora = LoRAConfig(r=128, alpha=512, dropout=0.1, epochs=4, learning_rate=2e-5)
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
    dim: int = 8192
    val_per_task: int = 50
    tasks: tuple[str, ...] = VALIDATION_TASKS
    seed: int = 0
    less_exact: bool = False
    max_length: int = 512
    batch_size: int = 8
    val_max_new_tokens: int = 256  # answer length for tasks without references (IFEval)

    def key(self) -> str:
        payload = json.dumps({"dim": self.dim, "val": self.val_per_task, "tasks": self.tasks,
                              "seed": self.seed, "less_exact": self.less_exact,
                              "max_length": self.max_length,
                              "val_max_new_tokens": self.val_max_new_tokens}, sort_keys=True)
        return f"d{self.dim}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


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
             progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Projected gradient features of every pool row (Adam-preconditioned) and every validation
    instance (plain), per warmup checkpoint, plus RDS features. Resumes per chunk of rows."""
    from ..devices import resolve_device
    from ..train.lora import LoRAConfig

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
        for checkpoint in found:
            _checkpoint_features(checkpoint, info["model"], pool, val, folder, device, settings,
                                 store, progress)
        _rds_features(store, info["model"], pool, val, folder, device, settings)
        write_text(store.path("influence", "features", "current.txt"), settings.key() + "\n")
        stage.update(rows=len(pool), validation=len(val), checkpoints=len(found))
    return folder


def _checkpoint_features(checkpoint: Checkpoint, model_name: str, pool: pd.DataFrame,
                         val: pd.DataFrame, folder: Path, device: str, settings: FeatureSettings,
                         store: RunStore,
                         progress: Callable[[str, int, int], None] | None) -> None:
    """One checkpoint's train (Adam-preconditioned) and validation (plain) features; a function
    of its own so the model is freed before the next checkpoint loads."""
    from .gradients import PerExampleGradients, RademacherProjector, adam_state, \
        gradient_features

    model, tokenizer = _load_for_gradients(model_name, checkpoint.path, device)
    hooks = PerExampleGradients(model)
    names, dim_in = hooks.names, hooks.dim
    hooks.close()
    projector = RademacherProjector(dim_in, settings.dim, settings.seed, device=device)
    state = adam_state(checkpoint.path, names, device)
    target = folder / f"epoch{checkpoint.epoch}"
    for split, frame, moments in (("train", pool, state), ("val", val, None)):
        prompts, responses = frame["prompt"].tolist(), frame["response"].tolist()

        def compute(start: int, stop: int, moments=moments) -> np.ndarray:
            return gradient_features(model, tokenizer, prompts[start:stop], responses[start:stop],
                                     projector, moments, settings.less_exact,
                                     settings.batch_size, settings.max_length)

        name = f"epoch{checkpoint.epoch}-{split}"
        memmap_compute(target / f"{split}.npy", len(frame), settings.dim, FEATURE_CHUNK_ROWS,
                       compute,
                       (lambda d, n, name=name: progress(name, d, n)) if progress
                       else store.progress_callback(f"features-{name}"))
    write_json(target / "info.json", {"epoch": checkpoint.epoch, "mean_lr": checkpoint.mean_lr,
                                      "parameters": dim_in, "dim": settings.dim})


def _rds_features(store: RunStore, model: str, pool: pd.DataFrame, val: pd.DataFrame,
                  folder: Path, device: str, settings: FeatureSettings) -> None:
    """RDS: the base model's final-layer state at the last token of prompt + response."""
    from ..features.embed import TextEmbedder
    from ..lm.formatting import format_prompt
    from ..lm.loading import load_causal_lm

    missing = [(target, frame) for target, frame in ((folder / "rds" / "train.npy", pool),
                                                     (folder / "rds" / "val.npy", val))
               if not target.exists()]
    if not missing:  # resumed after both were written: load no model
        return
    _, tokenizer = load_causal_lm(model, device=device)
    embedder = TextEmbedder(model, pooling="last", max_length=settings.max_length,
                            normalize=True, batch_size=settings.batch_size, device=device)
    for target, frame in missing:
        texts = [format_prompt(tokenizer, p) + r
                 for p, r in zip(frame["prompt"], frame["response"], strict=True)]
        write_npy(target, embedder.encode(texts))


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
        write_npy(store.path("attribution.npy"), A)
        write_text(store.path("val_tasks.txt"), "\n".join(tasks) + "\n")
        info.update(shape=list(A.shape))
    return A


def rds_scores_for_run(store: RunStore) -> np.ndarray:
    from .select import rds_scores

    folder = current_features(store) / "rds"
    return rds_scores(read_npy(folder / "train.npy"), read_npy(folder / "val.npy"))
