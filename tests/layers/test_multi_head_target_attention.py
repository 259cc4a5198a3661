"""MultiHeadTargetAttention (SIREN eq. 11; the ESU of MUSE / MISS): numpy reference, masking, MUSE's SA-TA,
the shared-projection relevance of a GSU, config round trip."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.multi_head_target_attention import MultiHeadTargetAttention
from tfrec.testing import assert_layer_config_roundtrip

B, C, K, DQ, DK, DV = 2, 3, 5, 6, 7, 4
H, DH, OUT = 2, 3, 4


def _inputs(seed=0, semantic=False):
    rng = np.random.default_rng(seed)
    mask = (rng.random((B, C, K)) < 0.7).astype(np.float32)
    mask[0, 1] = 0.0  # a candidate with no valid behavior
    mask[1, 2] = 1.0  # one with all valid
    x = {"query": rng.normal(size=(B, C, DQ)).astype(np.float32),
         "keys": rng.normal(size=(B, C, K, DK)).astype(np.float32),
         "values": rng.normal(size=(B, C, K, DV)).astype(np.float32), "mask": mask}
    if semantic:
        x["similarity"] = rng.uniform(-1, 1, (B, C, K)).astype(np.float32)
    return x


def _reference(layer, x, with_bias=False):
    """Plain numpy: per head softmax over the valid behaviors, concat of the heads' value sums."""
    wq, wk, wv = (w.kernel.numpy() for w in (layer.w_q, layer.w_k, layer.w_v))
    out = np.zeros((B, C, OUT), np.float64)
    dv = OUT // H
    for b in range(B):
        for c in range(C):
            q = x["query"][b, c] @ wq
            k = x["keys"][b, c] @ wk
            v = x["values"][b, c] @ wv
            valid = x["mask"][b, c] > 0
            for h in range(H):
                logits = k[:, h * DH:(h + 1) * DH] @ q[h * DH:(h + 1) * DH] / np.sqrt(DH)
                if layer.semantic_aware:
                    a = layer.similarity_temperature.numpy()[h]
                    b1, b2, b3 = layer.similarity_mix.numpy()[:, h]
                    s = x["similarity"][b, c] / a
                    logits = b1 * logits + b2 * s + b3 * logits * s
                if with_bias:
                    logits = logits + x["bias"][b, c]
                if not valid.any():
                    continue
                w = np.exp(logits[valid] - logits[valid].max())
                w /= w.sum()
                out[b, c, h * dv:(h + 1) * dv] = w @ v[valid, h * dv:(h + 1) * dv]
    return out


def test_matches_a_numpy_reference_and_empty_rows_are_zero():
    layer = MultiHeadTargetAttention(H, DH, OUT)
    x = _inputs()
    out = layer(x).numpy()
    assert out.shape == (B, C, OUT)
    np.testing.assert_allclose(out, _reference(layer, x), atol=1e-5)
    np.testing.assert_array_equal(out[0, 1], 0.0)  # all behaviors masked -> u = 0
    x["bias"] = np.random.default_rng(1).normal(size=(B, C, K)).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), _reference(layer, x, with_bias=True), atol=1e-5)


@pytest.mark.parametrize("semantic", [False, True])
def test_masked_behaviors_get_exactly_zero_weight(semantic):
    layer = MultiHeadTargetAttention(H, DH, OUT, semantic_aware=semantic)
    x = _inputs(2, semantic)
    out = layer(x).numpy()
    masked = x["mask"] == 0
    changed = dict(x)
    for key, scale in (("keys", 1e3), ("values", 1e6)):
        changed[key] = np.where(masked[..., None], scale, x[key]).astype(np.float32)
    if semantic:
        changed["similarity"] = np.where(masked, 1.0, x["similarity"]).astype(np.float32)
    np.testing.assert_array_equal(layer(changed).numpy(), out)


