"""IntraGroupAttention: masked MHSA + masked mean (DMGIN eqs. 2-4) against a numpy reference."""
import numpy as np

from tfrec.layers.intra_group_attention import IntraGroupAttention, masked_mean
from tfrec.testing import assert_layer_config_roundtrip

B, G, M, D = 2, 3, 4, 5


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.array([[[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]],
                     [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]]], bool)
    return {"behaviors": rng.normal(size=(B, G, M, D)).astype(np.float32), "mask": mask}


def reference(layer, x, mask):
    """Eqs. 2-4 in numpy from the layer's MultiHeadAttention weights."""
    mha = layer.attention
    wq, bq = mha._query_dense.get_weights()   # [D, H, dk], [H, dk]
    wk, bk = mha._key_dense.get_weights()
    wv, bv = mha._value_dense.get_weights()
    wo, bo = mha._output_dense.get_weights()  # [H, dk, out], [out]
    q = np.einsum("bgmd,dhk->bgmhk", x, wq) + bq
    k = np.einsum("bgmd,dhk->bgmhk", x, wk) + bk
    v = np.einsum("bgmd,dhk->bgmhk", x, wv) + bv
    logits = np.einsum("bgqhk,bgshk->bghqs", q, k) / np.sqrt(layer.key_dim)
    logits = np.where(mask[:, :, None, None, :], logits, -np.inf)
    logits = logits - np.max(np.where(np.isfinite(logits), logits, -1e30), axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights = weights / np.maximum(weights.sum(-1, keepdims=True), 1e-30)
    heads = np.einsum("bghqs,bgshk->bgqhk", weights, v)
    out = np.einsum("bgqhk,hko->bgqo", heads, wo) + bo  # [B, G, m, out]
    w = mask[..., None].astype(np.float64)
    return (out * w).sum(2) / np.maximum(w.sum(2), 1.0)


def test_matches_numpy_reference():
    inputs = _inputs()
    layer = IntraGroupAttention(num_heads=2, key_dim=3, output_dim=4)
    out = layer(inputs).numpy()
    assert out.shape == (B, G, 4)
    np.testing.assert_allclose(out, reference(layer, inputs["behaviors"], inputs["mask"]), atol=1e-5)


def test_masked_behaviors_do_not_change_the_output_and_empty_groups_are_zero():
    inputs = _inputs()
    layer = IntraGroupAttention(num_heads=2, key_dim=3, output_dim=4)
    out = layer(inputs).numpy()
    perturbed = inputs["behaviors"].copy()
    perturbed[~inputs["mask"]] = 1e3 * np.random.default_rng(1).normal(size=(int((~inputs["mask"]).sum()), D))
    np.testing.assert_allclose(layer({"behaviors": perturbed, "mask": inputs["mask"]}).numpy(), out, atol=1e-5)
    np.testing.assert_array_equal(out[:, 2], 0.0)
    assert np.all(np.isfinite(out))


def test_single_behavior_group_is_the_projected_value():
    # One valid behavior attends only to itself: e_i = (x W_v + b_v) W_o + b_o.
    inputs = _inputs()
    layer = IntraGroupAttention(num_heads=2, key_dim=3, output_dim=4)
    out = layer(inputs).numpy()
    wv, bv = layer.attention._value_dense.get_weights()
    wo, bo = layer.attention._output_dense.get_weights()
    x = inputs["behaviors"][0, 1, 0]
    np.testing.assert_allclose(out[0, 1], np.einsum("hk,hko->o", np.einsum("d,dhk->hk", x, wv) + bv, wo) + bo,
                               atol=1e-5)


def test_masked_mean():
    x = np.array([[[1.0], [3.0], [100.0]], [[5.0], [6.0], [7.0]]], np.float32)
    mask = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(masked_mean(x, mask, axis=1).numpy(), [[2.0], [0.0]])


def test_config_roundtrip():
    assert_layer_config_roundtrip(IntraGroupAttention(num_heads=2, key_dim=3, output_dim=4), _inputs(), atol=1e-6)


def test_mixed_float16_masked_groups_stay_finite():
    """Masked keys get float16's largest negative, never -inf * 0 = NaN."""
    import tensorflow as tf

    inputs = _inputs()
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = IntraGroupAttention(num_heads=2, key_dim=3, output_dim=4)
        out = layer({"behaviors": inputs["behaviors"].astype(np.float16), "mask": inputs["mask"]})
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.float16
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_array_equal(out.numpy()[:, 2], 0.0)  # the empty groups
