"""Fixtures for the influence tests that run tiny models."""
from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models are all per-op overhead, so a second intra-op thread buys nothing, and when
    other jobs share the two cores OpenMP's threads wait on each other: measured 20-50× slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
