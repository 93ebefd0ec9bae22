"""Iterative kMQ (Yu et al., 2024, Algorithm 1): draw → train → generate → score → reweight.

A run is the runner's resumable stage "iterative" (`runner.py`), keyed by its config, its
k-means config and its inputs' fingerprints (the pool, the embedding, the model's files): every
round is written into `DIR/stages/iterative/<key>/round-<t>/` (items added, per-cluster weights,
scores and counts, generations with their scores, timings) and marked complete by its
`summary.json`, written last; a rerun of the same key resumes at the first incomplete round and
gives the result an uninterrupted run gives (all randomness is seeded per round), and rounds of
another pool, clustering or model are never resumed: they are another key. The model is
pluggable (`RoundModel`): a deterministic fake in tests, a tiny LM on CPU, a real one on a GPU.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from ..select import stages as pipeline
from ..spine import runner
from ..select.clean import exclusion, latest_clean
from ..spine.config import (MAX_NEW_TOKENS, HashedConfig, IterativeConfig,
                            KMeansConfig, LoRAConfig, ScorerConfig)
from ..spine.errors import ConfigError, MissingStageError
from ..spine.progress import Progress
from ..spine.runner import Stage, StageContext
from ..quality.scorers import HeuristicScorer, RewardModelScorer
from .rounds import cluster_means, draw_round, evaluation_sample, low_quality_share, \
    round_sizes, score_clusters, update_weights, weight_entropy
from ..spine.store import (RunStore, read_json, read_npy, write_csv, write_json, write_jsonl,
                           write_npy)

ITERATE_JOB = "iterate"
ROUNDS_COLUMNS = ["round", "cluster", "weight", "mean_score", "n_selected", "weight_entropy"]


class RoundModel(Protocol):
    """What the loop needs from a model: train on the selection so far, then answer prompts.

    `train` gets the previous round's output folder (None in round 1, or when every round starts
    from the base model) and must leave everything needed to continue in `out_dir`; `generate`
    and `response_log_likelihood` use the model of the latest `train` call. `truncate` cuts a
    text where `generate` would have stopped (its token cap), so gold is scored like a generation.
    """

    name: str

    def train(self, prompts: Sequence[str], responses: Sequence[str], out_dir: Path,
              previous: Path | None, seed: int) -> None: ...

    def generate(self, prompts: Sequence[str]) -> list[str]: ...

    def truncate(self, texts: Sequence[str]) -> list[str]: ...

    def response_log_likelihood(self, prompts: Sequence[str], responses: Sequence[str]
                                ) -> np.ndarray:
        """Mean log-probability per response token (−log perplexity), one float per example."""
        ...


def round_lora(r: int = LoRAConfig.r, **settings: Any) -> LoRAConfig:
    """A round model's LoRA settings: LoRAConfig's defaults with alpha = 2 × r (the `iterate`
    command's and the Iterative page's, declared here once)."""
    return LoRAConfig(r=r, alpha=2 * r, **settings)


def training_key(lora: LoRAConfig, max_new_tokens: int) -> str:
    """`IterativeConfig.training` of a LoRA round model: its LoRA settings and generation cap."""
    return f"{lora.config_hash()}-t{max_new_tokens}"


class LoRARoundModel:
    """A causal LM trained with the project's LoRA trainer; greedy generation."""

    def __init__(self, model: str, lora: LoRAConfig | None = None,
                 max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = 8,
                 device: str = "auto") -> None:
        self.name = model
        self.lora = lora if lora is not None else LoRAConfig()
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None

    def config_key(self) -> str:
        """What changes the results: the LoRA settings and the generation length."""
        return training_key(self.lora, self.max_new_tokens)

    def train(self, prompts: Sequence[str], responses: Sequence[str], out_dir: Path,
              previous: Path | None, seed: int) -> None:
        from ..lm.loading import release_memory
        from ..train.lora import LoRATrainer, load_trained

        config = dataclasses.replace(self.lora, seed=seed)
        self._model = self._tokenizer = None  # free the last round's model before training
        release_memory()
        adapter = LoRATrainer(self.name, config).fit(
            list(prompts), list(responses), out_dir,
            init_adapter=previous / "adapter" if previous is not None else None).adapter_dir_
        release_memory()  # the trainer and its model, before the trained model is loaded
        self._model, self._tokenizer = load_trained(self.name, adapter, device=self.device)

    def _loaded(self) -> tuple[Any, Any]:
        if self._model is None:
            raise ConfigError("train the model before generating with it")
        return self._model, self._tokenizer

    def generate(self, prompts: Sequence[str]) -> list[str]:
        from ..train.generate import generate

        model, tokenizer = self._loaded()
        return generate(model, tokenizer, list(prompts), max_new_tokens=self.max_new_tokens,
                        batch_size=self.batch_size, use_chat_template=self.lora.chat_template)

    def truncate(self, texts: Sequence[str]) -> list[str]:
        from ..lm.formatting import truncate_tokens

        return truncate_tokens(self._loaded()[1], texts, self.max_new_tokens)

    def response_log_likelihood(self, prompts: Sequence[str], responses: Sequence[str]
                                ) -> np.ndarray:
        import torch

        from ..lm.formatting import mean_log_likelihood

        model, tokenizer = self._loaded()
        with torch.no_grad():
            return mean_log_likelihood(model, tokenizer, list(prompts), list(responses),
                                       batch_size=self.batch_size,
                                       max_length=self.lora.max_length,
                                       use_chat_template=self.lora.chat_template)


