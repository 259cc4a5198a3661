"""CTRModel: the one two-tower interface every tfrec model implements.

* ``encode_user(features) -> user_state``: the candidate-independent half (cacheable per user);
  ``user_state`` is a dict of fixed-shape dense tensors ``[B, ...]``.
* ``score(user_state, candidate_item_id) -> p(click)`` for ``[B, C]`` candidates per user.
* ``call(features) = score(encode_user(features), item_id[:, None])[:, 0]`` for ``model.fit``.

Export and serving use only these methods, never the model class.

The short-term branch (DIN's target attention over the most recent behaviors) is shared here:
DIN is that branch alone; DMGIN adds it next to its long-term group interest.
"""
from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf

from tfrec import configs as configs_lib
from tfrec.data.spec import HIST_LENGTH, FeatureSpec
from tfrec.layers.din_attention import DINAttention
from tfrec.layers.id_embedding import IdEmbedding
from tfrec.layers.mlp import MLP
from tfrec.layers.recent_behaviors import RecentBehaviors

SEQUENCE_KEYS = ("hist_item_id", "hist_behavior_type", "hist_timestamp", "hist_duration", "hist_amount")


class CTRModel(tf.keras.Model):
    """Base class: shared embeddings, the short-term branch, the prediction head, the interface.

    Subclasses set ``config_class`` and implement ``encode_user`` and ``head_inputs``.

    Args:
      spec: the FeatureSpec (vocabulary sizes).
      config: the model's config dataclass (needs ``embedding_dim``, ``mlp_units``, ``dropout``,
        ``attention_units`` and a recent-behavior length, see ``recent_length``).
    """

    config_class: Any = None
    # True for models built with ``num_groups`` / ``item_to_group`` (the K-means table).
    uses_item_groups: bool = False

    def __init__(self, spec: FeatureSpec, config, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.config = config
        d = config.embedding_dim
        self.item_embedding = IdEmbedding(spec.n_items, d, name="item_embedding")
        self.type_embedding = IdEmbedding(spec.n_behavior_types, d, name="behavior_type_embedding")
        self.user_embedding = IdEmbedding(spec.n_user_segments, d, name="user_segment_embedding")
        self.recent = RecentBehaviors(self.recent_length, name="recent_behaviors")
        self.recent_attention = DINAttention(config.attention_units, name="recent_attention")
        self.head = MLP(config.mlp_units, output_units=1, dropout=config.dropout, name="head")

    @property
    def recent_length(self) -> int:
        """S, the behaviors of the short-term branch."""
        raise NotImplementedError

    # -- the interface -----------------------------------------------------------------------
    def encode_user(self, features: Dict[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        """Candidate-independent user state (fixed-shape dense tensors)."""
        raise NotImplementedError

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        """Model-specific ``[B, C, D_i]`` tensors fed to the head next to the shared ones."""
        raise NotImplementedError

    def score(self, user_state: Dict[str, tf.Tensor], candidate_item_id: tf.Tensor, training=None) -> tf.Tensor:
        """p(click) ``[B, C]`` for ``[B, C]`` candidate item ids."""
        return tf.sigmoid(self.candidate_logits(user_state, candidate_item_id, training=training))

    def candidate_logits(self, user_state, candidate_item_id, training=None) -> tf.Tensor:
        candidate_item_id = tf.cast(candidate_item_id, tf.int64)
        item_emb = self.item_embedding(candidate_item_id)  # [B, C, d]
        c = tf.shape(candidate_item_id)[1]
        short = self.recent_attention({"query": item_emb, "keys": user_state["recent_behaviors"],
                                       "mask": user_state["recent_mask"]})
        user = tf.tile(user_state["user_embedding"][:, None, :], [1, c, 1])
        parts = [item_emb, short, user] + list(self.head_inputs(user_state, candidate_item_id, item_emb, training))
        return tf.squeeze(self.head(tf.concat(parts, axis=-1), training=training), -1)

    def call(self, features, training=None):
        state = self.encode_user(features, training=training)
        return self.score(state, tf.cast(features["item_id"], tf.int64)[:, None], training=training)[:, 0]

    # -- shared pieces -----------------------------------------------------------------------
    @staticmethod
    def padded_history(features) -> Dict[str, tf.Tensor]:
        """The padded history, at least one column wide (an all-empty batch may have L = 0)."""
        out = {}
        for key in SEQUENCE_KEYS:
            value = features[key]
            pad = tf.maximum(1 - tf.shape(value)[1], 0)
            out[key] = tf.pad(value, [[0, 0], [0, pad]])
        out[HIST_LENGTH] = tf.minimum(tf.cast(features[HIST_LENGTH], tf.int32), tf.shape(out[SEQUENCE_KEYS[0]])[1])
        return out

    def encode_recent(self, hist) -> Dict[str, tf.Tensor]:
        """The short-term half of the user state: the S most recent behavior tokens."""
        recent = self.recent({"length": hist[HIST_LENGTH], "values": {
            "item": hist["hist_item_id"], "type": hist["hist_behavior_type"]}})
        tokens = self.item_embedding(recent["item"]) + self.type_embedding(recent["type"])
        return {"recent_behaviors": tokens * recent["mask"][..., None], "recent_mask": recent["mask"]}

    def encode_profile(self, features) -> tf.Tensor:
        return self.user_embedding(features["user_segment"])

    def get_config(self):
        return {"spec": self.spec.to_dict(), "config": configs_lib.to_dict(self.config)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        spec = FeatureSpec.from_dict(config.pop("spec"))
        model_config = configs_lib.from_dict(cls.config_class, config.pop("config"))
        return cls(spec, model_config, **config)
