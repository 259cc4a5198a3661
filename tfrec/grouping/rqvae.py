"""Semantic IDs from an RQ-VAE over item embeddings (SIREN sec. 4.1.1, eq. 1).

SIREN turns every item's multimodal embedding ``e_i`` into a hierarchical Semantic ID
``SemID_i = (c_i^(1), ..., c_i^(M))`` (SIREN eq. 1) with an RQ-VAE: an MLP encoder maps ``e_i``
to a latent ``z_i``, a residual quantizer codes ``z_i`` level by level (each level quantizes the
residual the previous levels left), and an MLP decoder reconstructs ``e_i`` from the quantized
latent. This module builds that tokenizer:

* ``ResidualQuantizer``: M codebooks of K codewords of dimension d, nearest-codeword assignment
  on the residual at each level, straight-through estimator, commitment loss and either EMA
  codebook updates (CHIME sec. 4.3, the default) or a codebook loss (VQ-VAE). Codebooks are
  initialised by K-means on a sample's residuals (``initialize_codebooks``) and, in EMA mode,
  dead codewords are re-seeded during training.
* ``RQVAE``: encoder -> quantizer -> decoder, trained with ``model.fit``; every loss lives in
  ``train_step`` (no ``add_loss`` inside ``call``).
* ``fit_semantic_ids``: embeddings ``[N, D]`` -> ``SemanticIDs(codes int32 [N, M], report)``,
  deterministic under ``config.seed``.
* ``codebook_report`` / ``format_codebook_report``: per-level hit ratio and perplexity (CHIME
  Table 5) plus the collision rate of the full code tuples; ``append_collision_level`` makes the
  tuples unique the TIGER way (one extra level counting duplicates).
* ``save_semantic_ids`` / ``load_semantic_ids``: the ``.npz`` table (+ a JSON report beside it).

Codes are ``0..K-1`` at every level; no code is reserved. A model that needs a padding /
unknown id should shift them (``codes + 1``), as the K-means group table does.

Gradients pass the quantizer either with the straight-through estimator (``gradient="ste"``,
the default) or with the rotation trick (``gradient="rotation"``, Fifty et al. 2024, used by
CHIME sec. 4.3; ``rotation_trick``).
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tfrec.grouping.kmeans import (
    _check_int,
    _json_default,
    _validate_embeddings,
    kmeans,
    save_npz_with_report,
)
from tfrec.layers.mlp import MLP
from tfrec.registry import register

PathLike = Union[str, os.PathLike]
_UPDATES = ("ema", "loss")
_GRADIENTS = ("ste", "rotation")
_EPS = 1e-6


def rotation_trick(z: tf.Tensor, z_q: tf.Tensor) -> tf.Tensor:
    """Passes gradients through a vector quantizer with the rotation trick (Fifty et al. 2024).

    The forward value is ``z_q``; the backward pass treats ``z_q`` as a fixed rotation and
    rescaling of ``z``::

      q~ = sg(lambda R) z,  lambda = ||z_q|| / ||z||,
      R = I - 2 r r^T + 2 q^ z^^T,  z^ = z / ||z||,  q^ = z_q / ||z_q||,  r = (z^ + q^) / ||z^ + q^||

    ``R`` is the rotation taking ``z^`` to ``q^`` in their common plane, so ``q~ = z_q`` and
    ``d q~ / d z = lambda R`` (the straight-through estimator's is ``I``): the gradient keeps
    its angle to the encoder output the way the codeword sits relative to it. Rows where ``z``
    or ``z_q`` is (near) zero, or the two point in opposite directions (``R`` undefined), fall
    back to straight-through.

    Args:
      z: ``[..., d]`` encoder output (or residual).
      z_q: ``[..., d]`` its quantized value (same shape).

    Returns:
      ``[..., d]``, equal to ``z_q`` in value.
    """
    z_q = tf.stop_gradient(z_q)
    z_sg = tf.stop_gradient(z)
    z_norm = tf.norm(z_sg, axis=-1, keepdims=True)
    q_norm = tf.norm(z_q, axis=-1, keepdims=True)
    z_hat = z_sg / tf.maximum(z_norm, _EPS)
    q_hat = z_q / tf.maximum(q_norm, _EPS)
    r = z_hat + q_hat
    r_norm = tf.norm(r, axis=-1, keepdims=True)
    r = r / tf.maximum(r_norm, _EPS)
    # R z without forming R: z - 2 r (r.z) + 2 q^ (z^.z)
    rotated = (z - 2.0 * r * tf.reduce_sum(r * z, axis=-1, keepdims=True)
               + 2.0 * q_hat * tf.reduce_sum(z_hat * z, axis=-1, keepdims=True))
    rotated = rotated * (q_norm / tf.maximum(z_norm, _EPS))
    ok = (z_norm > _EPS) & (q_norm > _EPS) & (r_norm > _EPS)  # [..., 1]
    estimate = tf.where(ok, rotated, z)  # straight-through where R is undefined
    return estimate + tf.stop_gradient(z_q - estimate)  # forward value exactly z_q


def _check_gradient(gradient: str) -> str:
    if gradient not in _GRADIENTS:
        raise ValueError(f"`gradient` must be one of {_GRADIENTS}. Received: gradient={gradient!r}")
    return gradient


# ----------------------------------------------------------------------------------------------
# The quantizer layer
# ----------------------------------------------------------------------------------------------


@register
class ResidualQuantizer(tf.keras.layers.Layer):
    """Residual vector quantization with M codebooks (RQ-VAE; CHIME sec. 4.3; SIREN eq. 1).

    With ``r^(1) = z``, for every level ``m = 1..M`` (CHIME sec. 4.3)::

      k^(m)   = argmin_k ||r^(m) - C^(m)_k||^2          nearest codeword
      c^(m)   = C^(m)_{k^(m)}
      r^(m+1) = r^(m) - c^(m)

    The quantized latent is ``z_q = sum_m c^(m)``, passed on with the straight-through
    estimator ``z + sg(z_q - z)`` (its gradient w.r.t. ``z`` is the identity). Losses, each
    a mean over the batch and the d dimensions, summed over levels:

      commitment_loss = beta * sum_m ||r^(m) - sg(c^(m))||^2
      codebook_loss   = sum_m ||sg(r^(m)) - c^(m)||^2        (``codebook_update="loss"`` only)

    ``codebook_update="ema"`` (default, as in CHIME): the codebooks are not trained by the
    optimizer; in training, each level keeps exponential moving averages of its codewords'
    assignment counts ``N_k`` and residual sums ``S_k`` (decay ``decay``) and sets
    ``C_k = S_k / N~_k`` with Laplace-smoothed counts ``N~`` (van den Oord et al. 2017,
    appendix A.1); the codebook loss is then 0. A codeword whose ``N_k`` falls below
    ``dead_code_threshold`` x the mean count is dead: it is moved onto the batch residual
    with the largest quantization error (distinct rows for distinct dead codes, so the reset
    is deterministic). ``codebook_update="loss"``: the codebooks are trainable weights learned
    through ``codebook_loss``; no dead-code reset.

    Call ``initialize_codebooks`` on a sample of latents before training: it runs K-means on
    the sample level by level (on the residuals of the levels above), which avoids dead codes
    from the start. Without it, codebooks start uniform in ``[-1/K, 1/K]``.

    Args:
      levels: int, M, number of codebooks (>= 1).
      codebook_size: int, K, codewords per codebook (>= 1).
      dim: int, d, codeword size; must equal the input's last dimension.
      beta: float, default 0.25. Weight of the commitment loss.
      codebook_update: ``"ema"`` (default) or ``"loss"``; see above.
      decay: float in [0, 1), default 0.95. EMA decay (``"ema"`` only).
      epsilon: float > 0, default 1e-5. Laplace smoothing of the EMA counts.
      dead_code_threshold: float >= 0, default 0.1. Relative EMA count below which a codeword
        is re-seeded; 0 turns the reset off (``"ema"`` only).
      gradient: ``"ste"`` (default) or ``"rotation"``: how ``quantized`` passes gradients to
        the input, straight-through or the rotation trick (``rotation_trick``, CHIME sec. 4.3).

    Input shape: ``[B, d]`` float latents.
    Output: dict with ``quantized`` ``[B, d]`` (value ``sum_m c^(m)``, gradient per ``gradient``),
    ``codes`` int32 ``[B, M]``,
    ``commitment_loss`` and ``codebook_loss`` scalars.
    """

    def __init__(self, levels: int, codebook_size: int, dim: int, beta: float = 0.25,
                 codebook_update: str = "ema", decay: float = 0.95, epsilon: float = 1e-5,
                 dead_code_threshold: float = 0.1, gradient: str = "ste", **kwargs):
        super().__init__(**kwargs)
        self.levels = _check_int("levels", levels, 1)
        self.codebook_size = _check_int("codebook_size", codebook_size, 1)
        self.dim = _check_int("dim", dim, 1)
        if codebook_update not in _UPDATES:
            raise ValueError(f"`codebook_update` must be one of {_UPDATES}. "
                             f"Received: codebook_update={codebook_update!r}")
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"`beta` must be a finite number >= 0. Received: beta={beta!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1). Received: decay={decay!r}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon!r}")
        if not (math.isfinite(dead_code_threshold) and dead_code_threshold >= 0):
            raise ValueError("`dead_code_threshold` must be a finite number >= 0. "
                             f"Received: dead_code_threshold={dead_code_threshold!r}")
        self.beta = float(beta)
        self.codebook_update = codebook_update
        self.decay = float(decay)
        self.epsilon = float(epsilon)
        self.dead_code_threshold = float(dead_code_threshold)
        self.gradient = _check_gradient(gradient)

    def build(self, input_shape):
        last = input_shape[-1]
        if last is not None and int(last) != self.dim:
            raise ValueError(f"ResidualQuantizer(dim={self.dim}) got inputs of shape {tuple(input_shape)}; "
                             f"the last dimension must be {self.dim}.")
        ema = self.codebook_update == "ema"
        bound = 1.0 / self.codebook_size
        self.codebooks = self.add_weight(
            name="codebooks", shape=(self.levels, self.codebook_size, self.dim),
            initializer=tf.keras.initializers.RandomUniform(-bound, bound), trainable=not ema)
        if ema:
            self.ema_count = self.add_weight(name="ema_count", shape=(self.levels, self.codebook_size),
                                             initializer="ones", trainable=False)
            self.ema_sum = self.add_weight(name="ema_sum", shape=(self.levels, self.codebook_size, self.dim),
                                           initializer="zeros", trainable=False)
        super().build(input_shape)

    def initialize_codebooks(self, latents, seed: int = 0, batch_size: Optional[int] = None) -> None:
        """Sets every codebook by K-means on the residuals of ``latents`` (eager, numpy).

        Level 1 clusters the latents; level m clusters what levels 1..m-1 left. In EMA mode the
        counts are set to the cluster sizes rescaled to ``batch_size`` rows (the rows one
        training step sees), and the sums to centroid x count.

        Args:
          latents: ``[S, d]`` latents, ``S >= codebook_size``.
          seed: int, default 0. K-means seed (level m uses ``seed + m``).
          batch_size: int or None. Rows per training step; None means ``S``.
        """
        z = np.asarray(latents, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(f"`latents` must be [S, {self.dim}]. Received: shape={z.shape}")
        if z.shape[0] < self.codebook_size:
            raise ValueError(f"K-means init needs at least codebook_size={self.codebook_size} rows. "
                             f"Received: {z.shape[0]} rows")
        if not self.built:
            self.build(tf.TensorShape([None, self.dim]))
        scale = (batch_size or z.shape[0]) / z.shape[0]
        residual = z.copy()
        books, counts = [], []
        for level in range(self.levels):
            result = kmeans(residual, self.codebook_size, seed=seed + level, n_iter=25)
            books.append(result.centroids)
            counts.append(np.bincount(result.assignments, minlength=self.codebook_size) * scale)
            residual = residual - result.centroids[result.assignments]
        books = np.stack(books).astype(np.float32)
        self.codebooks.assign(books)
        if self.codebook_update == "ema":
            count = np.maximum(np.stack(counts), 1e-3).astype(np.float32)
            self.ema_count.assign(count)
            self.ema_sum.assign(books * count[..., None])

    def call(self, inputs, training=None):
        z = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        ema_training = bool(training) and self.codebook_update == "ema"
        residual = z
        quantized = tf.zeros_like(z)
        codes, commitment, codebook_loss = [], 0.0, 0.0
        for m in range(self.levels):
            book = self.codebooks[m]  # [K, d]
            # ||r - c||^2 without the per-row ||r||^2: [B, d] x [d, K] -> [B, K]
            scores = tf.reduce_sum(tf.square(book), axis=-1)[None, :] - 2.0 * tf.matmul(residual, book,
                                                                                       transpose_b=True)
            idx = tf.argmin(scores, axis=-1, output_type=tf.int32)  # [B]
            code_vec = tf.gather(book, idx)  # [B, d]
            commitment += tf.reduce_mean(tf.square(residual - tf.stop_gradient(code_vec)))
            if self.codebook_update == "loss":
                codebook_loss += tf.reduce_mean(tf.square(tf.stop_gradient(residual) - code_vec))
            if ema_training:
                self._ema_update(m, tf.stop_gradient(residual), tf.stop_gradient(code_vec), idx)
            codes.append(idx)
            quantized += code_vec
            residual = residual - code_vec
        if self.gradient == "rotation":
            passed = rotation_trick(z, quantized)
        else:  # straight-through: forward value sum_m c^(m), gradient identity w.r.t. z
            passed = z + tf.stop_gradient(quantized - z)
        return {
            "quantized": passed,
            "codes": tf.stack(codes, axis=-1),  # M x [B] -> [B, M]
            "commitment_loss": self.beta * tf.convert_to_tensor(commitment, dtype=z.dtype),
            "codebook_loss": tf.convert_to_tensor(codebook_loss, dtype=z.dtype),
        }

    def _ema_update(self, m: int, residual, code_vec, idx):
        """EMA codebook update of level ``m`` (+ dead-code reset) from one batch."""
        k = self.codebook_size
        onehot = tf.one_hot(idx, k, dtype=residual.dtype)  # [B, K]
        batch_count = tf.reduce_sum(onehot, axis=0)  # [K]
        batch_sum = tf.matmul(onehot, residual, transpose_a=True)  # [K, B] x [B, d] -> [K, d]
        count = self.decay * self.ema_count[m] + (1.0 - self.decay) * batch_count
        sums = self.decay * self.ema_sum[m] + (1.0 - self.decay) * batch_sum
        total = tf.reduce_sum(count)
        smoothed = (count + self.epsilon) / (total + k * self.epsilon) * total
        book = sums / smoothed[:, None]
        if self.dead_code_threshold > 0:
            dead = count < self.dead_code_threshold * total / k  # [K]
            n_rows = tf.minimum(tf.shape(residual)[0], k)
            error = tf.reduce_sum(tf.square(residual - code_vec), axis=-1)  # [B]
            worst = tf.math.top_k(error, k=n_rows).indices  # [n_rows], largest error first
            rank = tf.cumsum(tf.cast(dead, tf.int32)) - 1  # j-th dead code takes the j-th worst row
            reset = dead & (rank < n_rows)
            rows = tf.gather(residual, tf.gather(worst, tf.clip_by_value(rank, 0, n_rows - 1)))  # [K, d]
            book = tf.where(reset[:, None], rows, book)
            count = tf.where(reset, tf.ones_like(count), count)
            sums = tf.where(reset[:, None], rows, sums)
        self.ema_count[m].assign(count)
        self.ema_sum[m].assign(sums)
        self.codebooks[m].assign(book)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "codebook_size": self.codebook_size,
                "dim": self.dim, "beta": self.beta, "codebook_update": self.codebook_update,
                "decay": self.decay, "epsilon": self.epsilon, "dead_code_threshold": self.dead_code_threshold,
                "gradient": self.gradient}


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


@register
class RQVAE(tf.keras.Model):
    """RQ-VAE: MLP encoder -> ``ResidualQuantizer`` -> MLP decoder (SIREN sec. 4.1.1).

    ``z = Enc(x)``, ``(z_q, codes) = RQ(z)``, ``x_hat = Dec(z_q)``; trained on
    ``loss = mean ||x - x_hat||^2 + commitment_loss + codebook_loss`` (all computed in
    ``train_step``). The codes of an item are its Semantic ID (SIREN eq. 1).

    Args:
      input_dim: int, D, size of the item embeddings.
      levels: int, default 3. M.
      codebook_size: int, default 64. K.
      latent_dim: int, default 32. d.
      hidden: sequence of int, default (256, 128). Encoder hidden sizes; the decoder mirrors
        them.
      beta, codebook_update, decay, dead_code_threshold, gradient: as in ``ResidualQuantizer``.

    Input shape: ``[B, D]``.
    Output: dict with ``reconstruction`` ``[B, D]``, ``latent`` ``[B, d]``, ``quantized``
    ``[B, d]``, ``codes`` int32 ``[B, M]``, ``commitment_loss`` and ``codebook_loss``.
    """

    def __init__(self, input_dim: int, levels: int = 3, codebook_size: int = 64, latent_dim: int = 32,
                 hidden: Sequence[int] = (256, 128), beta: float = 0.25, codebook_update: str = "ema",
                 decay: float = 0.95, dead_code_threshold: float = 0.1, gradient: str = "ste", **kwargs):
        super().__init__(**kwargs)
        self.input_dim = _check_int("input_dim", input_dim, 1)
        self.latent_dim = _check_int("latent_dim", latent_dim, 1)
        self.hidden = tuple(_check_int("hidden", h, 1) for h in hidden)
        self.encoder = MLP(self.hidden, output_units=self.latent_dim, name="encoder")
        self.quantizer = ResidualQuantizer(levels, codebook_size, self.latent_dim, beta=beta,
                                           codebook_update=codebook_update, decay=decay,
                                           dead_code_threshold=dead_code_threshold, gradient=gradient,
                                           name="quantizer")
        self.decoder = MLP(self.hidden[::-1], output_units=self.input_dim, name="decoder")
        self._trackers = {name: tf.keras.metrics.Mean(name=name)
                          for name in ("loss", "reconstruction", "commitment", "codebook")}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, inputs, training=None):
        latent = self.encoder(inputs, training=training)
        q = self.quantizer(latent, training=training)
        reconstruction = self.decoder(q["quantized"], training=training)
        return {"reconstruction": reconstruction, "latent": latent, **q}

    def compute_losses(self, x, outputs) -> Dict[str, tf.Tensor]:
        reconstruction = tf.reduce_mean(tf.square(x - outputs["reconstruction"]))
        loss = reconstruction + outputs["commitment_loss"] + outputs["codebook_loss"]
        return {"loss": loss, "reconstruction": reconstruction, "commitment": outputs["commitment_loss"],
                "codebook": outputs["codebook_loss"]}

    def train_step(self, data):
        x = tf.convert_to_tensor(data[0] if isinstance(data, tuple) else data, dtype=self.compute_dtype)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(x, self(x, training=True))
        grads = tape.gradient(losses["loss"], self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        for name, value in losses.items():
            self._trackers[name].update_state(value)
        return {name: t.result() for name, t in self._trackers.items()}

    def test_step(self, data):
        x = tf.convert_to_tensor(data[0] if isinstance(data, tuple) else data, dtype=self.compute_dtype)
        losses = self.compute_losses(x, self(x, training=False))
        for name, value in losses.items():
            self._trackers[name].update_state(value)
        return {name: t.result() for name, t in self._trackers.items()}

    def initialize_codebooks(self, x_sample, seed: int = 0, batch_size: Optional[int] = None) -> None:
        """K-means init of the quantizer on the (untrained) encoder's latents of ``x_sample``."""
        latent = self.encoder(tf.convert_to_tensor(x_sample, dtype=self.compute_dtype), training=False)
        self.quantizer.initialize_codebooks(latent.numpy(), seed=seed, batch_size=batch_size)

    def encode(self, x, batch_size: int = 4096) -> np.ndarray:
        """Semantic IDs of ``x`` ``[N, D]``: int32 ``[N, M]`` (inference, no codebook update)."""
        x = np.asarray(x, dtype=np.float32)
        parts = [self(x[s:s + batch_size], training=False)["codes"].numpy() for s in range(0, len(x), batch_size)]
        return np.concatenate(parts).astype(np.int32)

    def get_config(self):
        q = self.quantizer
        return {"input_dim": self.input_dim, "levels": q.levels, "codebook_size": q.codebook_size,
                "latent_dim": self.latent_dim, "hidden": list(self.hidden), "beta": q.beta,
                "codebook_update": q.codebook_update, "decay": q.decay,
                "dead_code_threshold": q.dead_code_threshold, "gradient": q.gradient, "name": self.name}


# ----------------------------------------------------------------------------------------------
# Config, fitting, report
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RQVAEConfig:
    """Hyper-parameters of ``fit_semantic_ids``.

    Attributes:
      levels: M, codebooks (SemID length). Default 3.
      codebook_size: K, codewords per codebook. Default 64; must be <= the number of items.
      latent_dim: d. Default 32.
      hidden: encoder hidden sizes (decoder mirrored). Default (256, 128).
      beta: commitment loss weight. Default 0.25.
      epochs: passes over the items. Default 100.
      batch_size: items per step (clipped to N). Default 256.
      learning_rate: Adam learning rate. Default 1e-3.
      seed: seed of numpy, TensorFlow and Keras (init, shuffling, K-means). Default 0.
      codebook_update: ``"ema"`` (default) or ``"loss"`` (see ``ResidualQuantizer``).
      decay: EMA decay. Default 0.95 (few steps on catalogs of thousands of items).
      dead_code_threshold: relative EMA count below which a codeword is re-seeded. Default 0.1.
      init_rows: rows of the first shuffled batch used for the K-means codebook init; at least
        ``max(batch_size, 4 * codebook_size)`` rows are used (clipped to N). Default None.
      gradient: ``"ste"`` (straight-through, default) or ``"rotation"`` (the rotation trick).
    """

    levels: int = 3
    codebook_size: int = 64
    latent_dim: int = 32
    hidden: Tuple[int, ...] = (256, 128)
    beta: float = 0.25
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 0
    codebook_update: str = "ema"
    decay: float = 0.95
    dead_code_threshold: float = 0.1
    init_rows: Optional[int] = None
    gradient: str = "ste"

    def __post_init__(self):
        for name in ("levels", "codebook_size", "latent_dim", "epochs", "batch_size"):
            _check_int(name, getattr(self, name), 1)
        _check_int("seed", self.seed, 0)
        object.__setattr__(self, "hidden", tuple(_check_int("hidden", h, 1) for h in self.hidden))
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={self.learning_rate!r}")
        if self.codebook_update not in _UPDATES:
            raise ValueError(f"`codebook_update` must be one of {_UPDATES}. "
                             f"Received: codebook_update={self.codebook_update!r}")
        if self.init_rows is not None:
            _check_int("init_rows", self.init_rows, 1)
        _check_gradient(self.gradient)


class SemanticIDs(NamedTuple):
    """The outcome of ``fit_semantic_ids``.

    Attributes:
      codes: int32 ``[N, M]``, row i the Semantic ID of embedding row i.
      report: ``codebook_report`` of the codes plus ``training`` (losses, seconds, config).
      model: the trained ``RQVAE`` (``model.encode`` codes new items).
    """

    codes: np.ndarray
    report: Dict[str, Any]
    model: Any = None


class SemanticIDTable(NamedTuple):
    """A table as stored by ``save_semantic_ids``: ``item_id`` ``[N]``, ``codes`` int32 ``[N, M]``, report."""

    item_id: np.ndarray
    codes: np.ndarray
    report: Dict[str, Any]


def fit_semantic_ids(embeddings: np.ndarray, config: RQVAEConfig = RQVAEConfig(), verbose: Union[int, str] = 0,
                     deterministic: bool = False) -> SemanticIDs:
    """Trains an RQ-VAE on item embeddings and returns every item's Semantic ID.

    The embeddings are centred and divided by their global RMS (one scalar, so the geometry is
    kept) before training. The codebooks are initialised by K-means on the encoder's latents of
    the first shuffled batch (enlarged to ``max(batch_size, 4 K)`` rows). Same inputs + same
    config -> same codes on CPU: numpy, TensorFlow and Keras are seeded with ``config.seed``
    (tested bit-identical in one process without op determinism). On GPU, where reductions
    may be nondeterministic, pass ``deterministic=True``: it enables TensorFlow op determinism
    for the whole process (``tf.config.experimental.enable_op_determinism``; it stays on).

    Args:
      embeddings: ``[N, D]`` finite real array.
      config: an ``RQVAEConfig``.
      verbose: Keras ``fit`` verbosity (1 = progress bar). Default 0.
      deterministic: enable TF op determinism (process-wide). Default False.

    Returns:
      ``SemanticIDs(codes int32 [N, M], report, model)``.

    Raises:
      ValueError: on invalid embeddings or ``codebook_size > N``.
    """
    x = np.asarray(_validate_embeddings(embeddings), dtype=np.float64)
    n, d = x.shape
    if config.codebook_size > n:
        raise ValueError(f"`codebook_size` must be <= the number of items N={n}. "
                         f"Received: codebook_size={config.codebook_size}")
    t0 = time.time()
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    tf.keras.utils.set_random_seed(config.seed)  # python, numpy and TensorFlow
    mean = x.mean(axis=0)
    scale = float(np.sqrt(np.mean((x - mean) ** 2))) or 1.0
    x = ((x - mean) / scale).astype(np.float32)

    batch_size = min(config.batch_size, n)
    rng = np.random.default_rng(config.seed)
    n_init = min(n, max(config.init_rows or 0, batch_size, 4 * config.codebook_size))
    init_rows = np.sort(rng.permutation(n)[:n_init])

    model = RQVAE(d, levels=config.levels, codebook_size=config.codebook_size, latent_dim=config.latent_dim,
                  hidden=config.hidden, beta=config.beta, codebook_update=config.codebook_update,
                  decay=config.decay, dead_code_threshold=config.dead_code_threshold, gradient=config.gradient)
    model(x[:1])  # build
    model.initialize_codebooks(x[init_rows], seed=config.seed, batch_size=batch_size)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    dataset = (tf.data.Dataset.from_tensor_slices(x)
               .shuffle(n, seed=config.seed, reshuffle_each_iteration=True)
               .batch(batch_size))
    history = model.fit(dataset, epochs=config.epochs, verbose=verbose)
    codes = model.encode(x)
    final = model.evaluate(x, batch_size=4096, verbose=0, return_dict=True)

    report = codebook_report(codes, config.codebook_size)
    report["training"] = {
        "seconds": round(time.time() - t0, 3),
        "n_items": n, "input_dim": d,
        "first_epoch_reconstruction": float(history.history["reconstruction"][0]),
        "last_epoch_reconstruction": float(history.history["reconstruction"][-1]),
        "final": {k: float(v) for k, v in final.items()},
        "input_scale": scale,
        "config": dataclasses.asdict(config),
    }
    return SemanticIDs(codes, report, model)


def _check_codes(codes: Any) -> np.ndarray:
    c = np.asarray(codes)
    if c.ndim != 2 or c.dtype.kind not in "iu":
        raise ValueError(f"`codes` must be a 2-D integer array [N, M]. Received: shape={c.shape}, dtype={c.dtype}")
    return c


def codebook_report(codes: np.ndarray, codebook_size: int) -> Dict[str, Any]:
    """Codebook usage of Semantic IDs (CHIME Table 5) and collisions of the full tuples.

    Per level m: ``used`` codewords, ``hit_ratio = used / K`` and ``perplexity = exp(H)`` with
    ``H`` the entropy (nats) of the level's code-usage distribution (= CHIME's ``2^H`` with H in
    bits); perplexity lies in ``[1, K]``, K meaning uniform usage. Over the tuples:
    ``n_unique`` distinct M-code tuples and ``collision_rate``, the fraction of items whose
    tuple is shared with at least one other item, and ``max_items_per_tuple``.

    Args:
      codes: int ``[N, M]``, values in ``[0, K)``.
      codebook_size: int, K.

    Returns:
      A JSON-able dict: ``n_items``, ``levels``, ``codebook_size``, ``per_level`` (a list of
      dicts with ``level`` (1-based), ``used``, ``hit_ratio``, ``perplexity``),
      ``n_unique``, ``collision_rate``, ``max_items_per_tuple``.

    Raises:
      ValueError: if ``codes`` is not 2-D integer or holds values outside ``[0, K)``.
    """
    c = _check_codes(codes)
    k = _check_int("codebook_size", codebook_size, 1)
    n, m = c.shape
    if c.size and (c.min() < 0 or c.max() >= k):
        raise ValueError(f"`codes` must lie in [0, codebook_size={k}). Received: min={c.min()}, max={c.max()}")
    per_level = []
    for level in range(m):
        counts = np.bincount(c[:, level], minlength=k)
        p = counts[counts > 0] / max(n, 1)
        entropy = float(-(p * np.log(p)).sum()) if n else 0.0
        per_level.append({"level": level + 1, "used": int((counts > 0).sum()),
                          "hit_ratio": float((counts > 0).sum() / k), "perplexity": float(np.exp(entropy))})
    if n:
        _, inverse, tuple_counts = np.unique(c, axis=0, return_inverse=True, return_counts=True)
        shared = tuple_counts[np.asarray(inverse).reshape(-1)] > 1
        n_unique, collision, max_per = len(tuple_counts), float(shared.mean()), int(tuple_counts.max())
    else:
        n_unique, collision, max_per = 0, 0.0, 0
    return {"n_items": int(n), "levels": int(m), "codebook_size": k, "per_level": per_level,
            "n_unique": int(n_unique), "collision_rate": collision, "max_items_per_tuple": max_per}


def format_codebook_report(report: Dict[str, Any]) -> str:
    """A short human-readable table of a ``codebook_report`` (and its ``training`` part if any)."""
    k = report["codebook_size"]
    lines = [f"Semantic IDs: items={report['n_items']}, levels={report['levels']}, codebook_size={k}",
             f"  {'level':>5}  {'used':>5}  {'hit ratio':>9}  {'perplexity':>10}"]
    for row in report["per_level"]:
        lines.append(f"  {row['level']:>5}  {row['used']:>5}  {row['hit_ratio']:>9.2%}  "
                     f"{row['perplexity']:>7.2f}/{k}")
    lines.append(f"  unique tuples {report['n_unique']}  collision rate {report['collision_rate']:.2%}  "
                 f"max items per tuple {report['max_items_per_tuple']}")
    training = report.get("training")
    if training:
        lines.append(f"  reconstruction MSE {training['first_epoch_reconstruction']:.4f} (epoch 1) -> "
                     f"{training['last_epoch_reconstruction']:.4f} (last)  {training['seconds']:.1f}s")
    return "\n".join(lines)


def append_collision_level(codes: np.ndarray) -> np.ndarray:
    """De-collides Semantic IDs the TIGER way: appends a level counting duplicates.

    Items sharing an M-code tuple get ``0, 1, 2, ...`` (in row order) in a new last column, so
    every ``[N, M + 1]`` tuple is unique. The new level's size is ``max_items_per_tuple``.

    Args:
      codes: int ``[N, M]``.

    Returns:
      int32 ``[N, M + 1]``.
    """
    c = _check_codes(codes)
    extra = np.zeros(len(c), dtype=np.int32)
    if len(c):
        _, inverse = np.unique(c, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        order = np.argsort(inverse, kind="stable")
        sorted_inv = inverse[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_inv)) + 1]
        first = np.repeat(starts, np.diff(np.r_[starts, len(c)]))
        extra[order] = np.arange(len(c)) - first
    return np.concatenate([c.astype(np.int32), extra[:, None]], axis=1)