# --------------------------------------------------------------------------- scoring generations
class ScoredGenerations(NamedTuple):
    """Per scored item: both scores, the gap S, the generation's normalised quality (0–1) and
    the gold text as compared (cut like a generation)."""

    gold_scores: np.ndarray
    generated_scores: np.ndarray
    gaps: np.ndarray
    quality: np.ndarray
    gold: list[str]


def score_generations(config: IterativeConfig, model: RoundModel, prompts: Sequence[str],
                      gold: Sequence[str], generated: Sequence[str]) -> ScoredGenerations:
    """S and the normalised quality of each generation against its gold answer.

    Gold is scored as a generation would be: cut by `model.truncate` at the generation cap, so a
    gold answer cannot beat the model's merely for running past where generation had to stop.
    S > 0 means the gold answer beats the model's own: reward and heuristic take
    S = score(x ⊕ y_gold) − score(x ⊕ y_gen); perplexity takes S = −log(PPL_gen / PPL_gold)
    under the round's trained model (its per-token log-likelihood of its answer minus that of
    gold: large when gold is far from what the model now says). Normalised quality is what
    Figure 4 thresholds: heuristic / 10, sigmoid(reward), and for perplexity 1 / PPL_gold — the
    model's geometric-mean probability of the gold tokens.
    """
    gold = model.truncate(gold)
    if config.scorer == "perplexity":
        gold_scores = model.response_log_likelihood(prompts, gold)
        gen_scores = model.response_log_likelihood(prompts, generated)
        return ScoredGenerations(gold_scores, gen_scores, gen_scores - gold_scores,
                                 np.exp(gold_scores), gold)
    if config.scorer == "reward":
        scorer: Any = RewardModelScorer(config.scorer_model or "", device=config.device)
    else:
        scorer = HeuristicScorer()
    gold_scores = scorer.score(prompts, gold)
    gen_scores = scorer.score(prompts, generated)
    normalised = gen_scores / 10.0 if config.scorer == "heuristic" else \
        1.0 / (1.0 + np.exp(-gen_scores))
    return ScoredGenerations(gold_scores, gen_scores, gold_scores - gen_scores, normalised, gold)


# --------------------------------------------------------------------------- the loop
@dataclass
class RoundRecord:
    """One completed round as stored on disk."""

    number: int
    added: np.ndarray  # rows drawn this round, in drawing order
    clusters: pd.DataFrame  # CLUSTER_COLUMNS but round
    summary: dict[str, Any]


@dataclass(frozen=True)
class IterativeRun(HashedConfig):
    """The iterative stage's config: the run's settings, the k-means its clusters come from and
    which of a clean result's flagged rows the rounds may still draw (`--keep`; by default none)."""

    config: IterativeConfig
    kmeans: KMeansConfig
    keep: str = "none"  # checked where it is applied (`clean.exclusion`)

    def hash_fields(self) -> dict[str, Any]:
        fields = {"config": self.config.hash_fields(), "kmeans": self.kmeans.hash_fields()}
        return fields | ({"keep": self.keep} if self.keep != "none" else {})  # old keys stay


