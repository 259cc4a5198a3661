"""MultiCodebookQuantizer: DMQN's Multi-Cluster Quantization Module (DMQN eqs. 3-10)."""
import math

import tensorflow as tf

from tfrec.registry import register

ESTIMATORS = ("gumbel", "softmax")
SCORES = ("cosine", "dot")
MIN_LOGIT_SCALE, MAX_LOGIT_SCALE = 1.0, 100.0


@register
class MultiCodebookQuantizer(tf.keras.layers.Layer):
    """Quantizes a whole behavior sequence against N learnable codebooks (DMQN eqs. 3-10).

    For each codebook ``j`` (``c_j`` is ``[W, D]``, eq. 3)::

      h_i     = e_i W2_j                                   (4)  per-codebook projection, [D_e, D]
      score_i = s cos(h_i, c_j)  (or h_i c_j^T)            (5)  scaled cosines, [W]
      z_i     = argmax_k (score_ik + g_ik)                 (6-8) g ~ Gumbel(0, 1), training only
      r_k     = mean(e_i | z_i = k)                        (9-10) avg-pool of the raw embeddings

    Choices the paper leaves open (also in DESIGN.md / docs/models.md):

    * **Scores are the logits.** Eq. 6 writes ``log(score)``, but dot-product scores can be
      negative, so the scores themselves are the Gumbel-softmax logits: the forward sample is a
      draw from ``softmax(score)``, which is eq. 6 with ``score`` read as a log-probability.
    * **Scaled cosine scores** (``scores="cosine"``, the default): ``score = s cos(h_i, c_k)`` with a
      learnable scale ``s = exp(log_logit_scale)`` (initially ``logit_scale``, kept in ``[1, 100]``),
      not eq. 5's raw dot product (``scores="dot"``). As logits of a Gumbel-max sample the scores'
      *scale* decides how random the training assignment is, and dot products of small behavior
      embeddings are tiny: in the benchmark's DMQN (synthetic-medium) their spread was ~0.16
      against the noise's 1.28, so training assigned behaviors nearly at random (2.3% agreed
      with the served argmax), the clusters trained on were not the clusters served, and the
      model fit worse than a constant (test logloss 0.621). Cosines put the logits on a scale of
      ``s`` whatever the embeddings' norms: at initialization (16 random codewords of 16 dims)
      53% of training assignments equal the served argmax (dot products: 6%; the test
      ``test_cosine_training_assignments_follow_the_served_argmax_for_small_embeddings``), fewer
      with more codewords, more as the codewords align with the behaviors. The same benchmark cell: AUC 0.614 ->
      0.630 / 0.652 (two runs), logloss 0.621 -> 0.602 / 0.591 (docs/models.md, "DMQN").
    * **Straight-through.** The forward pass uses the hard one-hot ``onehot(z)``; gradients reach
      the codebook and the projection through the relaxation ``softmax((score + g) / tau)``
      (``assign = hard + soft - stop_gradient(soft)``). ``tau`` therefore only shapes the
      gradient: the argmax of eq. 7 does not depend on it. It is a non-trainable weight, so a
      schedule (``CodebookHealth``) can anneal it.
    * **Inference is deterministic**: no noise outside training; ``z = argmax(score)``.
    * ``estimator="softmax"`` is the ablation without Gumbel noise (plain softmax straight-through).
    * ``r_k`` averages the behaviors' *input* embeddings ``e_i`` (eq. 9), not the projections; the
      denominator is the (non-differentiable) member count; empty codewords are zero and masked.
    * Codebook entries start unit-variance normal (norm ~sqrt(D)) and the projections
      Glorot-uniform. Chosen for ``scores="dot"``: at initialization the scores of small embeddings
      (norm ~0.1) are then less drowned by the Gumbel noise (with norm-1 codewords the
      planted-signal test, tests/models/test_dmqn.py, reached AUC 0.65 / 0.74 / 0.66 on seeds 0-2,
      with these 0.78 / 0.75 / 0.69). With dot-product scores a codeword of large norm can
      capture everything, which is why ``reset_dead_codewords`` restarts unused codewords at the
      live codewords' largest norm (with cosines only the direction counts).

    Args:
      num_codebooks: N.
      codebook_size: W, codewords per codebook.
      code_dim: D, the codeword size (default: the behavior embedding size).
      estimator: "gumbel" (the paper) or "softmax" (no noise).
      temperature: initial tau of the relaxation (eq. 6).
      scores: "cosine" (scaled cosines, default) or "dot" (eq. 5's dot products).
      logit_scale: initial s of the cosine scores.

    Input: dict with ``behaviors`` ``[B, L, D_e]``, ``mask`` ``[B, L]`` and ``timestamp`` int64
      ``[B, L]``.
    Weights: ``projection`` ``[N, D_e, D]``, ``codebooks`` ``[N, W, D]``, ``log_logit_scale`` (cosine
    scores), and non-trainable
    ``temperature`` and ``training_usage`` ``[N, W]`` (behaviors of the training calls each
    codeword wins at argmax, i.e. as served, for ``CodebookHealth``; serving never touches it).

    Output: dict with ``clusters`` ``[B, N, W, D_e]`` (r_k, zeros when empty), ``mask`` bool
      ``[B, N, W]`` (codeword has a member), ``count`` float32 ``[B, N, W]``, ``max_timestamp``
      int64 ``[B, N, W]`` (newest member, -1 when empty) and ``codes`` int32 ``[B, N, L]``
      (``z_i``, -1 at padding).
    """

    def __init__(self, num_codebooks: int, codebook_size: int, code_dim=None, estimator: str = "gumbel",
                 temperature: float = 1.0, scores: str = "cosine", logit_scale: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        if num_codebooks < 1 or codebook_size < 1 or (code_dim is not None and code_dim < 1):
            raise ValueError("num_codebooks, codebook_size and code_dim must be positive. Received: "
                             f"num_codebooks={num_codebooks}, codebook_size={codebook_size}, code_dim={code_dim}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {list(ESTIMATORS)}. Received: estimator={estimator!r}")
        if scores not in SCORES:
            raise ValueError(f"scores must be one of {list(SCORES)}. Received: scores={scores!r}")
        if not MIN_LOGIT_SCALE <= logit_scale <= MAX_LOGIT_SCALE:
            raise ValueError(f"logit_scale must be in [{MIN_LOGIT_SCALE:g}, {MAX_LOGIT_SCALE:g}]. "
                             f"Received: logit_scale={logit_scale!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature!r}")
        self.num_codebooks = int(num_codebooks)
        self.codebook_size = int(codebook_size)
        self.code_dim = None if code_dim is None else int(code_dim)
        self.estimator = estimator
        self.initial_temperature = float(temperature)
        self.score_kind = scores
        self.initial_logit_scale = float(logit_scale)

    def build(self, input_shape):
        d_e = int(input_shape["behaviors"][-1])
        d = self.code_dim or d_e
        n, w = self.num_codebooks, self.codebook_size
        self.projection = self.add_weight(name="projection", shape=[n, d_e, d],
                                          initializer=tf.keras.initializers.GlorotUniform())
        self.codebooks = self.add_weight(name="codebooks", shape=[n, w, d],
                                         initializer=tf.keras.initializers.RandomNormal(stddev=1.0))
        self.log_logit_scale = None
        if self.score_kind == "cosine":
            self.log_logit_scale = self.add_weight(
                name="log_logit_scale", shape=[],
                initializer=tf.keras.initializers.Constant(math.log(self.initial_logit_scale)))
        self.temperature = self.add_weight(name="temperature", shape=[], trainable=False,
                                           initializer=tf.keras.initializers.Constant(self.initial_temperature))
        # behaviors each codeword wins at argmax (as served, without the noise) in the training
        # calls since the last reset (CodebookHealth zeroes it every epoch; summed across
        # replicas like a Keras metric)
        self.training_usage = self.add_weight(name="training_usage", shape=[n, w], trainable=False,
                                              initializer="zeros",
                                              synchronization=tf.VariableSynchronization.ON_READ,
                                              aggregation=tf.VariableAggregation.SUM)
        super().build(input_shape)

    def project(self, behaviors):
        """``h`` of eq. 4 for every codebook: ``[B, L, D_e]`` -> ``[B, N, L, D]``."""
        return tf.einsum("ble,ned->bnld", behaviors, self.projection)

    def scores(self, behaviors):
        """Eq. 5 for every codebook: ``[B, L, D_e]`` -> ``[B, N, L, W]``."""
        return tf.transpose(self._scores(behaviors), [0, 2, 1, 3])

    def logit_scale(self):
        """``s`` of the cosine scores: ``exp(log_logit_scale)`` clipped to ``[1, 100]``."""
        return tf.clip_by_value(tf.exp(self.log_logit_scale), MIN_LOGIT_SCALE, MAX_LOGIT_SCALE)

    def _scores(self, behaviors):
        """Eq. 5 as ``[B, L, N, W]``. Dot: ``e (W2_j c_j^T)``, one ``[B*L, D_e] x [D_e, N*W]`` matmul (the
        same product as ``(e W2_j) c_j^T``, associated the cheap way). Cosine: the same matmul with unit
        codewords, times ``s / |e W2_j|`` (``rsqrt(max(|h|^2, 1e-12))`` as ``tf.math.l2_normalize``: a zero
        row scores 0 and gets no NaN gradient); no ``[B, L, N, D]`` transpose in either direction."""
        d_e = tf.shape(behaviors)[-1]
        n, w = self.num_codebooks, self.codebook_size
        cosine = self.score_kind == "cosine"
        book = tf.math.l2_normalize(self.codebooks, axis=-1) if cosine else self.codebooks
        joint = tf.reshape(tf.einsum("ned,nwd->enw", self.projection, book), [d_e, n * w])
        flat_e = tf.reshape(behaviors, [-1, d_e])
        flat = tf.reshape(tf.matmul(flat_e, joint), [-1, n, w])  # [B*L, N, W]
        if cosine:
            h = tf.matmul(flat_e, tf.reshape(tf.transpose(self.projection, [1, 0, 2]), [d_e, -1]))  # [B*L, N*D]
            h = tf.reshape(h, [-1, n, tf.shape(self.projection)[-1]])
            inverse_norm = tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(h), -1), 1e-12))  # [B*L, N]
            flat = flat * (self.logit_scale() * inverse_norm)[..., None]
        return tf.reshape(flat, tf.concat([tf.shape(behaviors)[:2], [n, w]], 0))

    def call(self, inputs, training=None):
        valid = tf.cast(inputs["mask"], tf.bool)  # [B, L]
        # padding is zeroed with `where` (a multiplied mask would let a NaN there through); zero
        # rows then add nothing to the pooled sums and get no gradient
        e = tf.where(valid[..., None], inputs["behaviors"], tf.zeros_like(inputs["behaviors"]))
        n, w = self.num_codebooks, self.codebook_size
        b = tf.shape(e)[0]
        logits = self._scores(e)  # [B, L, N, W]
        served_codes = codes = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [B, L, N]
        if training and self.estimator == "gumbel":
            u = tf.random.uniform(tf.shape(logits), minval=1e-9, maxval=1.0, dtype=logits.dtype)
            logits += -tf.math.log(-tf.math.log(u))
            codes = tf.argmax(logits, axis=-1, output_type=tf.int32)
        n_segments = b * n * w
        segments = _segments(codes, valid, n, w)
        if training:  # straight-through: forward = the hard pooling, gradient of the relaxation
            sums = _straight_through_pool(logits, e, segments, n_segments + 1, tf.convert_to_tensor(self.temperature))
        else:
            sums = _pool(e, segments, n_segments + 1)
        ones = tf.cast(valid, e.dtype)
        count = tf.reshape(_pool(ones, segments, n_segments + 1)[:-1], [b, n, w])
        clusters = tf.reshape(sums[:-1], [b, n, w, -1]) / tf.maximum(count, 1.0)[..., None]
        if training:  # what serving would have chosen for these behaviors (no noise)
            served = count if served_codes is codes else _pool(ones, _segments(served_codes, valid, n, w), n_segments + 1)[:-1]
            self.training_usage.assign_add(tf.reduce_sum(tf.reshape(served, [b, n, w]), axis=0))

        # newest member per codeword: one segment max over (user, codebook, codeword)
        ts = tf.where(valid, tf.cast(inputs["timestamp"], tf.int64), tf.constant(-1, tf.int64))
        newest = _pool(ts, segments, n_segments + 1, tf.math.unsorted_segment_max)[:-1]
        mask = count > 0
        max_ts = tf.where(mask, tf.reshape(newest, [b, n, w]), tf.constant(-1, tf.int64))
        codes = tf.where(valid[:, None, :], tf.transpose(codes, [0, 2, 1]), -1)  # [B, N, L]
        return {"clusters": clusters, "mask": mask, "count": count, "max_timestamp": max_ts, "codes": codes}

    def reset_dead_codewords(self, dead, projected, seed=None) -> int:
        """Restarts unused codewords on real behaviors (the collapse remedy).

        Each dead codeword of codebook j becomes the direction of a randomly drawn projected
        behavior ``h_i`` scaled to the largest norm among codebook j's live codewords, so
        ``h_i`` scores it at least as high as any live codeword (Cauchy-Schwarz; with cosine
        scores its cosine is 1) and the codeword is used again. The draws come from the
        behaviors the caller observed.

        Args:
          dead: bool ``[N, W]``, the codewords to restart.
          projected: a list of N float arrays ``[M_j, D]``: observed projections under each codebook.
          seed: numpy seed of the draws.

        Returns:
          The number of codewords restarted.
        """
        import numpy as np

        dead = np.asarray(dead, bool)
        book = self.codebooks.numpy()
        rng = np.random.default_rng(seed)
        restarted = 0
        for j in range(self.num_codebooks):
            idx = np.flatnonzero(dead[j])
            h = np.asarray(projected[j], np.float32)
            norms = np.linalg.norm(h, axis=1)
            h, norms = h[norms > 0], norms[norms > 0]
            if not len(idx) or not len(h) or dead[j].all():
                continue
            live_norm = np.linalg.norm(book[j][~dead[j]], axis=1).max()
            pick = rng.choice(len(h), size=len(idx), replace=len(h) < len(idx))
            book[j, idx] = h[pick] / norms[pick, None] * live_norm
            restarted += len(idx)
        self.codebooks.assign(book)
        return restarted

    def get_config(self):
        return {**super().get_config(), "num_codebooks": self.num_codebooks, "codebook_size": self.codebook_size,
                "code_dim": self.code_dim, "estimator": self.estimator, "temperature": self.initial_temperature,
                "scores": self.score_kind, "logit_scale": self.initial_logit_scale}


