"""Experiments: for each (method, budget) select → LoRA-train → evaluate → store results.

One TOML file describes an experiment (see `configs/`); `python -m selection_core experiment
--config FILE` runs it. Every step's output is a file in the run directory, so a rerun skips what
is done (selections, trained epochs, benchmark results) and an interrupted run resumes.

Run directory (a RunStore, so the pool, embeddings and clusterings live there too):
  experiment.json                          the parsed config
  selections/<method>-b<budget>.jsonl      the training subsets
  models/<method>-b<budget>/               LoRA checkpoints (see train/lora.py)
  results/<method>-b<budget>/<bench>.json  score, metrics and per-item results
  results/<method>-b<budget>/<bench>.predictions.jsonl
  results.csv                              one row per (model, method, budget, benchmark)
"""
from __future__ import annotations

import dataclasses
import json
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import pipeline
from .config import SELECTION_METHODS, EmbedConfig, KMeansConfig, ScorerConfig, \
    SelectionConfig, SweepConfig
from .errors import InputError
from .select.iterative import MAX_NEW_TOKENS, IterativeConfig
from .store import RunStore, read_json, write_csv, write_json, write_jsonl
from .train.lora import LoRAConfig

BASE = "base"  # the method name of the untuned model's row
Log = Callable[[str], None]


@dataclass(frozen=True)
class ExperimentConfig:
    """What an experiment runs; parsed from TOML by `load_experiment_config`."""

    name: str
    model: str
    demo_n: int | None = 3000  # the demo pool, unless `data` is given
    demo_seed: int = 0
    data: tuple[str, ...] = ()
    data_limit: int | None = None
    embedding_model: str = EmbedConfig.model
    k: int | None = None  # None: the silhouette-recommended k of a sweep
    sweep_ks: tuple[int, ...] = ()
    methods: tuple[str, ...] = ("random", "kmq")
    budgets: tuple[str, ...] = ("300",)
    scorer: str = "heuristic"
    scorer_model: str | None = None
    tau: float = 1.0
    seed: int = 0
    lora: LoRAConfig = LoRAConfig()
    benchmarks: tuple[str, ...] = ("demo",)
    eval_limit: int | None = None
    eval_data: dict[str, str] = field(default_factory=dict)
    max_new_tokens: int | None = None
    eval_batch_size: int = 8
    include_base: bool = True
    # the [iterative] section: settings of method "iterative-kmq", defaults declared once
    iterative_rounds: int = IterativeConfig.rounds
    iterative_scorer: str = IterativeConfig.scorer
    iterative_scorer_model: str | None = None
    iterative_tau: float = IterativeConfig.tau
    iterative_eval_per_round: int = IterativeConfig.eval_per_round
    iterative_max_new_tokens: int = MAX_NEW_TOKENS


