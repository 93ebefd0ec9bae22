"""Errors a user can act on: each names what was wrong and where (file, line, field)."""
from __future__ import annotations


class SelectionError(Exception):
    """Base class for errors the CLI and the app show as a message, never as a traceback."""


class InputError(SelectionError):
    """Bad user input (a data file, a matrix, a config), located as precisely as we can."""

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None, unit: str = "line") -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.field = field
        self.unit = unit  # "line" for text files, "row" for tables without line numbers
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if self.line is not None:
            where.append(f"{self.unit} {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class ConfigError(SelectionError):
    """Parameters that cannot work together (budget larger than the pool, k out of range, ...)."""


class MissingStageError(SelectionError):
    """A stage needs the output of an earlier one that has not been computed yet."""


class StaleStageError(MissingStageError):
    """A stage's output was computed from other inputs than the run holds now."""


class RunInUseError(SelectionError):
    """Another process is writing into the same run directory."""


class ReadOnlyRunError(SelectionError):
    """A command that stores results in a run directory was given one it cannot write."""
