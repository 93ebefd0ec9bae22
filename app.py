"""selection_core app: explore an instruction pool, tune k, select a subset, export a report.

Run with `streamlit run app.py` (or `make app`). It opens on the built-in demo pool. This file is
the frame around every page (navigation, page title and menu, sidebar: `ui.run_app`); the pages
live in `pages/`.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pages import _ui as ui  # noqa: E402

ui.run_app()
