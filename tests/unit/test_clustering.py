"""The bounded clustering (long meetings): past max_embeddings, a strided subset is linked and every
embedding goes to the nearest subset cluster. Synthetic speakers: noisy copies of random directions."""

import numpy as np
import pytest

from serve_app.backends.clustering import BoundedAgglomerativeClustering


def speakers(n_per: list[int], dim: int = 64, noise: float = 0.35, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(n_per), dim))
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(n_per)])
    rng.shuffle(labels)  # speakers take turns through the meeting
    x = centres[labels] / np.linalg.norm(centres[labels], axis=1, keepdims=True) + noise * rng.normal(size=(len(labels), dim)) / np.sqrt(dim)
    return x, labels


def clustering(max_embeddings: int) -> BoundedAgglomerativeClustering:
    c = BoundedAgglomerativeClustering(max_embeddings=max_embeddings)
    c.instantiate({"method": "centroid", "threshold": 0.7, "min_cluster_size": 4})
    return c


def run(c, x):
    return c.cluster(x.copy(), min_clusters=1, max_clusters=len(x))  # as pyannote's __call__ passes them


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of items on which two partitions agree, under the best one-to-one label map (greedy is exact
    here: the partitions are near-identical)."""
    total = 0
    for k in np.unique(a):
        total += np.bincount(b[a == k]).max()
    return total / len(a)


@pytest.mark.parametrize("n_per", [[900, 600, 300, 40], [1500, 1500]])
def test_the_subset_path_finds_the_same_speakers_as_linking_everything(n_per):
    x, truth = speakers(n_per)
    full = run(clustering(10_000), x)
    bounded = run(clustering(500), x)
    assert len(np.unique(bounded)) == len(np.unique(full)) == len(n_per)  # a 40-embedding speaker survives
    assert agreement(truth, bounded) >= 0.99 and agreement(full, bounded) >= 0.99


def test_under_the_bound_it_is_pyannote_s_clustering_unchanged():
    x, _ = speakers([50, 30])
    c = clustering(100)
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering
    plain = AgglomerativeClustering()
    plain.instantiate({"method": "centroid", "threshold": 0.7, "min_cluster_size": 4})
    assert np.array_equal(run(c, x), run(plain, x))
    assert c.min_cluster_size == 4  # restored after a subset run too
    c.max_embeddings = 20
    run(c, x)
    assert c.min_cluster_size == 4
