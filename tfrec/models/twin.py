"""TWIN: two-stage interest network with a consistency-preserved GSU (Chang et al., KDD 2023)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.twin import TWINConfig
from tfrec.layers.retrieval import TopKTargetAttention
from tfrec.models.two_stage import TwoStageModel
from tfrec.registry import register


@register
class TWIN(TwoStageModel):
    """TWIN on the two-stage contract: one scorer retrieves (CP-GSU) and attends (ESU).

    User tower (cached per user): the behavior window (``TwoStageModel``). Score, per candidate t,
    with ``TopKTargetAttention`` (TWIN sec. 3.3, "behavior feature splitting"):
      keys: the behaviors' inherent features ``e_i`` (item id + declared item features: cacheable and
        candidate-independent, the linear projections the paper precomputes per item);
      cross features ``c_i``: the behavior-type and declared behavior-feature embeddings, each
        behavior's compressed to one scalar ``b_i = w_beta · c_i`` (``cross_bias``);
      values: the full behavior tokens ``e_i + c_i``;
      per head, ``alpha_i = (W_q e_t)·(W_k e_i) / sqrt(d_h) + b_i`` over the whole window; the K
      best kept (CP-GSU), ``softmax_K(alpha_i)`` over them and ``u = Concat_h sum alpha_i W_v x_i``
      (ESU). Head: ``[e_t, short-term DIN, user, context, u]``.

    ``cross_in_retrieval`` (default True, the paper): the cross bias is part of the score the CP-GSU
    ranks by, so retrieval and attention use the identical relevance (TWIN's point; the abstract:
    the 1-D bias is what lets target attention "extend from ESU to GSU"). False: the bias re-weights
    the K retrieved behaviors only (how issue 14 and public code read it; an ablation here).

    Choices the paper leaves open, ours: one cross scalar per behavior shared by the heads; each
    head retrieves its own K (as public code); padding is never retrieved, ties go to the more
    recent behavior. Public code's cross path is broken (REFERENCES.md).
    """

    config_class = TWINConfig
    model_name = "twin"
    uses_item_content = False

    def __init__(self, spec, config: TWINConfig = TWINConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        d_item = self.item_embedding.output_dim
        self.check_heads(d_item, "the item representation")
        self.attention = TopKTargetAttention(config.num_heads, config.key_dim, d_item, config.gsu_k, name="twin")
        self.cross = tf.keras.layers.Dense(1, use_bias=False, name="cross_bias") if config.cross_bias else None

    def attend(self, user_state, item_emb) -> dict:
        """``TopKTargetAttention``'s output (``output`` ``[B, C, d_item]``, ``positions`` / ``mask``
        ``[B, C, H, K]``) for candidates ``item_emb`` ``[B, C, d_item]``."""
        keys = self.item_embedding(user_state["history_item_id"])  # [B, N, d_item], inherent
        cross = self.type_embedding(user_state["history_behavior_type"])
        for emb in self.behavior_feature_embeddings:
            cross += emb(user_state[f"history_{emb.feature.name}"])
        inputs = {"query": item_emb, "keys": keys, "values": keys + cross, "mask": user_state["history_mask"]}
        if self.cross is not None:
            inputs["score_bias" if self.config.cross_in_retrieval else "bias"] = tf.squeeze(self.cross(cross), -1)
        return self.attention(inputs)

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        return [self.attend(user_state, item_emb)["output"]]
