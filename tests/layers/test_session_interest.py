"""SessionInterest (DSIN sec. 4.2) and SessionInteracting (sec. 4.3): bias encoding against numpy,
masking (padding tokens and padding sessions change nothing), config round trips."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.session_interacting import SessionInteracting
from tfrec.layers.session_interest import SessionInterest, sinusoidal_encoding
from tfrec.testing import assert_layer_config_roundtrip

B, K, T, D = 3, 4, 5, 8


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    behaviors = rng.normal(size=(B, K, T, D)).astype(np.float32)
    lengths = np.array([[5, 2, 1, 0], [3, 0, 0, 0], [0, 0, 0, 0]])  # behaviors per session
    mask = (np.arange(T)[None, None, :] < lengths[..., None]).astype(np.float32)
    return behaviors, mask


def _layer(encoding="bias", seed=0, layer_norm=False):
    tf.keras.utils.set_random_seed(seed)
    layer = SessionInterest(num_heads=2, key_dim=4, ffn_dim=16, encoding=encoding, layer_norm=layer_norm)
    behaviors, mask = _inputs()
    layer({"behaviors": behaviors, "mask": mask})
    if encoding == "bias":  # non-zero biases (they start at zero)
        rng = np.random.default_rng(seed + 1)
        for w in (layer.session_bias, layer.position_bias, layer.unit_bias):
            w.assign(rng.normal(size=w.shape))
    return layer


def test_bias_encoding_matches_numpy():
    layer = _layer("bias")
    behaviors, _ = _inputs()
    wk, wt, wc = (w.numpy() for w in (layer.session_bias, layer.position_bias, layer.unit_bias))
    expected = behaviors.copy()
    for k in range(K):
        for t in range(T):
            for c in range(D):
                expected[:, k, t, c] += wk[k] + wt[t] + wc[c]  # BE_(k,t,c) = w^K_k + w^T_t + w^C_c
    np.testing.assert_allclose(layer.encode(tf.constant(behaviors)).numpy(), expected, atol=1e-6)
    pe = _layer("sinusoidal").encode(tf.constant(behaviors)).numpy() - behaviors
    np.testing.assert_allclose(pe[0, 1], sinusoidal_encoding(T, D), atol=1e-6)
    assert np.allclose(pe[0, 0, 1, :2], [np.sin(1.0), np.cos(1.0)])
    np.testing.assert_array_equal(_layer("none").encode(tf.constant(behaviors)).numpy(), behaviors)


def _reference(layer, behaviors, mask):
    """numpy: per session, encode, masked MHSA (Keras MHA's projections), residual (+ LN), FFN (+ LN), mean."""
    mha = layer.attention
    wq, bq = mha._query_dense.kernel.numpy(), mha._query_dense.bias.numpy()
    wk, bk = mha._key_dense.kernel.numpy(), mha._key_dense.bias.numpy()
    wv, bv = mha._value_dense.kernel.numpy(), mha._value_dense.bias.numpy()
    wo, bo = mha._output_dense.kernel.numpy(), mha._output_dense.bias.numpy()

    def norm(x, ln):
        if ln is None:
            return x
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + ln.epsilon) * ln.gamma.numpy() + ln.beta.numpy()

    x = layer.encode(tf.constant(behaviors)).numpy()
    out = np.zeros((B, K, D))
    for b in range(B):
        for k in range(K):
            valid = mask[b, k] > 0
            if not valid.any():
                continue
            s = x[b, k][valid]  # only the valid tokens: padding must not matter
            q = np.einsum("td,dhe->the", s, wq) + bq
            kk = np.einsum("td,dhe->the", s, wk) + bk
            v = np.einsum("td,dhe->the", s, wv) + bv
            logits = np.einsum("the,she->hts", q, kk) / np.sqrt(layer.key_dim)
            w = np.exp(logits - logits.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            a = np.einsum("hts,she->the", w, v)
            a = np.einsum("the,hed->td", a, wo) + bo
            h = norm(s + a, layer.attention_norm)
            f = np.maximum(h @ layer.ffn_hidden.kernel.numpy() + layer.ffn_hidden.bias.numpy(), 0)
            f = f @ layer.ffn_output.kernel.numpy() + layer.ffn_output.bias.numpy()
            out[b, k] = norm(h + f, layer.ffn_norm).mean(0)
    return out


@pytest.mark.parametrize("encoding,layer_norm", [("bias", False), ("sinusoidal", False), ("bias", True)])
def test_self_attention_within_sessions_matches_numpy(encoding, layer_norm):
    layer = _layer(encoding, layer_norm=layer_norm)
    behaviors, mask = _inputs()
    got = layer({"behaviors": behaviors, "mask": mask}).numpy()
    np.testing.assert_allclose(got, _reference(layer, behaviors, mask), atol=1e-5)
    assert (got[mask.sum(-1) == 0] == 0).all()  # empty sessions -> 0


def test_padding_tokens_do_not_change_the_output():
    layer = _layer()
    behaviors, mask = _inputs()
    noisy = np.where(mask[..., None] > 0, behaviors, 1e3 * np.random.default_rng(5).normal(size=behaviors.shape))
    a = layer({"behaviors": behaviors, "mask": mask}).numpy()
    b = layer({"behaviors": noisy.astype(np.float32), "mask": mask}).numpy()
    np.testing.assert_array_equal(a, b)
    # tokens of other sessions never reach a session (attention is within a session)
    other = behaviors.copy()
    other[:, 1:] += 5.0
    np.testing.assert_allclose(layer({"behaviors": other, "mask": mask}).numpy()[:, 0], a[:, 0], atol=1e-6)


def test_session_interest_config_round_trip():
    behaviors, mask = _inputs()
    for encoding, layer_norm in (("bias", False), ("sinusoidal", True), ("none", False)):
        layer = SessionInterest(num_heads=2, key_dim=4, ffn_dim=16, encoding=encoding, dropout=0.1,
                                layer_norm=layer_norm)
        assert_layer_config_roundtrip(layer, {"behaviors": behaviors, "mask": mask},
                                      expected_shapes=(B, K, D), training=False)
    with pytest.raises(ValueError, match="encoding='positional'"):
        SessionInterest(2, 4, 16, encoding="positional")
    with pytest.raises(ValueError, match="num_heads=0"):
        SessionInterest(0, 4, 16)


# -- SessionInteracting ------------------------------------------------------------------------
def _lstm_reference(cell, xs):
    """numpy LSTM (Keras gate order i, f, c, o) over xs [n, D] -> [n, h]."""
    w, u, b = (v.numpy() for v in cell.weights)
    h = np.zeros(cell.units)
    c = np.zeros(cell.units)
    out = []
    sig = lambda z: 1 / (1 + np.exp(-z))
    for x in xs:
        z = x @ w + h @ u + b
        i, f, g, o = np.split(z, 4)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        out.append(h)
    return np.array(out).reshape(len(xs), cell.units)


def test_bilstm_concatenates_directions_and_masks_padding_sessions():
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    sessions = rng.normal(size=(B, K, D)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    layer = SessionInteracting(3)
    got = layer({"sessions": sessions, "mask": mask}).numpy()
    assert got.shape == (B, K, 6)
    fw, bw = layer.bilstm.forward_layer.cell, layer.bilstm.backward_layer.cell
    for b in range(B):
        n = int(mask[b].sum())
        if n:
            np.testing.assert_allclose(got[b, :n, :3], _lstm_reference(fw, sessions[b, :n]), atol=1e-5)
            np.testing.assert_allclose(got[b, :n, 3:], _lstm_reference(bw, sessions[b, :n][::-1])[::-1], atol=1e-5)
        assert (got[b, n:] == 0).all()
    # padding sessions' values never matter
    noisy = np.where(mask[..., None] > 0, sessions, 100.0).astype(np.float32)
    np.testing.assert_allclose(layer({"sessions": noisy, "mask": mask}).numpy(), got, atol=1e-6)
    assert_layer_config_roundtrip(SessionInteracting(3), {"sessions": sessions, "mask": mask},
                                  expected_shapes=(B, K, 6))
    with pytest.raises(ValueError, match="units=0"):
        SessionInteracting(0)