_TOP_KEYS = {"name", "model", "seed"}
_SECTIONS = {
    "pool": {"demo_n", "demo_seed", "data", "data_limit", "embedding_model", "k", "sweep_ks"},
    "selection": {"methods", "budgets", "scorer", "scorer_model", "tau"},
    "train": {f.name for f in dataclasses.fields(LoRAConfig)},
    "eval": {"benchmarks", "eval_limit", "eval_data", "max_new_tokens", "eval_batch_size",
             "include_base"},
    "iterative": {"rounds", "scorer", "scorer_model", "tau", "eval_per_round", "max_new_tokens"},
}
ITERATIVE_METHOD = "iterative-kmq"
EXPERIMENT_METHODS = (*SELECTION_METHODS, ITERATIVE_METHOD)


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """Parse and validate an experiment TOML; errors name the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("experiment config not found", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", path=str(path)) from None
    flat: dict[str, Any] = {}
    lora: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in _SECTIONS:
                raise InputError(f"unknown section [{key}]; expected one of "
                                 f"{', '.join(sorted(_SECTIONS))}", path=str(path), field=key)
            for inner, item in value.items():
                if inner not in _SECTIONS[key]:
                    raise InputError(f"unknown key in [{key}]; expected one of "
                                     f"{', '.join(sorted(_SECTIONS[key]))}", path=str(path),
                                     field=f"{key}.{inner}")
                if key == "train":
                    lora[inner] = item
                else:
                    flat[f"iterative_{inner}" if key == "iterative" else inner] = item
        elif key in _TOP_KEYS:
            flat[key] = value
        else:
            raise InputError(f"unknown top-level key; expected {', '.join(sorted(_TOP_KEYS))} "
                             "or a section", path=str(path), field=key)
    for required in ("name", "model"):
        if required not in flat:
            raise InputError("missing (a top-level key)", path=str(path), field=required)
    for key in ("data", "methods", "benchmarks", "sweep_ks"):
        if key in flat:
            flat[key] = tuple(flat[key])
    if "data" in flat:  # paths relative to the config file, so it runs from any directory
        flat["data"] = tuple(_relative_to(path.parent, item) for item in flat["data"])
    if "budgets" in flat:
        flat["budgets"] = tuple(str(b) for b in flat["budgets"])
    if "target_modules" in lora:
        lora["target_modules"] = tuple(lora["target_modules"])
    if flat.get("data"):
        flat.setdefault("demo_n", None)
    try:
        config = ExperimentConfig(**flat, lora=LoRAConfig(**lora))
    except TypeError as exc:
        raise InputError(f"bad value ({exc})", path=str(path)) from None
    _validate(config, path)
    return config


def _relative_to(folder: Path, item: str) -> str:
    """`[SOURCE=]PATH` with PATH resolved against `folder` when it exists there."""
    source, _, location = item.rpartition("=") if "=" in item else ("", "", item)
    candidate = (folder / location).resolve()
    if not Path(location).is_absolute() and candidate.exists():
        location = str(candidate)
    return f"{source}={location}" if source else location


def _validate(config: ExperimentConfig, path: Path) -> None:
    from .evaluate import BENCHMARKS

    for method in config.methods:
        if method not in EXPERIMENT_METHODS:
            raise InputError(f"unknown method '{method}'; use {', '.join(EXPERIMENT_METHODS)}",
                             path=str(path), field="selection.methods")
    for name in config.benchmarks:
        if name not in BENCHMARKS:
            raise InputError(f"unknown benchmark '{name}'; use {', '.join(BENCHMARKS)}",
                             path=str(path), field="eval.benchmarks")
    if not config.data and not config.demo_n:
        raise InputError("give pool.data (files) or pool.demo_n (the demo pool)",
                         path=str(path), field="pool")


def unit_name(method: str, budget: int | None) -> str:
    return BASE if method == BASE else f"{method}-b{budget}"


# --------------------------------------------------------------------------- running
class ExperimentRunner:
    """Runs an experiment into `run_dir`, skipping whatever is already there."""

    def __init__(self, config: ExperimentConfig, run_dir: str | Path,
                 log: Log = print) -> None:
        self.config = config
        self.store = RunStore(run_dir)
        self.log = log

    # the pool and its clustering ------------------------------------------------
    def _prepare_pool(self) -> tuple[KMeansConfig, int]:
        """The clustering config and the pool's row count."""
        config, store = self.config, self.store
        if not store.exists(pipeline.POOL):
            if config.data:
                pipeline.ingest(store, list(config.data), limit=config.data_limit)
            else:
                pipeline.ingest_demo(store, n=config.demo_n or 3000, seed=config.demo_seed)
        pipeline.embed(store, EmbedConfig(model=config.embedding_model))
        n_rows = len(pipeline.load_run_pool(store))
        k = config.k
        if k is None:
            if not store.exists("sweep.csv"):
                ks = config.sweep_ks or pipeline.default_ks(n_rows)
                pipeline.sweep(store, SweepConfig(ks=tuple(ks)))
            k = pipeline.load_sweep(store)[1]
        self.log(f"pool: {n_rows} rows, k={k}")
        return KMeansConfig(k=int(k), seed=config.seed), n_rows

    def _selection(self, method: str, budget: int, kmeans: KMeansConfig) -> pd.DataFrame:
        path = self.store.path("selections", f"{unit_name(method, budget)}.jsonl")
        if path.exists():
            return pd.read_json(path, lines=True, dtype={"id": str})
        config = self.config
        if method == ITERATIVE_METHOD:
            return self._iterative_selection(budget, kmeans, path)
        selection = SelectionConfig(method=method, budget=budget, k=kmeans.k, tau=config.tau,
                                    seed=config.seed, scorer=config.scorer)
        scorer = ScorerConfig(name=config.scorer, model=config.scorer_model)
        return pipeline.select(self.store, selection, kmeans, scorer, out=path)

    def _iterative_selection(self, budget: int, kmeans: KMeansConfig, path: Path
                             ) -> pd.DataFrame:
        """Iterative kMQ with the experiment's model and LoRA settings; the final selection is
        then trained from the base model like every other method's."""
        from .iterate import IterativeKMQ, LoRARoundModel
        from .select.iterative import IterativeConfig

        config = self.config
        model = LoRARoundModel(config.model, config.lora,
                               max_new_tokens=config.iterative_max_new_tokens,
                               batch_size=config.eval_batch_size, device=config.lora.device)
        iterative = IterativeConfig(
            k=kmeans.k, budget=budget, rounds=config.iterative_rounds,
            tau=config.iterative_tau, sample_tau=config.tau, scorer=config.iterative_scorer,
            scorer_model=config.iterative_scorer_model, quality=config.scorer,
            quality_model=config.scorer_model, eval_per_round=config.iterative_eval_per_round,
            seed=config.seed, model=config.model, training=model.config_key())

        def report(done: int, total: int, message: str) -> None:
            self.store.write_progress("iterate", done, total, message)

        run = IterativeKMQ(iterative, model).fit(self.store, kmeans, report=report)
        for record in run.rounds_:
            self.log(f"  round {record.number}: mean S {record.summary['mean_gap']:.3f}, "
                     f"{record.summary['train_s']:.0f} s training")
        selected = run.selected_frame(pipeline.load_run_pool(self.store))
        write_jsonl(path, selected.to_dict(orient="records"))
        return selected

    def _train(self, name: str, selected: pd.DataFrame) -> Path:
        from .train.lora import LoRATrainer

        out = self.store.path("models", name)
        if (out / "adapter" / "adapter_config.json").exists():
            return out / "adapter"
        started = time.time()
        trainer = LoRATrainer(self.config.model, self.config.lora).fit(
            selected["prompt"].tolist(), selected["response"].tolist(), out,
            progress=self.store.progress_callback(f"train-{name}"))
        losses = [h["loss"] for h in trainer.history_]
        self.log(f"  trained {name}: {len(losses)} steps in {time.time() - started:.0f} s, "
                 f"loss {losses[0]:.3f} → {losses[-1]:.3f}")
        return trainer.adapter_dir_

    # evaluation ------------------------------------------------------------------
    def _evaluate(self, method: str, budget: int | None, model: Any,
                  tokenizer: Any) -> list[dict[str, Any]]:
        from .evaluate import get_benchmark
        from .evaluate.mmlu import score_mmlu_loglik
        from .train.generate import generate

        config = self.config
        name = unit_name(method, budget)
        rows = []
        for bench_name in config.benchmarks:
            target = self.store.path("results", name, f"{bench_name}.json")
            if target.exists():
                rows.append(read_json(target))
                continue
            benchmark = get_benchmark(bench_name)
            items = benchmark.load(config.eval_data.get(bench_name), limit=config.eval_limit,
                                   seed=config.seed)
            started = time.time()
            progress = self.store.progress_callback(f"eval-{name}")
            if bench_name == "mmlu":  # multiple choice by log-likelihood, as the papers do
                result = score_mmlu_loglik(model, tokenizer, items,
                                           batch_size=config.eval_batch_size, progress=progress)
                completions = {row["id"]: row["extracted"] for row in result.per_item}
            else:
                texts = generate(model, tokenizer, [item.prompt for item in items],
                                 max_new_tokens=config.max_new_tokens or benchmark.max_new_tokens,
                                 batch_size=config.eval_batch_size, stop=benchmark.stop,
                                 progress=progress)
                completions = {item.id: text for item, text in zip(items, texts, strict=True)}
                result = benchmark.evaluate(items, completions)
            summary = {"model": config.model, "method": method, "budget": budget,
                       "benchmark": bench_name,
                       "group": benchmark.group, "score": result.score, "n": result.n,
                       "metrics": result.metrics, "seconds": round(time.time() - started, 1)}
            outcomes = {str(row.get("id")): {k: v for k, v in row.items() if k != "id"}
                        for row in result.per_item}
            write_jsonl(target.with_suffix(".predictions.jsonl"),
                        [{"id": i.id, "prompt": i.prompt, "completion": completions[i.id],
                          **outcomes.get(i.id, {})} for i in items])
            write_json(target, {**summary, "per_item": result.per_item})
            self.log(f"  {name} · {bench_name}: {result.score:.1f} (n={result.n}, "
                     f"{summary['seconds']} s)")
            rows.append({**summary, "per_item": result.per_item})
        return rows

    def run(self) -> pd.DataFrame:
        """Run everything not yet done; returns (and writes) the results table."""
        from .lm.loading import load_causal_lm
        from .train.lora import load_trained

        config = self.config
        config_dict = _config_dict(config)
        write_json(self.store.path("experiment.json"), config_dict)
        with self.store.stage("experiment", config_dict) as info:
            kmeans, n_rows = self._prepare_pool()
            units = [(m, pipeline.parse_budget(b, n_rows)) for b in config.budgets
                     for m in config.methods]
            results: list[dict[str, Any]] = []
            if config.include_base:
                model, tokenizer = load_causal_lm(config.model, device=config.lora.device,
                                                  dtype=config.lora.dtype)
                results += self._evaluate(BASE, None, model, tokenizer)
            for number, (method, budget) in enumerate(units, start=1):
                name = unit_name(method, budget)
                self.store.write_progress("experiment", number - 1, len(units), name)
                self.log(f"[{number}/{len(units)}] {name}")
                selected = self._selection(method, budget, kmeans)
                adapter = self._train(name, selected)
                model, tokenizer = load_trained(config.model, adapter, device=config.lora.device,
                                                dtype=config.lora.dtype)
                results += self._evaluate(method, budget, model, tokenizer)
                del model
            self.store.write_progress("experiment", len(units), len(units), "done")
            table = results_frame(results, self.store.root)
            write_csv(self.store.path("results.csv"), table.drop(columns="metrics"))
            info.update(rows=len(table), k=kmeans.k)
        return table


def _config_dict(config: ExperimentConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def results_frame(rows: list[dict[str, Any]], run_dir: Path | None = None) -> pd.DataFrame:
    """One row per (model, method, budget, benchmark) with score (0–100), n and the
    benchmark's extra metrics (a dict: per skill, per task, loose accuracy, …)."""
    frame = pd.DataFrame([{k: r.get(k) for k in ("model", "method", "budget", "benchmark",
                                                   "group", "score", "n", "metrics")}
                          for r in rows])
    if run_dir is not None:
        frame.insert(0, "run", Path(run_dir).name)
    frame["budget"] = frame["budget"].astype("Int64")
    return frame


def load_results(run_dirs: list[str | Path]) -> pd.DataFrame:
    """All results of the given experiment run directories (from their per-benchmark files, so a
    run still in progress shows what it has)."""
    frames = []
    for run_dir in run_dirs:
        paths = sorted(Path(run_dir).glob("results/*/*.json"))
        if paths:
            frames.append(results_frame([read_json(path) for path in paths], Path(run_dir)))
    if not frames:
        return pd.DataFrame(columns=["run", "model", "method", "budget", "benchmark", "group",
                                     "score", "n", "metrics"])
    return pd.concat(frames, ignore_index=True)