def _iterative_inputs(store: RunStore, run: IterativeRun) -> dict[str, Any]:
    """What the rounds draw from and train: the pool's content, its embedding (both as the run
    recorded them; loading them checks they still are) and the model's files."""
    model = run.config.model
    if model:
        from ..lm.loading import model_fingerprint

        model = model_fingerprint(model)
    inputs = {"pool": (store.stage_info("pool") or {}).get("fingerprint"),
              "embedding": (store.stage_info("embed") or {}).get("key"), "model": model}
    cleaned = latest_clean(store)
    if cleaned is not None:  # its flagged rows are never drawn: another key
        inputs["clean"] = cleaned.folder.name
    return inputs


def iterative_dir(store: RunStore, config: IterativeConfig,
                  kmeans: KMeansConfig | None = None) -> Path:
    """One iterative run's folder, named by its key (`runner`): the config, the k-means and what
    the rounds draw from. A rerun of the same key resumes there."""
    return runner.folder_of(store, ITERATIVE,
                            IterativeRun(config, kmeans or KMeansConfig(k=config.k)))


def iterative_selection_path(store: RunStore, k: int, budget: int) -> Path:
    """Where the app's iterative job writes its final selection (`iterate --out`)."""
    return store.path("selections", f"iterative-k{k}-b{budget}.jsonl")


def _round_dir(folder: Path, number: int) -> Path:
    return folder / f"round-{number}"


def completed_rounds(folder: Path) -> int:
    """How many rounds are complete (their summary.json, written last, exists), in order."""
    number = 0
    while (_round_dir(folder, number + 1) / "summary.json").exists():
        number += 1
    return number


def load_rounds(folder: Path) -> list[RoundRecord]:
    """The completed rounds of one iterative run, in order (stops at the first incomplete)."""
    records = []
    for number in range(1, completed_rounds(folder) + 1):
        path = _round_dir(folder, number)
        records.append(RoundRecord(number, read_npy(path / "added.npy"),
                                   pd.read_csv(path / "clusters.csv"),
                                   read_json(path / "summary.json")))
    return records


def load_generations(folder: Path, number: int) -> pd.DataFrame:
    return pd.read_json(_round_dir(folder, number) / "generations.jsonl", lines=True,
                        dtype={"id": str})


