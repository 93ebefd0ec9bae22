"""Experiments: for each (method, budget) select → LoRA-train → evaluate → store results.

One TOML file describes an experiment (see `configs/`); `python -m selection_core experiment
--config FILE` runs it. Defaults are the papers' (BIDS A.2): LoRA r=128, α=512, dropout 0.1 on
the attention projections, 2 epochs, batch 128 (8 × 16 accumulation), learning rate 2e-5 with
linear warm-up then cosine decay; the `papers` evaluation protocol; the random baseline trained on
two seeded selections, whose mean the tables show.

No stale results: every step's output is stored under a key, the hash of the step's config and
its inputs' fingerprints (pool content, embedding, model, the upstream step's key), and reused only
when that key matches. A selection's key holds only what its method reads (random ignores τ, the
scorer and the clustering), so a change recomputes exactly the steps it affects, and two
selections differing only in k-means seed or scorer model never share a file. A rerun reuses
finished steps; an interrupted one resumes (LoRA epochs, iterative rounds).

Run directory (a RunStore, so the pool, embeddings and clusterings live there too):
  experiment.json                              the parsed config
  plan.json                                    this config's units and the key of every step
  steps.json                                   what the last run computed and what it reused
  selections/<unit>-<key>.jsonl                the training subsets
  models/<unit>-<key>/                         LoRA checkpoints (see train/lora.py)
  results/<unit>/<bench>-<key>.json            score, metrics, protocol and per-item results
  results/<unit>/<bench>-<key>.predictions.jsonl
  results.csv                                  one row per (model, method, budget, seed, benchmark)
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..select import stages as pipeline
from ..spine import runner
from ..spine.config import MAX_NEW_TOKENS, EmbedConfig, HashedConfig, \
    IterativeConfig, KMeansConfig, ScorerConfig, SelectionConfig, SweepConfig, renamed, \
    value_problem
from ..data.loaders import fingerprint, local_fingerprint
from ..spine.errors import InputError
from ..evaluate.protocol import DEFAULT_PROTOCOL, PROTOCOLS, get_protocol
from ..spine.progress import Progress
from ..spine.runner import Stage, StageContext
from ..select.registry import method_names, methods
from ..spine.store import RunStore, atomic_dir, read_json, stage_key, write_csv, write_json, \
    write_jsonl
from ..train.lora import LoRAConfig

BASE = "base"  # the method name of the untuned model's row
RANDOM = "random"
Log = Callable[[str], None]
# BIDS A.2's training of the final model on a selection (also LESS's LoRA settings).
PAPER_LORA = LoRAConfig(r=128, alpha=512, dropout=0.1, epochs=2, learning_rate=2e-5,
                        warmup_ratio=0.03, lr_scheduler="cosine", batch_size=8,
                        grad_accumulation=16, max_length=2048)


@renamed(tau="sample_tau", iterative_tau="iterative_weight_tau")
@dataclass(frozen=True)
class ExperimentConfig:
    """What an experiment runs; parsed from TOML by `load_experiment_config`. Every default that
    a method config also has is that config's (declared once, in `config.py`)."""

    name: str
    model: str
    demo_n: int | None = 3000  # the demo pool, unless `data` is given
    demo_seed: int = 0
    data: tuple[str, ...] = ()
    data_limit: int | None = None
    embedding_model: str = EmbedConfig.model
    k: int | None = None  # None: the silhouette-recommended k of a sweep
    sweep_ks: tuple[int, ...] = ()
    kmeans_seed: int | None = None  # None: `seed`
    methods: tuple[str, ...] = ("random", "kmq")
    budgets: tuple[str, ...] = ("300",)
    scorer: str = SelectionConfig.scorer
    scorer_model: str | None = None
    sample_tau: float = SelectionConfig.sample_tau
    random_seeds: int = 2  # the random baseline: selections with seed, seed + 1, ...; tables mean
    seed: int = 0
    lora: LoRAConfig = PAPER_LORA
    benchmarks: tuple[str, ...] = ("demo",)
    protocol: str = DEFAULT_PROTOCOL
    eval_limit: int | None = None
    eval_data: dict[str, str] = field(default_factory=dict)
    max_new_tokens: int | None = None  # overrides the protocol's lengths (named in every table)
    eval_batch_size: int = 8
    include_base: bool = True
    # the [iterative] section: settings of method "iterative-kmq", defaults declared once
    iterative_rounds: int = IterativeConfig.rounds
    iterative_scorer: str = IterativeConfig.scorer
    iterative_scorer_model: str | None = None
    iterative_weight_tau: float = IterativeConfig.weight_tau
    iterative_eval_per_round: int = IterativeConfig.eval_per_round
    iterative_max_new_tokens: int = MAX_NEW_TOKENS


