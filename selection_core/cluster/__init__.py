"""Clustering: faiss k-means, the k sweep (silhouette, elbow) and the UMAP map."""
from .kmeans import FaissKMeans
from .projection import umap_2d
from .sweep import SweepResult, knee_point, simplified_silhouette, sweep_k

__all__ = ["FaissKMeans", "SweepResult", "knee_point", "simplified_silhouette", "sweep_k",
           "umap_2d"]