class RefinementLoop:
    """Runs (or resumes) iterative kMQ on a prepared run.

    After `fit`: `selected_` (rows in selection order), `weights_` (after the last update),
    `rounds_` (the RoundRecords) and `folder_`.
    """

    def __init__(self, config: IterativeConfig, model: RoundModel, keep: str = "none") -> None:
        self.config = config
        self.model = model
        self.keep = keep

    def fit(self, store: RunStore, kmeans: KMeansConfig | None = None,
            progress: Progress | None = None, stop_after: int | None = None) -> RefinementLoop:
        """Run (or resume, or reuse) the stage; `stop_after` ends the call after that round
        (tests use it to simulate interruption; the key is then not finished)."""
        config = self.config
        kmeans = kmeans or KMeansConfig(k=config.k)
        if kmeans.k != config.k:
            raise ConfigError(f"k-means config has k={kmeans.k} but the run asks for {config.k}")
        folder = runner.run(store, ITERATIVE, IterativeRun(config, kmeans, self.keep), progress,
                            resources=IterativeResources(self.model, stop_after))
        labels, quality = _labels_and_quality(store, kmeans, config.quality,
                                              config.quality_model, config.device)
        rounds = load_rounds(folder)
        selected = np.concatenate([r.added for r in rounds]).astype(np.int64) if rounds else \
            np.zeros(0, dtype=np.int64)
        weights = rounds[-1].clusters["next_weight"].to_numpy() if rounds else \
            np.full(config.k, 1.0 / config.k)
        self.selected_, self.weights_, self.rounds_, self.folder_ = selected, weights, rounds, \
            folder
        self.labels_, self.quality_ = labels, quality
        if len(rounds) == config.rounds:
            write_csv(store.path("rounds.csv"), rounds_table(rounds))  # the latest, as `select`
        return self

    def _run(self, ctx: StageContext, kmeans: KMeansConfig, progress: Progress,
             stop_after: int | None) -> dict[str, Any]:
        """The rounds not yet complete in the key's folder."""
        config, store, folder = self.config, ctx.store, ctx.folder
        pool = pipeline.load_run_pool(store)
        if config.budget > len(pool):
            raise ConfigError(f"budget {config.budget} exceeds the pool size ({len(pool)})")
        labels, quality = _labels_and_quality(store, kmeans, config.quality,
                                              config.quality_model, config.device)
        excluded = exclusion(store, pool["id"].astype(str).tolist(), self.keep)
        blocked = np.flatnonzero(~excluded.available)  # a clean result's flagged rows
        if config.budget > len(pool) - len(blocked):
            raise ConfigError(f"budget {config.budget} is larger than the "
                              f"{len(pool) - len(blocked)} rows left after cleaning "
                              f"({excluded.text})")
        write_json(folder / "config.json", {**config.to_dict(), "kmeans": kmeans.to_dict(),
                                            "model_name": self.model.name})
        rounds = load_rounds(folder)
        weights = rounds[-1].clusters["next_weight"].to_numpy() if rounds else \
            np.full(config.k, 1.0 / config.k)
        selected = np.concatenate([r.added for r in rounds]).astype(np.int64) if rounds else \
            np.zeros(0, dtype=np.int64)
        sizes = round_sizes(config.budget, config.rounds)
        for number in range(len(rounds) + 1, config.rounds + 1):
            if stop_after is not None and number > stop_after:
                break
            record = self._round(store, folder, pool, labels, quality, weights, selected,
                                 blocked, number, sizes[number - 1], progress)
            rounds.append(record)
            selected = np.concatenate([selected, record.added])
            weights = record.clusters["next_weight"].to_numpy()
        if len(rounds) < config.rounds:
            return {"rounds_done": len(rounds), "unfinished": True}
        write_csv(folder / "rounds.csv", rounds_table(rounds))
        return {"rounds_done": len(rounds), "selected": len(selected)}

    def _round(self, store: RunStore, folder: Path, pool: pd.DataFrame, labels: np.ndarray,
               quality: np.ndarray, weights: np.ndarray, selected: np.ndarray,
               blocked: np.ndarray, number: int, size: int, progress: Progress) -> RoundRecord:
        config, k = self.config, self.config.k
        steps = config.rounds * 4

        def say(step: int, text: str) -> None:
            progress((number - 1) * 4 + step, steps, f"round {number}/{config.rounds}: {text}")

        path = _round_dir(folder, number)
        timings: dict[str, float] = {}

        say(0, f"drawing {size} items")
        added = draw_round(labels, quality, weights, np.concatenate([selected, blocked]), size,
                           config.sample_tau, config.round_seed, number)
        cumulative = np.concatenate([selected, added])

        say(1, f"training on {len(cumulative)} items")
        started = time.time()
        previous = _round_dir(folder, number - 1) / "model" \
            if config.continue_training and number > 1 else None
        self.model.train(pool["prompt"].iloc[cumulative].tolist(),
                         pool["response"].iloc[cumulative].tolist(), path / "model", previous,
                         seed=config.round_seed + number)
        timings["train_s"] = time.time() - started

        sample = evaluation_sample(labels, cumulative, config.eval_per_round, config.round_seed, number,
                                   config.min_scored_per_cluster)
        prompts = pool["prompt"].iloc[sample].tolist()
        gold = pool["response"].iloc[sample].tolist()
        say(2, f"generating for {len(sample)} prompts")
        started = time.time()
        generated = self.model.generate(prompts)
        timings["generate_s"] = time.time() - started

        say(3, f"scoring with {config.scorer}")
        started = time.time()
        scored = score_generations(config, self.model, prompts, gold, generated)
        timings["score_s"] = time.time() - started
        if not (np.isfinite(scored.gaps).all() and np.isfinite(scored.quality).all()):
            raise ConfigError(f"the {config.scorer} scorer returned non-finite scores in round "
                              f"{number}")

        scores = score_clusters(labels[sample], scored.gaps, k)
        mean_quality, _ = cluster_means(labels[sample], scored.quality, k)
        next_weights = update_weights(weights, scores.update, config.weight_tau)
        clusters = pd.DataFrame({
            "cluster": np.arange(k), "weight": weights,
            "n_selected": np.bincount(labels[added], minlength=k), "n_scored": scores.count,
            "mean_score": scores.mean, "update": scores.update, "mean_quality": mean_quality,
            "next_weight": next_weights})
        generations = pd.DataFrame({
            "row": sample, "id": pool["id"].iloc[sample].astype(str).tolist(),
            "cluster": labels[sample], "prompt": prompts, "gold": scored.gold,
            "gold_cut": [a != b for a, b in zip(scored.gold, gold, strict=True)],
            "generated": generated, "gold_score": scored.gold_scores,
            "generated_score": scored.generated_scores, "gap": scored.gaps,
            "quality": scored.quality})
        write_npy(path / "added.npy", added)
        write_csv(path / "clusters.csv", clusters)
        write_jsonl(path / "generations.jsonl", generations.to_dict(orient="records"))
        summary = {"round": number, "added": int(len(added)), "selected": int(len(cumulative)),
                   "scored": int(len(sample)),
                   "low_quality_share": low_quality_share(mean_quality,
                                                          config.low_quality_threshold),
                   "mean_gap": float(scored.gaps.mean()) if len(sample) else float("nan"),
                   "gap_sd": scores.scale, "reliability": scores.reliability,
                   "weight_entropy": weight_entropy(weights),
                   "next_weight_entropy": weight_entropy(next_weights), **timings}
        write_json(path / "summary.json", summary)  # last: marks the round complete
        say(4, "done")
        return RoundRecord(number, added, clusters, summary)

    def selected_frame(self, pool: pd.DataFrame) -> pd.DataFrame:
        """The selection in the `select` export shape, plus the round that added each row."""
        return _selected_frame(pool, self.rounds_, self.labels_, self.quality_,
                               self.config.sample_tau, self.config.seed)


