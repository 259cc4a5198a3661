"""SDIM: sampling-based deep interest modeling with hash collisions (Cao et al., 2022, arXiv 2205.10249)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.sdim import SDIMConfig
from tfrec.layers.retrieval.simhash import SimHash
from tfrec.models.two_stage import TwoStageModel
from tfrec.registry import register


@register
class SDIM(TwoStageModel):
    """SDIM on the two-stage contract: the long-term interest from behaviors sharing the target's hash buckets.

    User tower (cached per user): the behavior window (``TwoStageModel``). Score, per candidate t:
      m SimHash functions of tau bits each (``SimHash``) bucket the target's item representation
      ``e_t`` and every behavior's ``e_i`` (item id + declared item features); per hash h
      (SDIM eqs. 5-7):
        ``u_h = sum_{i valid, bucket_h(e_i) = bucket_h(e_t)} x_i``, with ``x_i`` the behavior token,
        ``u_h <- u_h / ||u_h||_2`` when ``normalize``,
      and ``u = mean_h u_h`` ``[B, C, d_item]`` (no attention: the collision probability
      ``(1 - angle/pi)^tau`` is the implicit attention weight). Head:
      ``[e_t, short-term DIN, user, context, u]``.

    Choices the paper leaves open, ours: hashing reads the inherent item representation (the target
    has no behavior type) while the aggregated values are the full behavior tokens; the collision
    mask ANDs the padding mask (a zero / unknown embedding hashes to bucket 0 of every hash, so
    unmasked padding would collide with every target in bucket 0); a hash with no colliding behavior
    contributes the zero vector (``l2_normalize`` keeps 0 at 0) and still counts in the mean over m.
    The projection is fixed (``hash_seed``, a non-trainable weight). The paper's serving split, where
    a separate server keeps each user's per-bucket sums, is not the user state here: the window is
    (a per-bucket table holds ``m · 2^tau · d`` floats and costs ``2^tau`` times more to build in
    training than the per-candidate collision mask for one candidate).
    """

    config_class = SDIMConfig
    model_name = "sdim"
    uses_item_content = False

    def __init__(self, spec, config: SDIMConfig = SDIMConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        self.simhash = SimHash(config.num_hashes, config.hash_bits, seed=config.hash_seed, name="simhash")

    def collisions(self, user_state, item_emb) -> tf.Tensor:
        """``[B, C, m, N]`` bool: behavior i is valid and shares candidate c's bucket under hash h."""
        target = self.simhash.buckets(item_emb)  # [B, C, m]
        behaviors = self.simhash.buckets(self.item_embedding(user_state["history_item_id"]))  # [B, N, m]
        valid = user_state["history_mask"] > 0  # [B, N]
        same = tf.equal(target[:, :, :, None], tf.transpose(behaviors, [0, 2, 1])[:, None, :, :])
        return same & valid[:, None, None, :]

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        tokens = self.window_tokens(user_state)  # [B, N, d_item]
        sums = tf.einsum("bchn,bnd->bchd", tf.cast(self.collisions(user_state, item_emb), tokens.dtype), tokens)
        if self.config.normalize:
            sums = tf.math.l2_normalize(sums, axis=-1)
        return [tf.reduce_mean(sums, axis=2)]
