"""CHIME's contrastive losses over a whole behavior sequence (CHIME eq. 1, terms (a) and (b)).

One causal forward pass gives a user hidden state ``z_t`` at every position and an item hidden
state ``p_t`` for every behavior; both losses are computed at every position at once (CHIME's
sample construction: O(T^2) loss terms per forward pass).
"""
from __future__ import annotations

import tensorflow as tf


def holistic_loss(z, p, labels, mask, temperature: float = 0.2, window: int = 0):
    """CHIME's holistic loss (eq. 1 (a)): InfoNCE of each position against its user's future positives.

    For user ``u`` and position ``t``: positives = the user's behaviors ``j > t`` with ``y_j = +1``;
    negatives = the user's behaviors ``j > t`` with ``y_j = -1`` and every valid behavior of the
    other users in the batch; ``s(z, p) = <z, p> / temperature``. Each (position, positive) pair
    contributes ``-log(exp s(z_t, p+) / sum over positives and negatives of exp s(z_t, p))``. The
    paper's normaliser ``N_h`` is not defined: we average over the (position, positive) pairs, so
    a long sequence weighs as many terms as it has. Padding is never a position, a positive or a
    negative; a position with no future positive adds nothing.

    Args:
      z: float ``[B, T, d]`` user hidden states.
      p: float ``[B, T, d]`` item hidden states.
      labels: ``[B, T]`` in {-1, +1} (or {0, 1}: 0 is read as -1).
      mask: ``[B, T]`` valid behaviors.
      temperature: tau (CHIME: 0.2).
      window: 0 (CHIME: every later behavior) or W > 0: only the user's behaviors ``t < j <= t + W``
        are positives and own negatives (LEARN's dense all-action loss over a future window).

    Returns:
      Scalar loss (0 when the batch has no pair).
    """
    z, p = tf.convert_to_tensor(z, tf.float32), tf.convert_to_tensor(p, tf.float32)
    valid = tf.cast(mask, tf.bool)
    positive = valid & (tf.cast(labels, tf.float32) > 0)
    b, t = tf.shape(z)[0], tf.shape(z)[1]
    scores = tf.einsum("btd,cjd->btcj", z, p) / temperature  # [B, T, B, T]
    same_user = tf.eye(b, dtype=tf.bool)[:, None, :, None]  # [B, 1, B, 1]
    gap = tf.range(t)[None, :] - tf.range(t)[:, None]  # [T(t), T(j)]: j - t
    future = gap > 0
    if window:
        future &= gap <= int(window)
    future = future[None, :, None, :]
    candidate = valid[:, :, None, None] & valid[None, None, :, :] & tf.where(same_user, future, True)
    is_positive = candidate & same_user & positive[None, None, :, :]
    logits = tf.where(candidate, scores, tf.constant(-1e30, scores.dtype))
    flat = tf.reshape(logits, [b, t, -1])
    lse = tf.reduce_logsumexp(flat, axis=-1)  # [B, T]
    terms = tf.where(is_positive, lse[:, :, None, None] - scores, 0.0)
    count = tf.reduce_sum(tf.cast(is_positive, tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(terms), count)


def immediate_loss(z, p, labels, mask, bias, temperature: float = 0.07):
    """CHIME's immediate loss (eq. 1 (b)): a sigmoid contrastive loss with the next behavior.

    ``L_i(z_t) = -log sigmoid(y_{t+1} (s(z_t, p_{t+1}) - b))``, ``s = <z, p> / temperature``,
    ``b`` a learned bias; averaged over the positions whose next behavior is valid (the paper's
    ``N_i``).

    Args:
      z, p: float ``[B, T, d]``.
      labels: ``[B, T]`` in {-1, +1} (or {0, 1}).
      mask: ``[B, T]`` valid behaviors.
      bias: scalar ``b``.
      temperature: tau (CHIME: 0.07).

    Returns:
      Scalar loss (0 when no position has a valid next behavior).
    """
    z, p = tf.convert_to_tensor(z, tf.float32), tf.convert_to_tensor(p, tf.float32)
    valid = tf.cast(mask, tf.bool)
    sign = tf.where(tf.cast(labels, tf.float32) > 0, 1.0, -1.0)
    s = tf.reduce_sum(z[:, :-1] * p[:, 1:], axis=-1) / temperature  # [B, T-1]: z_t with p_{t+1}
    pair = valid[:, :-1] & valid[:, 1:]
    terms = tf.nn.softplus(-sign[:, 1:] * (s - tf.cast(bias, tf.float32)))  # -log sigmoid(x) = softplus(-x)
    terms = tf.where(pair, terms, 0.0)
    return tf.math.divide_no_nan(tf.reduce_sum(terms), tf.reduce_sum(tf.cast(pair, tf.float32)))