@dataclass(frozen=True)
class IterativeResources:
    """The loaded round model, in the key by what the config names it (the model's name and
    files, the training key); `stop_after` ends the call after that round with the key left
    unfinished (control only: a resumed run reaches the same result)."""

    model: RoundModel
    stop_after: int | None = None


def _run_iterative(ctx: StageContext, run: IterativeRun, progress: Progress) -> dict[str, Any]:
    if ctx.resources is None:
        raise ConfigError("iterative kMQ needs a round model (RefinementLoop(config, model))")
    return RefinementLoop(run.config, ctx.resources.model, run.keep)._run(
        ctx, run.kmeans, progress, ctx.resources.stop_after)


ITERATIVE = runner.register(Stage("iterative", IterativeRun, _run_iterative, _iterative_inputs,
                                  resumable=True, record=lambda run: f"iterate:{run.config.k}-"
                                                                     f"{run.config.budget}",
                                  resources=IterativeResources))


@dataclass(frozen=True)
class IterateJob(HashedConfig):
    """The `iterate` command and the Iterative page's job: iterative kMQ with a LoRA round model
    (`run.config.model` trained with `lora`, generating up to `max_new_tokens`), the final
    selection written to `out`. A composite stage: the rounds are the keyed "iterative" stage."""

    run: IterativeRun
    lora: LoRAConfig
    max_new_tokens: int = MAX_NEW_TOKENS
    batch_size: int = 8
    out: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.run.config.training != training_key(self.lora, self.max_new_tokens):
            raise ConfigError("the iterative config's `training` must be "
                              "training_key(lora, max_new_tokens) (use IterateJob.create)")

    @classmethod
    def create(cls, config: IterativeConfig, kmeans: KMeansConfig, lora: LoRAConfig,
               max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = 8,
               out: str | None = None, keep: str = "none") -> IterateJob:
        config = dataclasses.replace(config, training=training_key(lora, max_new_tokens))
        return cls(IterativeRun(config, kmeans, keep), lora, max_new_tokens, batch_size, out)

    def round_model(self) -> LoRARoundModel:
        config = self.run.config
        return LoRARoundModel(config.model, self.lora, max_new_tokens=self.max_new_tokens,
                              batch_size=self.batch_size, device=config.device)


def _run_iterate_job(ctx: StageContext, job: IterateJob, progress: Progress) -> dict[str, Any]:
    run = RefinementLoop(job.run.config, job.round_model(), job.run.keep).fit(
        ctx.store, job.run.kmeans, progress=progress)
    if job.out is not None:
        write_jsonl(job.out, run.selected_frame(pipeline.load_run_pool(ctx.store))
                    .to_dict(orient="records"))
    return {"rounds_done": len(run.rounds_), "selected": len(run.selected_)}


