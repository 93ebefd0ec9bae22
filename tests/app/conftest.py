"""Fixtures of the page tests: a prepared demo workspace per test module, and a page opened
as a browser opens it (the app frame first)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

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


APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def open_page() -> Callable[[str], AppTest]:
    """Opens pages/NAME.py through app.py, failing on any exception the page raised."""
    def open_named(page: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page(f"pages/{page}.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return open_named
