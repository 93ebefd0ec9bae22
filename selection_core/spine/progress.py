"""The one progress protocol: `progress(done, total, message="")`, and its sinks.

Every long computation reports through it — rows embedded, chunks scored, k swept, steps
trained, rounds run — and knows nothing of who listens. Sinks: a tqdm bar on the command line
(`tqdm_progress`), the run directory's progress file the app polls (`RunStore.progress_callback`,
beside the other run files in `store.py`), a list in tests (`ProgressLog`); `fan_out` feeds several.
`message` names the step when one call drives several (the steps of `prepare`, the feature
splits); a sink that draws bars starts a new bar when it changes.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol


class Progress(Protocol):
    """`done` of `total` units of work are finished; `message` says which step, if several."""

    def __call__(self, done: int, total: int, message: str = "") -> None: ...


class ProgressEvent(NamedTuple):
    done: int
    total: int
    message: str


class ProgressLog:
    """A sink that keeps every report in `events` (tests, and callers that summarise
    afterwards)."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.events.append(ProgressEvent(int(done), int(total), message))


def fan_out(*sinks: Progress | None) -> Progress:
    """One progress that reports to every given sink (None ones are skipped)."""
    present = [sink for sink in sinks if sink is not None]

    def report(done: int, total: int, message: str = "") -> None:
        for sink in present:
            sink(done, total, message)

    return report


def tqdm_progress(desc: str, unit: str = "row") -> Progress:
    """A tqdm bar (shown on a terminal only); a new `message` closes the bar and opens one for
    that step, named `desc: message`."""
    from tqdm.auto import tqdm

    state: dict[str, Any] = {"bar": None, "message": None}

    def report(done: int, total: int, message: str = "") -> None:
        bar = state["bar"]
        if bar is None or message != state["message"]:
            if bar is not None:
                bar.close()
            name = f"{desc}: {message}" if message and message != desc else desc
            bar = state["bar"] = tqdm(total=total, desc=name, unit=unit, dynamic_ncols=True,
                                      disable=None)
            state["message"] = message
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return report
