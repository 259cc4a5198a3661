"""CHIME's holistic and immediate losses against a loop-by-loop numpy reference of eq. 1."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.losses import holistic_loss, immediate_loss


def _batch(seed, b=3, t=5, d=4):
    rng = np.random.default_rng(seed)
    z, p = rng.normal(size=(b, t, d)).astype(np.float32), rng.normal(size=(b, t, d)).astype(np.float32)
    labels = np.where(rng.random((b, t)) < 0.5, 1, -1)
    mask = np.ones((b, t), bool)
    mask[1, 3:] = False  # a shorter user
    mask[2, 1:] = False  # a user with one behavior
    return z, p, labels, mask


def reference_holistic(z, p, labels, mask, tau):
    terms = []
    b, t, _ = z.shape
    for u in range(b):
        for i in range(t):
            if not mask[u, i]:
                continue
            cands = [(u, j) for j in range(i + 1, t) if mask[u, j]]
            cands += [(v, j) for v in range(b) if v != u for j in range(t) if mask[v, j]]
            pos = [(u, j) for j in range(i + 1, t) if mask[u, j] and labels[u, j] > 0]
            s = {c: float(z[u, i] @ p[c]) / tau for c in cands}
            lse = np.log(sum(np.exp(v) for v in s.values())) if s else 0.0
            terms += [lse - s[c] for c in pos]
    return np.mean(terms) if terms else 0.0


def reference_immediate(z, p, labels, mask, bias, tau):
    terms = []
    for u in range(z.shape[0]):
        for i in range(z.shape[1] - 1):
            if mask[u, i] and mask[u, i + 1]:
                x = labels[u, i + 1] * (float(z[u, i] @ p[u, i + 1]) / tau - bias)
                terms.append(np.log1p(np.exp(-x)))
    return np.mean(terms) if terms else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holistic_loss_matches_eq_1a(seed):
    z, p, labels, mask = _batch(seed)
    got = float(holistic_loss(z, p, labels, mask, temperature=0.5))
    assert got == pytest.approx(reference_holistic(z, p, labels, mask, 0.5), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_immediate_loss_matches_eq_1b(seed):
    z, p, labels, mask = _batch(seed)
    got = float(immediate_loss(z, p, labels, mask, bias=0.3, temperature=0.7))
    assert got == pytest.approx(reference_immediate(z, p, labels, mask, 0.3, 0.7), rel=1e-5)


def test_padding_and_the_past_never_enter():
    z, p, labels, mask = _batch(4)
    base_h = float(holistic_loss(z, p, labels, mask))
    base_i = float(immediate_loss(z, p, labels, mask, 0.1))
    z2 = z.copy()
    z2[~mask] = 7.0  # padded positions are no query
    assert float(holistic_loss(z2, np.where(mask[..., None], p, 100.0), labels, mask)) == pytest.approx(base_h, rel=1e-6)
    assert float(immediate_loss(z2, np.where(mask[..., None], p, 100.0), labels, mask, 0.1)) == pytest.approx(
        base_i, rel=1e-6)
    # alone in the batch, a user's first behavior is in no position's future: it never enters
    alone = p[:1].copy()
    before = float(holistic_loss(z[:1], alone, labels[:1], mask[:1]))
    alone[0, 0] = 50.0
    assert float(holistic_loss(z[:1], alone, labels[:1], mask[:1])) == pytest.approx(before, rel=1e-6)
    # a user alone in the batch whose behaviors are all negative: no positive pair -> 0
    assert float(holistic_loss(z[:1], p[:1], -np.ones((1, 5)), np.ones((1, 5), bool))) == 0.0


def test_losses_have_gradients_for_both_towers():
    z, p, labels, mask = (tf.constant(a) for a in _batch(5))
    z, p = tf.Variable(z), tf.Variable(p)
    with tf.GradientTape() as tape:
        loss = holistic_loss(z, p, labels, mask) + immediate_loss(z, p, labels, mask, 0.0)
    gz, gp = tape.gradient(loss, [z, p])
    assert np.isfinite(gz.numpy()).all() and np.abs(gz.numpy()).sum() > 0 and np.abs(gp.numpy()).sum() > 0
