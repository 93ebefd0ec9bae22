"""Pool assembly: sources with their own size, noise rate and skill mix, the held-out evaluation
partition, and the pool and evaluation sets as rows."""
from __future__ import annotations

import hashlib
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...spine.apportion import allocate_budget
from ...spine.store import write_jsonl
from .common import Item
from .noise import NOISE_CYCLE, noisy_response, perturb
from .skills import GENERATORS, SKILLS

SOURCES: tuple[str, ...] = ("curated", "synthetic", "web_scrape")

_EVAL_BUCKETS = 10  # prompts whose hash % 10 == 0 are reserved for evaluation


@dataclass(frozen=True)
class _Source:
    """Where rows claim to come from: its share of the pool, relative noise and skill mix."""

    name: str
    share: float
    noise_weight: float
    skill_mix: tuple[float, ...]  # aligned with SKILLS


# At noise_rate 0.2 these give about 6% noise for curated, 17% synthetic, 45% web_scrape.
_SOURCE_PROFILES = (
    _Source("curated", 0.35, 1.0, (0.25, 0.10, 0.25, 0.10, 0.10, 0.20)),
    _Source("synthetic", 0.40, 3.0, (0.15, 0.25, 0.15, 0.25, 0.10, 0.10)),
    _Source("web_scrape", 0.25, 8.0, (0.10, 0.10, 0.10, 0.10, 0.35, 0.25)),
)


def _normalise(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def _is_eval_prompt(prompt: str) -> bool:
    """The fixed hash partition that keeps evaluation prompts out of every pool."""
    digest = hashlib.sha1(_normalise(prompt).encode("utf-8")).hexdigest()
    return int(digest, 16) % _EVAL_BUCKETS == 0


_FRESH_TRIES = 50  # candidates tried for an unseen prompt before a repeat is accepted
_MAX_DRAWS = 100_000


def _draw(skill: str, rng: random.Random, used: set[str], for_eval: bool) -> Item:
    """A new item of `skill` on the requested side of the eval partition, unseen if possible."""
    repeats = 0
    for _ in range(_MAX_DRAWS):
        item = GENERATORS[skill](rng)
        if _is_eval_prompt(item.prompt) != for_eval:
            continue
        key = _normalise(item.prompt)
        if key in used and repeats < _FRESH_TRIES:
            repeats += 1
            continue
        used.add(key)
        return item
    raise RuntimeError(f"could not draw a {skill} item in {_MAX_DRAWS} tries")


def _check_args(n: int, noise_rate: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not 0 <= noise_rate < 1:
        raise ValueError(f"noise_rate must be in [0, 1), got {noise_rate!r}")


def generate_demo_pool(n: int = 3000, seed: int = 0, noise_rate: float = 0.2) -> list[dict]:
    """`n` rows of the demo pool; the same arguments always give the same rows."""
    _check_args(n, noise_rate)
    rng = random.Random(f"selection_core.demo.pool:{seed}")
    sizes = allocate_budget(np.full(len(_SOURCE_PROFILES), n),
                            n, np.array([s.share for s in _SOURCE_PROFILES])).tolist()
    sources = [s for s, size in zip(_SOURCE_PROFILES, sizes, strict=True) for _ in range(size)]
    rng.shuffle(sources)
    skills = [rng.choices(SKILLS, weights=s.skill_mix)[0] for s in sources]

    noise = [""] * n
    # Noisy rows per source: proportional to size × noise weight, no source over its size.
    per_source = allocate_budget(np.array(sizes), math.floor(n * noise_rate + 0.5),
                                 np.array([s.noise_weight for s in _SOURCE_PROFILES])).tolist()
    noisy: list[int] = []
    for source, count in zip(_SOURCE_PROFILES, per_source, strict=True):
        rows = [i for i, s in enumerate(sources) if s is source]
        noisy += rng.sample(rows, count)
    rng.shuffle(noisy)
    for k, row in enumerate(noisy):
        noise[row] = NOISE_CYCLE[k % len(NOISE_CYCLE)]

    used: set[str] = set()
    records: list[dict[str, Any]] = []
    for i in range(n):
        record = {"id": f"demo-{i:05d}", "source": sources[i].name, "skill": skills[i],
                  "is_noise": bool(noise[i]), "noise_type": noise[i]}
        if noise[i] != "near_duplicate":
            item = _draw(skills[i], rng, used, for_eval=False)
            record.update(prompt=item.prompt, gold=item.gold,
                          response=noisy_response(noise[i], skills[i], item, rng))
        records.append(record)
    _fill_near_duplicates(records, rng)
    return [{key: r[key] for key in ("id", "prompt", "response", "source", "skill", "gold",
                                     "is_noise", "noise_type")} for r in records]


def _fill_near_duplicates(records: list[dict[str, Any]], rng: random.Random) -> None:
    """Each near-duplicate copies a clean row (same skill when possible) with a tiny edit."""
    clean = [r for r in records if not r["is_noise"]]
    clean_by_skill = {skill: [r for r in clean if r["skill"] == skill] for skill in SKILLS}
    originals = [r for r in records if r["noise_type"] != "near_duplicate"]
    prompts = {r["prompt"] for r in originals}
    for record in records:
        if record["noise_type"] != "near_duplicate":
            continue
        original = rng.choice(clean_by_skill[record["skill"]] or clean or originals)
        copy = perturb(original["prompt"], rng)
        while copy in prompts or _is_eval_prompt(copy):
            copy = perturb(original["prompt"], rng)
        prompts.add(copy)
        record.update(prompt=copy, response=original["response"], gold=original["gold"],
                      skill=original["skill"])


def generate_demo_eval(n_per_skill: int = 50, seed: int = 1) -> list[dict]:
    """Clean held-out items per skill, from the slice of the item space no pool ever uses."""
    if isinstance(n_per_skill, bool) or not isinstance(n_per_skill, int) or n_per_skill < 1:
        raise ValueError(f"n_per_skill must be an integer >= 1, got {n_per_skill!r}")
    width = max(3, len(str(n_per_skill - 1)))
    records = []
    for skill in SKILLS:
        rng = random.Random(f"selection_core.demo.eval:{seed}:{skill}")
        used: set[str] = set()
        for i in range(n_per_skill):
            item = _draw(skill, rng, used, for_eval=True)
            records.append({"id": f"demo-eval-{skill}-{i:0{width}d}", "skill": skill,
                            "prompt": item.prompt, "gold": item.gold, "response": item.response})
    return records


def write_demo_pool(path: str | os.PathLike, n: int = 3000, seed: int = 0,
                    noise_rate: float = 0.2) -> Path:
    """Write the demo pool as JSONL (atomically: a crash never leaves half a file)."""
    return write_jsonl(path, generate_demo_pool(n=n, seed=seed, noise_rate=noise_rate))