def _segments(codes, valid, n, w):
    """One segment id per (user, codebook, codeword) for ``codes`` ``[B, L, N]``; padding goes to
    a last segment ``B*N*W`` that callers drop. Returns N ``[B, L]`` id tensors."""
    b = tf.shape(codes)[0]
    segment = (tf.range(b)[:, None, None] * n + tf.range(n)[None, None, :]) * w + codes
    segment = tf.where(valid[..., None], segment, b * n * w)  # [B, L, N]
    return [segment[:, :, j] for j in range(n)]


def _pool(values, segments, n_segments, reduce=tf.math.unsorted_segment_sum):
    """``values`` ``[B, L, ...]`` reduced into ``n_segments`` by each codebook's segment ids
    ``[B, L]`` (their id ranges are disjoint): ``[n_segments, ...]``."""
    parts = [reduce(values, s, n_segments) for s in segments]
    if reduce is tf.math.unsorted_segment_sum:
        return tf.add_n(parts)
    out = parts[0]
    for p in parts[1:]:
        out = tf.maximum(out, p)
    return out


def _straight_through_pool(logits, e, segments, n_segments, temperature):
    """Pooled sums of the hard assignment, with the gradient of the soft one (eqs. 6-9).

    Forward: ``sums_s = sum_i e_i [segment_i = s]`` (the hard one-hot assignment, no ``[B, L, N, W]``
    one-hot is built). Backward, as ``assign = hard + soft - stop_gradient(soft)`` with
    ``soft = softmax(logits / tau)`` would give: ``d/d e_i = G[segment_i]`` (the hard part)
    and ``d/d logits = soft * (g - sum(soft * g)) / tau`` with ``g_iw = e_i . G_w``.

    Args:
      logits: ``[B, L, N, W]`` (noise included).
      e: ``[B, L, D_e]`` (zero at padding).
      segments: N ``[B, L]`` int32 ids into ``n_segments`` (padding in the last one).
      n_segments: B*N*W + 1.
      temperature: tau.

    Returns: ``[n_segments, D_e]``.
    """

    @tf.custom_gradient
    def pool(logits, e):
        def grad(upstream):  # [n_segments, D_e]
            shape = tf.shape(logits)
            g = tf.reshape(upstream[:-1], [shape[0], shape[2] * shape[3], -1])  # [B, N*W, D_e]
            g_assign = tf.reshape(tf.matmul(e, g, transpose_b=True), shape)  # [B, L, N, W]
            soft = tf.nn.softmax(logits / temperature, axis=-1)
            g_logits = soft * (g_assign - tf.reduce_sum(soft * g_assign, axis=-1, keepdims=True)) / temperature
            g_e = tf.add_n([tf.gather(upstream, s) for s in segments])  # [B, L, D_e]
            return g_logits, g_e

        return _pool(e, segments, n_segments), grad

    return pool(logits, e)

