"""TopKTargetAttention (TWIN's CP-GSU + ESU, one scorer): against a loop-by-loop numpy reference."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.retrieval.top_k_target_attention import TopKTargetAttention
from tfrec.testing import assert_layer_config_roundtrip

H, DH, OUT, K = 2, 3, 4, 3


def reference(layer, inputs):
    """Per (b, c, h): logits over the valid behaviors (+ score_bias), the K best by (-logit, -position),
    + bias, softmax over them, sum of W_v values."""
    wq, wk, wv = (w.numpy() for w in (layer.w_q.kernel, layer.w_k.kernel, layer.w_v.kernel))
    q, k, v = inputs["query"] @ wq, inputs["keys"] @ wk, inputs["values"] @ wv
    b, c, n = q.shape[0], q.shape[1], k.shape[1]
    sb = np.broadcast_to(inputs.get("score_bias", np.zeros((b, n)))[:, None] if np.ndim(
        inputs.get("score_bias", np.zeros((b, n)))) == 2 else inputs["score_bias"], (b, c, n))
    pb = np.broadcast_to(inputs.get("bias", np.zeros((b, n)))[:, None], (b, c, n))
    out = np.zeros((b, c, OUT), np.float32)
    picked = {}
    for i in range(b):
        for j in range(c):
            for h in range(H):
                logits = q[i, j, h * DH:(h + 1) * DH] @ k[i, :, h * DH:(h + 1) * DH].T / np.sqrt(DH) + sb[i, j]
                valid = np.flatnonzero(inputs["mask"][i] > 0)
                chosen = sorted(valid, key=lambda p: (-np.float32(logits[p]), -p))[:K]
                picked[i, j, h] = chosen
                if not chosen:
                    continue
                z = logits[chosen] + pb[i, j, chosen]
                a = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                out[i, j, h * (OUT // H):(h + 1) * (OUT // H)] = a @ v[i, chosen, h * (OUT // H):(h + 1) * (OUT // H)]
    return out, picked


def _inputs(seed=0, bias=True, score_bias=False):
    rng = np.random.default_rng(seed)
    inputs = {"query": rng.normal(size=(3, 2, 5)).astype(np.float32),
              "keys": rng.normal(size=(3, 6, 5)).astype(np.float32),
              "values": rng.normal(size=(3, 6, 7)).astype(np.float32),
              # user 0: all 6 valid; user 1: 2 valid (< K), padding left; user 2: none
              "mask": np.array([[1] * 6, [0, 0, 0, 0, 1, 1], [0] * 6], np.float32)}
    inputs["keys"][0, 3] = inputs["keys"][0, 1]  # a tie: the later copy (position 3) ranks first
    if bias:
        inputs["bias"] = rng.normal(size=(3, 6)).astype(np.float32)
    if score_bias:
        inputs["score_bias"] = np.log(rng.integers(1, 9, (3, 6))).astype(np.float32)
    return inputs


@pytest.mark.parametrize("bias,score_bias", [(False, False), (True, False), (True, True)])
def test_matches_reference(bias, score_bias):
    tf.keras.utils.set_random_seed(0)
    layer = TopKTargetAttention(H, DH, OUT, K)
    inputs = _inputs(bias=bias, score_bias=score_bias)
    got = layer(inputs)
    expected, picked = reference(layer, inputs)
    np.testing.assert_allclose(got["output"].numpy(), expected, atol=1e-5)
    assert got["positions"].shape == (3, 2, H, K) and got["mask"].shape == (3, 2, H, K)
    for (i, j, h), chosen in picked.items():
        m = got["mask"].numpy()[i, j, h]
        assert m.sum() == len(chosen)
        assert list(got["positions"].numpy()[i, j, h][m > 0]) == chosen
    # the tie (positions 1 and 3 hold the same key) is exercised: the later copy ranks first
    assert any(3 in chosen and (1 not in chosen or chosen.index(3) < chosen.index(1))
               for (i, _, _), chosen in picked.items() if i == 0)
    assert got["mask"].numpy()[1].sum(-1).max() == 2  # fewer valid behaviors than K: masked slots
    np.testing.assert_array_equal(got["output"].numpy()[2], 0)  # nothing valid: u = 0


def test_bias_after_retrieval_does_not_change_what_is_retrieved():
    layer = TopKTargetAttention(H, DH, OUT, K)
    inputs = _inputs(bias=False)
    plain = layer(inputs)
    inputs["bias"] = np.full((3, 6), -50.0, np.float32)
    inputs["bias"][:, 0] = 50.0  # would win any retrieval, but only re-weights the retrieved
    biased = layer(inputs)
    np.testing.assert_array_equal(plain["positions"].numpy(), biased["positions"].numpy())
    inputs["score_bias"] = inputs.pop("bias")  # before retrieval it decides: position 0 is retrieved
    ranked = layer(inputs)["positions"].numpy()
    assert (ranked[0, :, :, 0] == 0).all()


def test_config_roundtrip_and_errors():
    assert_layer_config_roundtrip(TopKTargetAttention(H, DH, OUT, K), _inputs())
    with pytest.raises(ValueError, match="output_dim divisible"):
        TopKTargetAttention(3, DH, OUT, K)
