"""selection_core: choose which instruction-tuning data an LLM should be fine-tuned on.

Diversity (kMQ: embed, cluster, quality-weighted sampling) and influence (LESS features, BIDS)
methods as plain Python; the Streamlit app and the CLI are thin layers over this package.
"""
__version__ = "0.1.0"
