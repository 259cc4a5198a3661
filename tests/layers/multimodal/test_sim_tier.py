"""SimTier (MUSE): tier ids on hand-computed cosines (edges, -1, 0, 1), padding never counted, log-count features."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.multimodal import SimTier
from tfrec.testing import assert_layer_config_roundtrip

# (cosine, tier) for 22 tiers: tier = ceil(10 s) + 10; a cosine on an edge belongs to the lower tier
GOLDEN = [(-1.0, 0), (-1.0000001, 0), (-0.95, 1), (-0.5, 5), (-0.25, 8), (0.0, 10), (0.05, 11), (0.25, 13),
          (0.5, 15), (0.5001, 16), (0.75, 18), (1.0, 20), (1.0000001, 20)]


def test_tiers_golden_values():
    layer = SimTier()
    s = np.array([c for c, _ in GOLDEN], np.float32)
    np.testing.assert_array_equal(layer.tiers(s).numpy(), [t for _, t in GOLDEN])
    # 6 tiers (m = 2): ceil(2 s) + 2
    np.testing.assert_array_equal(SimTier(6).tiers(np.array([-1, -0.5, -0.4, 0, 0.5, 0.6, 1], np.float32)).numpy(),
                                  [0, 1, 2, 2, 3, 4, 4])


def test_counts_skip_padding():
    layer = SimTier()
    s = np.array([[0.0, 0.0, 0.5, 0.5, 0.5, 1.0, -1.0, 0.0]], np.float32)
    mask = np.array([[1, 0, 1, 1, 0, 1, 1, 0]], np.float32)  # padding holds cosine 0 (MUSE counts it)
    expected = np.zeros((1, 22))
    expected[0, [10, 15, 20, 0]] = [1, 2, 1, 1]
    np.testing.assert_array_equal(layer.counts(s, mask).numpy(), expected)
    np.testing.assert_array_equal(layer.counts(s, np.zeros_like(mask)).numpy(), np.zeros((1, 22)))


def test_features_are_log_counts_times_the_tier_weights():
    layer = SimTier(dim=2)
    s = np.array([[[0.5, 0.45, -0.05, 0.3], [0.9, 0.9, 0.9, 0.0]]], np.float32)  # [1, 2, 4]
    mask = np.array([[[1, 1, 1, 0], [1, 1, 0, 1]]], np.float32)
    layer({"similarity": s, "mask": mask})
    w = np.arange(44, dtype=np.float32).reshape(22, 2) / 10
    layer.set_weights([w])
    out = layer({"similarity": s, "mask": mask}).numpy()
    assert out.shape == (1, 2, 44) and layer.output_dim == 44
    counts = np.zeros((2, 22))
    counts[0, 15], counts[0, 10] = 2, 1  # 0.5 and 0.45 in (0.4, 0.5]; -0.05 in (-0.1, 0]
    counts[1, 19], counts[1, 10] = 2, 1  # 0.9 on an edge: (0.8, 0.9]
    np.testing.assert_allclose(out[0], (np.log1p(counts)[..., None] * w).reshape(2, 44), rtol=1e-6)
    np.testing.assert_array_equal(layer({"similarity": s, "mask": np.zeros_like(mask)}).numpy(), 0.0)


def test_gradient_reaches_the_tier_weights_only():
    layer = SimTier()
    s = tf.constant([[0.3, 0.7, -0.2]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(s)
        out = tf.reduce_sum(layer({"similarity": s, "mask": tf.ones_like(s)}))
    assert tape.gradient(out, layer.tier_weights) is not None
    assert tape.gradient(out, s) is None  # tiering is a step function


@pytest.mark.parametrize("num_bins, dim", [(3, 1), (0, 1), (22, 0)])
def test_arguments_are_validated(num_bins, dim):
    with pytest.raises(ValueError, match="Received: num_bins"):
        SimTier(num_bins, dim)


def test_config_roundtrip():
    s = np.random.default_rng(0).uniform(-1, 1, (2, 3, 5)).astype(np.float32)
    mask = (np.random.default_rng(1).random((2, 3, 5)) < 0.6).astype(np.float32)
    assert_layer_config_roundtrip(SimTier(10, 3), {"similarity": s, "mask": mask}, expected_shapes=(2, 3, 30))