ITERATE_JOB_STAGE = runner.register(Stage("iterate", IterateJob, _run_iterate_job,
                                          composite=True))


def _selected_frame(pool: pd.DataFrame, rounds: Sequence[RoundRecord], labels: np.ndarray,
                    quality: np.ndarray, sample_tau: float, seed: int) -> pd.DataFrame:
    """The rows in the order the rounds added them, with their rationale (issue 16: the round,
    the cluster's weight then, `select.rationale.iterative_rationale`)."""
    from ..select.rationale import iterative_rationale

    rows = np.concatenate([r.added for r in rounds]).astype(np.int64)
    rationale = iterative_rationale(labels, quality, [r.added for r in rounds],
                                    [r.clusters["weight"].to_numpy() for r in rounds],
                                    sample_tau, seed)
    return pipeline.selected_frame(pool, rows, labels, quality, rationale)


def _labels_and_quality(store: RunStore, kmeans: KMeansConfig, quality: str,
                        quality_model: str | None, device: str = "auto"
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The clustering and the in-cluster quality scores a run draws with (both cached)."""
    labels = pipeline.cluster(store, kmeans, write_table=False).labels
    scores = pipeline.quality(store, ScorerConfig(name=quality, model=quality_model,
                                                  device=device))
    return labels, scores


def run_config(folder: Path) -> dict[str, Any]:
    """The config a stored iterative run was started with (IterativeConfig + its k-means)."""
    return read_json(folder / "config.json")


def selection_frame(store: RunStore, folder: Path) -> pd.DataFrame:
    """The selection of a stored iterative run (its completed rounds), as `selected_frame`."""
    config = run_config(folder)
    labels, quality = _labels_and_quality(store, KMeansConfig(**config["kmeans"]),
                                          config["quality"], config["quality_model"])
    return _selected_frame(pipeline.load_run_pool(store), load_rounds(folder), labels, quality,
                           config["sample_tau"], config["round_seed"])


CLUSTER_COLUMNS = ["round", "cluster", "weight", "n_selected", "n_scored", "mean_score",
                   "update", "mean_quality", "next_weight"]


def _cluster_history(rounds: Sequence[RoundRecord]) -> pd.DataFrame:
    """Every round's clusters.csv, one row per (round, cluster)."""
    if not rounds:
        return pd.DataFrame(columns=CLUSTER_COLUMNS)
    return pd.concat([r.clusters.assign(round=r.number) for r in rounds], ignore_index=True)


def rounds_table(rounds: Sequence[RoundRecord]) -> pd.DataFrame:
    """round, cluster, weight (used to draw the round), mean_score (S measured after the round's
    training; NaN when no item of the cluster was scored), n_selected (items added),
    weight_entropy (of the round's weights, in nats; log k when uniform)."""
    return with_entropy(_cluster_history(rounds))[ROUNDS_COLUMNS]


def with_entropy(history: pd.DataFrame) -> pd.DataFrame:
    """The per-(round, cluster) history plus each round's weight entropy on every row."""
    entropy = history.groupby("round")["weight"].agg(weight_entropy)
    return history.assign(weight_entropy=history["round"].map(entropy))


@dataclass
class IterativeHistory:
    """Everything the app draws about one iterative run."""

    folder: Path
    config: dict[str, Any]
    clusters: pd.DataFrame  # one row per round and cluster: CLUSTER_COLUMNS + weight_entropy
    summaries: pd.DataFrame  # one row per round

    @property
    def rounds(self) -> int:
        return len(self.summaries)


def list_iterative_runs(store: RunStore) -> list[Path]:
    """The run's iterative folders with at least a config, newest first."""
    return sorted((p for p in runner.keys(store, ITERATIVE) if (p / "config.json").exists()),
                  key=lambda p: (p / "config.json").stat().st_mtime, reverse=True)


def load_history(folder: Path) -> IterativeHistory:
    if not (folder / "config.json").exists():
        raise MissingStageError(f"{folder} holds no iterative run: start one with "
                                "`python -m selection_core iterate --run DIR …`")
    rounds = load_rounds(folder)
    return IterativeHistory(folder, run_config(folder),
                            with_entropy(_cluster_history(rounds)),
                            pd.DataFrame([r.summary for r in rounds]))
