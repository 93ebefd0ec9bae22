"""selection_core app: explore an instruction pool, tune k, select a subset, export a report.

Run with `streamlit run app.py` (or `make app`). It opens on the built-in demo pool. This file is
the frame around every page (navigation, page title and menu, sidebar: `ui.run_app`); the pages
live in `pages/`.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads (torch, faiss) that sleep rather than spin while they wait: the background jobs
# inherit it, and they share their cores with this server and the browser. Measured on the demo's
# first start, 2 cores under load ≈3: embedding 52 s instead of 116 s, the page usable after 67 s
# instead of 136 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pages import _ui as ui  # noqa: E402

ui.run_app()
