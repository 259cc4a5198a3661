"""HSTU (DMGIN eqs. 7-9): the layer against a plain numpy reference using its weights."""
import numpy as np
import pytest

from tfrec.layers.hstu import HSTU
from tfrec.testing import assert_layer_config_roundtrip

DAY = 86400
BOUNDS = (1 / 24, 1.0, 7.0, 30.0)
B, N, D = 3, 5, 6
T0 = 1_700_000_000  # realistic epoch seconds: float32 cannot hold them to the second


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    # pairwise gaps chosen right beside the bucket boundaries (1 h, 1 day, 7 days, 30 days)
    offsets = np.array([0, 3599, 3600 + 3599, DAY + 3600 + 3599, 7 * DAY + DAY + 7199])
    ts = np.stack([T0 + offsets, T0 + 2 * offsets + 1, T0 + offsets * 3])
    ts = np.where(mask, ts, -1).astype(np.int64)
    return {"x": rng.normal(size=(B, N, D)).astype(np.float32), "mask": mask, "timestamp": ts}


def _layer(causal=False, num_layers=2, identity_init=False):
    return HSTU(num_layers=num_layers, num_heads=2, head_dim=3, max_length=4, time_bucket_days=BOUNDS, causal=causal,
                identity_init=identity_init)


def _randomize(layer, seed=1):
    """Non-trivial values for every weight (LayerNorm scales, zero-initialised biases included)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()])


def _layer_norm(x, gamma, beta, eps=1e-3):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _silu(x):
    return x / (1.0 + np.exp(-x))


def reference(layer, x, mask, ts):
    """Eqs. 7-9, one loop per (user, head, query, key), in float64."""
    x = x.astype(np.float64)
    b, n, _ = x.shape
    h, dh, max_len = layer.num_heads, layer.head_dim, layer.max_length
    for blk in layer.blocks:
        w1, b1 = blk["uvqk"].get_weights()
        w2, b2 = blk["out"].get_weights()
        g_in, be_in = blk["norm_in"].get_weights()
        g_av, be_av = blk["norm_av"].get_weights()
        pos_bias, time_bias = blk["pos_bias"].numpy(), blk["time_bias"].numpy()
        uvqk = _silu(_layer_norm(x, g_in, be_in) @ w1 + b1)  # (7)
        u, v, q, k = np.split(uvqk, 4, axis=-1)
        av = np.zeros((b, n, h * dh))
        for bi in range(b):
            for i in range(n):
                keys = [j for j in range(n) if mask[bi, j] and (not layer.causal or j <= i)]
                for hi in range(h):
                    sl = slice(hi * dh, (hi + 1) * dh)
                    for j in keys:
                        rel = int(np.clip(i - j, 1 - max_len, max_len - 1)) + max_len - 1
                        bucket = int(np.searchsorted(layer.time_bucket_days, abs(int(ts[bi, i]) - int(ts[bi, j])) / DAY,
                                                     side="right"))
                        a = _silu(q[bi, i, sl] @ k[bi, j, sl] + pos_bias[rel, hi] + time_bias[bucket, hi])  # (8)
                        av[bi, i, sl] += a * v[bi, j, sl] / len(keys)
        x = x + (_layer_norm(av, g_av, be_av) * u) @ w2 + b2  # (9)
        x = x * mask[..., None]
    return x


@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference(causal):
    inputs = _inputs()
    layer = _layer(causal=causal)
    layer(inputs)
    _randomize(layer)
    out = layer(inputs).numpy()
    np.testing.assert_allclose(out, reference(layer, inputs["x"], inputs["mask"], inputs["timestamp"]),
                               atol=2e-4, rtol=1e-4)


def test_masked_keys_do_not_influence_valid_outputs_and_padding_is_zero():
    inputs = _inputs()
    layer = _layer()
    layer(inputs)
    _randomize(layer)
    out = layer(inputs).numpy()
    perturbed = dict(inputs)
    rng = np.random.default_rng(5)
    perturbed["x"] = np.where(inputs["mask"][..., None], inputs["x"], 100 * rng.normal(size=inputs["x"].shape))
    perturbed["timestamp"] = np.where(inputs["mask"], inputs["timestamp"], T0 + 10**7).astype(np.int64)
    np.testing.assert_allclose(layer(perturbed).numpy(), out, atol=1e-5)
    np.testing.assert_array_equal(out[~inputs["mask"]], 0.0)
    assert np.all(np.isfinite(out))


def test_relative_time_buckets_use_exact_timestamps():
    # With only the time bias non-zero, the output tells the bucket of each pair: gaps of
    # 3599 s and 3600 s must fall on both sides of the 1-hour boundary even at epoch ~1.7e9.
    inputs = _inputs()
    layer = _layer(num_layers=1)
    layer(inputs)
    _randomize(layer)
    blk = layer.blocks[0]
    blk["pos_bias"].assign(np.zeros_like(blk["pos_bias"].numpy()))
    ref = reference(layer, inputs["x"], inputs["mask"], inputs["timestamp"])
    np.testing.assert_allclose(layer(inputs).numpy(), ref, atol=2e-4, rtol=1e-4)


def test_validation():
    with pytest.raises(ValueError, match="num_layers"):
        HSTU(num_layers=0, num_heads=1, head_dim=2, max_length=3, time_bucket_days=BOUNDS)


def test_config_roundtrip():
    layer = _layer(causal=True)
    layer(_inputs())
    _randomize(layer)
    assert_layer_config_roundtrip(layer, _inputs(), expected_shapes=(B, N, D))


def test_identity_init_starts_every_block_as_the_identity_and_then_learns():
    """``identity_init``: W2 = 0, so the stack's output is its (masked) input at initialization, whatever
    the other weights; one gradient step moves W2 off zero, after which the blocks act (and the layer
    still matches the reference); the Glorot default does not start at the identity."""
    import tensorflow as tf

    inputs = _inputs()
    x = np.asarray(inputs["x"]) * np.asarray(inputs["mask"])[..., None]
    layer = _layer(identity_init=True)
    np.testing.assert_allclose(layer(inputs).numpy(), x, atol=1e-6)
    assert not np.allclose(_layer()(inputs).numpy(), x, atol=1e-3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(inputs) - 1.0))
    grads = tape.gradient(loss, layer.trainable_variables)
    w2 = [i for i, v in enumerate(layer.trainable_variables) if "out/kernel" in v.name]
    assert w2 and all(np.abs(grads[i].numpy()).max() > 0 for i in w2)
    tf.keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_variables))
    out = layer(inputs).numpy()
    assert not np.allclose(out, x, atol=1e-4)
    np.testing.assert_allclose(out, reference(layer, inputs["x"], inputs["mask"], inputs["timestamp"]),
                               atol=2e-4, rtol=1e-4)
    assert layer.get_config()["identity_init"] and not _layer().get_config()["identity_init"]
