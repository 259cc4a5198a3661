"""ETA: end-to-end target attention with SimHash retrieval (Chen et al., 2021, arXiv 2108.04468)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.eta import ETAConfig
from tfrec.layers.retrieval.simhash import SimHash
from tfrec.models.two_stage import SearchThenAttendModel
from tfrec.registry import register


@register
class ETA(SearchThenAttendModel):
    """ETA on the two-stage contract (``SearchThenAttendModel``): Hamming-distance GSU, then ESU.

    User tower (cached per user): the behavior window (``TwoStageModel``). Score, per candidate t:
      GSU (ETA sec. 3.2): the SimHash signatures (``hash_bits`` random hyperplanes, ``SimHash``) of the
        target's item representation ``e_t`` and of every behavior's ``e_i`` (item id + declared item
        features: the inherent part, as the target has no behavior type); the K behaviors with the
        smallest Hamming distance ``||sig(e_t) xor sig(e_i)||_1`` are kept.
      ESU: multi-head target attention over the K retrieved behavior tokens (query ``e_t``).
      Head: ``[e_t, short-term DIN, user, context, ESU output]``.

    The retrieval is end to end in the paper's sense: it reads the same embeddings the ESU trains
    (no separate pre-trained index), but passes no gradient (signs are piecewise constant).

    Choices the paper leaves open, ours: the projection is drawn once from ``hash_seed`` and stored as
    a non-trainable weight (public benchmark code redraws it every forward pass, so the same request
    scores differently twice); Hamming ties (frequent: distances are integers in [0, hash_bits]) go
    to the more recent behavior; padding is never retrieved and fewer than K behaviors leave masked
    slots (``TopKBehaviors``). The Hamming distance is computed as ``(b - s_t·s_i) / 2`` on ±1
    signatures: one matmul, stock ops.
    """

    config_class = ETAConfig
    model_name = "eta"

    def __init__(self, spec, config: ETAConfig = ETAConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        # one bit per hash function: the signature is the concatenation of hash_bits sign bits
        self.simhash = SimHash(config.hash_bits, 1, seed=config.hash_seed, name="simhash")

    def signature(self, emb) -> tf.Tensor:
        """±1 signature ``[..., hash_bits]`` of item representations ``[..., d_item]``."""
        return 2.0 * self.simhash(emb)[..., 0] - 1.0

    def hamming(self, item_emb, user_state) -> tf.Tensor:
        """Hamming distance ``[B, C, N]`` between each candidate's and each window behavior's signature."""
        behaviors = self.item_embedding(user_state["history_item_id"])  # [B, N, d_item]
        dot = tf.einsum("bcs,bns->bcn", self.signature(item_emb), self.signature(behaviors))
        return (float(self.config.hash_bits) - dot) / 2.0

    def gsu_scores(self, user_state, candidate_item_id, item_emb, tokens):
        return -self.hamming(item_emb, user_state), (user_state["history_mask"] > 0)[:, None, :]
