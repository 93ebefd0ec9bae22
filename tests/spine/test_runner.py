"""The one stage runner (issue 13): keys, folders, reuse, resume, invalidation — on a toy stage
whose input is a file's content, so every rule is checked without a model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selection_core.spine import runner
from selection_core.spine.config import HashedConfig, speed_only
from selection_core.spine.errors import MissingStageError, StaleStageError
from selection_core.spine.runner import Stage, StageContext
from selection_core.spine.store import RunStore, read_npy, write_npy


@dataclass(frozen=True)
class ScaleConfig(HashedConfig):
    factor: float = 2.0
    chunk: int = field(default=2, metadata=speed_only())


CALLS: list[tuple[int, int]] = []


def _input(store: RunStore, config: Any) -> dict[str, Any]:
    path = store.path("input.npy")
    if not path.exists():
        raise MissingStageError("no input")
    return {"input": read_npy(path).tobytes().hex()}


def _run(ctx: StageContext, config: ScaleConfig, progress: Any) -> dict[str, Any]:
    """Scales the input row by row, one file per row: resumable, and interruptible by
    `ctx.resources.stop_at`."""
    values = read_npy(ctx.store.path("input.npy"))
    for row, value in enumerate(values):
        target = ctx.folder / f"row-{row}.npy"
        if target.exists():
            continue
        if ctx.resources is not None and ctx.resources.stop_at == row:
            raise KeyboardInterrupt
        CALLS.append((row, int(value)))
        write_npy(target, np.array([value * config.factor]))
    return {"rows": len(values)}


@dataclass(frozen=True)
class StopAt:
    """Control only: interrupt the run before this row."""

    stop_at: int


RESUMABLE = Stage("toy-resumable", ScaleConfig, _run, _input, resumable=True, resources=StopAt)
ATOMIC = Stage("toy-atomic", ScaleConfig, _run, _input, resources=StopAt)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    CALLS.clear()
    store = RunStore(tmp_path / "run")
    write_npy(store.path("input.npy"), np.array([1, 2, 3]))
    return store


def test_a_finished_key_is_reused_and_speed_only_fields_share_it(store: RunStore) -> None:
    folder = runner.run(store, RESUMABLE, ScaleConfig())
    assert folder.parent == store.path("stages", "toy-resumable") and len(CALLS) == 3
    assert runner.run(store, RESUMABLE, ScaleConfig(chunk=64)) == folder  # speed only
    assert len(CALLS) == 3
    assert runner.latest(store, RESUMABLE) == folder
    info = store.stage_info("toy-resumable")
    assert info["status"] == "done" and info["key"] == folder.name and info["rows"] == 3


def test_a_changed_config_or_input_is_a_new_key_and_the_old_result_is_never_returned(
        store: RunStore) -> None:
    first = runner.run(store, RESUMABLE, ScaleConfig())
    other = runner.run(store, RESUMABLE, ScaleConfig(factor=3.0))
    assert other != first and runner.latest(store, RESUMABLE) == other
    write_npy(store.path("input.npy"), np.array([5, 6, 7]))  # the input changes in place
    assert runner.latest(store, RESUMABLE) is None  # the latest result is of the old input
    with pytest.raises(StaleStageError, match="other inputs"):
        runner.require_latest(store, RESUMABLE, "run it again")
    assert runner.finished(store, RESUMABLE, ScaleConfig()) is None
    third = runner.run(store, RESUMABLE, ScaleConfig())
    assert third not in (first, other)
    assert read_npy(third / "row-0.npy")[0] == 10.0
    assert read_npy(first / "row-0.npy")[0] == 2.0  # no key overwrites another's


def test_a_resumable_stage_resumes_where_it_stopped(store: RunStore) -> None:
    with pytest.raises(KeyboardInterrupt):
        runner.run(store, RESUMABLE, ScaleConfig(), resources=StopAt(2))
    assert store.stage_info("toy-resumable")["status"] == "failed"
    assert runner.finished(store, RESUMABLE, ScaleConfig()) is None
    assert runner.latest(store, RESUMABLE) is None
    folder = runner.run(store, RESUMABLE, ScaleConfig())
    assert CALLS == [(0, 1), (1, 2), (2, 3)]  # rows 0 and 1 once: resumed, not recomputed
    assert runner.latest(store, RESUMABLE) == folder


def test_a_stage_that_is_not_resumable_leaves_nothing_under_its_key_when_it_fails(
        store: RunStore) -> None:
    with pytest.raises(KeyboardInterrupt):
        runner.run(store, ATOMIC, ScaleConfig(), resources=StopAt(2))
    assert not list(store.path("stages", "toy-atomic").iterdir())  # no folder, no temp folder
    folder = runner.run(store, ATOMIC, ScaleConfig())
    assert CALLS == [(0, 1), (1, 2), (0, 1), (1, 2), (2, 3)]  # started over
    assert sorted(p.name for p in folder.iterdir()) == ["row-0.npy", "row-1.npy", "row-2.npy",
                                                        runner.RECORD]


def test_a_stage_takes_only_its_config_and_resources_types_and_names_are_unique(
        store: RunStore) -> None:
    with pytest.raises(Exception, match="takes a ScaleConfig"):
        runner.run(store, RESUMABLE, HashedConfig())
    with pytest.raises(Exception, match="'toy-resumable' takes StopAt, got dict"):
        runner.run(store, RESUMABLE, ScaleConfig(), resources={"stop_at": 2})
    with pytest.raises(Exception, match="'toy-plain' takes no resources, got StopAt"):
        runner.run(store, Stage("toy-plain", ScaleConfig, _run, _input), ScaleConfig(),
                   resources=StopAt(2))
    runner.register(Stage("toy-unique", ScaleConfig, _run))
    with pytest.raises(Exception, match="two stages are named 'toy-unique'"):
        runner.register(Stage("toy-unique", ScaleConfig, _run))


def test_a_stage_with_a_temp_folder_runs_while_a_job_holds_the_run(store: RunStore) -> None:
    """The app computes a k that was not swept while the preparation job holds the run; a
    resumable stage, which writes into its key's folder, waits its turn (one clear error)."""
    import threading

    from selection_core.spine.errors import RunInUseError

    held, release = threading.Event(), threading.Event()

    def job() -> None:
        with store.lock("prepare"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=job)
    thread.start()
    try:
        assert held.wait(10)
        assert runner.run(store, ATOMIC, ScaleConfig()) is not None
        with pytest.raises(RunInUseError, match="prepare"):
            runner.run(store, RESUMABLE, ScaleConfig())
    finally:
        release.set()
        thread.join()
