"""MUSE: a multimodal search-based framework for lifelong user interest modeling (Wu et al. 2025)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.muse import MUSEConfig
from tfrec.layers.multi_head_target_attention import MultiHeadTargetAttention
from tfrec.layers.multimodal import SimTier
from tfrec.layers.retrieval import TopKBehaviors
from tfrec.models.two_stage import TwoStageModel
from tfrec.registry import register


@register
class MUSE(TwoStageModel):
    """MUSE: a content-cosine GSU, an ESU with semantic-aware target attention, SimTier histograms.

    MUSE (arXiv 2512.07216; public code alimama-tech/MUSE, ``model/muse.py``) as a baseline of
    SIREN's Table 1, on the two-stage contract (``TwoStageModel``).

    User tower (candidate-independent, cached per user): the N most recent behaviors (item id,
      behavior type, declared behavior features) and their mask. Content vectors are looked up by
      item id inside the model (L2-normalised rows).
    Score, per candidate t:
      GSU: the K behaviors of highest content cosine ``s_i = cos(e^mm_i, e^mm_t)`` (``TopKBehaviors``:
        padding never retrieved, ties to the more recent behavior).
      ESU: multi-head target attention, query ``e_t`` (item representation), keys and values the K
        behavior tokens; with ``semantic_aware_attention`` MUSE's SA-TA mixes ``s_i`` into every
        head's logit, ``b1 l + b2 s/a + b3 l s/a`` (``MultiHeadTargetAttention(semantic_aware=True)``).
      SimTier (``simtier``): ``log(1 + count)`` x a learned weight per cosine tier (22 tiers of
        width 0.1), over the K retrieved behaviors and over the ``simtier_recent`` most recent ones
        (MUSE's ``uni`` and ``rt`` sequences), each histogram with its own weights.
      Head: ``[e_t, short-term DIN, user, context, u, SimTier_retrieved, SimTier_recent]``.

    Where we differ from MUSE's code (each difference documented in docs/models.md):
      * Padding is masked everywhere: never retrieved, never counted in SimTier, never attended.
        Their GSU sends padding (cosine exactly 0) to -1.1 before top-K but their SimTier counts
        the padding of short histories in tier 10 and their ESU is called without a mask.
      * Their GSU pushes every behavior of cosine exactly 0 (padding, but also an item without a
        content vector) below all others; ours keeps real behaviors without content eligible
        (cosine 0) and masks only padding.
      * Their ESU projects with SiLU(linear + bias) and an unscaled dot product, one value
        projection per head; ours is the shared ``MultiHeadTargetAttention`` (bias-free linear
        projections, logits / sqrt(d_h)). SA-TA's scalars are theirs: a per head (init 0.1), b1..b3
        per head (init 1).
      * Their real-time branch is a DIN-style attention over the last 50 behaviors plus the mean
        of those 50 and of the 50 retrieved behaviors; ours is the shared short-term DIN branch
        (``short_term_length``), without the means.
      * SimTier clips cosines to [-1, 1] (an identical item lands in tier 20, never 21).
      * Content vectors are the data's (``raw/items.npz`` or ``content_feature``), not their
        SCL embeddings; their query / keys are id + category embeddings, ours the item
        representation and behavior tokens of ``CTRModel``.

    User state: ``user_embedding`` ``[B, d]`` (+ ``recent_behaviors`` / ``recent_mask`` of the
    short-term branch), ``history_item_id`` int32 ``[B, N]``, ``history_behavior_type`` int32
    ``[B, N]``, one ``history_<f>`` per declared behavior feature, ``history_mask`` ``[B, N]``.

    Args:
      spec: FeatureSpec.
      config: MUSEConfig.
      item_content: ``ItemContent`` with the content vectors (initial table; checkpoints restore it,
        so a model rebuilt from its config needs none).
      content_dim: the content vectors' size (set from ``item_content``; ``get_config`` stores it).
    """

    config_class = MUSEConfig
    model_name = "muse"
    uses_item_content = True

    def __init__(self, spec, config: MUSEConfig = MUSEConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        d_item = self.item_embedding.output_dim
        self.check_heads(d_item, "the item representation")
        self.gsu = TopKBehaviors(config.gsu_k, name="gsu")
        self.esu = MultiHeadTargetAttention(config.num_heads, config.key_dim, d_item,
                                            semantic_aware=config.semantic_aware_attention, name="esu")
        self.simtier_retrieved = SimTier(config.simtier_bins, name="simtier_retrieved") if config.simtier else None
        self.simtier_recent = (SimTier(config.simtier_bins, name="simtier_recent")
                               if config.simtier and config.simtier_recent else None)

    @classmethod
    def content_needs(cls, config):
        return True, False

    def retrieve(self, user_state, candidate_item_id, cosine=None):
        """The GSU: per candidate the K behaviors of highest content cosine, ``positions`` / ``mask``
        ``[B, C, K]``, and their cosine ``similarity`` ``[B, C, K]`` (0 where invalid).

        ``cosine``: the ``[B, C, N]`` cosines when the caller has them (else computed here)."""
        if cosine is None:
            cosine = self.cosine(user_state, candidate_item_id)  # [B, C, N]
        out = self.gsu({"scores": cosine, "mask": (user_state["history_mask"] > 0)[:, None, :]})
        out["similarity"] = tf.gather(cosine, out["positions"], batch_dims=2) * out["mask"]
        return out

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        cosine = self.cosine(user_state, candidate_item_id)  # [B, C, N]
        retrieved = self.retrieve(user_state, candidate_item_id, cosine)
        h_i = self.behavior_tokens(self.gather_behaviors(user_state, retrieved["positions"]))  # [B, C, K, d_item]
        attention = {"query": item_emb, "keys": h_i, "values": h_i, "mask": retrieved["mask"]}
        if self.config.semantic_aware_attention:
            attention["similarity"] = retrieved["similarity"]
        parts = [self.esu(attention)]  # [B, C, d_item]
        if self.simtier_retrieved is not None:
            parts.append(self.simtier_retrieved({"similarity": retrieved["similarity"], "mask": retrieved["mask"]}))
        if self.simtier_recent is not None:  # the window is oldest -> newest: the last R columns
            recent = min(self.config.simtier_recent, self.config.history_length)
            mask = tf.broadcast_to(user_state["history_mask"][:, None, -recent:], tf.shape(cosine[..., -recent:]))
            parts.append(self.simtier_recent({"similarity": cosine[..., -recent:], "mask": mask}))
        return parts
