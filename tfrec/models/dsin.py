"""DSIN: Deep Session Interest Network (Feng et al., IJCAI 2019), and DSIN-Full on the whole history."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.dsin import DSINConfig
from tfrec.data.spec import HIST_LENGTH, REQUEST_TIMESTAMP
from tfrec.layers.multi_head_target_attention import MultiHeadTargetAttention
from tfrec.layers.session_interacting import SessionInteracting
from tfrec.layers.session_interest import SessionInterest
from tfrec.layers.session_split import SessionSplit
from tfrec.models.base import CTRModel
from tfrec.registry import register


@register
class DSIN(CTRModel):
    """DSIN: sessions -> session interests -> Bi-LSTM -> two target attentions (DSIN secs. 4.1-4.4).

    User tower (candidate-independent, cached per user):
      1. ``SessionSplit`` (sec. 4.1): the ``history_length`` most recent behaviors before the
         request (0 or None = all: DSIN-Full) split at gaps > ``session_gap_seconds``; the K most recent
         sessions, most recent first, each with its T most recent behaviors (oldest -> newest).
      2. The behavior tokens (the shared ``behavior_tokens``: item representation + behavior type +
         declared behavior features) of each session, ``[B, K, T, d_item]``.
      3. ``SessionInterest`` (sec. 4.2): bias encoding, self-attention within each session, average
         -> ``I`` ``[B, K, d_item]``.
      4. ``SessionInteracting`` (sec. 4.3, ``interacting``): Bi-LSTM over the valid sessions ->
         ``H`` ``[B, K, 2h]``.

    Score (sec. 4.4), per candidate ``X^I`` (the item representation): a target attention over the
    valid ``I_k`` and one over the valid ``H_k`` (``MultiHeadTargetAttention``; one head is eq. 10,
    the bilinear ``softmax_k(I_k W^I X^I)``, with ``W^I`` factored as ``W_k^T W_q``, followed by a
    linear map of the pooled vector that the head's first layer could absorb). Padding sessions
    get exactly zero weight; a user without a session gets zero vectors. Head:
    ``[X^I, (short-term DIN), user, context, U^I, U^H]``.

    User state: ``user_embedding`` ``[B, d]``, ``session_interests`` ``[B, K, d_item]``,
    ``session_mask`` ``[B, K]``, with ``interacting`` ``session_states`` ``[B, K, 2h]``, with
    ``short_term_length`` > 0 ``recent_behaviors`` / ``recent_mask``.
    """

    config_class = DSINConfig
    model_name = "dsin"

    def __init__(self, spec, config: DSINConfig = DSINConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        d_item = self.item_embedding.output_dim
        self.session_split = SessionSplit(config.max_sessions, config.session_length, config.session_gap_seconds,
                                          config.min_session_length, config.history_length or 0,
                                          name="session_split")
        self.session_interest = SessionInterest(config.num_heads, config.key_dim, config.ffn_dim, config.encoding,
                                                config.dropout, config.layer_norm, name="session_interest")
        self.interest_attention = self._target_attention(d_item, "interest_attention")
        self.session_interacting = self.state_attention = None
        if config.interacting:
            self.session_interacting = SessionInteracting(config.lstm_units, name="session_interacting")
            self.state_attention = self._target_attention(2 * config.lstm_units, "state_attention")

    def _target_attention(self, size: int, name: str) -> MultiHeadTargetAttention:
        heads = self.config.target_heads
        if size % heads:
            raise ValueError(f"DSIN's target attention {name!r} splits a size-{size} vector over target_heads={heads} "
                             "heads: pick target_heads dividing the item representation's size and 2 * lstm_units")
        return MultiHeadTargetAttention(heads, self.config.target_key_dim, size, name=name)

    @property
    def recent_length(self) -> int:
        return self.config.short_term_length

    @property
    def behavior_fields(self):
        """The per-behavior fields the session tokens read (``hist_<f>``)."""
        return ["item_id", "behavior_type"] + [e.feature.name for e in self.behavior_feature_embeddings]

    def sessions(self, features, hist=None) -> dict:
        """``SessionSplit``'s output (``positions`` ``[B, K, T]``, ``mask``, ``session_mask``) for ``features``."""
        hist = self.padded_history(features) if hist is None else hist
        return self.session_split({"timestamp": hist["hist_timestamp"], "length": hist[HIST_LENGTH],
                                   "request_timestamp": features[REQUEST_TIMESTAMP.name]})

    def encode_user(self, features, training=None):
        hist = self.padded_history(features)
        split = self.sessions(features, hist)
        positions = tf.maximum(split["positions"], 0)  # [B, K, T] (padding reads position 0, masked below)
        values = {f"hist_{f}": tf.gather(hist[f"hist_{f}"], positions, batch_dims=1) for f in self.behavior_fields}
        mask = split["mask"]
        tokens = self.behavior_tokens(values) * mask[..., None]  # [B, K, T, d_item]
        interests = self.session_interest({"behaviors": tokens, "mask": mask}, training=training)  # [B, K, d_item]
        state = {"user_embedding": self.encode_profile(features), **self.encode_recent(hist),
                 "session_interests": interests, "session_mask": split["session_mask"]}
        if self.session_interacting is not None:
            state["session_states"] = self.session_interacting(
                {"sessions": interests, "mask": split["session_mask"]}, training=training)  # [B, K, 2h]
        return state

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        c = tf.shape(item_emb)[1]
        mask = tf.tile(user_state["session_mask"][:, None, :], [1, c, 1])  # [B, C, K]

        def attend(layer, keys):  # keys [B, K, D] -> [B, C, K, D], shared by the candidates
            keys = tf.tile(keys[:, None], [1, c, 1, 1])
            return layer({"query": item_emb, "keys": keys, "values": keys, "mask": mask})

        parts = [attend(self.interest_attention, user_state["session_interests"])]  # U^I [B, C, d_item]
        if self.state_attention is not None:
            parts.append(attend(self.state_attention, user_state["session_states"]))  # U^H [B, C, 2h]
        return parts
