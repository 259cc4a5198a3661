"""HierarchicalClustering (TWIN-V2 Algorithm 1 in graph): a hand-computed window, the numpy pipeline
path on random windows (padding, duplicates, ties, empty users, N < M), the adaptive k, the config."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.grouping.hierarchical_clustering import (
    branching,
    branching_thresholds,
    cluster_histories,
)
from tfrec.layers.hierarchical_clustering import HierarchicalClustering
from tfrec.testing import assert_layer_config_roundtrip

A, B, C = (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)
# positions 0-4 in group 0 (a a a b b), 5-6 in group 1 (c c), 7 padding
VECTORS = np.array([[A, A, A, B, B, C, C, (0.0, 0.0)]])
GROUPS = np.array([[0, 0, 0, 0, 0, 1, 1, 0]])
MASK = np.array([[1, 1, 1, 1, 1, 1, 1, 0]], np.float32)
PARAMS = {"num_groups": 2, "cluster_size": 2, "max_depth": 3, "iterations": 2, "max_branching": 4,
          "branching_exponent": 0.5}


def _run(layer, vectors, groups, mask):
    return {k: v.numpy() for k, v in layer({"vectors": vectors, "groups": groups, "mask": mask}).items()}


def test_hand_computed_window():
    """Group 0 (5 > gamma = 2) splits in k = floor(5^0.5) = 2: seeds b (farthest from the mean (.6, .4);
    tie 3 / 4 -> the more recent, 4), then a (farthest from b; tie 0 / 1 / 2 -> 2). {a a a} (3 > gamma) is
    left whole: its members are duplicates (the second seed would be at distance 0). Slots: by last
    member, right-aligned: {a a a} (last 2), {b b} (last 4), {c c} (last 6)."""
    out = _run(HierarchicalClustering(max_clusters=4, **PARAMS), VECTORS, GROUPS, MASK)
    np.testing.assert_array_equal(out["assignment"], [[1, 1, 1, 2, 2, 3, 3, -1]])
    np.testing.assert_array_equal(out["representative"], [[0, 2, 4, 6]])  # closest to the mean, most recent
    np.testing.assert_array_equal(out["size"], [[0, 3, 2, 2]])
    np.testing.assert_array_equal(out["mask"], [[0, 1, 1, 1]])
    # M = 2 keeps the largest: {a a a}, then {c c} over {b b} (equal size, more recent last member)
    out = _run(HierarchicalClustering(max_clusters=2, **PARAMS), VECTORS, GROUPS, MASK)
    np.testing.assert_array_equal(out["assignment"], [[0, 0, 0, -1, -1, 1, 1, -1]])
    np.testing.assert_array_equal(out["representative"], [[2, 6]])
    np.testing.assert_array_equal(out["size"], [[3, 2]])
    # depth 0: the groups alone
    out = _run(HierarchicalClustering(max_clusters=4, **{**PARAMS, "max_depth": 0}), VECTORS, GROUPS, MASK)
    np.testing.assert_array_equal(out["size"], [[0, 0, 5, 2]])
    np.testing.assert_array_equal(out["assignment"], [[2, 2, 2, 2, 2, 3, 3, -1]])


def _random_windows(seed, b=7, n=40, d=3):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(b, n, d)).astype(np.float32)
    vectors[:, 8:16] = vectors[:, 3:4]  # duplicates of one behavior
    vectors[1] = np.round(vectors[1])  # a coarse grid: many exact distance ties
    vectors[2, ::2] = vectors[2, 1::2]  # pairs of duplicates
    groups = rng.integers(0, 3, (b, n))
    mask = np.ones((b, n), np.float32)
    mask[3] = 0  # an empty user
    mask[4, :-3] = 0  # fewer behaviors than gamma, one group: one cluster
    groups[4] = 1
    mask[5, : n // 2] = 0  # left padding, as the window
    return vectors, groups, mask


@pytest.mark.parametrize("max_clusters, seed", [(6, 0), (64, 1)])  # more clusters than M; M > N
def test_matches_the_numpy_pipeline_path(max_clusters, seed):
    params = {"num_groups": 3, "cluster_size": 3, "max_clusters": max_clusters, "max_depth": 3, "iterations": 3,
              "max_branching": 4, "branching_exponent": 0.5}
    vectors, groups, mask = _random_windows(seed)
    out = _run(HierarchicalClustering(**params), vectors, groups, mask)
    ref = cluster_histories(vectors, groups, mask, **params)
    for key in ref:
        np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
    assert ref["mask"][3].sum() == 0 and (ref["assignment"][3] == -1).all()
    assert ref["size"][4].sum() == 3 and ref["mask"][4].sum() == 1
    kept = ref["mask"] > 0
    # every kept cluster's representative is one of its members; sizes count the assignment
    for u in range(len(vectors)):
        for slot in np.flatnonzero(kept[u]):
            assert ref["assignment"][u, ref["representative"][u, slot]] == slot
            assert (ref["assignment"][u] == slot).sum() == ref["size"][u, slot]
    if max_clusters == 64:  # nothing dropped: every real behavior is in a cluster
        np.testing.assert_array_equal(ref["assignment"] >= 0, mask > 0)
    # run in a tf.function (fixed shapes, as the exported user tower) with the same result
    layer = HierarchicalClustering(**params)
    graph = tf.function(lambda v, g, m: layer({"vectors": v, "groups": g, "mask": m}))
    np.testing.assert_array_equal(graph(vectors, groups, mask)["assignment"].numpy(), ref["assignment"])


def test_summation_order_never_decides_a_tie():
    """Two-hot vectors in 32 dimensions: many mathematically equal distances that numpy and
    TensorFlow compute in different summation orders (last-bit differences). Before the tie
    tolerance, 26 of 32 such users clustered differently in the two paths."""
    params = {"num_groups": 1, "cluster_size": 20, "max_clusters": 16, "max_depth": 4, "iterations": 5,
              "max_branching": 8, "branching_exponent": 0.3}
    rng = np.random.default_rng(3)
    b, n, d = 16, 64, 32
    vectors = np.zeros((b, n, d), np.float32)
    for axis in (rng.integers(0, 6, (b, n)), rng.integers(0, 6, (b, n))):
        np.put_along_axis(vectors, axis[..., None], 1.0, -1)
    vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
    groups, mask = np.zeros((b, n), np.int64), np.ones((b, n), np.float32)
    out = _run(HierarchicalClustering(**params), vectors, groups, mask)
    ref = cluster_histories(vectors, groups, mask, **params)
    for key in ref:
        np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
    assert (ref["mask"].sum(1) > 2).all()  # real splits happened


def test_empty_batch():
    out = _run(HierarchicalClustering(**PARAMS, max_clusters=4), np.zeros((0, 8, 2), np.float32),
               np.zeros((0, 8), np.int64), np.zeros((0, 8), np.float32))
    assert out["size"].shape == (0, 4) and out["assignment"].shape == (0, 8)


def test_adaptive_branching_is_exact_at_powers():
    thresholds = branching_thresholds(8, 0.3)
    assert thresholds == (39, 102, 214, 393, 657, 1024)  # floor(n^0.3) reaches 3..8
    np.testing.assert_array_equal(branching([5, 20, 21, 38, 39, 1023, 1024, 5000], 20, thresholds),
                                  [1, 1, 2, 2, 3, 7, 8, 8])


def test_config_round_trip_and_bad_arguments():
    layer = HierarchicalClustering(max_clusters=4, **PARAMS)
    assert_layer_config_roundtrip(layer, {"vectors": VECTORS, "groups": GROUPS, "mask": MASK})
    with pytest.raises(ValueError, match="cluster_size"):
        HierarchicalClustering(2, cluster_size=0)
    with pytest.raises(ValueError, match="max_branching"):
        HierarchicalClustering(2, max_branching=1)
    with pytest.raises(ValueError, match="branching_exponent"):
        HierarchicalClustering(2, branching_exponent=0.0)
