"""CandidateGroupAttention (DMGIN eq. 10) against a numpy reference."""
import numpy as np
import pytest

from tfrec.layers.candidate_group_attention import CandidateGroupAttention
from tfrec.testing import assert_layer_config_roundtrip


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"query": rng.normal(size=(3, 2, 5)).astype(np.float32),
            "keys": rng.normal(size=(3, 4, 6)).astype(np.float32),
            "mask": np.array([[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]], np.float32)}


def reference(layer, query, keys, mask, match=None):
    q = query @ layer.w_q.get_weights()[0]
    k = keys @ layer.w_k.get_weights()[0]
    v = keys @ layer.w_v.get_weights()[0]
    out = np.zeros(q.shape)
    for b in range(q.shape[0]):
        valid = mask[b] > 0
        if not valid.any():
            continue  # no group -> u = 0
        for c in range(q.shape[1]):
            logits = k[b, valid] @ q[b, c] / np.sqrt(layer.dim)
            if match is not None:
                logits = logits + float(layer.match_bias.numpy()) * match[b, c, valid]
            alpha = np.exp(logits - logits.max())
            alpha /= alpha.sum()
            out[b, c] = alpha @ v[b, valid]
    return out


def test_matches_reference_and_all_masked_is_zero():
    inputs = _inputs()
    layer = CandidateGroupAttention(dim=3)
    out = layer(inputs).numpy()
    assert out.shape == (3, 2, 3)
    np.testing.assert_allclose(out, reference(layer, **inputs), atol=1e-5)
    np.testing.assert_array_equal(out[2], 0.0)


def test_group_match_prior_matches_reference():
    inputs = _inputs()
    inputs["match"] = np.random.default_rng(1).integers(0, 2, size=(3, 2, 4)).astype(np.float32)
    layer = CandidateGroupAttention(dim=3)
    without = layer({k: v for k, v in inputs.items() if k != "match"}).numpy()
    layer.match_bias.assign(1.5)
    out = layer(inputs).numpy()
    np.testing.assert_allclose(out, reference(layer, **inputs), atol=1e-5)
    np.testing.assert_array_equal(out[2], 0.0)
    # no match input -> eq. 10 exactly, whatever the bias
    np.testing.assert_allclose(without, reference(layer, **{k: v for k, v in inputs.items() if k != "match"}),
                               atol=1e-5)


def test_masked_groups_are_ignored():
    inputs = _inputs()
    layer = CandidateGroupAttention(dim=3)
    out = layer(inputs).numpy()
    keys = inputs["keys"].copy()
    keys[inputs["mask"] == 0] = 50.0
    np.testing.assert_allclose(layer({**inputs, "keys": keys}).numpy(), out, atol=1e-6)


def test_one_group_gets_all_the_weight():
    inputs = _inputs()
    inputs["mask"] = np.array([[0, 0, 1, 0]] * 3, np.float32)
    layer = CandidateGroupAttention(dim=3)
    out = layer(inputs).numpy()
    expected = inputs["keys"][:, 2] @ layer.w_v.get_weights()[0]  # alpha = 1 -> u = W_v h
    np.testing.assert_allclose(out, np.repeat(expected[:, None], 2, axis=1), atol=1e-6)


def test_config_roundtrip():
    assert_layer_config_roundtrip(CandidateGroupAttention(dim=3), _inputs())


def test_without_match_prior_there_is_no_bias_weight_and_match_is_refused():
    inputs = _inputs()
    layer = CandidateGroupAttention(dim=3, match_prior=False)
    out = layer(inputs).numpy()
    assert "match_bias" not in [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
    assert len(layer.weights) == 3
    np.testing.assert_allclose(out, reference(layer, **inputs), atol=1e-5)
    with pytest.raises(ValueError, match="match_prior=False"):
        layer({**inputs, "match": np.ones((3, 2, 4), np.float32)})
    assert_layer_config_roundtrip(layer, inputs)
