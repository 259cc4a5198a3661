"""FeatureEmbedding: every kind against hand-computed rows, projections and buckets."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.schema import FeatureDef
from tfrec.layers.embedding import FeatureEmbedding
from tfrec.testing import assert_layer_config_roundtrip

NAN, INF = float("nan"), float("inf")


def _layer(feature, dim, *weights):
    layer = FeatureEmbedding(feature, dim)
    layer.build(None)
    layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return layer


# -- categorical ---------------------------------------------------------------------------------
def test_categorical_vocab_rows_and_oov():
    table = np.arange(8, dtype=np.float32).reshape(4, 2)  # 3 ids + the OOV row 3
    layer = _layer(FeatureDef("c", "categorical", vocab_size=3), 2, table)
    ids = np.array([0, 2, 3, -1, 100, -7, 1], np.int64)
    out = layer(ids).numpy()
    np.testing.assert_array_equal(out, table[[0, 2, 3, 3, 3, 3, 1]])
    np.testing.assert_array_equal(layer(ids.astype(np.int32)).numpy(), out)


def test_categorical_hashed_floormod_and_missing():
    table = np.arange(10, dtype=np.float32).reshape(5, 2)  # 4 buckets + the OOV row 4
    layer = _layer(FeatureDef("h", "categorical", hash_buckets=4), 2, table)
    ids = np.array([0, 5, -7, -1, -4, 2**40 + 1, 3], np.int64)
    # floormod(-7, 4) = 1, floormod(-4, 4) = 0, (2**40 + 1) mod 4 = 1; -1 (missing) -> OOV.
    np.testing.assert_array_equal(layer(ids).numpy(), table[[0, 1, 1, 4, 0, 1, 3]])


@pytest.mark.parametrize("shape", [(6,), (2, 3), (3, 2), (1, 2, 3)], ids=["B", "BL", "BC", "BLC"])
def test_categorical_any_rank(shape):
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    layer = _layer(FeatureDef("c", "categorical", vocab_size=3), 2, table)
    ids = np.array([0, 1, 2, 3, -1, 2], np.int64).reshape(shape)
    rows = np.array([0, 1, 2, 3, 3, 2]).reshape(shape)
    out = layer(ids).numpy()
    assert out.shape == shape + (2,)
    np.testing.assert_array_equal(out, table[rows])


# -- multi_categorical ---------------------------------------------------------------------------
MULTI_TABLE = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], np.float32)  # ids 0..2 + the OOV row 3


def test_multi_categorical_masked_mean():
    layer = _layer(FeatureDef("m", "multi_categorical", vocab_size=3, max_len=3), 2, MULTI_TABLE)
    ids = np.array([
        [0, 1, -1],     # mean(row 0, row 1)
        [-1, -1, -1],   # empty -> zeros
        [2, 5, -1],     # 5 >= vocab_size -> OOV row, counted in the mean
        [0, 0, 2],      # duplicates count twice
        [1, -5, -1],    # every negative id is padding
    ], np.int64)
    expected = np.array([[2, 3], [0, 0], [6, 7], [7 / 3, 10 / 3], [3, 4]], np.float32)
    out = layer(ids).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_array_equal(out[1], [0.0, 0.0])  # exactly zero, no 0/0


def test_multi_categorical_rank_3():
    layer = _layer(FeatureDef("m", "multi_categorical", vocab_size=3, max_len=2), 2, MULTI_TABLE)
    ids = np.array([[[0, 2], [-1, -1]], [[1, -1], [9, 9]]], np.int64)  # [B=2, L=2, max_len=2]
    expected = np.array([[[3, 4], [0, 0]], [[3, 4], [7, 8]]], np.float32)
    out = layer(ids).numpy()
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out, expected)


def test_multi_categorical_hashed():
    table = np.arange(10, dtype=np.float32).reshape(5, 2)  # 4 buckets + OOV
    layer = _layer(FeatureDef("m", "multi_categorical", hash_buckets=4, max_len=3), 2, table)
    ids = np.array([[5, 2, -1], [-1, -1, -1]], np.int64)
    np.testing.assert_allclose(layer(ids).numpy(), [(table[1] + table[2]) / 2, [0, 0]])


def test_multi_categorical_hashed_negative_id_is_hashed_not_dropped():
    table = np.arange(10, dtype=np.float32).reshape(5, 2)
    layer = _layer(FeatureDef("m", "multi_categorical", hash_buckets=4, max_len=3), 2, table)
    ids = np.array([[-7, 2, -1]], np.int64)  # floormod(-7, 4) = 1
    np.testing.assert_allclose(layer(ids).numpy(), [(table[1] + table[2]) / 2])


# -- numeric -------------------------------------------------------------------------------------
KERNEL, BIAS = [[2.0, -1.0]], [0.5, 1.0]


def _projected(x):
    return np.asarray(x, np.float32)[..., None] * np.array(KERNEL[0], np.float32) + np.array(BIAS, np.float32)


def test_numeric_none_projection_and_non_finite():
    layer = _layer(FeatureDef("x", "numeric"), 2, KERNEL, BIAS)
    x = np.array([1.0, -3.0, NAN, INF, -INF], np.float32)
    np.testing.assert_allclose(layer(x).numpy(), _projected([1.0, -3.0, 0.0, 0.0, 0.0]))


def test_numeric_log1p_clips_negatives():
    layer = _layer(FeatureDef("x", "numeric", transform="log1p"), 2, KERNEL, BIAS)
    x = np.array([math.e - 1, -5.0, 0.0, NAN, 3.0, INF], np.float32)
    np.testing.assert_allclose(layer(x).numpy(), _projected([1.0, 0.0, 0.0, 0.0, math.log(4.0), 0.0]), rtol=1e-6)


def test_numeric_standardize():
    layer = _layer(FeatureDef("x", "numeric", transform="standardize", mean=10.0, std=4.0), 2, KERNEL, BIAS)
    x = np.array([[10.0, 18.0], [2.0, NAN]], np.float32)  # NaN: a missing value reads as the mean -> 0
    out = layer(x).numpy()
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out, _projected([[0.0, 2.0], [-2.0, 0.0]]))


def test_numeric_boundaries_bucketize_upper_on_boundary():
    table = np.arange(8, dtype=np.float32).reshape(4, 2)  # 3 boundaries -> 4 buckets
    layer = _layer(FeatureDef("x", "numeric", boundaries=(0.0, 1.0, 10.0)), 2, table)
    x = np.array([-5.0, 0.0, 0.5, 1.0, 9.99, 10.0, 100.0, NAN, -INF], np.float32)
    buckets = [0, 1, 1, 2, 2, 3, 3, 1, 1]  # exactly on a boundary -> the upper bucket; NaN/inf -> 0 -> bucket 1
    np.testing.assert_array_equal(layer(x).numpy(), table[buckets])


def test_numeric_boundaries_apply_after_the_transform():
    table = np.arange(6, dtype=np.float32).reshape(3, 2)
    fd = FeatureDef("x", "numeric", transform="standardize", mean=2.0, std=2.0, boundaries=(0.0, 1.0))
    layer = _layer(fd, 2, table)
    x = np.array([[2.0, 4.0, 0.0, NAN]], np.float32)  # -> 0 (boundary), 1 (boundary), -1, NaN -> 0 (the mean)
    np.testing.assert_array_equal(layer(x).numpy(), table[[[1, 2, 0, 1]]])


def test_standardize_without_statistics_is_rejected_up_front():
    with pytest.raises(ValueError, match="mean"):
        FeatureEmbedding(FeatureDef("price", "numeric", transform="standardize"), 2)


# -- dense ---------------------------------------------------------------------------------------
def test_dense_projection_and_non_finite():
    kernel = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    layer = _layer(FeatureDef("v", "dense", dim=3), 2, kernel, [0.5, -0.5])
    x = np.array([[[1.0, 2.0, 3.0]], [[NAN, 2.0, INF]]], np.float32)  # [B=2, L=1, 3]
    out = layer(x).numpy()
    assert out.shape == (2, 1, 2)
    np.testing.assert_allclose(out, [[[4.5, 4.5]], [[0.5, 1.5]]])


# -- sizes, config, gradients --------------------------------------------------------------------
@pytest.mark.parametrize("fd, weight_shapes", [
    (FeatureDef("c", "categorical", vocab_size=3, embedding_dim=5), [(4, 5)]),
    (FeatureDef("m", "multi_categorical", hash_buckets=7, max_len=2, embedding_dim=5), [(8, 5)]),
    (FeatureDef("x", "numeric", embedding_dim=5), [(1, 5), (5,)]),
    (FeatureDef("x", "numeric", boundaries=(1.0, 2.0), embedding_dim=5), [(3, 5)]),
    (FeatureDef("v", "dense", dim=3, embedding_dim=5), [(3, 5), (5,)]),
])
def test_embedding_dim_overrides_dim(fd, weight_shapes):
    layer = FeatureEmbedding(fd, dim=2)
    assert layer.dim == 5
    layer.build(None)
    assert [tuple(w.shape) for w in layer.weights] == weight_shapes


def test_validation():
    with pytest.raises(ValueError, match="dim"):
        FeatureEmbedding(FeatureDef("c", "categorical", vocab_size=3), 0)


CONFIG_CASES = [
    (FeatureDef("c", "categorical", vocab_size=3), np.array([[0, 2, 7, -1]], np.int64)),
    (FeatureDef("h", "categorical", hash_buckets=5, embedding_dim=3), np.array([[0, -7, 12, -1]], np.int64)),
    (FeatureDef("m", "multi_categorical", vocab_size=4, max_len=3), np.array([[0, 5, -1], [-1, -1, -1]], np.int64)),
    (FeatureDef("x", "numeric", transform="log1p"), np.array([[0.0, 3.0, NAN]], np.float32)),
    (FeatureDef("x", "numeric", transform="standardize", mean=1.0, std=2.0, boundaries=(-1.0, 0.0, 1.0)),
     np.array([[0.0, 1.0, 5.0]], np.float32)),
    (FeatureDef("v", "dense", dim=3), np.array([[[1.0, NAN, 2.0]]], np.float32)),
]


@pytest.mark.parametrize("fd, inputs", CONFIG_CASES, ids=lambda v: getattr(v, "name", ""))
def test_config_roundtrip(fd, inputs):
    rebuilt, _ = assert_layer_config_roundtrip(FeatureEmbedding(fd, 2), inputs)
    assert rebuilt.feature == fd


def test_feature_as_dict_equals_feature_def():
    fd = FeatureDef("x", "numeric", transform="standardize", mean=1.0, std=2.0, boundaries=(0.0,))
    assert FeatureEmbedding(fd.to_dict(), 2).feature == fd


def _dense_grad(layer, inputs):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inputs))
    return tf.convert_to_tensor(tape.gradient(loss, layer.embeddings)).numpy()


def test_gradient_reaches_used_rows_only():
    cat = _layer(FeatureDef("c", "categorical", vocab_size=4), 2, np.ones((5, 2)))
    grad = _dense_grad(cat, np.array([1, 1, -1, 9], np.int64))  # row 1 twice, OOV (4) twice
    np.testing.assert_array_equal(grad, [[0, 0], [2, 2], [0, 0], [0, 0], [2, 2]])

    multi = _layer(FeatureDef("m", "multi_categorical", vocab_size=4, max_len=3), 2, np.ones((5, 2)))
    grad = _dense_grad(multi, np.array([[3, 2, -1], [-1, -1, -1]], np.int64))  # padding never reaches row 0
    np.testing.assert_array_equal(grad, [[0, 0], [0, 0], [0.5, 0.5], [0.5, 0.5], [0, 0]])

    bucket = _layer(FeatureDef("x", "numeric", boundaries=(0.0, 1.0)), 2, np.ones((3, 2)))
    grad = _dense_grad(bucket, np.array([0.5, 0.7, 5.0], np.float32))
    np.testing.assert_array_equal(grad, [[0, 0], [2, 2], [1, 1]])


def test_gradient_of_projection_ignores_non_finite_inputs():
    layer = _layer(FeatureDef("x", "numeric"), 2, KERNEL, BIAS)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(np.array([3.0, NAN, INF], np.float32)))
    g_kernel, g_bias = tape.gradient(loss, [layer.kernel, layer.bias])
    np.testing.assert_array_equal(g_kernel.numpy(), [[3.0, 3.0]])
    np.testing.assert_array_equal(g_bias.numpy(), [3.0, 3.0])
