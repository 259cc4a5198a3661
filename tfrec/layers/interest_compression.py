"""CHIME's Interest Compression Module: residual VQ over a behavior sequence, and its histograms."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfrec.grouping.rqvae import ResidualQuantizer
from tfrec.registry import register


@register
class InterestCompression(tf.keras.layers.Layer):
    """Residual vector quantization of every valid position of a sequence (CHIME sec. 4.4).

    For level ``m = 1..M`` with codebook ``C^(m)`` of ``K_m`` codes (CHIME: (32, 16, 16))::

      k_t^(m) = argmin_k ||b_t^(m) - C^(m)_k||       c_t^(m) = C^(m)_{k_t^(m)}
      b_t^(m+1) = b_t^(m) - c_t^(m)
      b^_t^(m) = b_t^(m) + sg(c_t^(m) - b_t^(m))      (straight-through; or the rotation trick)
      output   = sum_m b^_t^(m)                       (value: sum_m c_t^(m))
      L_commit = beta * sum_m ||b_t^(m) - sg(c_t^(m))||^2

    Each level is one ``ResidualQuantizer`` (``tfrec.grouping.rqvae``, levels=1), so per-level
    codebook sizes, EMA codebook updates with dead-code reset, and the rotation trick are the
    RQ-VAE code's. Only valid positions are quantized: padding never moves a codebook (EMA) and
    gets code -1 and a zero output. The paper writes the output as the sum of the per-level
    estimators, so the gradient reaching ``b_t^(1)`` is ``M`` times the incoming one (each level's
    estimator passes it through); we keep that. The commitment term is a mean over the valid
    positions and the feature axis (as the RQ-VAE layer), summed over levels.

    Args:
      codebook_sizes: ``(K_1, ..., K_M)``.
      dim: d, the input's last dimension.
      beta: commitment weight (default 0.25).
      gradient: ``"ste"`` (default) or ``"rotation"`` (CHIME uses the rotation trick).
      decay: EMA decay (default 0.95).
      dead_code_threshold: relative EMA count below which a code is re-seeded (default 0.1).

    Input: dict ``inputs`` float ``[B, T, d]``, ``mask`` ``[B, T]`` valid positions.
    Output: dict ``quantized`` ``[B, T, d]``, ``codes`` int32 ``[B, T, M]`` (-1 at padding),
    ``commitment_loss`` scalar.
    """

    def __init__(self, codebook_sizes: Sequence[int], dim: int, beta: float = 0.25, gradient: str = "ste",
                 decay: float = 0.95, dead_code_threshold: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        sizes = tuple(int(k) for k in codebook_sizes)
        if not sizes or min(sizes) < 1:
            raise ValueError(f"`codebook_sizes` must be a non-empty list of positive ints. "
                             f"Received: codebook_sizes={codebook_sizes!r}")
        self.codebook_sizes = sizes
        self.dim = int(dim)
        self.beta, self.gradient = float(beta), gradient
        self.decay, self.dead_code_threshold = float(decay), float(dead_code_threshold)
        self.levels = [ResidualQuantizer(1, k, self.dim, beta=beta, gradient=gradient, decay=decay,
                                         dead_code_threshold=dead_code_threshold, name=f"level_{m + 1}")
                       for m, k in enumerate(sizes)]

    def build(self, input_shape):
        for level in self.levels:
            if not level.built:  # a level built by initialize_codebooks keeps its K-means codebooks
                level.build(tf.TensorShape([None, self.dim]))
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = tf.convert_to_tensor(inputs["inputs"], self.compute_dtype)
        valid = tf.cast(inputs["mask"], tf.bool)
        index = tf.where(valid)  # [N, 2]
        residual = tf.gather_nd(x, index)  # [N, d]: valid positions only
        total = tf.zeros_like(residual)
        codes, commitment = [], 0.0
        for level in self.levels:
            out = level(residual, training=training)
            total += out["quantized"]
            codes.append(out["codes"][:, 0])
            commitment += out["commitment_loss"]
            residual = residual - tf.stop_gradient(out["quantized"])  # value c^(m) (codebooks may have moved)
        shape = tf.shape(x, out_type=tf.int64)
        quantized = tf.scatter_nd(index, total, shape)
        code_grid = tf.scatter_nd(index, tf.stack(codes, -1) + 1, tf.concat([shape[:2], [len(self.levels)]], 0))
        return {"quantized": quantized, "codes": code_grid - 1,
                "commitment_loss": tf.convert_to_tensor(commitment, x.dtype)}

    def initialize_codebooks(self, latents, seed: int = 0, batch_size=None) -> None:
        """K-means codebooks level by level on ``[S, d]`` latents (each level on the residuals the
        levels above leave), as ``ResidualQuantizer.initialize_codebooks``."""
        residual = np.asarray(latents, np.float32)
        if not self.built:
            self.build(tf.TensorShape([None, None, self.dim]))
        for m, level in enumerate(self.levels):
            level.initialize_codebooks(residual, seed=seed + m, batch_size=batch_size)
            book = level.codebooks.numpy()[0]
            nearest = np.argmin((book ** 2).sum(-1)[None] - 2 * residual @ book.T, axis=-1)
            residual = residual - book[nearest]

    def get_config(self):
        return {**super().get_config(), "codebook_sizes": list(self.codebook_sizes), "dim": self.dim,
                "beta": self.beta, "gradient": self.gradient, "decay": self.decay,
                "dead_code_threshold": self.dead_code_threshold}


def code_histograms(codes, codebook_sizes: Sequence[int], normalize: bool = True) -> tf.Tensor:
    """CHIME's compressed interest (sec. 4.4, inference): per-level code histograms, concatenated.

    ``x^(m)_k`` = how many of the user's valid positions got code ``k`` at level ``m``; with
    ``normalize`` (our default) each level is divided by the number of valid positions, so the
    levels sum to 1 and users of different history lengths are comparable (the paper says
    "frequency" without saying which; a user with no behavior gets all zeros either way).

    Args:
      codes: int ``[B, T, M]`` codes, -1 at padding.
      codebook_sizes: ``(K_1, ..., K_M)``.
      normalize: divide by the valid positions (default) or keep raw counts.

    Returns:
      float32 ``[B, sum_m K_m]``.
    """
    codes = tf.convert_to_tensor(codes)
    parts = []
    for m, k in enumerate(codebook_sizes):
        onehot = tf.one_hot(codes[..., m], int(k), dtype=tf.float32)  # -1 -> zero row
        counts = tf.reduce_sum(onehot, axis=1)  # [B, K_m]
        if normalize:
            counts = tf.math.divide_no_nan(counts, tf.reduce_sum(counts, -1, keepdims=True))
        parts.append(counts)
    return tf.concat(parts, axis=-1)
