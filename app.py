"""selection_core app: explore an instruction pool, tune k, select a subset, export a report.

Run with `streamlit run app.py` (or `make app`). It opens on the built-in demo pool.
"""
from __future__ import annotations

import os

import streamlit as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

st.set_page_config(page_title="selection_core — choose what to fine-tune on", page_icon=":material/explore:",
                   layout="wide")

from pages._ui import sidebar  # noqa: E402  (after set_page_config)

navigation = st.navigation([
    st.Page("pages/data.py", title="Data", icon=":material/table_view:"),
    st.Page("pages/clusters.py", title="Clusters", icon=":material/scatter_plot:", default=True),
    st.Page("pages/selection.py", title="Selection", icon=":material/checklist:"),
    st.Page("pages/iterative.py", title="Iterative refinement", icon=":material/autorenew:"),
    st.Page("pages/influence.py", title="Influence", icon=":material/hub:"),
    st.Page("pages/report.py", title="Report", icon=":material/description:"),
    st.Page("pages/results.py", title="Results", icon=":material/leaderboard:"),
])
sidebar()
navigation.run()
