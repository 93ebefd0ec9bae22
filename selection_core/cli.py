"""Command line: `python -m selection_core <command> …` — parses, calls the pipeline, prints.

Errors a user can fix (bad files, impossible parameters, missing earlier stages) are printed as
one `error: …` line with exit code 2, never as a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from .select import stages as pipeline
from .spine import runner
from .select.clean import CleanConfig, exclusion
from .spine.config import MAX_NEW_TOKENS, EmbedConfig, IterativeConfig, KMeansConfig, LoRAConfig, \
    ScorerConfig, SelectionConfig, SweepConfig, UMAPConfig, field_default, widget
from .data.loaders import DataSpec, IngestLimits
from .spine.devices import check_device
from .spine.errors import ConfigError, SelectionError
from .evaluate.cli import add_compare_parser, add_evaluate_parser, add_prompts_parser, \
    run_compare, run_evaluate, run_prompts
from .spine.sandbox import UNSAFE_ENV
from .scale import ScaleConfig
from .influence.cli import add_influence_parser, run_influence
from .spine.config_args import add_config_arguments, add_keep_option, config_kwargs
from .spine.progress import Progress, fan_out, tqdm_progress
from .spine.store import MANIFEST, UNWRITABLE, RunStore, check_output_path, shown_status


def _progress(store: RunStore, stage: str, desc: str) -> Progress:
    """Progress shown as a tqdm bar and written to the run's progress file (for the app)."""
    return fan_out(tqdm_progress(desc), store.progress_callback(stage))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):  # nan would pass every range check below unnoticed
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


KMEANS_FLAGS = ("seed", "niter", "nredo", "spherical", "max_points_per_centroid", "init")


def _add_kmeans_options(parser: argparse.ArgumentParser, seed_flag: str = "--seed") -> None:
    add_config_arguments(parser, KMeansConfig, KMEANS_FLAGS, flags={"seed": seed_flag},
                         enforce_choices=["init"])


def _add_ingest_limits(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, IngestLimits, ["max_rows", "max_line_bytes"])


def _benchmark_names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _ingest_limits(args: argparse.Namespace) -> IngestLimits:
    return IngestLimits(**config_kwargs(IngestLimits, args))


def _kmeans_config(args: argparse.Namespace, k: int) -> KMeansConfig:
    return KMeansConfig(**{name: getattr(args, name) for name in KMEANS_FLAGS}, k=k)


# The config fields each command takes as flags (their defaults, bounds and help are the fields')
SELECT_FLAGS = ("method", "k", "scorer", "sample_tau", "top", "sample_seed")
EMBED_FLAGS = ("model", "text", "pooling", "max_length", "batch_size", "device")
CLEAN_FLAGS = ("near_threshold", "shingle_words", "num_perm", "semantic_eps", "semantic_clusters",
               "semantic_keep", "scorer", "ngram", "ngram_overlap", "min_item_words",
               "template_share", "paraphrase_threshold", "seed")
ITERATE_FLAGS = ("k", "rounds", "scorer", "scorer_model", "weight_tau", "sample_tau", "quality",
                 "quality_model", "eval_per_round", "low_quality_threshold", "round_seed",
                 "device")


