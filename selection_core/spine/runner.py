"""The one stage runner: every keyed result of every method is computed and found through here.

A stage is a name, a frozen config type, the fingerprints of its inputs, and `run(ctx, config,
progress)` (`Stage`). The runner keys each run by `store.stage_key` of the config's
result-changing fields and the inputs' fingerprints, and owns what follows from the key:

- the folder `RUN/stages/<stage>/<key>/`, finished when its `stage.json` (written last) exists;
- a finished key is reused, never recomputed; a changed config or input is another key, so a
  stale result cannot be returned and no key overwrites another's;
- a `resumable` stage that returns `{"unfinished": True, …}` stopped early on purpose: its
  key is left unfinished, to be resumed;
- a `composite` stage (prepare, an iterate or experiment job) keeps no result of its own: it
  runs its sub-stages, each keyed as above, every time it is run;
- a stage that is not `resumable` runs in a temp folder renamed into place when it succeeds (a
  crash leaves nothing under the key); a `resumable` one runs in its key's folder, where its
  chunk caches or checkpoints (store.py's resumable memmaps, the trainer's epochs, the rounds)
  let a rerun of the same key continue where it stopped;
- the manifest record (status, config, key, inputs, timings, error) and the run lock;
- `latest(store, stage)`: the most recently finished key whose inputs are still the run's —
  what the app shows and the next stage reads (None when it is missing or stale).

The math stays pure and the files stay in store.py: stages call both.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import from_dict, register_once
from .errors import ConfigError, MissingStageError, StaleStageError
from .progress import Progress
from .store import RunStore, atomic_dir, read_json, stage_key, write_json

RECORD = "stage.json"  # written last into a key's folder: the key is finished


@dataclass(frozen=True)
class StageContext:
    """What a running stage gets: the run, the folder to write into (a temp folder for a stage
    that is not resumable), its key, and `resources`: None or an instance of the stage's
    declared `resources` type (objects its config describes but cannot hold)."""

    store: RunStore
    folder: Path
    key: str
    resources: Any = None


def _no_inputs(store: RunStore, config: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Stage:
    """One stage of a method. `run(ctx, config, progress)` writes its result into `ctx.folder`
    and returns a summary for the manifest; `inputs(store, config)` fingerprints what it reads
    (a pool's content, an upstream stage's key, a model's files)."""

    name: str
    config_type: type
    run: Callable[[StageContext, Any, Progress], dict[str, Any] | None]
    inputs: Callable[[RunStore, Any], dict[str, Any]] = _no_inputs
    resumable: bool = False
    record: Callable[[Any], str] | None = None  # the manifest entry's name (default: `name`)
    # places the result where a fixed contract expects it (the influence matrix at the run's
    # root), after every run of the stage: computed or reused, the latest key's is published
    publish: Callable[[RunStore, Path], None] | None = None
    # a composite stage (prepare, an iterate job, an experiment) keeps no result of its own: it
    # runs its sub-stages every time, each reusing its own finished key
    composite: bool = False
    # what a caller may hand a run besides the config: a frozen dataclass, never in the key, whose
    # docstring says why it changes no result (speed only, or named by a config field)
    resources: type | None = None

    def record_name(self, config: Any) -> str:
        return self.record(config) if self.record else self.name

    def load_config(self, stored: dict[str, Any]) -> Any:
        return from_dict(self.config_type, stored)


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage to the registry (by name: jobs run chains of stage names and configs)."""
    return register_once(STAGES, stage.name, stage, "stages")


def get_stage(name: str) -> Stage:
    """A registered stage by name (the modules that define stages register them on import;
    `jobs` imports them all)."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage '{name}'; use one of {', '.join(sorted(STAGES))}")
    return STAGES[name]


# --------------------------------------------------------------------------- keys and folders
def key_of(store: RunStore, stage: Stage, config: Any) -> tuple[str, dict[str, Any]]:
    """The key of `stage` under `config` on the run's current inputs, and those inputs."""
    if not isinstance(config, stage.config_type):
        raise ConfigError(f"stage '{stage.name}' takes a {stage.config_type.__name__}, got "
                          f"{type(config).__name__}")
    inputs = stage.inputs(store, config)
    return stage_key({"stage": stage.name, "config": config.hash_fields(),
                      "inputs": inputs}), inputs


def folder_of(store: RunStore, stage: Stage, config: Any) -> Path:
    """Where `stage` under `config` on the current inputs is (or will be) stored."""
    return store.stage_dir(stage.name, key_of(store, stage, config)[0])


