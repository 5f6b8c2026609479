"""Known speakers (OpenAI's known_speaker_names[] + known_speaker_references[]): which diarized speaker is
which reference clip. Pure code over embeddings: the Diarizer embeds the clips with the same model that
embedded the recording's speech, and each speaker's centroid is the mean of its cluster's embeddings.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# Cosine distance within which a speaker takes a reference's name (DiarizationConfig.known_speaker_threshold),
# tuned for the bundled CAM++ embedding on AMI train+dev (`python -m serve_app.eval.diarization known`,
# benchmarks/results/known-speakers.json): of 70 clips (22 of the meeting's people, 48 of strangers) 66
# right, none naming the wrong speaker, 4 naming nobody; 0.35-0.4 name as many but also a wrong one.
DEFAULT_KNOWN_THRESHOLD = 0.325


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) cosine distances; a zero vector (pyannote pads a speaker it has no centroid for
    with one) is at distance 2 from everything, so it never matches."""
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1, keepdims=True), np.linalg.norm(b, axis=1, keepdims=True)
    sim = (a @ b.T) / np.maximum(na * nb.T, 1e-12)
    return np.where((na > 0) & (nb.T > 0), 1.0 - sim, 2.0)


def match_known(centroids: np.ndarray, references: np.ndarray, threshold: float) -> dict[int, tuple[int, float]]:
    """Speaker index -> (reference index, cosine distance): the one-to-one pairing with the least total
    distance, keeping only pairs within `threshold`. A reference names at most one speaker and a speaker
    takes at most one name; a reference of someone who does not speak in the recording matches nobody."""
    if not len(centroids) or not len(references):
        return {}
    return match_distances(cosine_distances(centroids, references), threshold)


def match_distances(d: np.ndarray, threshold: float) -> dict[int, tuple[int, float]]:
    """match_known on a (speakers, references) distance matrix."""
    if not d.size:
        return {}
    rows, cols = linear_sum_assignment(d)
    return {int(r): (int(c), float(d[r, c])) for r, c in zip(rows, cols) if d[r, c] <= threshold}