class _Parser(argparse.ArgumentParser):
    """Argument errors as the one `error: …` line every other error is (usage: --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m selection_core",
        description="Choose instruction-tuning data: embed, cluster, score and select.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="write the built-in demo pool as JSONL")
    demo.add_argument("--out", required=True, help="output .jsonl file")
    demo.add_argument("--n", type=_positive_int, default=3000, help="rows (default 3000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--noise-rate", type=_finite_float, default=0.2,
                      help="share of injected low-quality rows (default 0.2)")

    embed = commands.add_parser("embed", help="load data into a run directory and embed it")
    embed.add_argument("--data", action="append", default=[], metavar="[SOURCE=]FILE",
                       help="a .jsonl/.jsonl.gz/.json/.csv/.parquet file, a save_to_disk folder "
                            "or a HF dataset name (NAME@SPLIT); repeat to combine sources")
    embed.add_argument("--run", required=True, help="run directory")
    add_config_arguments(embed, EmbedConfig, EMBED_FLAGS, enforce_choices=("text", "pooling"))
    embed.add_argument("--limit", type=_positive_int, default=None,
                       help="keep the first N rows per input")
    _add_ingest_limits(embed)
    embed.add_argument("--vectors", default=None, metavar="FILE",  # issue 15 §1
                       help="import precomputed embeddings instead of computing them: a .npy "
                            "array or a .parquet column, one float32/float16 row per pool row")
    embed.add_argument("--vectors-column", default=None, metavar="NAME",
                       help="the parquet column holding the vectors (default: embedding)")
    embed.add_argument("--cache-dir", default=None,
                       help="embedding cache (default $SELECTION_CORE_CACHE or "
                            "~/.cache/selection_core)")
    add_config_arguments(embed, ScaleConfig)  # issue 14: --ray, --workers, --gpus-per-worker

    sweep = commands.add_parser("sweep", help="cluster at several k and measure each")
    sweep.add_argument("--run", required=True)
    add_config_arguments(sweep, SweepConfig, enforce_choices=("metric", "init"))

    cluster = commands.add_parser("cluster", help="k-means at one k → clusters.csv")
    cluster.add_argument("--run", required=True)
    add_config_arguments(cluster, KMeansConfig, ["k"])
    _add_kmeans_options(cluster)

    umap = commands.add_parser("umap", help="2-D UMAP map of the embeddings (cached)")
    umap.add_argument("--run", required=True)
    add_config_arguments(umap, UMAPConfig, ["n_neighbors", "min_dist", "seed"])

    select = commands.add_parser("select", help="choose a subset → JSONL")
    select.add_argument("--run", required=True)
    add_config_arguments(select, SelectionConfig, SELECT_FLAGS, required=("method",))
    select.add_argument("--budget", required=True, help="rows (e.g. 500) or a share (e.g. 10%%)")
    add_config_arguments(select, ScorerConfig, ["model", "device"])
    select.add_argument("--out", required=True, help="output .jsonl")
    add_keep_option(select)
    _add_kmeans_options(select, seed_flag="--cluster-seed")

    score = commands.add_parser("score", help="quality scores for every pool row (cached)")
    score.add_argument("--run", required=True)
    add_config_arguments(score, ScorerConfig, ["name", "model", "batch_size", "device"],
                         enforce_choices=("name",))
    add_config_arguments(score, ScaleConfig)

    prepare = commands.add_parser(
        "prepare", help="everything the app shows: load, embed, sweep k, UMAP, quality scores")
    prepare.add_argument("--run", required=True)
    source = prepare.add_mutually_exclusive_group()
    source.add_argument("--data", action="append", default=[], metavar="[SOURCE=]FILE",
                        help="inputs as for `embed` (omit to use the pool already in the run)")
    source.add_argument("--demo", action="store_true", help="generate the demo pool")
    prepare.add_argument("--n", type=_positive_int, default=3000,
                         help="demo pool rows (with --demo)")
    prepare.add_argument("--seed", type=int, default=0, help="demo pool seed (with --demo)")
    add_config_arguments(prepare, SweepConfig, ["ks"], preset="a grid up to n/20")
    add_config_arguments(prepare, EmbedConfig, ["model", "text"], enforce_choices=("text",))
    _add_ingest_limits(prepare)

    experiment = commands.add_parser(
        "experiment", help="for each method and budget: select → LoRA-train → evaluate")
    experiment.add_argument("--config", required=True, help="experiment TOML (see configs/)")
    experiment.add_argument("--run", default=None,
                            help="run directory (default: <workspace>/experiments/<name>)")

    export = commands.add_parser(
        "export-experiment", help="copy a finished experiment's results (no models) into a "
                                  "folder, e.g. the app's bundled demo in assets/")
    export.add_argument("--run", required=True, help="the experiment's run directory")
    export.add_argument("--to", required=True,
                        help="the folder to write (replaced whole; never the run itself)")

    from .frontends.bundle import BUNDLE_ROOT, DemoBundleConfig

    bundle = commands.add_parser(
        "demo-bundle", help="the app's bundled demo: the CPU experiment (with iterative kMQ) and "
                            "a LESS attribution matrix on the demo pool, results only")
    bundle.add_argument("--run", required=True,
                        help="run directory that computes them (a finished key is reused)")
    bundle.add_argument("--to", default=str(BUNDLE_ROOT),
                        help="the bundle folder (default: %(default)s)")
    add_config_arguments(bundle, DemoBundleConfig)

    iterate = commands.add_parser(
        "iterate", help="iterative kMQ: draw → LoRA-train → generate → score → reweight clusters")
    iterate.add_argument("--run", required=True)
    add_config_arguments(iterate, IterativeConfig, ITERATE_FLAGS, required=("k",),
                         enforce_choices=("scorer",))
    iterate.add_argument("--budget", required=True, help="rows (e.g. 500) or a share (e.g. 10%%)")
    add_keep_option(iterate)
    iterate.add_argument("--model", default="smollm2-135m-instruct",
                         help="causal LM to train and generate with: HF name, local path, "
                              "smollm2-135m-instruct (packaged, default) or tiny-random-llama")
    iterate.add_argument("--from-base", action="store_true",
                         help="train every round from the base model (default: continue the "
                              "previous round's adapter)")
    iterate.add_argument("--epochs", type=_positive_int, default=LoRAConfig.epochs)
    iterate.add_argument("--max-steps", type=_positive_int, default=None,
                         help="cap training steps a round")
    iterate.add_argument("--lora-r", type=_positive_int, default=LoRAConfig.r,
                         help=f"LoRA rank (alpha = 2 × r; default {LoRAConfig.r})")
    iterate.add_argument("--lr", type=_positive_float, default=LoRAConfig.learning_rate)
    iterate.add_argument("--batch-size", type=_positive_int, default=LoRAConfig.batch_size)
    iterate.add_argument("--max-length", type=_positive_int, default=LoRAConfig.max_length,
                         help="training and scoring length in tokens")
    iterate.add_argument("--max-new-tokens", type=_positive_int, default=MAX_NEW_TOKENS,
                         help="generation cap; gold answers are cut at it too before scoring "
                              f"(default {MAX_NEW_TOKENS}, as the reference implementation)")
    iterate.add_argument("--out", required=True, help="output .jsonl (the final selection)")
    add_config_arguments(iterate, LoRAConfig, ["processes", "activation_checkpointing"],
                         enforce_choices=["activation_checkpointing"])
    _add_kmeans_options(iterate, seed_flag="--cluster-seed")

    add_evaluate_parser(commands)
    add_compare_parser(commands)
    add_prompts_parser(commands)
    add_influence_parser(commands)
    for name in ("evaluate", "experiment"):  # the commands that execute model-written code
        commands.choices[name].add_argument(
            "--unsafe-no-sandbox", action="store_true",
            help="run model-written code without bubblewrap: only inside a container you "
                 "already trust and throw away")

    report = commands.add_parser(
        "report", help="the self-contained HTML report of a run, as the app's Report page")
    report.add_argument("--run", required=True)
    report.add_argument("--selections", nargs="+", default=None, metavar="NAME_OR_FILE",
                        help="selections saved in the run by `select` (by name: "
                             "selections/NAME.csv) or files of selected rows with an id "
                             "(the JSONL of `select --out`, or a CSV); default: all saved ones")
    report.add_argument("--k", type=int, default=None,
                        help="the clustering shown (default: the selections' k when they share "
                             "one, else the recommended k)")
    report.add_argument("--title", default=None, help="default: Data selection report — RUN")
    report.add_argument("--out", required=True, help="output .html")
    report.add_argument("--png", action="store_true",
                        help="also every figure as PNG, in OUT-figures.zip (needs Chromium)")

    clean = commands.add_parser(
        "clean", help="find exact, near and semantic duplicates and benchmark contamination")
    clean.add_argument("--run", required=True)
    add_config_arguments(clean, CleanConfig, CLEAN_FLAGS, enforce_choices=("semantic_keep",))
    clean.add_argument("--benchmarks", type=_benchmark_names, default=(),
                       help=f"{widget(CleanConfig, 'benchmarks').help} (default: all)")
    clean.add_argument("--out", default=None,
                       help="write the flag table (id, kind, of, benchmark, similarity) here")

    status = commands.add_parser("status", help="what a run directory holds")
    status.add_argument("--run", required=True)
    return parser


# --------------------------------------------------------------------------- commands
def _cmd_demo(args: argparse.Namespace) -> None:
    from .data.demo import write_demo_pool

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    if not 0 <= args.noise_rate < 1:
        raise ConfigError(f"--noise-rate must be in [0, 1), got {args.noise_rate}")
    path = write_demo_pool(args.out, n=args.n, seed=args.seed, noise_rate=args.noise_rate)
    print(f"wrote {args.n} demo rows to {path}")


def _cmd_embed(args: argparse.Namespace) -> None:
    store = RunStore(args.run)
    check_device(args.device)
    if args.data:  # with --vectors: the pool only once the vectors are good (issue 29)
        pool = pipeline.ingest(store, args.data, limit=args.limit, limits=_ingest_limits(args),
                               vectors=args.vectors, vectors_column=args.vectors_column)
        print(f"pool: {len(pool)} rows from {pool['source'].nunique()} source(s) → "
              f"{store.path(pipeline.POOL)}")
    if args.vectors:  # issue 15 §1: bring your own vectors
        rows = len(pool) if args.data else pipeline.embed_vectors(store, args.vectors,
                                                                  args.vectors_column)
        info = store.stage_info("embed") or {}
        print(f"embeddings: {rows}×{info.get('dim')} imported from {args.vectors} in "
              f"{info.get('embed_seconds')} s → {store.path(pipeline.EMBEDDINGS)}")
        return
    config = EmbedConfig(**{name: getattr(args, name) for name in EMBED_FLAGS})
    vectors = pipeline.embed(store, config, cache_dir=args.cache_dir,
                             progress=_progress(store, "embed", "embedding"),
                             scale=ScaleConfig(**config_kwargs(ScaleConfig, args)))
    info = store.stage_info("embed") or {}
    print(f"embeddings: {vectors.shape[0]}×{vectors.shape[1]} in {info.get('embed_seconds')} s "
          f"({info.get('rows_per_second')} rows/s) → {store.path(pipeline.EMBEDDINGS)}")


def _cmd_sweep(args: argparse.Namespace) -> None:
    store = RunStore(args.run, create=False)
    config = SweepConfig(**config_kwargs(SweepConfig, args))
    result = pipeline.sweep(store, config, progress=_progress(store, "sweep", "k sweep"))
    print(result.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"knee of the inertia curve: k={result.knee_k}")
    print(f"recommended k: {result.recommended_k}")


def _cmd_cluster(args: argparse.Namespace) -> None:
    store = RunStore(args.run, create=False)
    clustering = pipeline.cluster(store, _kmeans_config(args, args.k))
    sizes = sorted(int(v) for v in np.bincount(clustering.labels))
    print(f"k={clustering.k}: inertia {clustering.inertia:.2f}, sizes {sizes[0]}…{sizes[-1]} "
          f"→ {store.path('clusters.csv')}")


def _cmd_umap(args: argparse.Namespace) -> None:
    store = RunStore(args.run, create=False)
    coords = pipeline.projection(store, UMAPConfig(**config_kwargs(UMAPConfig, args)))
    print(f"UMAP: {coords.shape[0]} points projected")


def _cmd_select(args: argparse.Namespace) -> None:
    store = RunStore(args.run, create=False)
    n_rows = len(pipeline.load_run_pool(store))
    if not 1 <= args.k <= n_rows:
        raise ConfigError(f"--k must be between 1 and the pool size ({n_rows}), got {args.k}")
    budget = pipeline.parse_budget(args.budget, n_rows)
    config = SelectionConfig(**config_kwargs(SelectionConfig, args) | {"budget": budget})
    check_device(args.device)
    scorer = ScorerConfig(name=config.scorer, model=args.model, device=args.device)
    pool_ids = pipeline.load_run_pool(store)["id"].astype(str).tolist()
    selected = pipeline.select(store, config, _kmeans_config(args, config.k), scorer,
                               out=args.out, exclude=exclusion(store, pool_ids, args.keep))
    record = store.stage_info(f"select:{args.method}-{config.config_hash()}") or {}
    print(f"selected {len(selected)} of {n_rows} rows ({args.method}, k={args.k}) → {args.out}; "
          f"{record.get('exclusion')}")


def _cmd_score(args: argparse.Namespace) -> None:
    store = RunStore(args.run, create=False)
    check_device(args.device)
    config = ScorerConfig(**config_kwargs(ScorerConfig, args))
    scores = pipeline.quality(store, config, progress=_progress(store, "quality", "scoring"),
                              scale=ScaleConfig(**config_kwargs(ScaleConfig, args)))
    print(f"{config.name} scores for {len(scores)} rows: mean {scores.mean():.3f}, "
          f"min {scores.min():.3f}, max {scores.max():.3f}")


def _cmd_prepare(args: argparse.Namespace) -> None:
    store = RunStore(args.run)
    if args.demo:
        pipeline.ingest_demo(store, n=args.n, seed=args.seed)
    elif args.data:
        pipeline.ingest(store, args.data, limits=_ingest_limits(args))
    pipeline.prepare(store, EmbedConfig(model=args.model, text=args.text), ks=args.ks,
                     progress=tqdm_progress("prepare"))
    table, recommended, knee = pipeline.load_sweep(store)
    print(f"prepared {store.root}: k swept over {table['k'].tolist()}, recommended k="
          f"{recommended}, knee k={knee}")


def _cmd_experiment(args: argparse.Namespace) -> None:
    from .experiment.plan import ExperimentRunner, load_experiment_config
    from .experiment.results import benchmark_table, to_markdown
    from .frontends.workspace import experiments_root

    config = load_experiment_config(args.config)
    run_dir = args.run or experiments_root() / config.name
    started = time.time()
    results = ExperimentRunner(config, run_dir).run()
    print(f"\n{config.name} ({config.model}) — {time.time() - started:.0f} s → {run_dir}")
    print(to_markdown(benchmark_table(results)))


def _cmd_export_experiment(args: argparse.Namespace) -> None:
    from .experiment.plan import export_experiment

    command = f"python -m selection_core export-experiment --run {args.run} --to {args.to}"
    print(export_experiment(args.run, args.to, command))


def _cmd_demo_bundle(args: argparse.Namespace) -> None:
    from .frontends.bundle import DemoBundleConfig, build_demo_bundle

    config = DemoBundleConfig(**config_kwargs(DemoBundleConfig, args))
    changed = [f"--{name.replace('_', '-')} {value}" for name, value in config.to_dict().items()
               if value != field_default(DemoBundleConfig, name)]
    command = " ".join(["python -m selection_core demo-bundle --run RUN", *changed])
    started = time.time()
    manifest = build_demo_bundle(config, args.run, args.to, command,
                                 progress=tqdm_progress("demo-bundle"))
    print(f"demo bundle → {manifest.parent} ({time.time() - started:.0f} s)")


def _cmd_iterate(args: argparse.Namespace) -> None:
    from .iterative.loop import ITERATE_JOB_STAGE, IterateJob, RefinementLoop, round_lora

    store = RunStore(args.run, create=False)
    check_device(args.device)
    pool = pipeline.load_run_pool(store)
    if not 1 <= args.k <= len(pool):
        raise ConfigError(f"--k must be between 1 and the pool size ({len(pool)}), got {args.k}")
    lora = round_lora(args.lora_r, epochs=args.epochs, max_steps=args.max_steps,
                      learning_rate=args.lr, batch_size=args.batch_size,
                      max_length=args.max_length, seed=args.round_seed, device=args.device,
                      processes=args.processes,
                      activation_checkpointing=args.activation_checkpointing)
    config = IterativeConfig(**config_kwargs(IterativeConfig, args) | {
        "budget": pipeline.parse_budget(args.budget, len(pool)), "model": args.model,
        "continue_training": not args.from_base})
    job = IterateJob.create(config, _kmeans_config(args, args.k), lora,
                            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                            out=str(args.out), keep=args.keep)
    bar = tqdm_progress("iterative kMQ", unit="step")
    progress = fan_out(store.progress_callback("iterate", min_interval_s=0),  # rounds are slow
                       lambda done, total, message="": bar(done, total))  # one bar for the run

    started = time.time()
    runner.run(store, ITERATE_JOB_STAGE, job, progress)
    # the finished rounds, read back (the runner reuses the key: nothing is recomputed)
    run = RefinementLoop(job.run.config, job.round_model(), job.run.keep).fit(store,
                                                                         job.run.kmeans)
    selected = run.selected_frame(pool)
    for record in run.rounds_:
        summary = record.summary
        print(f"round {record.number}: +{summary['added']} items, {summary['scored']} scored, "
              f"mean S {summary['mean_gap']:.3f} (sd {summary['gap_sd']:.3f}, "
              f"{summary['reliability']:.0%} between clusters), weight entropy "
              f"{summary['weight_entropy']:.3f} → {summary['next_weight_entropy']:.3f} "
              f"(uniform {np.log(args.k):.3f}), low-quality clusters "
              f"{summary['low_quality_share']:.0%}, train {summary['train_s']:.0f} s, generate "
              f"{summary['generate_s']:.0f} s, score {summary['score_s']:.0f} s")
    weights = ", ".join(f"{w:.3f}" for w in run.weights_)
    print(f"final weights: [{weights}]")
    print(f"selected {len(selected)} of {len(pool)} rows (iterative kMQ, k={args.k}, "
          f"{args.rounds} rounds) in {time.time() - started:.0f} s → {args.out}; history → "
          f"{store.path('rounds.csv')}")
    print(exclusion(store, pool["id"].astype(str).tolist(), args.keep).text)


def _cmd_report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .frontends.report import figures_png_zip, report_selections, run_report
    from .spine.store import atomic_path, write_text

    store = RunStore(args.run, create=False)
    pool = pipeline.load_run_pool(store)
    selections = report_selections(store, pool, args.selections)
    shared_k = {s.config["k"] for s in selections if "k" in s.config}
    k = args.k or (shared_k.pop() if len(shared_k) == 1 else pipeline.load_sweep(store)[1])
    if not 2 <= k < len(pool):
        raise ConfigError(f"--k must be between 2 and {len(pool) - 1} (the pool size − 1), "
                          f"got {k}")
    html, figures = run_report(store, KMeansConfig(k=k), ScorerConfig(), selections,
                               title=args.title)
    write_text(args.out, html)
    print(f"report (k={k}, {len(selections)} selection(s), {len(figures)} figures, "
          f"{len(html) / 1e6:.1f} MB) → {args.out}")
    if args.png:
        target = _png_zip(args.out)
        with atomic_path(target) as tmp:
            tmp.write_bytes(figures_png_zip(figures))
        print(f"PNG figures → {target}")


def _cmd_clean(args: argparse.Namespace) -> None:
    from .select.clean import clean
    from .spine.store import write_csv

    store = RunStore(args.run, create=False)
    config = CleanConfig(**config_kwargs(CleanConfig, args))
    result = clean(store, config, progress=_progress(store, "clean", "cleaning"))
    summary = result.summary
    kinds = ", ".join(f"{count} {kind}" for kind, count in summary["kinds"].items())
    print(f"{summary['flagged']} of {summary['rows']} rows flagged: {kinds}")
    for name, count in summary["benchmarks"].items():
        print(f"  {name:<10} {count} contaminated rows")
    for name, reason in summary["skipped"].items():
        print(f"  {name:<10} skipped: {reason}")
    if summary["paraphrase"] != "checked":
        print(f"paraphrase check skipped: {summary['paraphrase']}")
    if args.out:
        write_csv(args.out, result.flags)
        print(f"flag table → {args.out}")
    else:
        print(f"flag table: {result.folder / 'flags.csv'}")


def _cmd_status(args: argparse.Namespace) -> None:
    store = RunStore(args.run, create=False)
    manifest = store.manifest()
    for name, stage in manifest["stages"].items():
        seconds = stage.get("seconds")
        timing = f" in {seconds} s" if seconds is not None else ""
        error = f" — {stage['error']}" if stage.get("error") else ""
        status = shown_status(stage)
        if status == "interrupted":
            error = f" — process {stage['pid']} was stopped; run the command again"
        print(f"{name:<28} {status}{timing}{error}")
    print(json.dumps(manifest.get("versions", {}), sort_keys=True))


COMMANDS = {"demo": _cmd_demo, "embed": _cmd_embed, "sweep": _cmd_sweep, "cluster": _cmd_cluster,
            "umap": _cmd_umap, "select": _cmd_select, "score": _cmd_score,
            "prepare": _cmd_prepare, "experiment": _cmd_experiment,
            "export-experiment": _cmd_export_experiment, "iterate": _cmd_iterate,
            "demo-bundle": _cmd_demo_bundle,
            "evaluate": run_evaluate, "compare": run_compare, "prompts": run_prompts,
            "influence": run_influence, "report": _cmd_report, "clean": _cmd_clean,
            "status": _cmd_status}


_INPUT_ARGS = ("data", "predictions", "matrix", "val_tasks", "config")
_OUTPUT_ARGS = ("out", "explain")  # every file a command writes outside a run directory
_READ_ONLY_COMMANDS = ("status", "evaluate", "compare", "demo", "export-experiment")
_READERS = ("report",)  # read a run, computing a missing stage only where the run can be written


def _png_zip(out: str | Path) -> Path:
    """Where `report --png` writes its figures: OUT-figures.zip beside the report."""
    return Path(out).with_name(f"{Path(out).name.split('.')[0]}-figures.zip")


def _outputs(args: argparse.Namespace) -> dict[str, str]:
    """The command's output files by flag, derived ones included (`report --png`'s zip)."""
    outputs = {f"--{name}": str(getattr(args, name)) for name in _OUTPUT_ARGS
               if getattr(args, name, None)}
    if getattr(args, "png", False) and "--out" in outputs:
        outputs["--png"] = str(_png_zip(outputs["--out"]))
    return outputs


def _check_output(args: argparse.Namespace) -> None:
    """Every output file goes through the one guard (`store.check_output_path`): none may be
    one of the command's inputs, lie inside a run directory, or be another output."""
    outputs = _outputs(args)
    if not outputs:
        return
    inputs: list[str] = []
    for name in _INPUT_ARGS:
        value = getattr(args, name, None)
        inputs += value if isinstance(value, list) else [value] if value else []
    run = getattr(args, "run", None)
    if run and Path(run, MANIFEST).exists():  # the files the run's pool was loaded from
        pool = (RunStore(run, create=False).stage_info("pool") or {}).get("config") or {}
        inputs += pool.get("inputs", [])
    locations = [DataSpec.parse(item).location for item in inputs]
    written: dict[Path, str] = {}
    for flag, out in outputs.items():
        target = check_output_path(out, locations).resolve()
        if target in written:
            raise ConfigError(f"{flag} {out} is also the {written[target]} file; give each "
                              "output its own path")
        written[target] = flag


