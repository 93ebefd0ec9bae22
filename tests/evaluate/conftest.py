"""Shared fixtures for the benchmark tests."""
from __future__ import annotations

import os

import pytest

from selection_core.evaluate import sandbox


@pytest.fixture
def bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runs model-written code under bubblewrap: skipped where bubblewrap cannot run,
    except in CI (SELECTION_CORE_REQUIRE_SANDBOX=1), where that is a failure."""
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    try:
        sandbox.require_sandbox()
    except sandbox.SandboxUnavailable as exc:
        if os.environ.get("SELECTION_CORE_REQUIRE_SANDBOX") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
