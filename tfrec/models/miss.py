"""MISS: an ID-based and a multimodal GSU over the lifelong sequence (Guo et al., CIKM 2025)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.miss import MISSConfig
from tfrec.layers.multi_head_target_attention import MultiHeadTargetAttention
from tfrec.layers.retrieval import TopKBehaviors
from tfrec.models.two_stage import TwoStageModel
from tfrec.registry import register


@register
class MISS(TwoStageModel):
    """MISS's lifelong sequence module: an ID GSU (Co-GSU) and a multimodal GSU (MM-GSU), each with an ESU.

    MISS ("Multi-Modal Tree Indexing and Searching with Lifelong Sequential Behavior for Retrieval
    Recommendation", Guo et al., CIKM 2025, arXiv 2508.14515; no public code) is a tree-based
    retrieval model; SIREN's Table 1 uses it as "a multi-modal enhanced retrieval method that
    introduces a multi-modal GSU alongside the ID-based one". We build that module on the
    two-stage CTR contract (``TwoStageModel``).

    User tower (candidate-independent, cached per user): the N most recent behaviors and their
      mask; content vectors are looked up by item id inside the model.
    Score, per candidate t:
      ID GSU (``id_gsu``): relevance ``r_i = (W_a e_t)·(W_b h_i) / (sqrt(d_h) H)``, SIM-soft's
        bilinear form on the item representation ``e_t`` and the behavior tokens ``h_i``, with
        ``W_a`` / ``W_b`` the query / key projections of the ID ESU (``MultiHeadTargetAttention.relevance``:
        the head-averaged ESU logit); top-K by ``r``.
      MM GSU (``mm_gsu``): top-K by content cosine ``cos(e^mm_i, e^mm_t)``.
      ESU: one ``MultiHeadTargetAttention`` per GSU (separate weights), query ``e_t``, keys and
        values the K retrieved behavior tokens.
      Head: ``[e_t, short-term DIN, user, context, u_id, u_mm]``.

    Choices the paper leaves open (or that do not carry over from retrieval to ranking), ours:
      * Only the lifelong-sequence module is built: the multi-modal index tree (k-means binary tree
        and beam search over it), the tree-node targets and the item-alignment fine-tuning of the
        multimodal encoder (InfoNCE on item2item pairs) belong to MISS's retrieval stage. The content
        vectors are the data's (``raw/items.npz`` or ``content_feature``), used as given.
      * The ID GSU's relevance shares the ID ESU's projections (TWIN-style consistency), so it is
        learned through the ESU's gradient. Top-K is not differentiable: the relevance scores
        themselves receive no gradient, and there is no auxiliary GSU loss (SIM's ``L_gsu``): the
        paper describes none for the ranking use; a GSU with its own ``W_a`` / ``W_b`` would never
        be trained.
      * The ID GSU searches the behavior tokens (item representation + behavior type + declared
        behavior features), the same vectors its ESU attends to.
      * The same K (``gsu_k``) for both GSUs; a behavior retrieved by both is attended by both
        ESUs (no de-duplication); the two ESU outputs are concatenated (no gate / sum).
      * Padding is masked: never retrieved (score -inf in ``TopKBehaviors``), never attended.
      * The ESUs read ID-side tokens only (no content inside the ESU, as SIREN describes MISS).

    User state: ``user_embedding`` ``[B, d]`` (+ ``recent_behaviors`` / ``recent_mask`` of the
    short-term branch), ``history_item_id`` int32 ``[B, N]``, ``history_behavior_type`` int32
    ``[B, N]``, one ``history_<f>`` per declared behavior feature, ``history_mask`` ``[B, N]``.

    Args:
      spec: FeatureSpec.
      config: MISSConfig.
      item_content: ``ItemContent`` with the content vectors (needed with ``mm_gsu``; initial
        table, restored by checkpoints).
      content_dim: the content vectors' size (set from ``item_content``; ``get_config`` stores it).
    """

    config_class = MISSConfig
    model_name = "miss"
    uses_item_content = True

    def __init__(self, spec, config: MISSConfig = MISSConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        d_item = self.item_embedding.output_dim
        self.check_heads(d_item, "the item representation")
        self.id_gsu = self.id_esu = self.mm_gsu = self.mm_esu = None
        if config.id_gsu:
            self.id_gsu = TopKBehaviors(config.gsu_k, name="id_gsu")
            self.id_esu = MultiHeadTargetAttention(config.num_heads, config.key_dim, d_item, name="id_esu")
        if config.mm_gsu:
            self.mm_gsu = TopKBehaviors(config.gsu_k, name="mm_gsu")
            self.mm_esu = MultiHeadTargetAttention(config.num_heads, config.key_dim, d_item, name="mm_esu")

    @classmethod
    def content_needs(cls, config):
        return config.mm_gsu, False

    @property
    def external_retrieval(self) -> bool:
        return not self.config.id_gsu  # the ID GSU searches the whole window by learned relevance

    def retrieve(self, user_state, candidate_item_id, item_emb=None, tokens=None) -> dict[str, dict[str, tf.Tensor]]:
        """Both GSUs: ``{"id": ..., "mm": ...}`` (the enabled ones), each with ``positions``, ``mask``
        and ``scores`` ``[B, C, K]`` (``TopKBehaviors``).

        ``item_emb`` (``[B, C, d_item]``) and ``tokens`` (``window_tokens``) when the caller has them."""
        eligible = (user_state["history_mask"] > 0)[:, None, :]
        out = {}
        if self.id_gsu is not None:
            if item_emb is None:
                item_emb = self.item_embedding(tf.cast(candidate_item_id, tf.int64))
            if tokens is None:
                tokens = self.window_tokens(user_state)
            out["id"] = self.id_gsu({"scores": self.id_esu.relevance(item_emb, tokens), "mask": eligible})
        if self.mm_gsu is not None:
            out["mm"] = self.mm_gsu({"scores": self.cosine(user_state, candidate_item_id), "mask": eligible})
        return out

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        tokens = self.window_tokens(user_state) if self.id_gsu is not None else None
        retrieved = self.retrieve(user_state, candidate_item_id, item_emb, tokens)
        parts = []
        if self.id_esu is not None:
            h_i = tf.gather(tokens, retrieved["id"]["positions"], batch_dims=1)  # [B, C, K, d_item]
            parts.append(self.id_esu({"query": item_emb, "keys": h_i, "values": h_i, "mask": retrieved["id"]["mask"]}))
        if self.mm_esu is not None:
            h_i = self.behavior_tokens(self.gather_behaviors(user_state, retrieved["mm"]["positions"]))
            parts.append(self.mm_esu({"query": item_emb, "keys": h_i, "values": h_i, "mask": retrieved["mm"]["mask"]}))
        return parts