def _run_lock(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """Commands that write into a run directory hold it: a second writer stops with one line."""
    run = getattr(args, "run", None)
    if not run or args.command in _READ_ONLY_COMMANDS:
        return contextlib.nullcontext()
    if not Path(run).is_dir() and args.command not in ("embed", "prepare", "experiment",
                                                           "demo-bundle"):
        return contextlib.nullcontext()  # the command itself says the run is missing
    name = " ".join(filter(None, (args.command, getattr(args, "stage", None))))
    store = RunStore(run)
    if args.command in _READERS and not store.writable():
        return contextlib.nullcontext()
    return store.lock(name)


@contextlib.contextmanager
def _sandbox_choice(unsafe: bool) -> Iterator[None]:
    """--unsafe-no-sandbox for this command only (also for the processes it starts)."""
    if not unsafe:
        yield
        return
    previous = os.environ.get(UNSAFE_ENV)
    os.environ[UNSAFE_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[UNSAFE_ENV]
        else:
            os.environ[UNSAFE_ENV] = previous


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers warns about its own rename when peft asks; nothing a user can act on
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                            category=FutureWarning)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or an argument error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own bars say what is happening
    try:
        _check_output(args)
        with _sandbox_choice(getattr(args, "unsafe_no_sandbox", False)), _run_lock(args):
            COMMANDS[args.command](args)
    except SelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        print(f"error: {exc.filename or 'a file'}: cannot be written ({exc.strerror}); "
              f"`{args.command}` needed to store a result there", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished chunks are saved; run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0