_TOP_KEYS = {"name", "model", "seed"}
_SECTIONS = {
    "pool": {"demo_n", "demo_seed", "data", "data_limit", "embedding_model", "k", "sweep_ks",
             "kmeans_seed"},
    "selection": {"methods", "budgets", "scorer", "scorer_model", "sample_tau", "random_seeds"},
    "train": {f.name for f in dataclasses.fields(LoRAConfig)},
    "eval": {"benchmarks", "protocol", "eval_limit", "eval_data", "max_new_tokens",
             "eval_batch_size", "include_base"},
    "iterative": {"rounds", "scorer", "scorer_model", "weight_tau", "eval_per_round",
                  "max_new_tokens"},
}
# Keys whose values the method configs' declarations check (bounds, choices): section → key →
# (config type, field).
_DECLARED: dict[str, dict[str, tuple[type, str]]] = {
    "train": {f.name: (LoRAConfig, f.name) for f in dataclasses.fields(LoRAConfig)},
    "selection": {"sample_tau": (SelectionConfig, "sample_tau"),
                  "scorer": (SelectionConfig, "scorer")},
    "iterative": {name: (IterativeConfig, name) for name in
                  ("rounds", "scorer", "weight_tau", "eval_per_round")},
}
# Keys renamed in issue 13 (`tau` said two things), still read under their old names.
_OLD_KEYS = {"selection": {"tau": "sample_tau"}, "iterative": {"tau": "weight_tau"}}
ITERATIVE_METHOD = "iterative-kmq"


def experiment_methods() -> tuple[str, ...]:
    """The methods an experiment runs: the registry's static methods and iterative kMQ."""
    return (*method_names(), *method_names("iterative"))


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
                inner = _OLD_KEYS.get(key, {}).get(inner, inner)
                if inner not in _SECTIONS[key]:
                    raise InputError(f"unknown key in [{key}]; expected one of "
                                     f"{', '.join(sorted(_SECTIONS[key]))}", path=str(path),
                                     field=f"{key}.{inner}")
                if inner in _DECLARED.get(key, {}):
                    problem = value_problem(*_DECLARED[key][inner], item)
                    if problem:
                        raise InputError(problem, path=str(path), field=f"{key}.{inner}")
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
        config = ExperimentConfig(**flat, lora=dataclasses.replace(PAPER_LORA, **lora))
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
    from ..evaluate import BENCHMARKS

    for method in config.methods:
        if method not in experiment_methods():
            raise InputError(f"unknown method '{method}'; use {', '.join(experiment_methods())}",
                             path=str(path), field="selection.methods")
    for name in config.benchmarks:
        if name not in BENCHMARKS:
            raise InputError(f"unknown benchmark '{name}'; use {', '.join(BENCHMARKS)}",
                             path=str(path), field="eval.benchmarks")
    if not config.data and not config.demo_n:
        raise InputError("give pool.data (files) or pool.demo_n (the demo pool)",
                         path=str(path), field="pool")
    if config.protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol '{config.protocol}'; use {', '.join(PROTOCOLS)}",
                         path=str(path), field="eval.protocol")
    if config.random_seeds < 1:
        raise InputError("must be at least 1", path=str(path), field="selection.random_seeds")


def unit_name(method: str, budget: int | None, seed: int | None = None) -> str:
    """`kmq-b300`; a random baseline run adds its selection seed: `random-b300-s1`."""
    if method == BASE:
        return BASE
    return f"{method}-b{budget}" + ("" if seed is None else f"-s{seed}")


@dataclass(frozen=True)
class Unit:
    """One evaluated model: the untuned base model, or the model trained on one selection."""

    method: str
    budget: int | None = None
    seed: int | None = None  # a random baseline run's selection seed

    @property
    def name(self) -> str:
        return unit_name(self.method, self.budget, self.seed)


@dataclass(frozen=True)
class Inputs:
    """Fingerprints of what every step reads: the pool, its embedding, the clustering, the model."""

    pool: str
    embedding: str
    kmeans: KMeansConfig
    model: str
    n_rows: int


