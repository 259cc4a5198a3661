"""DMGIN: Deep Multimodal Group Interest Network (DMGIN paper; DESIGN.md's reconstruction)."""
import dataclasses

import tensorflow as tf

from tfrec.configs import DMGINConfig
from tfrec.data.spec import HIST_LENGTH
from tfrec.layers.behavior_embedding import BehaviorEmbedding
from tfrec.layers.behavior_grouping import BehaviorGrouping
from tfrec.layers.candidate_group_attention import CandidateGroupAttention
from tfrec.layers.embedding import FeatureEmbedding
from tfrec.layers.group_representation import GroupRepresentation
from tfrec.layers.group_statistics import GroupStatistics
from tfrec.layers.hstu import HSTU
from tfrec.layers.id_embedding import IdEmbedding
from tfrec.layers.intra_group_attention import IntraGroupAttention, masked_mean
from tfrec.layers.item_group_lookup import ItemGroupLookup
from tfrec.layers.top_k_groups import TopKGroups
from tfrec.models.base import CTRModel
from tfrec.registry import register


@register
class DMGIN(CTRModel):
    """DMGIN over a raw lifelong behavior sequence.

    User tower (candidate-independent, cached per user):
      item -> K-means group (ItemGroupLookup) -> BehaviorGrouping (<= k groups x m most recent
      behaviors) -> GroupStatistics over the whole history (eq. 1) and IntraGroupAttention over
      BehaviorEmbedding tokens (eqs. 2-4) -> GroupRepresentation (eq. 5) -> TopKGroups by max
      timestamp, oldest -> newest (eq. 6) -> HSTU stack (eqs. 7-9).
    Score: CandidateGroupAttention (eq. 10) with ``e_t = [E_item(t); E_group(group(t))]``, the
      shared short-term DIN branch, the user profile -> MLP -> sigmoid.

    User state: ``user_embedding`` ``[B, d]``, ``recent_behaviors`` ``[B, S, d]``,
    ``recent_mask`` ``[B, S]``, ``group_states`` ``[B, k, d]``, ``group_mask`` ``[B, k]``,
    ``group_ids`` int32 ``[B, k]`` (for the exact-group-match prior of CandidateGroupAttention).

    Args:
      spec: FeatureSpec (declared item features join ``e_item`` for the pooled group items and the
        target; declared behavior features join each behavior token ``b_j``).
      config: DMGINConfig.
      num_groups: group ids including the reserved unknown group 0 (K-means k + 1).
      item_to_group: optional ``[n_items]`` initial item -> group table (checkpoints restore it).
    """

    config_class = DMGINConfig
    model_name = "dmgin"
    uses_item_groups = True

    def __init__(self, spec, config: DMGINConfig = DMGINConfig(), num_groups: int = 1, item_to_group=None,
                 **kwargs):
        super().__init__(spec, config, **kwargs)
        d = config.embedding_dim
        self.num_groups = int(num_groups)
        self.item_group = ItemGroupLookup(spec.n_items, num_groups, table=item_to_group, name="item_group")
        self.group_embedding = IdEmbedding(num_groups, d, name="group_embedding")
        self.grouping = BehaviorGrouping(num_groups, config.top_k_groups, config.max_per_group, name="grouping")
        self.behavior_embedding = BehaviorEmbedding(spec.n_behavior_types, d, config.time_bucket_days,
                                                    name="behavior_embedding")
        # Declared behavior features (e.g. the paper's location E_loc(l_j)) join b_j, concatenated.
        self.group_behavior_features = [
            FeatureEmbedding(dataclasses.replace(fd, embedding_dim=0), d, name=f"group_behavior_{fd.name}")
            for fd in spec.behavior_features]
        self.statistics = GroupStatistics(config.top_k_groups, spec.n_categories, d, name="group_statistics")
        self.intra_group = IntraGroupAttention(config.num_heads, d, d, name="intra_group_attention")
        self.group_repr = GroupRepresentation(d, name="group_representation")
        self.top_k = TopKGroups(config.top_k_groups, name="top_k_groups")
        self.hstu = HSTU(config.hstu_layers, config.hstu_heads, d, config.top_k_groups, config.time_bucket_days,
                         name="hstu")
        self.group_attention = CandidateGroupAttention(d, name="candidate_group_attention")
        self._categories = tf.constant(spec.behavior_categories, tf.int32)

    @property
    def recent_length(self) -> int:
        return self.config.short_term_length

    def encode_user(self, features, training=None):
        hist = self.padded_history(features)
        request_ts = tf.cast(features["request_timestamp"], tf.int64)
        age = tf.cast(request_ts[:, None] - tf.cast(hist["hist_timestamp"], tf.int64), tf.float32)  # [B, L]
        groups = self.grouping({"group_id": self.item_group(hist["hist_item_id"]),
                                "timestamp": hist["hist_timestamp"], "length": hist[HIST_LENGTH]})

        behavior_type = tf.cast(hist["hist_behavior_type"], tf.int32)
        category = tf.gather(self._categories,
                             tf.clip_by_value(behavior_type, 0, self.spec.n_behavior_types - 1))
        stats = self.statistics({"slot": groups["slot"], "category": category, "duration": hist["hist_duration"],
                                 "amount": hist["hist_amount"], "age_seconds": age})["embedding"]

        positions = tf.maximum(groups["positions"], 0)  # [B, G, m] indices into L
        bmask = groups["behavior_mask"]
        tokens = self.behavior_embedding({"behavior_type": tf.gather(behavior_type, positions, batch_dims=1),
                                          "age_seconds": tf.gather(age, positions, batch_dims=1)})
        if self.group_behavior_features:  # b_j = [E_time; E_type; E_f(f_j) for each behavior feature]
            tokens = tf.concat([tokens] + [emb(tf.gather(hist[f"hist_{emb.feature.name}"], positions, batch_dims=1))
                                           for emb in self.group_behavior_features], axis=-1)
        evolution = self.intra_group({"behaviors": tokens, "mask": bmask})  # [B, G, d]
        items = self.item_embedding(tf.gather(hist["hist_item_id"], positions, batch_dims=1))  # [B, G, m, d]
        pooled_items = masked_mean(items, bmask, axis=2)  # [B, G, d]
        group_vectors = self.group_repr([self.group_embedding(groups["group_id"]), pooled_items, stats, evolution])

        top = self.top_k({"max_timestamp": groups["max_timestamp"], "mask": groups["group_mask"],
                          "values": {"group": group_vectors, "group_id": groups["group_id"]}})
        states = self.hstu({"x": top["group"], "mask": top["mask"], "timestamp": top["max_timestamp"]},
                           training=training)
        return {"user_embedding": self.encode_profile(features), **self.encode_recent(hist),
                "group_states": states, "group_mask": tf.cast(top["mask"], tf.float32),
                "group_ids": top["group_id"]}

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        target_group = self.item_group(candidate_item_id)  # [B, C]
        target = tf.concat([item_emb, self.group_embedding(target_group)], axis=-1)
        match = tf.cast(target_group[:, :, None] == tf.cast(user_state["group_ids"], tf.int32)[:, None, :], tf.float32)
        long_term = self.group_attention({"query": target, "keys": user_state["group_states"],
                                          "mask": user_state["group_mask"], "match": match})
        return [target, long_term]

    def get_config(self):
        return {**super().get_config(), "num_groups": self.num_groups}
