"""DIEN: Deep Interest Evolution Network (Zhou et al., AAAI 2019)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.configs.dien import DIENConfig
from tfrec.data.negatives import HIST_NEGATIVE_ITEM_ID, with_negative_behaviors
from tfrec.data.spec import HIST_LENGTH
from tfrec.layers.augru import AUGRU
from tfrec.layers.recent_behaviors import RecentBehaviors
from tfrec.models.base import CTRModel
from tfrec.registry import register

AUX_LOSS = "dien_aux_loss"


@register
class DIEN(CTRModel):
    """DIEN: an interest extractor GRU over the S most recent behaviors, then, per candidate, an
    interest evolving AUGRU driven by target attention; its final state reaches the head.

    User tower (candidate-independent, cached per user): the S = ``sequence_length`` most recent
    behavior tokens (``E_item + E_type + behavior features``, ``RecentBehaviors``, left-padded) ->
    the interest extractor GRU (sec. 4.2, eqs. 2-5) -> hidden states ``h_t``.
    Score, per candidate ``e_a`` (sec. 4.3, eq. 8): ``a_t = exp(h_t W e_a) / Σ_j exp(h_j W e_a)`` over the
    valid steps (padding gets 0), then ``AUGRU`` over ``h`` with ``a`` (``evolution``: AUGRU, AGRU or
    AIGRU, eqs. 9-12); the final state ``h'_T`` joins the head next to ``[e_a, short-term DIN, user, context]``.
    Each of the ``[B, C]`` candidates runs its own AUGRU pass (``[B, C, S, d_h] -> [B·C, S, d_h]``).

    Auxiliary loss (sec. 4.2, eqs. 6-7, ``L = L_target + α L_aux``): for each pair of consecutive valid
    behaviors ``(t, t+1)`` in the window, ``-log σ(h_t · e_{t+1}) - log(1 - σ(h_t · ê_{t+1}))`` with
    ``e_{t+1}`` the next behavior's item representation and ``ê_{t+1}`` a sampled negative item's
    (``hist_negative_item_id``, added in the input pipeline by ``prepare_training_data``), averaged
    over the valid pairs, times ``aux_loss_weight``. It is returned by ``auxiliary_losses``, which the
    base's ``compute_loss`` adds in training only: never part of ``call`` / ``score`` or a serving
    graph.

    Choices the paper leaves open, ours (docs/models.md): ``e_{t+1}`` / ``ê_{t+1}`` are item
    representations (id + item features, no behavior type: a negative has none, and a type
    embedding on one side only would give the positive away); L_aux is averaged over the valid
    pairs (the paper sums over steps and divides by the users; the official code divides by every
    padded position); negatives are uniform, drawn in tf.data; the loss reuses the step's interest
    states (``compute_loss`` hands ``auxiliary_losses`` the user state: the extractor runs once).

    User state: ``user_embedding`` ``[B, d]``, ``interest_states`` ``[B, S, d_h]`` (zeros at
    padding), ``interest_mask`` ``[B, S]`` (+ ``recent_behaviors`` / ``recent_mask`` with
    ``short_term_length > 0``).
    """

    config_class = DIENConfig
    model_name = "dien"

    def __init__(self, spec, config: DIENConfig = DIENConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        item_dim = self.item_embedding.output_dim
        units = config.gru_units or item_dim
        self.behaviors = RecentBehaviors(config.sequence_length, name="dien_behaviors")
        self.interest_extractor = AUGRU(units, mode="gru", name="interest_extractor")
        # W of the attention h_t W e_a, applied to e_a: [B, C, d_item] -> [B, C, d_h]
        self.attention_projection = tf.keras.layers.Dense(units, use_bias=False, name="interest_attention")
        self.interest_evolution = AUGRU(units, mode=config.evolution, name="interest_evolution")
        # Ours: maps item representations to d_h for h_t · e_{t+1} when the widths differ (training only).
        self.aux_projection = (tf.keras.layers.Dense(units, use_bias=False, name="aux_projection")
                               if units != item_dim and config.aux_loss_weight else None)

    @property
    def recent_length(self) -> int:
        return self.config.short_term_length

    # -- the interface -----------------------------------------------------------------------
    def encode_user(self, features, training=None):
        hist = self.padded_history(features)
        states, mask, _ = self.interest_states(hist)
        return {"user_embedding": self.encode_profile(features), **self.encode_recent(hist),
                "interest_states": states, "interest_mask": mask}

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        return [self.evolve(user_state, item_emb)]

    # -- the blocks --------------------------------------------------------------------------
    def interest_states(self, hist, extra=None):
        """The interest extractor over the S most recent behaviors of the padded history ``hist``.

        Returns ``(h [B, S, d_h] (zeros at padding), mask [B, S], window)``; ``window`` holds each
        gathered ``[B, S]`` sequence (``hist_item_id`` ..., and the ``extra`` ``[B, L]`` ones).
        """
        extras = {f"hist_{e.feature.name}": hist[f"hist_{e.feature.name}"] for e in self.behavior_feature_embeddings}
        window = self.behaviors({"length": hist[HIST_LENGTH], "values": {
            "hist_item_id": hist["hist_item_id"], "hist_behavior_type": hist["hist_behavior_type"],
            **extras, **(extra or {})}})
        mask = window["mask"]
        tokens = self.behavior_tokens(window) * mask[..., None]  # [B, S, d_item]
        states = self.interest_extractor({"sequence": tokens, "mask": mask})  # [B, S, d_h]
        return states * mask[..., None], mask, window

    def attention(self, user_state, item_emb) -> tf.Tensor:
        """``a_t = softmax over valid t of h_t W e_a``: ``[B, C, S]`` (0 at padding; all 0 without history)."""
        h, mask = user_state["interest_states"], user_state["interest_mask"]
        scores = tf.einsum("bch,bsh->bcs", self.attention_projection(item_emb), h)
        valid = (mask > 0)[:, None, :]
        weights = tf.nn.softmax(tf.where(valid, scores, tf.fill(tf.shape(scores), -1e9)), axis=-1)
        return weights * tf.cast(valid, weights.dtype)

    def evolve(self, user_state, item_emb) -> tf.Tensor:
        """The interest evolving layer's final state ``h'_T`` per candidate: ``[B, C, d_h]``."""
        h, mask = user_state["interest_states"], user_state["interest_mask"]
        a = self.attention(user_state, item_emb)  # [B, C, S]
        b, c, s = tf.shape(a)[0], tf.shape(a)[1], tf.shape(a)[2]
        units = self.interest_evolution.units
        sequence = tf.reshape(tf.tile(h[:, None], [1, c, 1, 1]), [b * c, s, h.shape[-1]])  # [B, C, S, d_h] -> [B·C, S, d_h]
        evolved = self.interest_evolution({
            "sequence": sequence, "attention": tf.reshape(a, [b * c, s]),
            "mask": tf.reshape(tf.tile(mask[:, None], [1, c, 1]), [b * c, s])})  # [B·C, S, d_h]
        return tf.reshape(evolved[:, -1], [b, c, units])  # the state after the last valid step

    # -- training ----------------------------------------------------------------------------
    def prepare_training_data(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Adds the auxiliary loss's negatives (``tfrec.data.negatives.with_negative_behaviors``,
        seed ``negative_seed``); the dataset unchanged when ``aux_loss_weight`` is 0."""
        if not self.config.aux_loss_weight:
            return dataset
        return with_negative_behaviors(dataset, self.spec.n_items, seed=self.config.negative_seed)

    def auxiliary_losses(self, features, labels, user_state=None) -> dict[str, tf.Tensor]:
        """The base's losses + ``{"dien_aux_loss": α L_aux}`` (left out when ``aux_loss_weight`` is 0);
        training only (the base's ``compute_loss``).

        Raises:
          ValueError: the features lack ``hist_negative_item_id``.
        """
        losses = dict(super().auxiliary_losses(features, labels, user_state))
        if not self.config.aux_loss_weight:
            return losses
        if HIST_NEGATIVE_ITEM_ID not in features:
            raise ValueError(f"DIEN's auxiliary loss needs the feature {HIST_NEGATIVE_ITEM_ID!r} (a sampled negative per "
                             "behavior): map the dataset with model.prepare_training_data(ds), as "
                             "tfrec.training.train does, or set aux_loss_weight: 0. "
                             f"Received: {sorted(features)}")
        losses[AUX_LOSS] = self.config.aux_loss_weight * self.auxiliary_loss(features, user_state)
        return losses

    def auxiliary_loss(self, features, user_state=None) -> tf.Tensor:
        """L_aux (unweighted): the mean over valid consecutive pairs ``(t, t+1)`` of the window of
        ``softplus(-h_t·e_{t+1}) + softplus(h_t·ê_{t+1})`` (= -log σ(.) - log(1 - σ(.))); 0 without pairs.
        ``user_state``: this training step's (its ``interest_states``; None = run the extractor)."""
        hist = self.padded_history(features)
        negative = features[HIST_NEGATIVE_ITEM_ID]
        negative = tf.pad(negative, [[0, 0], [0, tf.maximum(1 - tf.shape(negative)[1], 0)]])  # as padded_history
        if user_state is None:
            states, mask, window = self.interest_states(hist, extra={HIST_NEGATIVE_ITEM_ID: negative})
        else:  # the window's ids only (a gather): the extractor already ran in this step's encode_user
            window = self.behaviors({"length": hist[HIST_LENGTH], "values": {
                "hist_item_id": hist["hist_item_id"], HIST_NEGATIVE_ITEM_ID: negative}})
            states, mask = user_state["interest_states"], user_state["interest_mask"]
        positive = self.item_embedding(window["hist_item_id"][:, 1:])  # [B, S-1, d_item]
        sampled = self.item_embedding(window[HIST_NEGATIVE_ITEM_ID][:, 1:])
        if self.aux_projection is not None:
            positive, sampled = self.aux_projection(positive), self.aux_projection(sampled)
        h = states[:, :-1]  # [B, S-1, d_h]
        pairs = mask[:, :-1] * mask[:, 1:]  # both behaviors valid
        loss = (tf.nn.softplus(-tf.reduce_sum(h * positive, -1)) + tf.nn.softplus(tf.reduce_sum(h * sampled, -1)))
        return tf.reduce_sum(loss * pairs) / tf.maximum(tf.reduce_sum(pairs), 1.0)
