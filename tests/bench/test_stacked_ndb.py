"""bench.stacked_ndb: NDB of every sample, of the confident ones, of a subset as large."""

import numpy as np

from bench.stacked_ndb import judged, ndb_split
from lab.diagnostics.kmeans import kmeans_fit


def blobs(n: int, weights: list[float], seed: int) -> np.ndarray:
    """n points from 4 well-separated 2-D blobs with the given weights."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    which = rng.choice(4, size=n, p=weights)
    return centres[which] + rng.normal(scale=0.5, size=(n, 2)), which


def test_an_unconfident_blob_drawn_too_often_is_an_over_filled_bin_and_leaves_with_them():
    reference, _ = blobs(2000, [0.25] * 4, seed=0)
    fit = kmeans_fit(reference, 4, 0)
    samples, which = blobs(8000, [0.4, 0.2, 0.2, 0.2], seed=1)  # blob 0 drawn 1.6x too often
    confident = which != 0  # and its samples are the unconfident ones
    split = ndb_split(reference, samples, confident, fit)
    assert split["bins"] == 4 and split["ndb"] == 4  # 0 over-filled, 1-3 under-filled
    assert (split["over"], split["under"]) == (1, 3)
    assert split["confident_over"] == 0.0 and split["confident_under"] == 1.0
    # without blob 0, blobs 1-3 hold a third each against a quarter: still 4 bins, none over
    assert split["ndb_confident"] == 4
    # a random subset as large keeps blob 0's excess
    assert split["ndb_subset"] == 4


def test_a_sampler_of_the_reference_differs_in_no_bin():
    reference, _ = blobs(2000, [0.25] * 4, seed=0)
    fit = kmeans_fit(reference, 4, 0)
    samples, _ = blobs(8000, [0.25] * 4, seed=2)
    split = ndb_split(reference, samples, np.ones(8000, bool), fit)
    assert split["ndb"] == split["ndb_confident"] == split["ndb_subset"] == 0
    assert split["over"] == split["under"] == 0
    assert split["confident_over"] is None


def test_the_verdict_counts_ndb_only_for_a_sharp_batch():
    split = {"ndb": 29, "bins": 100}
    assert judged(0.49, split).startswith("not judged")
    assert judged(0.51, split) == "fires"
    assert judged(0.51, {"ndb": 11, "bins": 100}) == "passes"
