"""`python -m selection_core influence warmup|features|matrix|select` — the LESS/BIDS stages.

warmup, features and matrix work on a run directory (with a pool from `embed`, `prepare` or
`--data`); `select` works on any matrix file, so a matrix computed on a GPU server can be
selected from anywhere.
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..select import stages as pipeline
from ..spine.config import LoRAConfig
from ..spine.config_args import add_config_arguments, add_keep_option, config_kwargs
from ..spine.errors import ConfigError
from ..spine.progress import Progress, tqdm_progress
from ..scale import ScaleConfig
from ..spine.store import RunStore, write_text
from . import PROGRESS


def add_influence_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "influence", help="LESS gradient features, the attribution matrix, BIDS selection")
    stages = parser.add_subparsers(dest="stage", required=True)

    warm = stages.add_parser(
        "warmup", help="LoRA warmup on a random share of the pool (a preset: less or bids)",
        description="Every value not given comes from the preset; the command prints them all. "
                    "Giving --lora-r alone sets alpha to 4 × r (LESS).")
    warm.add_argument("--run", required=True)
    warm.add_argument("--model", required=True, help="causal LM: HF name, folder, .gguf, "
                                                     "llama2.c .bin, or an alias")
    warm.add_argument("--data", action="append", default=[], metavar="[SOURCE=]FILE",
                      help="load this pool into the run first (else the run's pool is used)")
    warm.add_argument("--preset", choices=_presets(), default=_default_preset(),
                      help="less: 5%% of the pool, 4 epochs, batch 32, linear decay (LESS); "
                           "bids: the full pool, 4 epochs, batch 128, cosine decay (BIDS A.2). "
                           "Both: LoRA r 128, alpha 512, dropout 0.1 on q/k/v/o, lr 2e-5, max "
                           "length 2048 (default: %(default)s)")
    warm.add_argument("--fraction", type=float, default=None, help="share of the pool")
    warm.add_argument("--effective-batch", type=int, default=None,
                      help="examples per optimizer step (accumulation keeps it when only "
                           "--batch-size is given)")
    add_config_arguments(warm, LoRAConfig, WARMUP_LORA_FLAGS,
                         flags={"r": "--lora-r", "alpha": "--lora-alpha"},
                         preset="the preset's value", enforce_choices=("activation_checkpointing",))

    feats = stages.add_parser("features", help="projected per-example gradients (+ RDS)")
    feats.add_argument("--run", required=True)
    feats.add_argument("--tasks", default=",".join(_tasks()),
                       help="comma-separated evaluation tasks for the validation set")
    add_config_arguments(feats, _feature_settings(), FEATURE_FLAGS,
                         enforce_choices=("preconditioner", "rds_model"))
    add_config_arguments(feats, ScaleConfig)  # issue 14: --ray, --workers, --gpus-per-worker

    mat = stages.add_parser("matrix", help="attribution matrix → DIR/attribution.npy")
    mat.add_argument("--run", required=True)

    sel = stages.add_parser("select", help="select rows from an attribution matrix file")
    sel.add_argument("--matrix", required=True, help="A.npy (N × M)")
    sel.add_argument("--val-tasks", required=True, help="one task name per column")
    add_config_arguments(sel, _select_config())
    sel.add_argument("--out", required=True, help="selected row indices, one per line")
    sel.add_argument("--run", default=None,
                     help="the run whose pool the matrix's rows are: its `clean` result's "
                          "flagged rows are excluded (see --keep)")
    add_keep_option(sel)
    sel.add_argument("--explain", default=None, metavar="FILE.jsonl",
                     help="also write why each row was picked, in selection order: row, order, "
                          "val_index, task, utility, why (for BIDS recorded inside the greedy)")


# the warmup command's LoRA flags (preset overrides), made from LoRAConfig's declarations
WARMUP_LORA_FLAGS = ("epochs", "max_steps", "r", "alpha", "learning_rate", "batch_size",
                     "max_length", "seed", "device", "processes", "activation_checkpointing")
# the features command's flags, made from FeatureSettings' declarations
FEATURE_FLAGS = ("dim", "val_per_task", "val_max_new_tokens", "preconditioner", "validation_eos",
                 "rds_model", "validation_split", "batch_size", "max_length", "seed", "device")


def _feature_settings() -> type:
    from .pipeline import FeatureSettings

    return FeatureSettings


def _select_config() -> type:
    from ..select.bids import InfluenceSelectConfig

    return InfluenceSelectConfig


def _tasks() -> tuple[str, ...]:
    from .validation import VALIDATION_TASKS

    return VALIDATION_TASKS


def _presets() -> tuple[str, ...]:
    from .pipeline import WARMUP_PRESETS

    return tuple(WARMUP_PRESETS)


def _default_preset() -> str:
    from .pipeline import DEFAULT_PRESET

    return DEFAULT_PRESET


def _bar(desc: str, store: RunStore) -> Progress:
    """A tqdm bar (one per step named by the message) that also writes
    DIR/progress/influence.json, which the app polls."""
    bars = tqdm_progress(desc)

    def report(done: int, total: int, message: str = "") -> None:
        bars(done, total, message)
        store.write_progress(PROGRESS, done, total, message or desc)

    return report


def run_influence(args: argparse.Namespace) -> None:
    {"warmup": _warmup, "features": _features, "matrix": _matrix, "select": _select}[
        args.stage](args)


def _warmup(args: argparse.Namespace) -> None:
    from .pipeline import describe_warmup, warmup, warmup_settings

    lora = config_kwargs(LoRAConfig, args)
    fraction, lora = warmup_settings(args.preset, fraction=args.fraction,
                                     batch_size=lora.pop("batch_size"),
                                     effective_batch=args.effective_batch, **lora)
    print(describe_warmup(args.preset, fraction, lora), flush=True)
    store = RunStore(args.run)
    if args.data:
        pipeline.ingest(store, args.data)
    found = warmup(store, args.model, fraction, lora, progress=_bar("warmup", store))
    print(f"warmup: {len(found)} checkpoints (mean lr per epoch: "
          f"{', '.join(f'{c.mean_lr:.2e}' for c in found)}) → {store.path('influence')}")


def _features(args: argparse.Namespace) -> None:
    from .ray_features import ray_features
    from .pipeline import FeatureSettings, features

    store = RunStore(args.run, create=False)
    settings = FeatureSettings(**config_kwargs(FeatureSettings, args) | {
        "tasks": tuple(t.strip() for t in args.tasks.split(",") if t.strip())})
    scale = ScaleConfig(**config_kwargs(ScaleConfig, args))
    folder = features(store, settings, device=settings.device,
                      progress=_bar("features", store),
                      feature_runner=ray_features(scale) if scale.enabled else None)
    print(f"features → {folder}")


def _matrix(args: argparse.Namespace) -> None:
    from .pipeline import matrix, matrix_paths

    store = RunStore(args.run, create=False)
    A = matrix(store)
    print(f"attribution matrix {A.shape[0]}×{A.shape[1]} → "
          + ", ".join(str(path) for path in matrix_paths(store)))


def _select(args: argparse.Namespace) -> None:
    from ..select.bids import InfluenceSelectConfig, explain_on_matrix, select_on_matrix
    from .attribution import load_attribution

    config = InfluenceSelectConfig(**config_kwargs(InfluenceSelectConfig, args))
    A, tasks = load_attribution(args.matrix, args.val_tasks)
    budget = pipeline.parse_budget(config.budget, A.shape[0])
    excluded = _exclusion(args, A.shape[0])
    available = np.flatnonzero(excluded.available)
    if budget > len(available):
        raise ConfigError(f"budget {budget} is larger than the {len(available)} rows left "
                          f"after cleaning ({excluded.text})")
    A = A[available] if len(available) < A.shape[0] else A
    if args.explain:
        from ..spine.store import write_jsonl

        explained = explain_on_matrix(A, tasks, config.method, budget, seed=config.seed)
        explained["row"] = available[explained["row"].to_numpy()]
        explained["why"] = explained["why"] + f"; {excluded.text}"
        rows = explained["row"].to_numpy()
        write_jsonl(args.explain, explained.astype(object).where(explained.notna(), None)
                    .to_dict(orient="records"))
    else:
        rows = available[select_on_matrix(A, tasks, config.method, budget, seed=config.seed)]
    write_text(args.out, "".join(f"{int(r)}\n" for r in np.asarray(rows)))
    print(f"{config.method}: {len(rows)} of {len(excluded.available)} rows → {args.out}"
          + (f" (why each: {args.explain})" if args.explain else "") + f"; {excluded.text}")


def _exclusion(args: argparse.Namespace, n_rows: int) -> pipeline.Exclusion:
    """The rows the run's clean result flags (none without --run): the matrix's rows must be
    the run's pool rows, in order."""
    if args.run is None:
        return pipeline.Exclusion(np.ones(n_rows, dtype=bool),
                                  "no --run given: the pool's clean result was not applied")
    from ..select.clean import exclusion

    store = RunStore(args.run, create=False)
    ids = pipeline.load_run_pool(store)["id"].astype(str).tolist()
    if len(ids) != n_rows:
        raise ConfigError(f"the matrix has {n_rows} rows but the pool of {args.run} has "
                          f"{len(ids)}: it is not this run's matrix")
    return exclusion(store, ids, args.keep)
