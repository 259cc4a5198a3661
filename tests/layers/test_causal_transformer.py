"""CausalTransformer (CHIME sec. 4.3): shapes, causality, padding, a NumPy reference, config round trip."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.causal_transformer import CausalTransformer
from tfrec.testing import assert_layer_config_roundtrip

B, T, D, H, F = 3, 6, 8, 2, 16


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], bool)
    return {"inputs": rng.normal(size=(B, T, D)).astype(np.float32), "mask": mask}


def _layer(**kw):
    layer = CausalTransformer(layers=2, dim=D, heads=H, ffn_dim=F, **kw)
    layer(_inputs())
    # non-trivial LayerNorm parameters so the reference checks them too
    rng = np.random.default_rng(1)
    for w in layer.weights:
        if "norm" in w.name:
            w.assign(w.numpy() + 0.1 * rng.normal(size=w.shape).astype(np.float32))
    return layer


def _reference(layer, x, mask):
    """The blocks in float64 NumPy, one sequence at a time, attending to valid s <= t (and itself)."""
    from scipy.special import erf

    def ln(v, norm):
        g, b = (w.astype(np.float64) for w in norm.get_weights())
        mu = v.mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(((v - mu) ** 2).mean(-1, keepdims=True) + layer.layer_norm_epsilon) * g + b

    def dense(v, d):
        k, b = (w.astype(np.float64) for w in d.get_weights())
        return v @ k + b

    out = np.zeros(x.shape)
    dh = D // H
    for n in range(x.shape[0]):
        h = x[n].astype(np.float64)
        allowed = (np.tril(np.ones((T, T), bool)) & mask[n][None, :]) | np.eye(T, dtype=bool)
        for blk in layer.blocks:
            q, k, v = (dense(h, blk[key]).reshape(T, H, dh).transpose(1, 0, 2) for key in ("query", "key", "value"))
            s = np.where(allowed, q @ k.transpose(0, 2, 1) / math.sqrt(dh), -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            ctx = (p @ v).transpose(1, 0, 2).reshape(T, D)
            h = ln(h + dense(ctx, blk["attention_output"]), blk["attention_norm"])
            i = dense(h, blk["intermediate"])
            h = ln(h + dense(0.5 * i * (1 + erf(i / math.sqrt(2))), blk["output"]), blk["output_norm"])
        out[n] = h * mask[n][:, None]
    return out


def test_shape_and_numpy_reference():
    inputs = _inputs()
    layer = _layer()
    y = layer(inputs).numpy()
    assert y.shape == (B, T, D) and y.dtype == np.float32
    np.testing.assert_allclose(y, _reference(layer, inputs["inputs"], inputs["mask"]), atol=1e-5)


def test_causality():
    inputs = _inputs()
    inputs["mask"][:] = True
    layer = _layer()
    y = layer(inputs).numpy()
    rng = np.random.default_rng(7)
    for t in range(T - 1):
        changed = {"inputs": inputs["inputs"].copy(), "mask": inputs["mask"]}
        changed["inputs"][:, t + 1:] = rng.normal(size=(B, T - t - 1, D)) * 10
        y2 = layer(changed).numpy()
        np.testing.assert_allclose(y2[:, :t + 1], y[:, :t + 1], atol=1e-6)
        assert np.abs(y2[:, t + 1:] - y[:, t + 1:]).max() > 1e-3  # later positions do change


def test_padding_never_leaks_and_stays_finite():
    inputs = _inputs()
    layer = _layer()
    y = layer(inputs).numpy()
    assert np.isfinite(y).all()
    noisy = {"inputs": inputs["inputs"].copy(), "mask": inputs["mask"]}
    noisy["inputs"][~inputs["mask"]] = 1e4  # garbage at padded positions
    y2 = layer(noisy).numpy()
    assert np.isfinite(y2).all()
    np.testing.assert_allclose(y2, y, atol=1e-6)
    assert (y[~inputs["mask"]] == 0).all()  # padded outputs are zeroed, fully padded row included
    # a padded key in the middle is skipped too: [1, 0, 1] == the sequence without it
    mid = {"inputs": inputs["inputs"][:1, :3], "mask": np.array([[True, False, True]])}
    short = {"inputs": inputs["inputs"][:1, [0, 2]], "mask": np.array([[True, True]])}
    np.testing.assert_allclose(layer(mid).numpy()[0, [0, 2]], layer(short).numpy()[0], atol=1e-5)


def test_no_mask_means_all_valid_and_int_mask():
    inputs = _inputs()
    layer = _layer()
    full = layer({"inputs": inputs["inputs"]}).numpy()
    np.testing.assert_allclose(full, layer({"inputs": inputs["inputs"], "mask": np.ones((B, T), np.int32)}).numpy())
    np.testing.assert_allclose(layer({"inputs": inputs["inputs"], "mask": inputs["mask"].astype(np.float32)}).numpy(),
                               layer(inputs).numpy())


def test_dropout_only_in_training():
    inputs = _inputs()
    layer = _layer(dropout=0.5)
    y = layer(inputs, training=False).numpy()
    np.testing.assert_allclose(layer(inputs).numpy(), y)
    assert np.abs(layer(inputs, training=True).numpy() - y).max() > 1e-3


def test_weights_are_named_per_block():
    layer = _layer()
    names = {w.name for w in layer.weights}
    assert len(layer.weights) == 2 * 16
    for i in range(2):
        for sub in ("query", "key", "value", "attention_output", "intermediate", "output"):
            assert f"{layer.name}/block{i}_{sub}/kernel:0" in names
        assert f"{layer.name}/block{i}_output_norm/gamma:0" in names


def test_in_graph_with_dynamic_length():
    layer = _layer()
    fn = tf.function(layer, input_signature=[{"inputs": tf.TensorSpec([None, None, D]),
                                              "mask": tf.TensorSpec([None, None], tf.bool)}])
    inputs = _inputs()
    np.testing.assert_allclose(fn(inputs).numpy(), layer(inputs).numpy(), atol=1e-6)


def test_config_roundtrip():
    layer = CausalTransformer(layers=2, dim=D, heads=H, ffn_dim=F, dropout=0.1, activation="relu",
                              layer_norm_epsilon=1e-6)
    rebuilt, _ = assert_layer_config_roundtrip(layer, _inputs(), expected_shapes=(B, T, D), training=False)
    assert rebuilt.get_config()["layers"] == 2 and rebuilt.activation == "relu"


@pytest.mark.parametrize("kw, match", [
    ({"layers": 0}, "must be positive"),
    ({"heads": 3}, "heads must divide dim"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"activation": "tanh"}, "activation must be one of"),
])
def test_invalid_arguments(kw, match):
    args = {"layers": 1, "dim": D, "heads": H, "ffn_dim": F}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        CausalTransformer(**args)


def test_wrong_input_dim():
    with pytest.raises(ValueError, match="last dimension must equal dim"):
        CausalTransformer(layers=1, dim=4, heads=2, ffn_dim=8)(_inputs())


def test_rope_scores_depend_only_on_relative_position():
    layer = CausalTransformer(layers=1, dim=D, heads=H, ffn_dim=F, rope=True)
    rng = np.random.default_rng(3)
    q, k = rng.normal(size=(1, D // H)).astype(np.float32), rng.normal(size=(1, D // H)).astype(np.float32)

    def score(i, j):
        qi = layer.rotary(tf.constant(q), tf.constant([i])).numpy()
        kj = layer.rotary(tf.constant(k), tf.constant([j])).numpy()
        return float((qi * kj).sum())

    assert score(5, 2) == pytest.approx(score(9, 6), abs=1e-4)  # same t - s
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    np.testing.assert_allclose(layer.rotary(tf.constant(q), tf.constant([0])).numpy(), q)  # position 0: identity


def test_rope_keeps_causality_and_round_trips():
    inputs = _inputs()
    inputs["mask"][:] = True
    layer = CausalTransformer(layers=2, dim=D, heads=H, ffn_dim=F, rope=True)
    y = layer(inputs).numpy()
    plain = CausalTransformer(layers=2, dim=D, heads=H, ffn_dim=F)
    plain(inputs)
    plain.set_weights(layer.get_weights())
    assert np.abs(plain(inputs).numpy() - y).max() > 1e-3  # the rotation changes the outputs
    changed = {"inputs": inputs["inputs"].copy(), "mask": inputs["mask"]}
    changed["inputs"][:, 3:] += 5.0
    np.testing.assert_allclose(layer(changed).numpy()[:, :3], y[:, :3], atol=1e-6)
    rebuilt, _ = assert_layer_config_roundtrip(layer, inputs, expected_shapes=(B, T, D), training=False)
    assert rebuilt.rope
