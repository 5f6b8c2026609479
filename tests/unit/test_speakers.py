"""Known speakers: matching diarized speakers' centroids to reference clips' embeddings (pure)."""

import numpy as np

from serve_app.pipeline.merge import speaker_names
from serve_app.pipeline.speakers import cosine_distances, match_distances, match_known


def test_cosine_distances_and_a_zero_centroid_that_never_matches():
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    assert np.allclose(cosine_distances(a, b), [[0.0, 1.0, 2.0], [2.0, 2.0, 2.0]])


def test_each_reference_names_its_nearest_speaker_one_to_one():
    centroids = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    refs = np.array([[0.1, 1.0, 0.0], [1.0, 0.2, 0.0]])  # near speaker 1, near speaker 0
    got = match_known(centroids, refs, threshold=0.3)
    assert {s: r for s, (r, _) in got.items()} == {1: 0, 0: 1}
    assert all(0 <= d <= 0.3 for _, d in got.values())


def test_a_reference_past_the_threshold_names_nobody():
    centroids = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert match_known(centroids, np.array([[1.0, 1.0]]), threshold=0.2) == {}  # 0.29 from both
    assert match_known(centroids, np.zeros((0, 2)), threshold=0.2) == {}


def test_two_references_near_one_speaker_do_not_both_take_it():
    # The assignment is one-to-one with the least total distance: the nearer clip wins the speaker.
    d = np.array([[0.1, 0.2], [0.9, 0.95]])
    assert match_distances(d, threshold=0.5) == {0: (0, 0.1)}


def test_known_names_stay_and_the_others_are_numbered_without_gaps():
    names = speaker_names(["x", "Ann", "y", "x", "Bo"], known={"Ann", "Bo"})
    assert names == {"x": "SPEAKER_00", "Ann": "Ann", "y": "SPEAKER_01", "Bo": "Bo"}
