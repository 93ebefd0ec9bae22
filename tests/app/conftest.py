"""Fixtures of the page tests: a prepared demo workspace per test module."""
from __future__ import annotations

from pathlib import Path

import pytest

from selection_core.select import stages as pipeline
from selection_core.frontends import workspace


@pytest.fixture(scope="module")
def prepared_workspace(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose default demo run (the module's DEMO_N rows, swept at its SWEPT_K) is
    prepared, as the app's job would."""
    n, ks = request.module.DEMO_N, request.module.SWEPT_K
    root = tmp_path_factory.mktemp("workspace")
    patch = pytest.MonkeyPatch()
    patch.setenv("SELECTION_CORE_WORKSPACE", str(root))
    patch.setenv("SELECTION_CORE_DEMO_N", str(n))
    store = workspace.demo_run()
    pipeline.ingest_demo(store, n=n)
    pipeline.prepare(store, ks=ks)
    yield root
    patch.undo()