# What each selection method reads besides the pool and its budget (see select/kmq.py):
# a change to anything else leaves its selection, adapter and results as they are.
SELECTION_INPUTS: dict[str, frozenset[str]] = {
    method.name: method.reads for family in ("static", "iterative") for method in methods(family)}


def _model_fingerprint(name: str) -> str:
    from ..lm.loading import model_fingerprint

    return model_fingerprint(name)


# --------------------------------------------------------------------------- running
class ExperimentRunner:
    """Runs an experiment into `run_dir`, reusing every step whose key is already there.

    `steps_` lists, after `run`, each step ({"step", "unit", "benchmark", "computed"}) and
    whether it was computed or reused; it is also written to `steps.json`.
    """

    def __init__(self, config: ExperimentConfig, run_dir: str | Path,
                 log: Log = print) -> None:
        self.config = config
        self.store = RunStore(run_dir)
        self.log = log
        self.protocol = get_protocol(config.protocol)
        self.steps_: list[dict[str, Any]] = []
        self._benchmarks: dict[str, tuple[Any, Any, list[Any], str]] = {}

    def _note(self, step: str, unit: str, computed: bool, benchmark: str | None = None) -> None:
        self.steps_.append({"step": step, "unit": unit, "benchmark": benchmark,
                            "computed": computed})
        if not computed:
            self.log(f"  reused {step} {unit}" + (f" · {benchmark}" if benchmark else ""))

    # the pool and its clustering ------------------------------------------------
    def _prepare_pool(self) -> Inputs:
        """The pool (ingested again when its inputs change), its embedding and clustering."""
        config, store = self.config, self.store
        spec = {"data": [local_fingerprint(item, Path(item.rpartition("=")[2]))
                         for item in config.data], "data_limit": config.data_limit,
                "demo": None if config.data else [config.demo_n or 3000, config.demo_seed]}
        record = store.path("keys", "pool.json")
        fresh = store.exists(pipeline.POOL) and record.exists() and \
            read_json(record)["key"] == stage_key(spec)
        if not fresh:
            if config.data:
                pipeline.ingest(store, list(config.data), limit=config.data_limit)
            else:
                pipeline.ingest_demo(store, n=config.demo_n or 3000, seed=config.demo_seed)
            write_json(record, {"key": stage_key(spec), "spec": spec})
        self._note("pool", "pool", computed=not fresh)
        pipeline.embed(store, EmbedConfig(model=config.embedding_model))  # content-keyed cache
        pool = pipeline.load_run_pool(store)
        embedding = pipeline.embedding_key(store)
        seed = config.seed if config.kmeans_seed is None else config.kmeans_seed
        k = config.k
        if k is None:
            sweep = SweepConfig(ks=tuple(config.sweep_ks or pipeline.default_ks(len(pool))),
                                seed=seed)
            path = store.path("keys", "sweep-" + stage_key({"sweep": sweep.hash_fields(),
                                                           "embedding": embedding}) + ".json")
            if not path.exists():
                pipeline.sweep(store, sweep)
                write_json(path, {"recommended_k": pipeline.load_sweep(store)[1]})
            k = read_json(path)["recommended_k"]
        self.log(f"pool: {len(pool)} rows, k={k}")
        return Inputs(pool=pipeline.pool_fingerprint(pool), embedding=embedding,
                      kmeans=KMeansConfig(k=int(k), seed=seed),
                      model=_model_fingerprint(config.model), n_rows=len(pool))

    def units(self, n_rows: int) -> list[Unit]:
        """The trained units, budget by budget; the random baseline once per seed."""
        config = self.config
        units = []
        for budget in config.budgets:
            rows = pipeline.parse_budget(budget, n_rows)
            for method in config.methods:
                seeds = [config.seed + i for i in range(config.random_seeds)] \
                    if method == RANDOM else [None]
                units += [Unit(method, rows, seed) for seed in seeds]
        return units

    # keys ------------------------------------------------------------------------
    def _scorer(self) -> ScorerConfig:
        return ScorerConfig(name=self.config.scorer, model=self.config.scorer_model)

    def selection_key(self, unit: Unit, inputs: Inputs) -> str:
        """Hash of the selection's method, budget, pool and exactly the inputs it reads."""
        config = self.config
        uses = SELECTION_INPUTS[unit.method]
        payload: dict[str, Any] = {"step": "selection", "method": unit.method,
                                   "budget": unit.budget, "pool": inputs.pool}
        if "seed" in uses:
            payload["seed"] = config.seed if unit.seed is None else unit.seed
        if "clusters" in uses:
            payload.update(embedding=inputs.embedding, kmeans=inputs.kmeans.hash_fields())
        if "scorer" in uses:
            payload["scorer"] = self._scorer().hash_fields()
        if "tau" in uses:
            payload["tau"] = config.sample_tau
        if "training" in uses:
            payload.update(model=inputs.model, lora=config.lora.hash_fields(),
                           iterative={name: value for name, value
                                      in dataclasses.asdict(config).items()
                                      if name.startswith("iterative_")})
        return stage_key(payload)

    def adapter_key(self, selection_key: str, inputs: Inputs) -> str:
        return stage_key({"step": "adapter", "selection": selection_key, "model": inputs.model,
                         "lora": self.config.lora.hash_fields()})

    def result_key(self, benchmark: str, adapter_key: str | None, inputs: Inputs) -> str:
        """Hash of the model (and adapter), the benchmark's protocol spec and its items."""
        _, spec, _, content = self._benchmark(benchmark)
        return stage_key({"step": "result", "model": inputs.model, "adapter": adapter_key,
                         "benchmark": benchmark, "spec": spec.hash_fields(),
                         "max_new_tokens": self.config.max_new_tokens, "items": content})

    def _benchmark(self, name: str) -> tuple[Any, Any, list[Any], str]:
        """(benchmark, protocol spec, items, the items' fingerprint), loaded once per run."""
        if name not in self._benchmarks:
            from ..evaluate import get_benchmark
            from ..evaluate.runner import load_items

            benchmark = get_benchmark(name)
            spec = self.protocol.spec(name)
            items = load_items(benchmark, spec, self.config.eval_data.get(name),
                               limit=self.config.eval_limit, seed=self.config.seed)
            content = fingerprint(json.dumps([item.id, item.model_input(), item.gold],
                                             default=str, sort_keys=True) for item in items)
            self._benchmarks[name] = (benchmark, spec, items, content)
        return self._benchmarks[name]

    def plan(self, units: list[Unit], inputs: Inputs) -> list[dict[str, Any]]:
        """Every (unit, benchmark) of this config with the keys of its steps and the path of its
        result (`plan.json`, which `load_results` reads)."""
        rows = []
        for unit in ([Unit(BASE)] if self.config.include_base else []) + units:
            selection = adapter = None
            if unit.method != BASE:
                selection = self.selection_key(unit, inputs)
                adapter = self.adapter_key(selection, inputs)
            for benchmark in self.config.benchmarks:
                result = self.result_key(benchmark, adapter, inputs)
                rows.append({"unit": unit.name, "method": unit.method, "budget": unit.budget,
                             "seed": unit.seed, "benchmark": benchmark, "selection": selection,
                             "adapter": adapter, "result": f"results/{unit.name}/"
                                                           f"{benchmark}-{result}.json"})
        return rows

    # steps -----------------------------------------------------------------------
    def _selection(self, unit: Unit, key: str, inputs: Inputs) -> Path:
        path = self.store.path("selections", f"{unit.name}-{key}.jsonl")
        self._note("selection", unit.name, computed=not path.exists())
        if path.exists():
            return path
        config = self.config
        if unit.method == ITERATIVE_METHOD:
            self._iterative_selection(unit.budget or 0, inputs.kmeans, path)
            return path
        seed = config.seed if unit.seed is None else unit.seed
        selection = SelectionConfig(method=unit.method, budget=unit.budget or 0,
                                    k=inputs.kmeans.k, sample_tau=config.sample_tau,
                                    sample_seed=seed, scorer=config.scorer)
        from ..select.clean import exclusion  # rows a current clean result flags are left out

        ids = pipeline.load_run_pool(self.store)["id"].astype(str).tolist()
        pipeline.select(self.store, selection, inputs.kmeans, self._scorer(), out=path,
                        exclude=exclusion(self.store, ids))
        return path

    def _iterative_selection(self, budget: int, kmeans: KMeansConfig, path: Path) -> None:
        """Iterative kMQ with the experiment's model and LoRA settings; the final selection is
        then trained from the base model like every other method's."""
        from ..iterative.loop import RefinementLoop, LoRARoundModel
        from ..iterative.rounds import IterativeConfig

        config = self.config
        model = LoRARoundModel(config.model, config.lora,
                               max_new_tokens=config.iterative_max_new_tokens,
                               batch_size=config.eval_batch_size, device=config.lora.device)
        iterative = IterativeConfig(
            k=kmeans.k, budget=budget, rounds=config.iterative_rounds,
            weight_tau=config.iterative_weight_tau, sample_tau=config.sample_tau,
            scorer=config.iterative_scorer,
            scorer_model=config.iterative_scorer_model, quality=config.scorer,
            quality_model=config.scorer_model, eval_per_round=config.iterative_eval_per_round,
            seed=config.seed, model=config.model, training=model.config_key())
        # The rounds are the runner's iterative stage, keyed by this config, the k-means, the
        # pool, the embedding and the model's files: an interrupted run of this key resumes,
        # rounds of another pool, clustering or model are never resumed.
        run = RefinementLoop(iterative, model).fit(self.store, kmeans,
                                                 progress=self.store.progress_callback(
                                                     "iterate", min_interval_s=0))
        for record in run.rounds_:
            self.log(f"  round {record.number}: mean S {record.summary['mean_gap']:.3f}, "
                     f"{record.summary['train_s']:.0f} s training")
        selected = run.selected_frame(pipeline.load_run_pool(self.store))
        write_jsonl(path, selected.to_dict(orient="records"))

    def _train(self, unit: Unit, selection: Path, key: str) -> Path:
        from ..train.lora import LoRATrainer

        out = self.store.path("models", f"{unit.name}-{key}")
        done = (out / "adapter" / "adapter_config.json").exists()
        self._note("adapter", unit.name, computed=not done)
        if done:
            return out / "adapter"
        selected = pd.read_json(selection, lines=True, dtype={"id": str})
        started = time.time()
        trainer = LoRATrainer(self.config.model, self.config.lora).fit(
            selected["prompt"].tolist(), selected["response"].tolist(), out,
            progress=self.store.progress_callback(f"train-{unit.name}"))
        losses = [h["loss"] for h in trainer.history_]
        # one batch's loss swings by ±1 on a mixed pool: the trend is the first and last
        # fifth's means (a single first → last step once read as "the loss rose")
        fifth = max(1, len(losses) // 5)
        self.log(f"  trained {unit.name}: {len(losses)} steps in {time.time() - started:.0f} s, "
                 f"mean loss of the first fifth {np.mean(losses[:fifth]):.3f} → last fifth "
                 f"{np.mean(losses[-fifth:]):.3f}")
        return trainer.adapter_dir_

    def _evaluate(self, unit: Unit, planned: list[dict[str, Any]],
                  adapter: Path | None) -> list[dict[str, Any]]:
        """The unit's results: stored ones read, missing ones computed (the model is loaded
        only when one is missing)."""
        from ..evaluate.runner import protocol_label, run_benchmark
        from ..evaluate.splits import held_out_fields

        config = self.config
        rows, model, tokenizer = [], None, None
        for entry in planned:
            target = self.store.path(entry["result"])
            self._note("result", unit.name, computed=not target.exists(),
                       benchmark=entry["benchmark"])
            if target.exists():
                rows.append(with_held_out(read_json(target), config.eval_data))
                continue
            if model is None:
                model, tokenizer = self._load_model(adapter)
            benchmark, spec, items, _ = self._benchmark(entry["benchmark"])
            started = time.time()
            result, completions = run_benchmark(
                benchmark, items, model, tokenizer, spec, batch_size=config.eval_batch_size,
                max_new_tokens=config.max_new_tokens,
                progress=self.store.progress_callback(f"eval-{unit.name}"),
                use_chat_template=config.lora.chat_template)
            summary = {"model": config.model, "method": unit.method, "budget": unit.budget,
                       "seed": unit.seed, "benchmark": benchmark.name, "group": benchmark.group,
                       "protocol": protocol_label(self.protocol, config.max_new_tokens),
                       "score": result.score, "n": result.n, "metrics": result.metrics,
                       "seconds": round(time.time() - started, 1)}
            summary.update(held_out_fields({"benchmark": benchmark.name,
                                            "per_item": result.per_item}, config.eval_data))
            outcomes = {str(row.get("id")): {k: v for k, v in row.items() if k != "id"}
                        for row in result.per_item}
            write_jsonl(target.with_suffix(".predictions.jsonl"),
                        [{"id": i.id, "prompt": i.prompt, "completion": completions[i.id],
                          **outcomes.get(i.id, {})} for i in items])
            write_json(target, {**summary, "per_item": result.per_item})
            self.log(f"  {unit.name} · {benchmark.name}: {result.score:.1f} (n={result.n}, "
                     f"{summary['seconds']} s)")
            rows.append({**summary, "per_item": result.per_item})
        return rows

    def _load_model(self, adapter: Path | None) -> tuple[Any, Any]:
        from ..lm.loading import load_causal_lm
        from ..train.lora import load_trained

        lora = self.config.lora
        if adapter is None:
            return load_causal_lm(self.config.model, device=lora.device, dtype=lora.dtype)
        return load_trained(self.config.model, adapter, device=lora.device, dtype=lora.dtype)

    def run(self) -> pd.DataFrame:
        """Run everything not yet done; returns (and writes) the results table."""
        config = self.config
        config_dict = _config_dict(config)
        write_json(self.store.path("experiment.json"), config_dict)
        self.steps_ = []
        with self.store.stage("experiment", config_dict) as info:
            inputs = self._prepare_pool()
            units = self.units(inputs.n_rows)
            plan = self.plan(units, inputs)
            from ..select.clean import exclusion

            left_out = exclusion(self.store,
                                 pipeline.load_run_pool(self.store)["id"].astype(str).tolist())
            cleaning = {"benchmarks": list(left_out.benchmarks), "text": left_out.text}
            write_json(self.store.path("plan.json"), {"protocol": config.protocol,
                                                      "entries": plan, "cleaning": cleaning})
            by_unit: dict[str, list[dict[str, Any]]] = {}
            for entry in plan:
                by_unit.setdefault(entry["unit"], []).append(entry)
            results: list[dict[str, Any]] = []
            if config.include_base:
                results += self._evaluate(Unit(BASE), by_unit[BASE], None)
            for number, unit in enumerate(units, start=1):
                self.store.write_progress("experiment", number - 1, len(units), unit.name)
                self.log(f"[{number}/{len(units)}] {unit.name}")
                entries = by_unit[unit.name]
                selection = self._selection(unit, entries[0]["selection"], inputs)
                adapter = self._train(unit, selection, entries[0]["adapter"])
                results += self._evaluate(unit, entries, adapter)
            self.store.write_progress("experiment", len(units), len(units), "done")
            write_json(self.store.path("steps.json"), self.steps_)
            table = results_frame(results, self.store.root)
            table["pool_cleaning"] = cleaning_note(cleaning)
            write_csv(self.store.path("results.csv"),
                      table.drop(columns=["metrics", "per_item", "validation_ids"]))
            info.update(rows=len(table), k=inputs.kmeans.k,
                        computed=sum(step["computed"] for step in self.steps_),
                        reused=sum(not step["computed"] for step in self.steps_))
        return table


@dataclass(frozen=True)
class ExperimentJob(HashedConfig):
    """An experiment TOML run into the job's run directory (the Results page's quick demo). A
    composite stage: every step is keyed by the experiment itself."""

    config_path: str


def _run_experiment(ctx: StageContext, job: ExperimentJob, progress: Progress) -> dict[str, Any]:
    table = ExperimentRunner(load_experiment_config(job.config_path), ctx.store.root).run()
    return {"rows": len(table)}


EXPERIMENT = runner.register(Stage("experiment-job", ExperimentJob, _run_experiment,
                                   composite=True, record=lambda job: "experiment-job"))


def _config_dict(config: ExperimentConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


RESULT_COLUMNS = ["model", "method", "budget", "seed", "benchmark", "group", "protocol", "score",
                  "n", "metrics"]
# Kept in the frame for the tables' intervals, not written to results.csv: every item's verdict,
# the items that were influence validation instances, the predictions file.
ITEM_COLUMNS = ["per_item", "validation_ids", "predictions"]


def results_frame(rows: list[dict[str, Any]], run_dir: Path | None = None) -> pd.DataFrame:
    """One row per (model, method, budget, seed, benchmark) with score (0–100), n, the protocol
    that produced it and the benchmark's extra metrics (a dict: per skill, per task, …)."""
    frame = pd.DataFrame([{k: r.get(k) for k in (*RESULT_COLUMNS, *ITEM_COLUMNS)} for r in rows],
                         columns=[*RESULT_COLUMNS, *ITEM_COLUMNS])
    if run_dir is not None:
        frame.insert(0, "run", Path(run_dir).name)
    frame["budget"] = frame["budget"].astype("Int64")
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def with_held_out(result: dict[str, Any], eval_data: dict[str, str]) -> dict[str, Any]:
    """A stored result, with its held-out fields computed when it predates them."""
    from ..evaluate.splits import held_out_fields

    if "validation_ids" in result:
        return result
    return {**result, **held_out_fields(result, eval_data)}


BUNDLE_RECORD = "bundle.json"  # where an exported experiment came from
_EXPORTED_FILES = ("experiment.json", "plan.json", "results.csv", "steps.json")


def export_experiment(run_dir: str | Path, out: str | Path, command: str) -> Path:
    """Copy a finished experiment's results into `out` — its config, plan, every result with
    its per-item verdicts and predictions; no models or selections — with `bundle.json` naming
    the command, the code version and the experiment's own wall time. Why: the app ships such a
    folder so its Results page shows a real experiment before anyone has run one."""
    from .. import __version__

    run, out = Path(run_dir), Path(out)
    stage = RunStore(run, create=False).stage_info("experiment") if run.is_dir() else None
    if not stage or stage.get("status") != "done":
        raise InputError("not a finished experiment run (its manifest records no finished "
                         "experiment)", path=str(run))
    if not out.parent.is_dir():
        raise InputError("cannot be written (its parent folder does not exist)", path=str(out))
    inside = {out.resolve(), *out.resolve().parents}
    if run.resolve() in inside or out.resolve() in run.resolve().parents:
        raise InputError("would replace the run it exports (or a folder holding it): give a "
                         "folder outside the run", path=str(out))
    plan = read_json(run / "plan.json")
    with atomic_dir(out) as tmp:
        for name in _EXPORTED_FILES:
            if (run / name).exists():
                shutil.copy2(run / name, tmp / name)
        for entry in plan["entries"]:
            result = run / entry["result"]
            for path in (result, result.with_suffix(".predictions.jsonl")):
                (tmp / path.relative_to(run)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, tmp / path.relative_to(run))
        write_json(tmp / BUNDLE_RECORD, {
            "command": command, "code_version": __version__, "config": stage.get("config"),
            "started": stage.get("started"), "finished": stage.get("finished"),
            "wall_s": stage.get("seconds"), "computed_steps": stage.get("computed"),
            "versions": stage.get("versions")})
    return out


def results_stamp(run_dirs: list[str | Path]) -> tuple[int, ...]:
    """Per run, the newest write of its plan or of any result: it changes whenever an
    experiment writes (a cache of `load_results` keys on it)."""
    return tuple(max([path.stat().st_mtime_ns for path in [Path(run) / "plan.json",
                                                           *Path(run).glob("results/*/*.json")]
                      if path.exists()], default=0) for run in run_dirs)


def cleaning_note(cleaning: dict[str, Any] | None) -> str:
    """What a results table says of its pool's cleaning: the benchmarks it was decontaminated
    against and the rows left out, that it was not cleaned, or (runs from before the record)
    that nobody knows."""
    if cleaning is None:
        return "pool cleaning not recorded"
    against = cleaning.get("benchmarks") or []
    text = cleaning.get("text", "")
    if against:
        return f"pool decontaminated against {', '.join(against)}; {text}"
    return text if "not cleaned" in text else f"pool not decontaminated; {text}"


def load_results(run_dirs: list[str | Path]) -> pd.DataFrame:
    """The results of the given experiment run directories under their current config (its
    `plan.json`; results of earlier configs stay on disk but are not shown), read from the
    per-benchmark files so a run still in progress shows what it has. `predictions` is the
    path of each result's predictions file."""
    frames = []
    for run_dir in run_dirs:
        plan = Path(run_dir) / "plan.json"
        if not plan.exists():
            continue
        config = Path(run_dir) / "experiment.json"
        eval_data = (read_json(config).get("eval_data") or {}) if config.exists() else {}
        rows = []
        for entry in read_json(plan)["entries"]:
            path = Path(run_dir) / entry["result"]
            if path.exists():
                rows.append({**with_held_out(read_json(path), eval_data),
                             "predictions": str(path.with_suffix(".predictions.jsonl"))})
        if rows:
            frame = results_frame(rows, Path(run_dir))
            frame["pool_cleaning"] = cleaning_note(read_json(plan).get("cleaning"))
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", *RESULT_COLUMNS, *ITEM_COLUMNS])
    return pd.concat(frames, ignore_index=True)
