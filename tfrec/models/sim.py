"""SIM: search-based lifelong interest modeling, hard and soft search (Pi et al., CIKM 2020)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.sim import SIMConfig
from tfrec.layers.mlp import MLP
from tfrec.models.two_stage import SearchThenAttendModel
from tfrec.registry import register


@register
class SIM(SearchThenAttendModel):
    """SIM on the two-stage contract (``SearchThenAttendModel``): GSU over the N most recent behaviors, then ESU.

    User tower (cached per user): the behavior window (``TwoStageModel``). Score, per candidate t:
      hard GSU (sec. 4.1, eq. 1 hard): the behaviors with ``c_i = c_t`` (``category_feature``), the
        K most recent kept; an unknown target category matches nothing. A multi_categorical
        ``category_feature`` (MovieLens ``genres``) matches a behavior sharing at least one value with
        the target (ours: the paper's items have one category each).
      soft GSU (eq. 1 soft): ``r_i = (W_a e_t)·(W_b h_i)`` (own projections, ``key_dim``), top-K.
      ESU: multi-head target attention over the K retrieved behavior tokens (query ``e_t``).
      Head: ``[e_t, short-term DIN, user, context, ESU output]``.

    The soft GSU's auxiliary loss (sec. 4.1: "the GSU is trained with an auxiliary CTR task"):
    ``u = sum_i softmax(r)_i h_i`` over the whole window (padding excluded), ``MLP([u, e_t])`` ->
    a logit with the example's label; ``auxiliary_losses`` adds ``gsu_loss_weight`` x its binary
    cross-entropy, so it never enters a serving graph (the soft GSU's ``W_a`` / ``W_b`` are trained by
    it alone: top-K passes no gradient).

    Choices the paper leaves open, ours: the ESU's time-interval embeddings (the paper concatenates a
    Δt embedding to each behavior) are left out, like every other model here; padding is keyed -inf
    (never retrieved: public code multiplies scores by the mask, letting padding at 0 beat negative
    scores); fewer than K matches leave masked slots; ties go to the more recent behavior.
    """

    config_class = SIMConfig
    model_name = "sim"

    def __init__(self, spec, config: SIMConfig = SIMConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        if config.gsu == "hard":
            fd = next((f for f in spec.item_features if f.name == config.category_feature), None)
            kinds = ("categorical", "multi_categorical")
            if fd is None or fd.kind not in kinds:
                raise ValueError(f"SIMConfig.category_feature={config.category_feature!r} must name a declared "
                                 f"categorical or multi_categorical item feature for the hard GSU. Declared: "
                                 f"{[f.name for f in spec.item_features if f.kind in kinds]}")
        self.gsu_query = self.gsu_key = self.gsu_head = None
        if config.gsu == "soft":
            self.gsu_query = tf.keras.layers.Dense(config.key_dim, use_bias=False, name="gsu_query")
            self.gsu_key = tf.keras.layers.Dense(config.key_dim, use_bias=False, name="gsu_key")
            self.gsu_head = MLP(config.gsu_units, output_units=1, name="gsu_head")

    def relevance(self, item_emb, tokens) -> tf.Tensor:
        """Soft GSU relevance ``[B, C, N]``: ``(W_a e_t)·(W_b h_i) / sqrt(key_dim)``."""
        q = self.gsu_query(item_emb)  # [B, C, k]
        k = self.gsu_key(tokens)  # [B, N, k]
        return tf.einsum("bck,bnk->bcn", q, k) / tf.sqrt(float(self.config.key_dim))

    def gsu_scores(self, user_state, candidate_item_id, item_emb, tokens):
        valid = user_state["history_mask"] > 0  # [B, N]
        if self.config.gsu == "soft":
            return self.relevance(item_emb, tokens), valid[:, None, :]
        lookup = self.item_embedding.lookup
        target = lookup.column(candidate_item_id, self.config.category_feature)  # [B, C] or [B, C, L]
        behaviors = lookup.column(user_state["history_item_id"], self.config.category_feature)  # [B, N] or [B, N, L]
        if target.shape.rank == 2:  # one category per item: a list of one
            target, behaviors = target[..., None], behaviors[..., None]
        t, h = target[:, :, None, :, None], behaviors[:, None, :, None, :]  # [B, C, 1, L, 1], [B, 1, N, 1, L]
        shared = tf.reduce_any((t == h) & (t >= 0), axis=[-2, -1])  # [B, C, N]: a known value in common
        eligible = valid[:, None, :] & shared
        n = tf.shape(valid)[1]
        recency = tf.cast(tf.range(n), tf.float32)[None, None, :]  # later position = more recent
        return tf.broadcast_to(recency, tf.shape(eligible)), eligible

    def gsu_logit(self, features, training=None, user_state=None) -> tf.Tensor:
        """The soft GSU's auxiliary CTR logit ``[B]`` (training only; ``user_state``: this step's, if computed)."""
        state = self.encode_user(features, training=training) if user_state is None else user_state
        item_emb = self.item_embedding(tf.cast(features["item_id"], tf.int64))[:, None, :]  # [B, 1, d]
        tokens = self.window_tokens(state)
        r = self.relevance(item_emb, tokens)[:, 0]  # [B, N]
        valid = state["history_mask"] > 0
        weights = tf.nn.softmax(tf.where(valid, r, -1e9), axis=-1) * tf.cast(valid, r.dtype)
        pooled = tf.einsum("bn,bnd->bd", weights, tokens)
        return tf.squeeze(self.gsu_head(tf.concat([pooled, item_emb[:, 0]], -1), training=training), -1)

    def auxiliary_losses(self, features, labels, user_state=None):
        losses = super().auxiliary_losses(features, labels, user_state)
        if self.gsu_head is not None and self.config.gsu_loss_weight:
            logit = self.gsu_logit(features, training=True, user_state=user_state)
            aux = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(labels, tf.float32), logit))
            losses["gsu_loss"] = self.config.gsu_loss_weight * aux
        return losses
