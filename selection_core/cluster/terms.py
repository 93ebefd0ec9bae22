"""What a cluster is about: its most distinctive terms by class-based TF-IDF (as in BERTopic).

The term counts per document are computed once per pool; the per-cluster aggregation is a sparse
product, so relabelling at another k costs milliseconds — the app redraws the cluster table on
every k change.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class TermCounts:
    """Document × term counts and the vocabulary."""

    counts: sp.csr_matrix
    vocabulary: np.ndarray


def term_counts(texts: Sequence[str], min_df: int = 2, max_features: int = 20_000) -> TermCounts:
    """Word and bigram counts, English stop words removed (numbers and one-letter tokens too)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(stop_words="english", ngram_range=(1, 2),
                                 min_df=min(min_df, max(1, len(texts))), max_features=max_features,
                                 token_pattern=r"(?u)\b[^\W\d_][\w'-]+\b")
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # every text was empty or only stop words
        return TermCounts(sp.csr_matrix((len(texts), 0), dtype=np.int64), np.array([], dtype=str))
    return TermCounts(counts.tocsr(), vectorizer.get_feature_names_out())


def distinctive_terms(terms: TermCounts, labels: np.ndarray, top_n: int = 6) -> list[list[str]]:
    """Top terms per cluster by c-TF-IDF: tf(t, c) · log(1 + A / f(t)), where A is the mean
    number of words per cluster and f(t) the term's frequency over all clusters."""
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    if terms.counts.shape[1] == 0:
        return [[] for _ in range(k)]
    membership = sp.csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))),
                               shape=(k, len(labels)))
    per_cluster = (membership @ terms.counts).toarray().astype(np.float64)
    words_per_cluster = per_cluster.sum(axis=1, keepdims=True)
    tf = np.divide(per_cluster, words_per_cluster, out=np.zeros_like(per_cluster),
                   where=words_per_cluster > 0)
    average_words = words_per_cluster.mean()
    idf = np.log1p(average_words / np.maximum(per_cluster.sum(axis=0), 1.0))
    weights = tf * idf
    top = np.argsort(-weights, axis=1)[:, :top_n]
    return [[str(terms.vocabulary[t]) for t in row if weights[j, t] > 0]
            for j, row in enumerate(top)]


def cluster_overview(prompts: Sequence[str], labels: np.ndarray, quality: np.ndarray,
                     terms: list[list[str]], samples: int = 2) -> pd.DataFrame:
    """One row per cluster: size, share, mean quality, distinctive terms and sample prompts
    (the highest-quality ones, so the table shows what the cluster is at its best)."""
    labels = np.asarray(labels, dtype=np.int64)
    quality = np.asarray(quality, dtype=np.float64)
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    # members of every cluster from one sort, not k passes over a million-row pool
    by_cluster = np.split(np.argsort(labels, kind="stable"), np.cumsum(sizes)[:-1])
    rows = []
    for j in range(k):
        members = by_cluster[j]
        best = members[np.argsort(-quality[members], kind="stable")[:samples]]
        rows.append({"cluster": j, "size": int(sizes[j]), "share": sizes[j] / len(labels),
                     "mean quality": float(quality[members].mean()) if len(members) else np.nan,
                     "terms": ", ".join(terms[j]) if j < len(terms) else "",
                     "sample prompts": " ‖ ".join(" ".join(str(prompts[i]).split())[:120]
                                                  for i in best)})
    return pd.DataFrame(rows)