def finished(store: RunStore, stage: Stage, config: Any) -> Path | None:
    """The finished folder of this key, or None (computes nothing)."""
    folder = folder_of(store, stage, config)
    return folder if (folder / RECORD).exists() else None


def run(store: RunStore, stage: Stage, config: Any, progress: Progress | None = None,
        resources: Any = None) -> Path:
    """Run `stage` under `config` unless its key is finished; returns the key's folder.

    A resumable or composite stage holds the run directory's lock; every run is recorded in the
    manifest; a finished key is returned as it is (and becomes the stage's `latest`)."""
    if resources is not None and not (stage.resources and isinstance(resources, stage.resources)):
        wanted = stage.resources.__name__ if stage.resources else "no resources"
        raise ConfigError(f"stage '{stage.name}' takes {wanted}, got {type(resources).__name__}")
    report: Progress = progress or (lambda done, total, message="": None)
    if stage.composite:
        with store.lock(stage.name), store.stage(stage.record_name(config),
                                                 _plain(config.to_dict())) as info:
            info.update(stage.run(StageContext(store, store.root, "", resources), config,
                                  report) or {})
        return store.root
    key, inputs = key_of(store, stage, config)
    target = store.stage_dir(stage.name, key)
    if (target / RECORD).exists():  # reused without the run's lock: readers never wait
        with contextlib.suppress(OSError):  # nor fail on a run they may not write
            _mark_latest(store, stage, config, key, target)
        return target
    # a resumable stage writes into its key's folder: one writer per run at a time; another
    # stage writes into its own temp folder, so the app can compute (say, a k not swept) while
    # a background job holds the run
    with store.lock(stage.name) if stage.resumable else contextlib.nullcontext():
        key, inputs = key_of(store, stage, config)
        target = store.stage_dir(stage.name, key)
        record = {"stage": stage.name, "key": key, "inputs": inputs,
                  "config": _plain(config.to_dict())}
        if (target / RECORD).exists():
            _mark_latest(store, stage, config, key, target)
            return target
        with store.stage(stage.record_name(config), record["config"], key) as info:
            info.update(key=key, inputs=inputs, folder=str(target.relative_to(store.root)))
            if stage.resumable:
                target.mkdir(parents=True, exist_ok=True)
                summary = stage.run(StageContext(store, target, key, resources), config,
                                    report) or {}
                if summary.get("unfinished"):
                    info.update(summary)
                    return target
                write_json(target / RECORD, {**record, "summary": summary})
            else:
                with atomic_dir(target) as tmp:
                    summary = stage.run(StageContext(store, tmp, key, resources), config,
                                        report) or {}
                    write_json(tmp / RECORD, {**record, "summary": summary})
            info.update(summary)
        _mark_latest(store, stage, config, key, target)
    return target


def _plain(value: Any) -> Any:
    """JSON's view of a config dict (tuples become lists), as it is stored and read back."""
    return json.loads(json.dumps(value, default=str))


def _mark_latest(store: RunStore, stage: Stage, config: Any, key: str, folder: Path) -> None:
    """Make `key` the stage's latest (the manifest is not written when it already is) and
    publish it."""
    if stage.publish:
        stage.publish(store, folder)
    if (store.latest(stage.name) or {}).get("key") == key:
        return
    store.set_latest(stage.name, key=key, record=stage.record_name(config),
                     folder=str(folder.relative_to(store.root)))


# --------------------------------------------------------------------------- reading results
def latest(store: RunStore, stage: Stage) -> Path | None:
    """The most recently run finished key of `stage`, if its inputs are still the run's; None
    when the stage never finished here or its result was computed from other inputs."""
    info = store.latest(stage.name)
    if not info:
        return None
    folder = store.path(info["folder"])
    if not (folder / RECORD).exists():
        return None
    stored = read_json(folder / RECORD)
    try:
        current = stage.inputs(store, stage.load_config(stored["config"]))
    except MissingStageError:
        return None
    return folder if _plain(current) == stored["inputs"] else None


def require_latest(store: RunStore, stage: Stage, hint: str) -> Path:
    """`latest`, or a clear error naming the command that computes it."""
    folder = latest(store, stage)
    if folder is None:
        if store.latest(stage.name):
            raise StaleStageError(f"the {stage.name} result in {store.root} was computed from "
                                  f"other inputs than the run holds now: {hint}")
        raise MissingStageError(f"no {stage.name} result in {store.root}: {hint}")
    return folder


def keys(store: RunStore, stage: Stage) -> list[Path]:
    """Every folder of `stage` in the run (finished or not), newest first."""
    root = store.path("stages", stage.name)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
