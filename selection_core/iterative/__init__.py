"""Iterative kMQ (Yu et al., 2024, Algorithm 1): the round math (`rounds`) and the
train → generate → score → reweight loop over a run (`loop`)."""
