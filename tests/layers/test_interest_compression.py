import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.glu import GLU
from tfrec.layers.interest_compression import InterestCompression, code_histograms
from tfrec.testing import assert_layer_config_roundtrip


def _layer(books, **kwargs):
    """An InterestCompression whose level m codebook is ``books[m]`` (EMA state set to match)."""
    layer = InterestCompression([len(b) for b in books], books[0].shape[1], **kwargs)
    layer.build(tf.TensorShape([None, None, books[0].shape[1]]))
    for level, book in zip(layer.levels, books):
        level.codebooks.assign(book[None].astype(np.float32))
        level.ema_count.assign(np.full((1, len(book)), 5.0, np.float32))
        level.ema_sum.assign(5.0 * book[None].astype(np.float32))
    return layer


BOOK1 = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
BOOK2 = np.array([[0.0, 0.0], [1.0, 1.0]])


def test_codes_are_residual_nearest_neighbours_and_padding_gets_minus_one():
    layer = _layer([BOOK1, BOOK2])
    x = np.array([[[10.9, 1.2], [0.1, 9.2], [7.0, 7.0]],
                  [[0.2, 0.1], [99.0, 99.0], [99.0, -99.0]]], np.float32)
    mask = np.array([[1, 1, 1], [1, 0, 0]], bool)
    out = layer({"inputs": x, "mask": mask})
    # by hand: (10.9, 1.2) -> code 1, residual (0.9, 1.2) -> code 1; (0.1, 9.2) -> 2, (0.1, -0.8) -> 0;
    # (7, 7): 1 and 2 tie at distance sqrt(58) -> argmin takes 1, residual (-3, 7) -> 1 ((1,1) is nearer than 0)
    expected = np.array([[[1, 1], [2, 0], [1, 1]], [[0, 0], [-1, -1], [-1, -1]]])
    np.testing.assert_array_equal(out["codes"].numpy(), expected)
    # the output's value is the sum of the codewords, zero at padding
    np.testing.assert_allclose(out["quantized"].numpy()[0, 0], [11.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(out["quantized"].numpy()[1, 1:], 0.0)


def test_padding_never_moves_an_ema_codebook():
    x = np.array([[[10.5, 0.5], [0.5, 9.5]]], np.float32)
    with_padding = np.concatenate([x, np.full((1, 2, 2), 1e4, np.float32)], axis=1)
    a, b = _layer([BOOK1, BOOK2]), _layer([BOOK1, BOOK2])
    a({"inputs": x, "mask": np.ones((1, 2), bool)}, training=True)
    b({"inputs": with_padding, "mask": np.array([[1, 1, 0, 0]], bool)}, training=True)
    for la, lb in zip(a.levels, b.levels):
        np.testing.assert_allclose(la.codebooks.numpy(), lb.codebooks.numpy(), atol=1e-6)
    assert np.abs(b.levels[0].codebooks.numpy()).max() < 100  # the 1e4 padding rows were never seen


def test_gradient_is_the_sum_of_the_per_level_estimators():
    layer = _layer([BOOK1, BOOK2], beta=0.0)
    x = tf.Variable(np.array([[[10.9, 1.2]]], np.float32))
    with tf.GradientTape() as tape:
        out = layer({"inputs": x, "mask": np.ones((1, 1), bool)})
        y = tf.reduce_sum(out["quantized"])
    # CHIME: z = sum_m b^(m) + sg(...), and b^(m) moves one-to-one with b^(1): M x the incoming gradient
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 2.0)


def test_histograms_count_codes_per_level_over_valid_positions():
    codes = np.array([[[1, 1], [2, 0], [1, 1], [-1, -1]],
                      [[-1, -1], [-1, -1], [-1, -1], [-1, -1]]])
    counts = code_histograms(codes, [3, 2], normalize=False).numpy()
    np.testing.assert_array_equal(counts, [[0, 2, 1, 1, 2], [0, 0, 0, 0, 0]])
    freq = code_histograms(codes, [3, 2]).numpy()
    np.testing.assert_allclose(freq[0], [0, 2 / 3, 1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_array_equal(freq[1], 0.0)  # no behavior: all zeros, no NaN


def test_initialize_codebooks_clusters_each_levels_residuals():
    rng = np.random.default_rng(0)
    centers = np.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]])
    latents = centers[rng.integers(0, 3, 300)] + rng.normal(0, 0.5, (300, 2))
    layer = InterestCompression([3, 4], 2)
    layer.initialize_codebooks(latents)  # before the first call: the call must not rebuild the levels
    layer({"inputs": latents[None, :5].astype(np.float32), "mask": np.ones((1, 5), bool)})
    book = np.sort(layer.levels[0].codebooks.numpy()[0], axis=0)
    np.testing.assert_allclose(book, np.sort(centers, axis=0), atol=0.3)
    assert np.abs(layer.levels[1].codebooks.numpy()).max() < 2.5  # level 2 sees the small residuals


def test_config_roundtrip_and_bad_sizes():
    x = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    assert_layer_config_roundtrip(InterestCompression([4, 2], 4, gradient="rotation"),
                                  {"inputs": x, "mask": np.ones((2, 3), bool)})
    with pytest.raises(ValueError, match="codebook_sizes"):
        InterestCompression([], 4)


def test_glu_is_value_times_sigmoid_gate():
    layer = GLU(3)
    x = np.random.default_rng(2).normal(size=(2, 5)).astype(np.float32)
    y = layer(x).numpy()
    value = x @ layer.value.kernel.numpy() + layer.value.bias.numpy()
    gate = 1 / (1 + np.exp(-(x @ layer.gate.kernel.numpy() + layer.gate.bias.numpy())))
    np.testing.assert_allclose(y, value * gate, rtol=1e-5, atol=1e-6)
    assert_layer_config_roundtrip(GLU(3), x)
    with pytest.raises(ValueError, match="units"):
        GLU(0)
