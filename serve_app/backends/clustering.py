"""pyannote's agglomerative clustering with its memory bounded, for long meetings.

Linkage needs every pairwise distance: n embeddings cost n(n-1)/2 doubles, and scipy's linkage copies them
once more. At the dev config's segmentation step (a 10 s window every second, up to 3 local speakers per
window) a 2-hour meeting gives about 21,600 embeddings: 1.9 GB of distances, 3.7 GB with scipy's copy, on
top of the audio and the segmentation. Past `max_embeddings`, the linkage runs on an evenly strided subset
(every k-th embedding in time order, so every part of the meeting is in it) and every embedding then goes
to the nearest of the subset clusters' centroids; pyannote then assigns chunks to centroids as it always
does. Memory is bounded by `max_embeddings`, whatever the length.
"""

from __future__ import annotations

import numpy as np
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from scipy.spatial.distance import cdist

from serve_app.config import DiarizationConfig

# 8,000 embeddings: about 45 minutes at a 1 s step; 256 MB of distances (512 MB with scipy's copy).
DEFAULT_MAX_LINKAGE_EMBEDDINGS = DiarizationConfig.model_fields["max_linkage_embeddings"].default


class BoundedAgglomerativeClustering(AgglomerativeClustering):
    def __init__(self, metric: str = "cosine", max_embeddings: int = DEFAULT_MAX_LINKAGE_EMBEDDINGS) -> None:
        super().__init__(metric=metric)
        self.max_embeddings = max_embeddings

    def cluster(self, embeddings: np.ndarray, min_clusters=None, max_clusters=None, num_clusters=None) -> np.ndarray:
        n = len(embeddings)
        if n <= self.max_embeddings:
            return super().cluster(embeddings, min_clusters=min_clusters, max_clusters=max_clusters,
                                   num_clusters=num_clusters)
        picked = np.unique(np.linspace(0, n - 1, self.max_embeddings).round().astype(int))
        subset = np.array(embeddings[picked], dtype=np.float64)  # a copy: the parent normalises in place
        # A speaker's share of the subset is its share of the meeting: a "small cluster" is small in proportion.
        full_size = self.min_cluster_size
        self.min_cluster_size = max(1, round(full_size * len(picked) / n))
        try:
            clusters = super().cluster(subset, min_clusters=min_clusters, max_clusters=max_clusters,
                                       num_clusters=num_clusters)
        finally:
            self.min_cluster_size = full_size
        centroids = np.stack([subset[clusters == k].mean(axis=0) for k in range(int(clusters.max()) + 1)])
        out = np.empty(n, dtype=np.int64)
        for start in range(0, n, 65536):  # (block, clusters) distances: small whatever n is
            block = embeddings[start:start + 65536]
            out[start:start + len(block)] = np.argmin(cdist(block, centroids, metric=self.metric), axis=1)
        return out
