"""TWIN: two-stage interest network with a consistency-preserved GSU (Chang et al., KDD 2023)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs import TWINConfig
from tfrec.layers.retrieval import TopKTargetAttention
from tfrec.models.two_stage import TwoStageModel
from tfrec.registry import register


@register
class TWIN(TwoStageModel):
    """TWIN on the two-stage contract: one scorer retrieves (CP-GSU) and attends (ESU).

    User tower (cached per user): the behavior window (``TwoStageModel``). Score, per candidate t,
    with ``TopKTargetAttention`` (TWIN eqs. 5-7):
      keys: the behaviors' inherent features ``e_i`` (item id + declared item features: cacheable and
        candidate-independent, which is what lets the paper precompute ``K_h W_k`` per item);
      values: the full behavior tokens (inherent + behavior type + declared behavior features);
      per head, ``l_i = (W_q e_t)·(W_k e_i) / sqrt(d_h)`` over the whole window, the K best kept
      (CP-GSU), then ``softmax_K(l_i + b_i)`` with the behavior-cross bias
      ``b_i = w_beta · c_i`` (``cross_bias``; ``c_i`` = the behavior-type and behavior-feature part
      of the token), and ``u = Concat_h sum alpha_i W_v x_i``.
      Head: ``[e_t, short-term DIN, user, context, u]``.

    Choices the paper leaves open, ours: the cross term is one scalar per behavior shared by the
    heads, added after retrieval only (the paper's point: cross features depend on the user-item
    pair, so they cannot enter the cached-key retrieval; public code's cross path is broken, see
    REFERENCES.md); each head retrieves its own K (as public code; the paper's CP-GSU ranks by the
    ESU's attention score); padding is never retrieved, ties go to the more recent behavior.
    """

    config_class = TWINConfig
    model_name = "twin"
    uses_item_content = False

    def __init__(self, spec, config: TWINConfig = TWINConfig(), **kwargs):
        kwargs.pop("item_content", None)
        super().__init__(spec, config, **kwargs)
        d_item = self.item_embedding.output_dim
        self.check_heads(d_item, "the item representation")
        self.attention = TopKTargetAttention(config.num_heads, config.key_dim, d_item, config.gsu_k, name="twin")
        self.cross = tf.keras.layers.Dense(1, use_bias=False, name="cross_bias") if config.cross_bias else None

    @classmethod
    def content_needs(cls, config):
        return False, False

    def attend(self, user_state, item_emb) -> dict:
        """``TopKTargetAttention``'s output (``output`` ``[B, C, d_item]``, ``positions`` / ``mask``
        ``[B, C, H, K]``) for candidates ``item_emb`` ``[B, C, d_item]``."""
        keys = self.item_embedding(user_state["history_item_id"])  # [B, N, d_item], inherent
        tokens = self.window_tokens(user_state)  # inherent + cross
        inputs = {"query": item_emb, "keys": keys, "values": tokens, "mask": user_state["history_mask"]}
        if self.cross is not None:
            inputs["bias"] = tf.squeeze(self.cross(tokens - keys), -1)  # [B, N]
        return self.attention(inputs)

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        return [self.attend(user_state, item_emb)["output"]]
