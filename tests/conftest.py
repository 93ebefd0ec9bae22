"""Shared fixtures: an isolated cache per session, the ../shared data location, tiny pools."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Never read or fill the user's real cache from tests."""
    cache = tmp_path_factory.mktemp("selection_core_cache")
    os.environ["SELECTION_CORE_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (../shared beside the "
                    "checkout holds it in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """The default demo pool (3000 rows) loaded and embedded once per test session."""
    from selection_core import pipeline
    from selection_core.config import EmbedConfig
    from selection_core.data.demo import write_demo_pool
    from selection_core.store import RunStore

    root = tmp_path_factory.mktemp("demo_run")
    data = write_demo_pool(root / "demo.jsonl")
    store = RunStore(root / "run")
    pipeline.ingest(store, [str(data)])
    pipeline.embed(store, EmbedConfig())
    return store
