"""TopKBehaviors (the GSU selection, SIREN eq. 7): golden cases and a numpy reference on tie-heavy random inputs."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.retrieval.top_k_behaviors import TopKBehaviors
from tfrec.testing import assert_layer_config_roundtrip


def reference(scores, mask, k):
    """Sorted by (-score, -position) over the eligible behaviors; slots past the eligible ones are invalid."""
    scores = np.asarray(scores, np.float32)
    mask = np.broadcast_to(np.asarray(mask).astype(bool), scores.shape)
    b, c, _ = scores.shape
    positions = np.full((b, c, k), -1, np.int32)  # -1: invalid, not compared
    valid = np.zeros((b, c, k), np.float32)
    top = np.zeros((b, c, k), np.float32)
    for i in range(b):
        for j in range(c):
            chosen = sorted(np.flatnonzero(mask[i, j]), key=lambda p: (-scores[i, j, p], -p))[:k]
            positions[i, j, :len(chosen)] = chosen
            valid[i, j, :len(chosen)] = 1
            top[i, j, :len(chosen)] = scores[i, j, chosen]
    return positions, valid, top


def assert_matches_reference(out, scores, mask, k):
    positions, valid, top = reference(scores, mask, k)
    out = {key: value.numpy() for key, value in out.items()}
    assert out["positions"].dtype == np.int32 and out["mask"].dtype == np.float32
    np.testing.assert_array_equal(out["mask"], valid)
    np.testing.assert_array_equal(out["scores"], top)
    np.testing.assert_array_equal(np.where(valid > 0, out["positions"], -1), positions)
    # invalid slots still point at some behavior (safe to gather, must not be read unmasked)
    assert np.all((out["positions"] >= 0) & (out["positions"] < np.shape(scores)[-1]))


def _call(layer, scores, mask):
    return layer({"scores": scores, "mask": mask})


# -- golden cases --------------------------------------------------------------------------------
def test_ties_go_to_the_more_recent_behavior():
    scores = np.array([[[2, 5, 5, 1, 5]]], np.float32)
    out = _call(TopKBehaviors(k=3), scores, np.ones((1, 1, 5), bool))
    np.testing.assert_array_equal(out["positions"].numpy(), [[[4, 2, 1]]])
    np.testing.assert_array_equal(out["scores"].numpy(), [[[5, 5, 5]]])
    out = _call(TopKBehaviors(k=3), scores, np.array([[[1, 1, 1, 1, 0]]], bool))  # the newest 5 masked
    np.testing.assert_array_equal(out["positions"].numpy(), [[[2, 1, 0]]])
    np.testing.assert_array_equal(out["scores"].numpy(), [[[5, 5, 2]]])


def test_padding_never_beats_negative_scores():
    # public SIM code multiplies by the mask: the padded 0 scores would outrank every real behavior
    scores = np.array([[[-5, -1, -3, 0, 0], [-2, -2, -9, 0, 7]]], np.float32)
    mask = np.array([[[1, 1, 1, 0, 0]]], np.float32)  # [B, 1, L], float
    out = _call(TopKBehaviors(k=3), scores, mask)
    np.testing.assert_array_equal(out["positions"].numpy(), [[[1, 2, 0], [1, 0, 2]]])
    np.testing.assert_array_equal(out["mask"].numpy(), np.ones((1, 2, 3)))
    np.testing.assert_array_equal(out["scores"].numpy(), [[[-1, -3, -5], [-2, -2, -9]]])
    out = _call(TopKBehaviors(k=4), scores, mask)  # K > eligible: the fourth slot is invalid
    np.testing.assert_array_equal(out["mask"].numpy(), [[[1, 1, 1, 0], [1, 1, 1, 0]]])
    np.testing.assert_array_equal(out["scores"].numpy(), [[[-1, -3, -5, 0], [-2, -2, -9, 0]]])
    np.testing.assert_array_equal(out["positions"].numpy()[..., :3], [[[1, 2, 0], [1, 0, 2]]])


def test_fewer_behaviors_than_k():
    out = _call(TopKBehaviors(k=4), np.array([[[1, 2]], [[-3, 4]]], np.float32),
                np.array([[[1, 1]], [[1, 0]]], bool))
    assert out["positions"].shape == (2, 1, 4)
    np.testing.assert_array_equal(out["mask"].numpy(), [[[1, 1, 0, 0]], [[1, 0, 0, 0]]])
    np.testing.assert_array_equal(out["scores"].numpy(), [[[2, 1, 0, 0]], [[-3, 0, 0, 0]]])
    np.testing.assert_array_equal(out["positions"].numpy()[0, 0, :2], [1, 0])
    assert out["positions"].numpy()[1, 0, 0] == 0


def test_all_masked_row():
    scores = np.array([[[3, -1, 2], [1, 1, 1]]], np.float32)
    out = _call(TopKBehaviors(k=2), scores, np.array([[[0, 0, 0], [1, 0, 1]]], bool))
    np.testing.assert_array_equal(out["mask"].numpy(), [[[0, 0], [1, 1]]])
    np.testing.assert_array_equal(out["scores"].numpy(), [[[0, 0], [1, 1]]])
    np.testing.assert_array_equal(out["positions"].numpy()[0, 1], [2, 0])


# -- against the reference -----------------------------------------------------------------------
@pytest.mark.parametrize("length, k", [(12, 4), (6, 6), (5, 1), (3, 5), (1, 2), (40, 8)])
@pytest.mark.parametrize("mask_shape", ["broadcast", "full"])
def test_random_ties_against_reference(length, k, mask_shape):
    rng = np.random.default_rng(length * 100 + k)
    b, c = 5, 3
    scores = rng.integers(-3, 3, size=(b, c, length)).astype(np.float32)  # many ties, many negatives
    mask = rng.random((b, 1 if mask_shape == "broadcast" else c, length)) < 0.6
    mask[0] = False  # an all-masked user
    mask[1] = True  # a full history
    if mask_shape == "full":
        mask[2, 1] = False  # one all-masked candidate
    scores[~np.broadcast_to(mask, scores.shape)] *= 0  # padding holds 0 (SIM's trap) ...
    scores[3, :, -1] = 9  # ... or a large score
    mask[3, :, -1] = False
    layer = TopKBehaviors(k=k)
    assert_matches_reference(_call(layer, scores, mask), scores, mask, k)
    assert_matches_reference(_call(layer, scores, mask.astype(np.float32)), scores, mask, k)


def test_in_a_tf_function_with_stock_ops_only():
    layer = TopKBehaviors(k=4)
    fn = tf.function(layer, input_signature=[{"scores": tf.TensorSpec([None, None, None], tf.float32),
                                              "mask": tf.TensorSpec([None, None, None], tf.bool)}])
    concrete = fn.get_concrete_function()
    graph_def = concrete.graph.as_graph_def()
    op_types = {node.op for node in graph_def.node}
    op_types |= {node.op for f in graph_def.library.function for node in f.node_def}
    assert "TopKV2" in op_types
    assert not op_types & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}, op_types
    assert concrete.structured_outputs["positions"].shape.as_list() == [None, None, 4]
    rng = np.random.default_rng(1)
    for length in (2, 9):  # one traced graph for L < K and L > K, broadcast mask
        scores = rng.integers(-2, 2, size=(3, 2, length)).astype(np.float32)
        mask = rng.random((3, 1, length)) < 0.5
        assert_matches_reference(concrete({"scores": tf.constant(scores), "mask": tf.constant(mask)}), scores, mask, 4)


def test_validation():
    with pytest.raises(ValueError, match="k=0"):
        TopKBehaviors(k=0)


def test_config_roundtrip():
    inputs = {"scores": np.array([[[1, 3, 2], [0, -1, 5]]], np.float32), "mask": np.array([[[1, 1, 0]]], bool)}
    assert_layer_config_roundtrip(TopKBehaviors(k=2), inputs,
                                  expected_shapes={"positions": (1, 2, 2), "mask": (1, 2, 2), "scores": (1, 2, 2)})
