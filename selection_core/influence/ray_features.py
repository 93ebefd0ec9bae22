"""The influence features on Ray workers (per warmup checkpoint its training and validation
gradients, then RDS): the runner `influence.pipeline.features` takes, so the stage never imports
the Ray side and `scale` stays below every stage."""
from __future__ import annotations

import functools
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.loaders import fingerprint
from ..spine.progress import Progress
from ..scale import ScaleConfig, ShardedArray, run_shards
from ..spine.store import memmap_compute, memmap_rows_done, stage_key, write_npy
from . import pipeline as influence
from .pipeline import Checkpoint, FeatureRunner, FeatureSettings


def ray_features(scale: ScaleConfig) -> FeatureRunner:
    """The features stage's runner on the Ray cluster `scale` names."""
    return functools.partial(_features_on_ray, scale=scale)


def _features_on_ray(model_name: str, found: Sequence[Checkpoint], pool: pd.DataFrame,
                     val: pd.DataFrame, folder: Path, settings: FeatureSettings,
                     progress: Progress | None, scale: ScaleConfig) -> None:
    """The features stage on Ray workers: per checkpoint, its train and validation rows in
    shards (one model load per worker), assembled into the same memmaps; then RDS. Shards are
    keyed by the settings, the checkpoint and the rows' content (`stage_key`)."""

    def sharded(target: Path, stage: str, frame: pd.DataFrame) -> ShardedArray:
        prompts, responses = frame["prompt"].tolist(), frame["response"].tolist()
        key = stage_key({"stage": stage, "features": settings.config_hash(),
                         "rows": fingerprint(f"{p}\x1f{r}" for p, r in zip(prompts, responses))})
        return ShardedArray(target.with_name(f"{target.stem}.shards-{key}"),
                            {"prompts": prompts, "responses": responses},
                            influence.FEATURE_CHUNK_ROWS)

    def report(name: str) -> Progress | None:
        return (lambda d, n, m="": progress(d, n, name)) if progress else None

    for checkpoint in found:
        target = folder / f"epoch{checkpoint.epoch}"
        parts = {split: sharded(target / f"{split}.npy", f"{checkpoint.path}:{split}", frame)
                 for split, frame in (("train", pool), ("val", val))
                 if memmap_rows_done(target / f"{split}.npy", len(frame), settings.dim)
                 < len(frame)}
        run_shards(parts, influence.gradient_model,
                   (model_name, checkpoint.path, settings, scale.worker_device),
                   functools.partial(influence.split_features, settings=settings), scale,
                   report(f"epoch{checkpoint.epoch}"))
        for split, part in parts.items():
            memmap_compute(target / f"{split}.npy", part.n_rows, settings.dim, part.chunk_rows,
                           part.read)
            shutil.rmtree(part.folder)
        influence.write_checkpoint_info(target, checkpoint, adapter_parameters(checkpoint.path),
                                        settings)
    parts = {split: sharded(folder / "rds" / f"{split}.npy", f"rds:{split}", frame)
             for split, frame in (("train", pool), ("val", val))
             if not (folder / "rds" / f"{split}.npy").exists()}
    run_shards(parts, influence.rds_model,
               (model_name, found[-1].path, settings, scale.worker_device),
               functools.partial(influence.rds_split, settings=settings), scale, report("rds"))
    for split, part in parts.items():
        write_npy(folder / "rds" / f"{split}.npy",
                  np.concatenate([part.read(a, b) for a, b in part.shards()]))
        shutil.rmtree(part.folder)


def adapter_parameters(checkpoint: Path) -> int:
    """The adapter's trainable parameter count (the gradient's length), read from the
    safetensors header without loading the model."""
    from safetensors import safe_open

    with safe_open(str(checkpoint / "adapter_model.safetensors"), "pt") as tensors:
        return sum(math.prod(tensors.get_slice(name).get_shape()) for name in tensors.keys())
