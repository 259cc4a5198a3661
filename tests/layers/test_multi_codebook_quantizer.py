"""MultiCodebookQuantizer (DMQN eqs. 3-10): a hand-computed golden case, padding, noise, the
straight-through gradient against a numpy reference, the temperature and the dead-codeword restart
(on eq. 5's dot-product scores, where hand computation is simplest), then the default scaled cosine
scores: a golden case, their bound, the learnable scale, and training assignments that follow the
served argmax where dot products of small embeddings are drowned by the Gumbel noise."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.multi_codebook_quantizer import MultiCodebookQuantizer
from tfrec.testing import assert_layer_config_roundtrip, assert_nested_allclose

# Golden case: N = 2 codebooks, W = 3 codewords, D = D_e = 2, L = 4, batch 2.
# User 0 has 3 valid behaviors, user 1 has 2; padded slots hold values (and large timestamps)
# that would change every output if they leaked.
BEHAVIORS = np.array([[[2, 1], [-1, 3], [4, -1], [9, 9]],
                      [[-2, -1], [1, 2], [-5, 7], [3, 3]]], np.float32)
MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
TIMESTAMPS = np.array([[10, 20, 30, 99], [5, 7, 100, 200]], np.int64)
INPUTS = {"behaviors": BEHAVIORS, "mask": MASK, "timestamp": TIMESTAMPS}
# codebook 0: identity projection, h = (x, y); codebook 1: swap, h = (y, x)  (eq. 4, [N, D_e, D])
PROJECTION = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]]], np.float32)
CODEBOOKS = np.array([[[1, 0], [0, 1], [-1, -1]],  # scores (x, y, -x-y)
                      [[1, 0], [0, 1], [1, 1]]], np.float32)  # scores (y, x, x+y)

# eq. 5, [B, N, L, W]
EXPECTED_SCORES = np.array([
    [[[2, 1, -3], [-1, 3, -2], [4, -1, -3], [9, 9, -18]],
     [[1, 2, 3], [3, -1, 2], [-1, 4, 3], [9, 9, 18]]],
    [[[-2, -1, 3], [1, 2, -3], [-5, 7, -2], [3, 3, -6]],
     [[-1, -2, -3], [2, 1, 3], [7, -5, 2], [3, 3, 6]]],
], np.float32)
EXPECTED = {
    # argmax per valid behavior, -1 at padding  [B, N, L]
    "codes": np.array([[[0, 1, 0, -1], [2, 0, 1, -1]],
                       [[2, 1, -1, -1], [0, 2, -1, -1]]], np.int32),
    "count": np.array([[[2, 1, 0], [1, 1, 1]],
                       [[0, 1, 1], [1, 0, 1]]], np.float32),
    "mask": np.array([[[True, True, False], [True, True, True]],
                      [[False, True, True], [True, False, True]]]),
    # eqs. 9-10: mean of the *input* embeddings of each codeword's members, zeros when empty
    "clusters": np.array([
        [[[3, 0], [-1, 3], [0, 0]],           # u0 cb0: mean((2,1),(4,-1)), (-1,3), empty
         [[-1, 3], [4, -1], [2, 1]]],         # u0 cb1
        [[[0, 0], [1, 2], [-2, -1]],          # u1 cb0
         [[-2, -1], [0, 0], [1, 2]]],         # u1 cb1
    ], np.float32),
    # newest member's timestamp, -1 when empty
    "max_timestamp": np.array([[[30, 20, -1], [20, 30, 10]],
                               [[-1, 7, 5], [5, -1, 7]]], np.int64),
}


def _golden_layer(estimator="gumbel", temperature=1.0):
    layer = MultiCodebookQuantizer(num_codebooks=2, codebook_size=3, estimator=estimator, temperature=temperature,
                                   scores="dot")
    layer(INPUTS, training=False)
    layer.projection.assign(PROJECTION)
    layer.codebooks.assign(CODEBOOKS)
    return layer


def _numpy(outputs):
    return {k: v.numpy() for k, v in outputs.items()}


def test_golden_inference():
    layer = _golden_layer()
    np.testing.assert_allclose(layer.scores(BEHAVIORS).numpy(), EXPECTED_SCORES, atol=1e-6)
    out = _numpy(layer(INPUTS, training=False))
    assert {k: v.dtype for k, v in out.items()} == {
        "codes": np.int32, "count": np.float32, "mask": bool, "clusters": np.float32, "max_timestamp": np.int64}
    assert_nested_allclose(out, EXPECTED, atol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_padding_never_influences_outputs(training):
    layer = _golden_layer(estimator="softmax")
    extreme = {"behaviors": np.where(MASK[..., None], BEHAVIORS, np.float32(-1e4) * np.arange(1, 9).reshape(2, 4, 1)),
               "mask": MASK,
               "timestamp": np.where(MASK, TIMESTAMPS, np.int64(2) ** 62)}
    extreme["behaviors"][0, 3] = [1e4, -3e3]
    a = _numpy(layer(INPUTS, training=training))
    b = _numpy(layer(extreme, training=training))
    assert_nested_allclose(b, a, atol=0.0)
    assert_nested_allclose(a, EXPECTED, atol=1e-6)  # training forward is the hard one (softmax estimator)

    # and no gradient reaches the padded behaviors
    e = tf.constant(extreme["behaviors"])
    with tf.GradientTape() as tape:
        tape.watch(e)
        loss = tf.reduce_sum(layer({**extreme, "behaviors": e}, training=training)["clusters"] ** 2)
    grad = tape.gradient(loss, e).numpy()
    assert np.all(grad[~MASK] == 0.0)
    assert np.all(np.abs(grad[MASK]).sum(-1) > 0)


def test_empty_history_gives_empty_codewords():
    layer = _golden_layer()
    out = _numpy(layer({**INPUTS, "mask": np.zeros_like(MASK)}, training=False))
    assert np.all(out["codes"] == -1) and np.all(out["count"] == 0) and not out["mask"].any()
    assert np.all(out["clusters"] == 0) and np.all(out["max_timestamp"] == -1)


def _random_inputs(b=3, length=50, d=4, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.arange(length)[None, :] < rng.integers(1, length + 1, size=b)[:, None]
    return {"behaviors": rng.normal(size=(b, length, d)).astype(np.float32), "mask": mask,
            "timestamp": np.sort(rng.integers(0, 10**6, size=(b, length)), axis=1).astype(np.int64)}


def test_inference_is_deterministic_argmax_of_scores():
    tf.keras.utils.set_random_seed(1)
    inputs = _random_inputs()
    layer = MultiCodebookQuantizer(3, 5, estimator="gumbel", scores="dot")
    first, second = _numpy(layer(inputs, training=False)), _numpy(layer(inputs, training=False))
    assert_nested_allclose(second, first, atol=0.0)
    argmax = layer.scores(inputs["behaviors"]).numpy().argmax(-1)  # [B, N, L]
    np.testing.assert_array_equal(first["codes"], np.where(inputs["mask"][:, None, :], argmax, -1))
    assert len(np.unique(first["codes"][first["codes"] >= 0])) > 1  # a non-degenerate case


def test_gumbel_training_forward_is_a_sample_of_softmax_scores():
    """Eqs. 6-7 with the scores as logits: argmax(score + g) ~ Categorical(softmax(score))."""
    tf.keras.utils.set_random_seed(2)
    probs = np.array([0.5, 0.3, 0.2])
    n = 6000
    # identity projection and codebook: the scores are the behaviors themselves
    inputs = {"behaviors": np.tile(np.log(probs).astype(np.float32), (1, n, 1)), "mask": np.ones([1, n], bool),
              "timestamp": np.arange(n, dtype=np.int64)[None]}
    layer = MultiCodebookQuantizer(1, 3, estimator="gumbel", scores="dot")
    layer(inputs, training=False)
    layer.projection.assign(np.eye(3, dtype=np.float32)[None])
    layer.codebooks.assign(np.eye(3, dtype=np.float32)[None])
    assert np.all(layer(inputs, training=False)["codes"].numpy() == 0)  # inference: argmax, no noise
    first = layer(inputs, training=True)["codes"].numpy().ravel()
    second = layer(inputs, training=True)["codes"].numpy().ravel()
    np.testing.assert_allclose(np.bincount(first, minlength=3) / n, probs, atol=0.03)
    assert (first != second).mean() > 0.3  # fresh noise on every call
    out = _numpy(layer(inputs, training=True))
    np.testing.assert_array_equal(out["count"][0, 0], np.bincount(out["codes"].ravel(), minlength=3))

    # a score gap far beyond the Gumbel noise scale is never overturned
    far = {**inputs, "behaviors": np.tile(np.float32([[60.0, 0.0, -60.0]]), (1, n, 1))}
    assert np.all(layer(far, training=True)["codes"].numpy() == 0)


def test_gumbel_training_codes_differ_from_argmax_when_scores_are_close():
    tf.keras.utils.set_random_seed(3)
    inputs = _random_inputs(b=2, length=100)
    layer = MultiCodebookQuantizer(2, 4, estimator="gumbel", scores="dot")
    layer(inputs, training=False)
    layer.codebooks.assign(layer.codebooks * 0.05)  # scores within ~0.1 of each other
    hard = layer(inputs, training=False)["codes"].numpy()
    noisy = layer(inputs, training=True)["codes"].numpy()
    valid = hard >= 0
    np.testing.assert_array_equal(noisy >= 0, valid)
    assert (noisy[valid] != hard[valid]).mean() > 0.4


def test_training_usage_counts_the_served_argmax_not_the_noisy_samples():
    tf.keras.utils.set_random_seed(4)
    inputs = _random_inputs(b=2, length=100)
    layer = MultiCodebookQuantizer(2, 4, estimator="gumbel", scores="dot")
    layer(inputs, training=False)
    layer.codebooks.assign(layer.codebooks * 0.05)  # the noise changes most training assignments
    served = layer(inputs, training=False)["codes"].numpy()
    np.testing.assert_array_equal(layer.training_usage.numpy(), 0.0)  # inference counts nothing
    noisy = layer(inputs, training=True)["codes"].numpy()
    layer(inputs, training=True)
    expected = np.stack([np.bincount(served[:, j][served[:, j] >= 0], minlength=4) for j in range(2)])
    np.testing.assert_array_equal(layer.training_usage.numpy(), 2 * expected)  # two training calls
    noisy_counts = np.stack([np.bincount(noisy[:, j][noisy[:, j] >= 0], minlength=4) for j in range(2)])
    assert (noisy_counts != expected).any()


def test_softmax_estimator_training_forward_equals_inference():
    tf.keras.utils.set_random_seed(4)
    inputs = _random_inputs()
    layer = MultiCodebookQuantizer(2, 4, estimator="softmax", temperature=0.7, scores="dot")
    inference = _numpy(layer(inputs, training=False))
    for _ in range(2):
        assert_nested_allclose(_numpy(layer(inputs, training=True)), inference, atol=1e-6)


def _softmax(x):
    x = x - x.max(-1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(-1, keepdims=True)


def straight_through_grads(layer, inputs, g):
    """Numpy gradients of ``sum(g * clusters)`` w.r.t. codebooks, projection and behaviors under the
    softmax straight-through estimator: forward one-hot, backward through softmax(score / tau)."""
    e = inputs["behaviors"].astype(np.float64)
    valid = inputs["mask"].astype(np.float64)  # [B, L]
    p, c = layer.projection.numpy().astype(np.float64), layer.codebooks.numpy().astype(np.float64)
    tau = float(layer.temperature.numpy())
    h = np.einsum("ble,ned->bnld", e, p)
    scores = np.einsum("bnld,nwd->bnlw", h, c)
    hard = np.eye(c.shape[1])[scores.argmax(-1)] * valid[:, None, :, None]  # [B, N, L, W]
    count = hard.sum(2)  # [B, N, W]
    g_scaled = g / np.maximum(count, 1.0)[..., None]  # dloss/d(sum of members), [B, N, W, D_e]
    g_assign = np.einsum("bnwe,ble->bnlw", g_scaled, e) * valid[:, None, :, None]
    soft = _softmax(scores / tau)
    g_scores = soft * (g_assign - (soft * g_assign).sum(-1, keepdims=True)) / tau
    g_codebooks = np.einsum("bnlw,bnld->nwd", g_scores, h)
    g_h = np.einsum("bnlw,nwd->bnld", g_scores, c)
    g_projection = np.einsum("ble,bnld->ned", e, g_h)
    g_behaviors = np.einsum("bnlw,bnwe->ble", hard, g_scaled) + np.einsum("bnld,ned->ble", g_h, p)
    return {"codebooks": g_codebooks, "projection": g_projection, "behaviors": g_behaviors}


def _tf_grads(layer, inputs, g, training):
    e = tf.constant(inputs["behaviors"])
    with tf.GradientTape() as tape:
        tape.watch(e)
        out = layer({**inputs, "behaviors": e}, training=training)
        loss = tf.reduce_sum(g * out["clusters"])
    grads = tape.gradient(loss, [layer.codebooks, layer.projection, e])
    return out, dict(zip(["codebooks", "projection", "behaviors"], grads))


@pytest.mark.parametrize("estimator", ["softmax", "gumbel"])
def test_straight_through_gradients_in_training(estimator):
    tf.keras.utils.set_random_seed(5)
    inputs = _random_inputs(b=2, length=12, d=3)
    layer = MultiCodebookQuantizer(2, 4, code_dim=5, estimator=estimator, temperature=0.8, scores="dot")
    layer(inputs, training=False)
    g = tf.constant(np.random.default_rng(6).normal(size=(2, 2, 4, 3)), tf.float32)
    out, grads = _tf_grads(layer, inputs, g, training=True)
    for name in ("codebooks", "projection", "behaviors"):
        assert grads[name] is not None and np.abs(grads[name].numpy()).max() > 1e-4, name
    if estimator == "softmax":  # deterministic: compare with the reference and the hard forward
        expected = straight_through_grads(layer, inputs, g.numpy())
        for name in ("codebooks", "projection", "behaviors"):
            np.testing.assert_allclose(grads[name].numpy(), expected[name], atol=1e-5, rtol=1e-4, err_msg=name)
        assert_nested_allclose(_numpy(out), _numpy(layer(inputs, training=False)), atol=1e-6)


def test_no_gradient_to_codebooks_at_inference():
    """Hard argmax at inference: the clusters do not depend differentiably on codebooks or projection."""
    tf.keras.utils.set_random_seed(7)
    inputs = _random_inputs(b=2, length=12, d=3)
    layer = MultiCodebookQuantizer(2, 4, estimator="softmax", scores="dot")
    layer(inputs, training=False)
    g = tf.constant(np.random.default_rng(8).normal(size=(2, 2, 4, 3)), tf.float32)
    _, grads = _tf_grads(layer, inputs, g, training=False)
    assert grads["codebooks"] is None and grads["projection"] is None
    # the behaviors still get the average's gradient: g_k / count_k for each member of k
    out = _numpy(layer(inputs, training=False))
    codes, count = out["codes"], out["count"]
    ref = np.zeros(inputs["behaviors"].shape)
    for b in range(2):
        for n in range(2):
            for i in range(12):
                k = codes[b, n, i]
                if k >= 0:
                    ref[b, i] += g.numpy()[b, n, k] / count[b, n, k]
    np.testing.assert_allclose(grads["behaviors"].numpy(), ref, atol=1e-6)


def test_temperature_is_a_non_trainable_weight_shaping_only_the_gradient():
    tf.keras.utils.set_random_seed(9)
    inputs = _random_inputs(b=2, length=12, d=3)
    layer = MultiCodebookQuantizer(2, 4, estimator="softmax", temperature=2.5, scores="dot")
    layer(inputs, training=False)
    assert float(layer.temperature.numpy()) == 2.5
    assert any(w is layer.temperature for w in layer.non_trainable_weights)
    assert not any(w is layer.temperature for w in layer.trainable_weights)
    g = tf.constant(np.random.default_rng(10).normal(size=(2, 2, 4, 3)), tf.float32)
    out_hot, grads_hot = _tf_grads(layer, inputs, g, training=True)
    layer.temperature.assign(0.25)
    out_cold, grads_cold = _tf_grads(layer, inputs, g, training=True)
    assert_nested_allclose(_numpy(out_cold), _numpy(out_hot), atol=1e-6)  # hard + soft - soft: rounding only
    expected = straight_through_grads(layer, inputs, g.numpy())  # at tau = 0.25
    np.testing.assert_allclose(grads_cold["codebooks"].numpy(), expected["codebooks"], atol=1e-5, rtol=1e-4)
    hot, cold = np.abs(grads_hot["codebooks"].numpy()).sum(), np.abs(grads_cold["codebooks"].numpy()).sum()
    assert not np.isclose(hot, cold, rtol=0.05), (hot, cold)


def _collapsed_layer():
    """Codebook 0 collapsed (codeword 0 of norm 100 along a direction every behavior shares),
    codebook 1 healthy; behaviors with positive coordinates, identity projections."""
    rng = np.random.default_rng(11)
    behaviors = np.abs(rng.normal(size=(1, 40, 3))).astype(np.float32) + 0.1
    inputs = {"behaviors": behaviors, "mask": np.ones([1, 40], bool), "timestamp": np.zeros([1, 40], np.int64)}
    layer = MultiCodebookQuantizer(2, 4, scores="dot")
    layer(inputs, training=False)
    layer.projection.assign(np.stack([np.eye(3, dtype=np.float32)] * 2))
    book0 = rng.normal(scale=0.01, size=(4, 3))
    book0[0] = 100.0 * np.ones(3) / np.sqrt(3)
    book1 = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], np.float32)
    layer.codebooks.assign(np.stack([book0, book1]).astype(np.float32))
    return layer, inputs


def test_reset_dead_codewords_restarts_a_collapsed_codebook():
    layer, inputs = _collapsed_layer()
    count = layer(inputs, training=False)["count"].numpy()[0]
    np.testing.assert_array_equal(count[0], [40, 0, 0, 0])  # collapse
    dead = count == 0
    assert dead[1].sum() == 1  # codebook 1: codeword 3 (-1, -1, -1) is never the best
    before = layer.codebooks.numpy()
    projected = layer.project(inputs["behaviors"]).numpy()[0]  # [N, M, D]

    dead[1] = False  # codebook 1 is not to be touched
    restarted = layer.reset_dead_codewords(dead, [projected[0], projected[1]], seed=0)
    after = layer.codebooks.numpy()
    assert restarted == 3
    np.testing.assert_array_equal(after[0, 0], before[0, 0])  # the live codeword is kept
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(np.linalg.norm(after[0, 1:], axis=1), 100.0, rtol=1e-5)
    # each restarted codeword points along one observed projected behavior
    directions = projected[0] / np.linalg.norm(projected[0], axis=1, keepdims=True)
    for k in (1, 2, 3):
        assert np.abs(directions @ (after[0, k] / 100.0) - 1.0).min() < 1e-5
    count = layer(inputs, training=False)["count"].numpy()[0, 0]
    assert (count > 0).sum() > 1 and count.sum() == 40

    # same seed, same restart
    again, _ = _collapsed_layer()
    again.reset_dead_codewords(dead, [projected[0], projected[1]], seed=0)
    np.testing.assert_array_equal(again.codebooks.numpy(), after)


def test_reset_dead_codewords_without_dead_codewords_changes_nothing():
    layer, inputs = _collapsed_layer()
    before = layer.codebooks.numpy()
    projected = layer.project(inputs["behaviors"]).numpy()[0]
    assert layer.reset_dead_codewords(np.zeros([2, 4], bool), list(projected), seed=0) == 0
    # an all-dead codebook has no live norm to restart at: left alone too
    assert layer.reset_dead_codewords(np.array([[True] * 4, [False] * 4]), list(projected), seed=0) == 0
    # no observed behavior: nothing to restart on
    assert layer.reset_dead_codewords(np.array([[False, True, True, True]] * 2), [np.zeros([0, 3])] * 2) == 0
    np.testing.assert_array_equal(layer.codebooks.numpy(), before)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_codebooks": 0}, "num_codebooks=0"),
    ({"codebook_size": -1}, "codebook_size=-1"),
    ({"code_dim": 0}, "code_dim=0"),
    ({"estimator": "hard"}, "estimator='hard'"),
    ({"temperature": 0.0}, "temperature=0.0"),
    ({"temperature": -1.0}, "temperature=-1.0"),
    ({"scores": "l2"}, "scores='l2'"),
    ({"logit_scale": 0.0}, "logit_scale=0.0"),
    ({"logit_scale": 1000.0}, "logit_scale=1000.0"),
])
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiCodebookQuantizer(**{"num_codebooks": 2, "codebook_size": 3, **kwargs})


def test_config_roundtrip():
    layer = MultiCodebookQuantizer(2, 3, code_dim=5, estimator="softmax", temperature=0.5, scores="dot")
    rebuilt, _ = assert_layer_config_roundtrip(layer, INPUTS, training=False, expected_shapes={
        "clusters": (2, 2, 3, 2), "mask": (2, 2, 3), "count": (2, 2, 3), "max_timestamp": (2, 2, 3),
        "codes": (2, 2, 4)})
    assert rebuilt.get_config()["temperature"] == 0.5 and float(rebuilt.temperature.numpy()) == 0.5


@pytest.mark.parametrize("scores", ["cosine", "dot"])
def test_config_roundtrip_keeps_the_scores(scores):
    layer = MultiCodebookQuantizer(2, 3, scores=scores, logit_scale=7.0)
    rebuilt, _ = assert_layer_config_roundtrip(layer, INPUTS, training=False)
    assert rebuilt.get_config()["scores"] == scores and rebuilt.get_config()["logit_scale"] == 7.0
    assert (rebuilt.log_logit_scale is None) == (scores == "dot")


def test_cosine_golden_scores():
    """``s cos(h_i, c_k)`` on the golden projections / codebooks, by hand: s = 10 initially; a zero
    behavior scores 0; the scale is trainable and capped at 100."""
    layer = MultiCodebookQuantizer(2, 3)  # scores="cosine", logit_scale=10
    layer(INPUTS, training=False)
    layer.projection.assign(PROJECTION)
    layer.codebooks.assign(CODEBOOKS * np.float32([[[3.0]], [[0.5]]]))  # norms do not matter
    h = np.einsum("ble,ned->bnld", BEHAVIORS, PROJECTION)
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    c = CODEBOOKS / np.linalg.norm(CODEBOOKS, axis=-1, keepdims=True)
    expected = 10.0 * np.einsum("bnld,nwd->bnlw", h, c)
    np.testing.assert_allclose(layer.scores(BEHAVIORS).numpy(), expected, atol=1e-5)
    # e.g. user 0, behavior (2, 1) against codebook 0's (-1, -1): 10 * -3 / (sqrt(5) sqrt(2))
    np.testing.assert_allclose(layer.scores(BEHAVIORS).numpy()[0, 0, 0, 2], -30 / np.sqrt(10), rtol=1e-5)
    assert np.all(layer.scores(np.zeros((1, 2, 2), np.float32)).numpy() == 0.0)
    assert any(w is layer.log_logit_scale for w in layer.trainable_weights)
    layer.log_logit_scale.assign(np.log(1e4))
    assert np.abs(layer.scores(BEHAVIORS).numpy()).max() <= 100.0 + 1e-3
    inputs = _random_inputs(b=2, length=30, d=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inputs, training=True)["clusters"] ** 2)
    assert tape.gradient(loss, layer.log_logit_scale) is not None


def test_cosine_training_assignments_follow_the_served_argmax_for_small_embeddings():
    """The defect the cosine scores fix: embeddings of norm ~0.1 (as an embedding table starts)
    give dot-product logits far below the Gumbel noise's scale, so training assigned behaviors nearly
    at random (the clusters trained on were not the clusters served); scaled cosines keep most
    training assignments on the served argmax."""
    tf.keras.utils.set_random_seed(12)
    inputs = _random_inputs(b=4, length=200, d=16)
    inputs["behaviors"] *= np.float32(0.1 / 4.0)  # norm ~0.1
    agree = {}
    for scores in ("dot", "cosine"):
        layer = MultiCodebookQuantizer(4, 16, scores=scores)
        served = layer(inputs, training=False)["codes"].numpy()
        noisy = layer(inputs, training=True)["codes"].numpy()
        valid = served >= 0
        agree[scores] = (noisy[valid] == served[valid]).mean()
    assert agree["dot"] < 0.15 and agree["cosine"] > 0.4, agree  # measured: 0.06 / 0.53 (16 codewords)


def test_cosine_padding_gets_no_nan_and_no_gradient():
    """Padded (zeroed) behaviors have |h| = 0: their cosine is 0 and their gradients finite zeros."""
    tf.keras.utils.set_random_seed(13)
    inputs = _random_inputs(b=3, length=20, d=4)
    layer = MultiCodebookQuantizer(2, 4)
    e = tf.constant(inputs["behaviors"])
    with tf.GradientTape() as tape:
        tape.watch(e)
        loss = tf.reduce_sum(layer({**inputs, "behaviors": e}, training=True)["clusters"] ** 2)
    grads = tape.gradient(loss, [e, layer.codebooks, layer.projection, layer.log_logit_scale])
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert np.all(grads[0].numpy()[~inputs["mask"]] == 0.0)