# ----------------------------------------------------------------------------------------------
# Save / load
# ----------------------------------------------------------------------------------------------


def _json_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_semantic_ids(path: PathLike, item_id: np.ndarray, codes: np.ndarray,
                      report: Dict[str, Any]) -> Tuple[Path, Path]:
    """Writes ``item_id``, ``codes`` and the report to one ``.npz`` (+ ``<stem>.json``).

    The ``.npz`` holds ``item_id`` (int64 ``[N]``), ``codes`` (int32 ``[N, M]``),
    ``codebook_size`` and ``report_json``; it is written atomically (temporary file + rename).
    The report is also written beside it (``semantic_ids.npz`` -> ``semantic_ids.json``).

    Raises:
      ValueError: if ``path`` does not end in ``.npz`` or the arrays disagree.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"`path` must end with .npz. Received: path={str(path)!r}")
    item_id = np.asarray(item_id)
    c = _check_codes(codes)
    if item_id.ndim != 1 or item_id.dtype.kind not in "iu" or len(item_id) != len(c):
        raise ValueError(f"`item_id` must be 1-D integer with one entry per row of codes. "
                         f"Received: item_id.shape={item_id.shape}, codes.shape={c.shape}")
    codebook_size = int(report.get("codebook_size", int(c.max()) + 1 if c.size else 1))
    report_json = json.dumps(report, default=_json_default, indent=2)
    json_path = _json_path(path)
    save_npz_with_report(path, json_path, report_json, item_id=item_id.astype(np.int64), codes=c.astype(np.int32),
                         codebook_size=np.int64(codebook_size))
    return path, json_path


def load_semantic_ids(path: PathLike) -> SemanticIDTable:
    """Reads a table written by ``save_semantic_ids`` (the report from the ``.npz`` itself).

    ``path`` may be local or on any filesystem ``tf.io.gfile`` reads (e.g. ``gs://``)."""
    with tf.io.gfile.GFile(os.fspath(path), "rb") as f:
        raw = io.BytesIO(f.read())
    with np.load(raw, allow_pickle=False) as data:
        missing = {"item_id", "codes", "report_json"} - set(data.files)
        if missing:
            raise ValueError(f"{str(path)!r} is not a Semantic ID table: missing {sorted(missing)}.")
        item_id, codes = data["item_id"], data["codes"]
        report = json.loads(str(data["report_json"]))
    if codes.ndim != 2 or len(codes) != len(item_id):
        raise ValueError(f"{str(path)!r} is inconsistent: item_id.shape={item_id.shape}, codes.shape={codes.shape}")
    return SemanticIDTable(item_id, codes, report)