def test_semantic_aware_golden_value():
    # H = d_h = 1, identity projections: l = q k = [2, 0]; s / a = [0.5, 0] / 0.5 = [1, 0];
    # b = (1, 1, 1): l' = [2 + 1 + 2*1, 0] = [5, 0]; u = (e^5 * 1 + 1 * 3) / (e^5 + 1).
    layer = MultiHeadTargetAttention(1, 1, 1, semantic_aware=True)
    x = {"query": np.ones((1, 1, 1), np.float32), "keys": np.array([[[[2.0], [0.0]]]], np.float32),
         "values": np.array([[[[1.0], [3.0]]]], np.float32), "mask": np.ones((1, 1, 2), np.float32),
         "similarity": np.array([[[0.5, 0.0]]], np.float32)}
    layer(x)
    layer.set_weights([np.full([1], 0.5), np.ones([3, 1]), np.ones([1, 1]), np.ones([1, 1]), np.ones([1, 1])])
    assert [w.name.split("/")[-1] for w in layer.weights] == [
        "similarity_temperature:0", "similarity_mix:0", "kernel:0", "kernel:0", "kernel:0"]
    np.testing.assert_allclose(layer(x).numpy()[0, 0, 0], (np.exp(5) + 3) / (np.exp(5) + 1), rtol=1e-6)


def test_semantic_aware_logits_match_a_numpy_reference():
    layer = MultiHeadTargetAttention(H, DH, OUT, semantic_aware=True)
    x = _inputs(3, semantic=True)
    layer(x)
    rng = np.random.default_rng(4)
    layer.similarity_temperature.assign(rng.uniform(0.2, 1.0, H))
    layer.similarity_mix.assign(rng.normal(size=(3, H)))
    np.testing.assert_allclose(layer(x).numpy(), _reference(layer, x), atol=1e-5)
    # initial values are MUSE's: a = 0.1, b1 = b2 = b3 = 1
    fresh = MultiHeadTargetAttention(H, DH, OUT, semantic_aware=True)
    fresh(x)
    np.testing.assert_array_equal(fresh.similarity_temperature.numpy(), np.full(H, 0.1, np.float32))
    np.testing.assert_array_equal(fresh.similarity_mix.numpy(), np.ones((3, H)))


def test_semantic_aware_with_b_1_0_0_is_the_plain_attention():
    plain, semantic = MultiHeadTargetAttention(H, DH, OUT), MultiHeadTargetAttention(H, DH, OUT, semantic_aware=True)
    x = _inputs(5, semantic=True)
    semantic(x)
    plain({k: v for k, v in x.items() if k != "similarity"})
    assert len(plain.weights) == 3  # flag off: the three projections only (SIREN's checkpoints unchanged)
    semantic.w_q.set_weights(plain.w_q.get_weights())
    semantic.w_k.set_weights(plain.w_k.get_weights())
    semantic.w_v.set_weights(plain.w_v.get_weights())
    semantic.similarity_mix.assign(np.array([[1.0] * H, [0.0] * H, [0.0] * H]))
    np.testing.assert_allclose(semantic(x).numpy(), plain({k: v for k, v in x.items() if k != "similarity"}).numpy(),
                               atol=1e-6)


def test_similarity_input_must_match_the_flag():
    x = _inputs(6, semantic=True)
    with pytest.raises(ValueError, match="takes no `similarity`"):
        MultiHeadTargetAttention(H, DH, OUT)(x)
    with pytest.raises(ValueError, match="needs a `similarity`"):
        MultiHeadTargetAttention(H, DH, OUT, semantic_aware=True)({k: v for k, v in x.items() if k != "similarity"})
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadTargetAttention(3, DH, OUT)


def test_the_scalars_learn():
    layer = MultiHeadTargetAttention(H, DH, OUT, semantic_aware=True)
    x = _inputs(7, semantic=True)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(loss, [layer.similarity_temperature, layer.similarity_mix])
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)


def test_relevance_is_the_head_averaged_logit_over_a_shared_key_set():
    layer = MultiHeadTargetAttention(H, DH, OUT)
    rng = np.random.default_rng(8)
    query = rng.normal(size=(B, C, DQ)).astype(np.float32)
    keys = rng.normal(size=(B, 9, DK)).astype(np.float32)
    relevance = layer.relevance(query, keys).numpy()
    assert relevance.shape == (B, C, 9)
    per_head = layer.logits(query, np.broadcast_to(keys[:, None], (B, C, 9, DK))).numpy()  # [B, C, H, L]
    np.testing.assert_allclose(relevance, per_head.mean(axis=2), atol=1e-5)
    assert [w.name for w in layer.weights] == [f"{layer.name}/w_q/kernel:0", f"{layer.name}/w_k/kernel:0"]


@pytest.mark.parametrize("semantic", [False, True])
def test_config_roundtrip(semantic):
    layer = MultiHeadTargetAttention(H, DH, OUT, semantic_aware=semantic)
    rebuilt, _ = assert_layer_config_roundtrip(layer, _inputs(9, semantic), expected_shapes=(B, C, OUT))
    assert rebuilt.semantic_aware == semantic
