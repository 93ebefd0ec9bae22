"""Clean before you choose (issue 26): duplicates and benchmark contamination, found in one
keyed stage, so that every selection can leave them out.

Why here, before selection: influence selection ranks rows by their gradient similarity to
benchmark items, so a pool row that *is* a benchmark item (or a light paraphrase of one) gets
the highest influence there is and is picked first; duplicates spend the budget twice.

Four kinds of finding, each with its own threshold (`CleanConfig`):

- `exact` — the same normalised prompt + response (NFKC, lower case, words only) as an earlier
  row; `of` is that row's id.
- `near` — MinHash LSH (datasketch) on word shingles: estimated Jaccard ≥ `near_threshold` with
  an earlier row. Defaults: 5-word shingles (datatrove's), Jaccard 0.8 (NeMo Curator's fuzzy
  dedup), 128 permutations (datasketch's default: the estimate's standard error ≤ 0.045).
- `semantic` — SemDeDup (Abbas et al. 2023) on the run's own embeddings: inside each k-means
  cluster the rows are ordered by the keep rule and a row whose cosine to an earlier one is
  above 1 − ε is a duplicate of it. The rule decides which row of a group survives: the highest
  quality score (default), or NeMo Curator's `hard` (the farthest from the centroid), `easy`
  (the nearest) or `random`.
- `contaminated` — overlap with a benchmark's test items (`of` is the item's id, `benchmark` the
  benchmark's CLI name). Word 8-grams by default, with Tulu 3's rule: a row contaminates an item
  when the n-grams they share cover at least `ngram_overlap` (0.5) of the item's tokens. 8, not
  GPT-3's 13: the benchmarks the project evaluates are short once their prompt templates are
  removed (MMLU, BBH and IFEval items have a median of 20–40 words, many under 13), and a
  13-gram check cannot see a 12-word question at all; items shorter than n are matched whole
  (at least `min_item_words` words). Template lines (lines shared by several items of one
  benchmark: "Solve the following math problem step-by-step.", MMLU's subject header and answer
  letters) and n-grams found in more than `template_share` (1%) of one benchmark's items are
  its template, not evidence, and are
  dropped before matching. Paraphrases keep few n-grams (the LMSYS "rephrased samples"
  finding), so every row's nearest benchmark item by embedding (the run's own embedding model)
  is also checked: cosine ≥ `paraphrase_threshold` is a finding.

Against every benchmark the project evaluates (`evaluate.registry`), from their local data (the
same loaders `evaluate` uses); a benchmark whose data is missing is named as skipped in the
result, never silently clean. The flag table keeps one line per flagged row — its strongest
finding, contamination before duplication — and every row's best score for each similarity is
kept too, so the app's threshold sliders count what any threshold removes without recomputing.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import stages as pipeline
from ..spine import runner
from ..spine.config import KEEP_CHOICES, SCORERS, EmbedConfig, HashedConfig, KMeansConfig, \
    ScorerConfig, param
from ..spine.errors import ConfigError, SelectionError
from .stages import Exclusion
from ..spine.progress import Progress
from ..spine.runner import Stage, StageContext
from ..spine.store import RunStore, read_json, write_csv, write_json

KINDS = ("contaminated", "exact", "near", "semantic")  # strongest first
DUPLICATE_KINDS = ("exact", "near", "semantic")
KEEP_RULES = ("quality", "hard", "easy", "random")
FLAG_COLUMNS = ["id", "kind", "of", "benchmark", "similarity"]
FLAGS = "flags.csv"
SCORES = "scores.parquet"  # every row's best similarity per test (the sliders read it)
SEMANTIC_ROWS_PER_CLUSTER = 1000  # default k = pool / this (SemDeDup's clusters of ~1k rows)
BLOCK_ROWS = 1024  # rows compared at once (bounded memory in big clusters)
MIN_TEMPLATE_ITEMS = 1  # a line or n-gram in at most this many items is never template


def all_benchmarks() -> tuple[str, ...]:
    """Every benchmark the project evaluates, by CLI name."""
    from ..evaluate.registry import BENCHMARKS

    return tuple(BENCHMARKS)


@dataclass(frozen=True)
class CleanConfig(HashedConfig):
    """The clean stage's thresholds and rules (defaults and why: the module docstring)."""

    near_threshold: float = param(0.7, help="near duplicates: MinHash Jaccard at least this "
                                            "(datatrove's LSH midpoint, about 0.72)", low=0)
    shingle_words: int = param(5, help="words per MinHash shingle (datatrove's default)", low=1)
    num_perm: int = param(128, help="MinHash permutations (datasketch's default)", low=16)
    semantic_eps: float = param(0.05, help="SemDeDup ε: rows of one cluster with cosine above "
                                           "1 − ε are duplicates", low=0)
    semantic_clusters: int = param(0, help="k-means clusters for SemDeDup; 0: one per "
                                           f"{SEMANTIC_ROWS_PER_CLUSTER} rows", low=0)
    semantic_keep: str = param("quality", choices=KEEP_RULES,
                               help="which row of a semantic group is kept: the highest "
                                    "quality, hard (farthest from the centroid), easy "
                                    "(nearest) or random")
    scorer: str = param("heuristic", choices=SCORERS,
                        help="quality scorer of the `quality` keep rule")
    ngram: int = param(8, help="word n-gram length of the contamination check (Tulu 3: 8; "
                               "GPT-3: 13)", low=1)
    ngram_overlap: float = param(0.5, help="contaminated: shared n-grams cover at least this "
                                           "share of a benchmark item's tokens (Tulu 3: 0.5)",
                                 low=0)
    min_item_words: int = param(5, help="benchmark items shorter than this (after their "
                                        "template) are too generic to match", low=1)
    template_share: float = param(0.01, help="a line or n-gram found in more than this share "
                                             "of one benchmark's items (and in more than "
                                             f"{MIN_TEMPLATE_ITEMS}) is its template, not "
                                             "evidence", low=0)
    paraphrase_threshold: float = param(0.85, help="contaminated: cosine to a benchmark item's "
                                                  "embedding at least this (paraphrases)",
                                        low=-1)
    benchmarks: tuple[str, ...] = param((), help="benchmarks to check (comma-separated CLI "
                                                 "names); empty: all the project evaluates")
    seed: int = param(0, help="seed of the semantic k-means and of the random keep rule")

    def __post_init__(self) -> None:
        super().__post_init__()  # the declared bounds and choices; the upper bounds here
        for name in ("near_threshold", "ngram_overlap", "template_share"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {value}")
        if not 0 <= self.semantic_eps < 1:
            raise ConfigError(f"semantic_eps must be in [0, 1), got {self.semantic_eps}")
        if not -1 <= self.paraphrase_threshold <= 1:
            raise ConfigError("paraphrase_threshold is a cosine: it must be in [-1, 1], got "
                              f"{self.paraphrase_threshold}")
        known = all_benchmarks()
        unknown = [name for name in self.benchmarks if name not in known]
        if unknown:
            raise ConfigError(f"unknown benchmark '{unknown[0]}'; choose from {', '.join(known)}")

    @property
    def checked_benchmarks(self) -> tuple[str, ...]:
        return self.benchmarks or all_benchmarks()


# --------------------------------------------------------------------------- text
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Normalised words: NFKC, lower case, punctuation and spacing dropped (so a re-spaced or
    re-cased copy is still the same text)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def _grams(tokens: Sequence[str], n: int) -> Iterable[tuple[int, tuple[str, ...]]]:
    """(position, n-gram); a text shorter than n is one gram of its own length."""
    if len(tokens) <= n:
        if tokens:
            yield 0, tuple(tokens)
        return
    for start in range(len(tokens) - n + 1):
        yield start, tuple(tokens[start:start + n])


# --------------------------------------------------------------------------- duplicates
def exact_duplicates(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """For each row, the position of the first earlier row with the same normalised prompt and
    response, or -1."""
    first: dict[bytes, int] = {}
    of = np.full(len(prompts), -1, dtype=np.int64)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        text = " ".join(words(prompt)) + "\x1f" + " ".join(words(response))
        digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
        of[row] = first.setdefault(digest, row)
    of[of == np.arange(len(of))] = -1
    return of


def near_duplicates(texts: Sequence[str], threshold: float, shingle_words: int = 5,
                    num_perm: int = 128, skip: np.ndarray | None = None,
                    seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """MinHash LSH: for each row, the earlier row with the highest estimated Jaccard at least
    `threshold` (-1 when none) and that estimate. Rows in `skip` (exact duplicates) are neither
    queried nor indexed: their original stands for them."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    n = len(texts)
    of = np.full(n, -1, dtype=np.int64)
    score = np.zeros(n, dtype=np.float32)
    signatures = np.zeros((n, num_perm), dtype=np.uint64)  # 1 KB a row, not an object each
    chunk = 2048
    for start in range(0, n, chunk):
        rows = [r for r in range(start, min(n, start + chunk)) if skip is None or not skip[r]]
        shingles = [{" ".join(g).encode() for _, g in _grams(words(texts[r]), shingle_words)}
                    or {b""} for r in rows]
        for row, minhash in zip(rows, MinHash.bulk(shingles, num_perm=num_perm, seed=seed),
                                strict=True):
            signatures[row] = minhash.hashvalues
            candidates = np.fromiter(lsh.query(minhash), dtype=np.int64)
            if len(candidates):
                estimates = (signatures[candidates] == signatures[row]).mean(axis=1)
                best = int(np.lexsort((candidates, -estimates))[0])
                if estimates[best] >= threshold:
                    of[row], score[row] = candidates[best], estimates[best]
            lsh.insert(row, minhash)
    return of, score


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def keep_order(members: np.ndarray, rule: str, quality: np.ndarray | None,
               distances: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The members in the order the keep rule prefers them (the first of a group survives)."""
    if rule == "quality":
        assert quality is not None
        return members[np.lexsort((members, -quality[members]))]
    if rule == "hard":
        return members[np.lexsort((members, -distances[members]))]
    if rule == "easy":
        return members[np.lexsort((members, distances[members]))]
    return members[rng.permutation(len(members))]


def semantic_duplicates(vectors: np.ndarray, labels: np.ndarray, distances: np.ndarray,
                        rule: str = "quality", quality: np.ndarray | None = None,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SemDeDup: for each row, its highest cosine to a row its cluster prefers (`keep_order`)
    and that row (-1 for each cluster's first). A row is a duplicate at ε when that cosine
    is above 1 − ε; keeping the scores makes every ε a threshold on one array."""
    n = len(labels)
    best = np.full(n, -1.0, dtype=np.float32)
    of = np.full(n, -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        ranked = keep_order(members, rule, quality, distances, rng)
        X = _unit(vectors[ranked])
        for start in range(1, len(ranked), BLOCK_ROWS):
            stop = min(len(ranked), start + BLOCK_ROWS)
            sims = X[start:stop] @ X[:stop].T
            sims[np.arange(stop - start)[:, None] + start <= np.arange(stop)[None, :]] = -np.inf
            arg = sims.argmax(axis=1)
            best[ranked[start:stop]] = sims[np.arange(stop - start), arg]
            of[ranked[start:stop]] = ranked[arg]
    return of, best


# --------------------------------------------------------------------------- benchmarks
@dataclass
class BenchmarkItems:
    """The test items of the checked benchmarks, as the contamination check reads them: each
    item's content (its prompt without template lines) and where it came from."""

    benchmark: list[str]
    item_id: list[str]
    content: list[str]
    skipped: dict[str, str]  # benchmark → why it was not checked


def benchmark_fingerprint(name: str) -> str:
    """What the clean stage's key knows of a benchmark's local data: the files' names, sizes
    and modification times (cheap; a replaced file changes it), or 'missing'."""
    from ..evaluate.base import default_data_dir
    from ..evaluate.demo import GENERATION_SEED, N_PER_SKILL
    from ..evaluate.registry import BENCHMARKS

    benchmark = BENCHMARKS[name]
    if name == "demo":  # generated, not read: its generator's settings are its data
        return f"generated:{N_PER_SKILL}:{GENERATION_SEED}"
    path = default_data_dir() / benchmark.default_path
    if not path.exists():
        return "missing"
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path.parent)}:{stat.st_size}:{stat.st_mtime_ns}\n"
                      .encode())
    return digest.hexdigest()[:16]


def template_limit(n_items: int, share: float) -> int:
    """How many of a benchmark's items a line or n-gram may appear in and still be evidence."""
    return max(MIN_TEMPLATE_ITEMS, int(share * n_items))


def item_contents(prompts: Sequence[str], max_share: int) -> list[str]:
    """Each prompt without its template: lines (normalised) that more than `max_share` of the
    benchmark's items share are the benchmark's instructions, not the item."""
    normalised = [[" ".join(words(line)) for line in prompt.splitlines()] for prompt in prompts]
    counts = Counter(line for lines in normalised for line in set(lines) if line)
    return ["\n".join(raw for raw, line in zip(prompt.splitlines(), lines, strict=True)
                      if line and counts[line] <= max_share)
            for prompt, lines in zip(prompts, normalised, strict=True)]


def load_benchmark_items(names: Sequence[str], template_share: float) -> BenchmarkItems:
    """The local test items of each benchmark through `evaluate`'s own loaders; a benchmark
    whose data cannot be read is recorded as skipped with the loader's reason."""
    from ..evaluate.registry import BENCHMARKS

    found = BenchmarkItems([], [], [], {})
    for name in names:
        try:
            items = BENCHMARKS[name].load()
        except SelectionError as exc:
            found.skipped[name] = str(exc)
            continue
        found.benchmark += [name] * len(items)
        found.item_id += [str(item.id) for item in items]
        found.content += item_contents([item.prompt for item in items],
                                       template_limit(len(items), template_share))
    return found


class NgramIndex:
    """The benchmark items' word n-grams, for Tulu 3's coverage rule: which items a row's
    n-grams fall in, and at which token positions."""

    def __init__(self, contents: Sequence[str], benchmarks: Sequence[str], n: int,
                 min_words: int, template_share: float) -> None:
        self.n = n
        limits = {name: template_limit(size, template_share)
                  for name, size in Counter(benchmarks).items()}
        postings: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
        for item, text in enumerate(contents):
            tokens = words(text)
            if len(tokens) < min_words:
                continue
            for start, gram in _grams(tokens, n):
                postings[gram].append((item, start))
        self.postings: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        self.content_tokens = np.zeros(len(contents), dtype=np.int64)
        covered: dict[int, set[int]] = defaultdict(set)
        for gram, hits in postings.items():
            per_benchmark = Counter(benchmarks[item] for item in {item for item, _ in hits})
            if any(count > limits[name] for name, count in per_benchmark.items()):
                continue  # a benchmark's template or boilerplate: not evidence
            self.postings[gram] = hits
            for item, start in hits:
                covered[item].update(range(start, start + len(gram)))
        for item, positions in covered.items():
            self.content_tokens[item] = len(positions)
        self.short_lengths = sorted({len(gram) for gram in self.postings if len(gram) < n})

    def best_item(self, text: str) -> tuple[int, float]:
        """The item whose tokens the text's shared n-grams cover most, and that share
        (-1, 0 when no n-gram is shared)."""
        tokens = words(text)
        covered: dict[int, set[int]] = defaultdict(set)
        for length in (self.n, *self.short_lengths):
            for start in range(max(0, len(tokens) - length + 1)):
                hits = self.postings.get(tuple(tokens[start:start + length]))
                for item, position in hits or ():
                    covered[item].update(range(position, position + length))
        if not covered:
            return -1, 0.0
        share, item = max((len(p) / self.content_tokens[i], -i) for i, p in covered.items())
        return -item, float(share)


def nearest_items(vectors: np.ndarray, item_vectors: np.ndarray,
                  chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest benchmark item by cosine (faiss inner product on unit vectors),
    read chunk by chunk so a memmapped million-row pool is never copied whole."""
    import faiss

    index = faiss.IndexFlatIP(item_vectors.shape[1])
    index.add(_unit(item_vectors))
    of = np.empty(len(vectors), dtype=np.int64)
    best = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), chunk):
        scores, ids = index.search(_unit(vectors[start:start + chunk]), 1)
        best[start:start + chunk], of[start:start + chunk] = scores[:, 0], ids[:, 0]
    return of, best


# --------------------------------------------------------------------------- the stage
def _run_embed_config(store: RunStore) -> EmbedConfig | None:
    """The embedding model that made the run's vectors, or None for imported vectors."""
    stored = (store.stage_info("embed") or {}).get("config") or {}
    if "model" not in stored:
        return None
    return EmbedConfig(**stored)


def _inputs(store: RunStore, config: CleanConfig) -> dict[str, Any]:
    return {"pool": pipeline.run_pool_fingerprint(store),
            "embedding": pipeline.embedding_key(store),
            "benchmarks": {name: benchmark_fingerprint(name)
                           for name in config.checked_benchmarks}}


def semantic_clusters(config: CleanConfig, n_rows: int) -> int:
    return config.semantic_clusters or max(1, min(n_rows, round(n_rows /
                                                                SEMANTIC_ROWS_PER_CLUSTER)))


def _run_clean(ctx: StageContext, config: CleanConfig, progress: Progress) -> dict[str, Any]:
    store = ctx.store
    pool = pipeline.load_run_pool(store)
    ids = pool["id"].astype(str).to_numpy()
    prompts, responses = pool["prompt"].tolist(), pool["response"].tolist()
    texts = [f"{p}\n{r}" for p, r in zip(prompts, responses, strict=True)]
    n = len(pool)
    steps = 4
    progress(0, steps, "exact duplicates")
    exact_of = exact_duplicates(prompts, responses)
    progress(1, steps, "near duplicates")
    near_of, near_score = near_duplicates(texts, config.near_threshold, config.shingle_words,
                                          config.num_perm, skip=exact_of >= 0)
    progress(2, steps, "semantic duplicates")
    vectors = pipeline.load_embeddings(store)
    k = semantic_clusters(config, n)
    clustering = pipeline.cluster(store, KMeansConfig(k=k, seed=config.seed, niter=20, nredo=1),
                                  write_table=False)
    quality = pipeline.quality(store, ScorerConfig(name=config.scorer)) \
        if config.semantic_keep == "quality" else None
    sem_of, sem_score = semantic_duplicates(vectors, clustering.labels, clustering.distances,
                                            config.semantic_keep, quality, config.seed)
    progress(3, steps, "benchmark contamination")
    items = load_benchmark_items(config.checked_benchmarks, config.template_share)
    index = NgramIndex(items.content, items.benchmark, config.ngram, config.min_item_words,
                       config.template_share)
    gram_of = np.full(n, -1, dtype=np.int64)
    gram_score = np.zeros(n, dtype=np.float32)
    if index.postings:
        for row, text in enumerate(texts):
            gram_of[row], gram_score[row] = index.best_item(text)
    para_of = np.full(n, -1, dtype=np.int64)
    para_score = np.full(n, -1.0, dtype=np.float32)
    embed_config = _run_embed_config(store)
    paraphrase_note = None
    if embed_config is None:
        paraphrase_note = "the run's vectors were imported: no model to embed benchmark items"
    else:  # items too short to match by n-grams are too generic to match by meaning
        usable = np.array([i for i, text in enumerate(items.content)
                           if len(words(text)) >= config.min_item_words], dtype=np.int64)
        if len(usable):
            from ..data.loaders import fingerprint
            from ..features.embed import embed_texts

            texts_used = [items.content[i] for i in usable]
            item_vectors = embed_texts(texts_used, embed_config, fingerprint(texts_used))
            nearest, para_score = nearest_items(vectors, item_vectors)
            para_of = usable[nearest]
    progress(4, steps, "done")

    scores = pd.DataFrame({
        "id": ids, "exact_of": exact_of, "near_of": near_of, "near": near_score,
        "semantic_of": sem_of, "semantic": sem_score, "ngram_of": gram_of, "ngram": gram_score,
        "paraphrase_of": para_of, "paraphrase": para_score})
    scores.to_parquet(ctx.folder / SCORES, index=False)
    item_table = pd.DataFrame({"benchmark": items.benchmark, "item_id": items.item_id,
                               "content": items.content})
    item_table.to_parquet(ctx.folder / "items.parquet", index=False)
    flags = flag_table(scores, item_table, config)
    write_csv(ctx.folder / FLAGS, flags)
    summary = {"rows": n, "flagged": len(flags),
               "kinds": {kind: int((flags["kind"] == kind).sum()) for kind in KINDS},
               "benchmarks": {name: int((flags["benchmark"] == name).sum())
                              for name in config.checked_benchmarks if name not in items.skipped},
               "skipped": items.skipped, "items": len(items.content),
               "semantic_clusters": k, "paraphrase": paraphrase_note or "checked"}
    write_json(ctx.folder / "summary.json", summary)
    return summary


CLEAN = runner.register(Stage("clean", CleanConfig, _run_clean, _inputs,
))


def flag_table(scores: pd.DataFrame, items: pd.DataFrame, config: CleanConfig) -> pd.DataFrame:
    """One line per flagged row under `config`'s thresholds: its strongest finding
    (contamination by n-grams, then by paraphrase, then exact, near, semantic duplication)."""
    ids = scores["id"].astype(str).to_numpy()
    n = len(scores)
    kind = np.full(n, "", dtype=object)
    of = np.full(n, "", dtype=object)
    benchmark = np.full(n, "", dtype=object)
    similarity = np.zeros(n, dtype=np.float64)
    item_ids = items["item_id"].astype(str).to_numpy()
    item_benchmarks = items["benchmark"].astype(str).to_numpy()

    def mark(hit: np.ndarray, name: str, target: np.ndarray, values: np.ndarray,
             from_items: bool) -> None:
        hit = hit & (kind == "")
        kind[hit] = name
        of[hit] = (item_ids if from_items else ids)[target[hit]]
        if from_items:
            benchmark[hit] = item_benchmarks[target[hit]]
        similarity[hit] = values[hit]

    gram_of, para_of = scores["ngram_of"].to_numpy(), scores["paraphrase_of"].to_numpy()
    mark((gram_of >= 0) & (scores["ngram"].to_numpy() >= config.ngram_overlap),
         "contaminated", gram_of, scores["ngram"].to_numpy(), True)
    mark((para_of >= 0) & (scores["paraphrase"].to_numpy() >= config.paraphrase_threshold),
         "contaminated", para_of, scores["paraphrase"].to_numpy(), True)
    exact_of = scores["exact_of"].to_numpy()
    mark(exact_of >= 0, "exact", exact_of, np.ones(n), False)
    near_of = scores["near_of"].to_numpy()
    mark(near_of >= 0, "near", near_of, scores["near"].to_numpy(), False)
    sem_of = scores["semantic_of"].to_numpy()
    mark((sem_of >= 0) & (scores["semantic"].to_numpy() > 1 - config.semantic_eps), "semantic",
         sem_of, scores["semantic"].to_numpy(), False)
    flagged = kind != ""
    return pd.DataFrame({"id": ids[flagged], "kind": kind[flagged], "of": of[flagged],
                         "benchmark": benchmark[flagged],
                         "similarity": np.round(similarity[flagged], 4)})[FLAG_COLUMNS]


# --------------------------------------------------------------------------- what the app shows
THRESHOLD_COLUMNS = {"semantic_eps": "semantic", "ngram_overlap": "ngram",
                     "paraphrase_threshold": "paraphrase", "near_threshold": "near"}


def removed_by_threshold(scores: pd.DataFrame, setting: str,
                         values: Sequence[float]) -> pd.DataFrame:
    """How many rows one test flags at each value of its threshold (SemDeDup's plot of rows
    removed against ε), from the stored scores: no test is run again."""
    column = scores[THRESHOLD_COLUMNS[setting]].to_numpy()
    found = scores[f"{THRESHOLD_COLUMNS[setting]}_of"].to_numpy() >= 0
    counts = [int((found & (column > 1 - value if setting == "semantic_eps"
                            else column >= value)).sum()) for value in values]
    return pd.DataFrame({setting: list(values), "rows": counts})


def highlight_shared(text: str, other: str, n: int) -> str:
    """`text` as HTML with the words it shares with `other` in a common run of n words (n-gram
    overlap, as the contamination check counts it) marked; everything else escaped."""
    import html

    tokens = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
    normal = words(text)
    if len(normal) != len(tokens):  # NFKC changed the word count: mark nothing
        return html.escape(text)
    theirs = {gram for _, gram in _grams(words(other), n)}
    marked = np.zeros(len(tokens), dtype=bool)
    for start, gram in _grams(normal, n):
        if gram in theirs:
            marked[start:start + len(gram)] = True
    out, last = [], 0
    for index, (start, end, _) in enumerate(tokens):
        out.append(html.escape(text[last:start]))
        word = html.escape(text[start:end])
        out.append(f"<mark>{word}</mark>" if marked[index] else word)
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


# --------------------------------------------------------------------------- reading results
@dataclass
class CleanResult:
    """A finished clean result: the flag table, every row's scores, the benchmark items and
    what was checked."""

    folder: Path
    config: CleanConfig
    flags: pd.DataFrame
    summary: dict[str, Any]

    def scores(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / SCORES)

    def items(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / "items.parquet")


def read_result(folder: Path) -> CleanResult:
    """The clean result stored in a finished key's folder."""
    record = read_json(folder / runner.RECORD)
    flags = pd.read_csv(folder / FLAGS, dtype={"id": str, "of": str, "benchmark": str},
                        keep_default_na=False)
    return CleanResult(folder, CleanConfig.from_dict(record["config"]), flags,
                       read_json(folder / "summary.json"))


def clean(store: RunStore, config: CleanConfig = CleanConfig(),
          progress: Progress | None = None) -> CleanResult:
    """Run (or reuse) the clean stage on the run's pool; the library's entry point."""
    return read_result(runner.run(store, CLEAN, config, progress))


def latest_clean(store: RunStore) -> CleanResult | None:
    """The run's latest clean result if it was computed from the run's current inputs."""
    folder = runner.latest(store, CLEAN)
    return None if folder is None else read_result(folder)


def excluded_flags(flags: pd.DataFrame, keep: str) -> pd.DataFrame:
    """The flagged rows a selection leaves out when it keeps `keep` (none, duplicates,
    contaminated or all)."""
    if keep == "all":
        return flags.iloc[:0]
    if keep == "duplicates":
        return flags[flags["kind"] == "contaminated"]
    if keep == "contaminated":
        return flags[flags["kind"].isin(DUPLICATE_KINDS)]
    return flags


def exclusion(store: RunStore, ids: Sequence[str], keep: str = "none") -> Exclusion:
    """What a selection on the run's pool leaves out by default: every row the run's current
    clean result flags, less what `keep` keeps (duplicates, contaminated or all); without a
    current clean result, nothing (and the text says the pool was not cleaned)."""
    if keep not in KEEP_CHOICES:  # checked even where nothing was cleaned: no silent typo
        raise ConfigError(f"unknown --keep '{keep}'; use {', '.join(KEEP_CHOICES)}")
    result = latest_clean(store)
    if result is None:
        return Exclusion.nothing(len(ids))
    checked = tuple(name for name in result.config.checked_benchmarks
                    if name not in result.summary["skipped"])
    dropped = excluded_flags(result.flags, keep)
    available = ~pd.Index(ids).astype(str).isin(dropped["id"])
    counts = dropped["kind"].value_counts()
    why = ", ".join(f"{int(counts[kind])} {kind}" for kind in KINDS if kind in counts)
    kept = "" if keep == "none" else f" (--keep {keep}: {len(result.flags) - len(dropped)} " \
                                     "flagged rows kept)"
    decontaminated = checked if keep not in ("contaminated", "all") else ()
    return Exclusion(available, f"{int((~available).sum())} of {len(ids)} pool rows excluded "
                                f"before selection{kept}" + (f": {why}" if why else ""),
                     decontaminated)
