"""DMGIN: Deep Multimodal Group Interest Network (DMGIN paper; DESIGN.md's reconstruction)."""
import dataclasses

import numpy as np
import tensorflow as tf

from tfrec.configs import DMGINConfig
from tfrec.data.spec import HIST_LENGTH
from tfrec.grouping.coverage import choose_top_k, coverage_at, target_group_ranks
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
    ``recent_mask`` ``[B, S]`` (S > 0 only), ``group_states`` ``[B, k, d]``, ``group_mask`` ``[B, k]``,
    ``group_ids`` int32 ``[B, k]`` (``match_prior`` only: the exact-group-match prior of
    CandidateGroupAttention).

    Switches (``DMGINConfig``; each removes its layers, so its weights too): ``match_prior`` off =
    the paper's eq. 10; ``statistics`` off = no ``s_i`` in eq. 5 (Table 3 "-Interest Statistical");
    ``evolution`` off = no ``e_i`` (Table 3 "-Behavior Evolution"); ``hstu_layers=0`` = DMGIN-simple
    (Table 3: the candidate attends to the top-k group vectors directly); ``short_term_length=0`` = no
    short-term branch; ``group_key="item_id"`` = DGIN (one group per item id, no K-means table);
    ``top_k_groups=0`` = k sized from the training data (``config_from_data``).

    Args:
      spec: FeatureSpec (declared item features join ``e_item`` for the pooled group items and the
        target; declared behavior features join each behavior token ``b_j``).
      config: DMGINConfig.
      num_groups: group ids including the reserved unknown group 0 (K-means k + 1); ignored with
        ``group_key="item_id"`` (then ``n_items + 1``: item i is group i + 1).
      item_to_group: optional ``[n_items]`` initial item -> group table (checkpoints restore it).
    """

    config_class = DMGINConfig
    model_name = "dmgin"
    uses_item_groups = True

    def __init__(self, spec, config: DMGINConfig = DMGINConfig(), num_groups: int = 1, item_to_group=None,
                 **kwargs):
        if config.top_k_groups == 0:
            raise ValueError("DMGINConfig.top_k_groups=0 means 'sized from the training data': build the model with "
                             "tfrec.training.build_model(..., train_data=ds) or tfrec.api.build_model (both call "
                             "DMGIN.config_from_data), or set top_k_groups to a positive number of groups")
        super().__init__(spec, config, **kwargs)
        d, k = config.embedding_dim, config.top_k_groups
        if config.group_key == "item_id":  # DGIN: every item id is its own group
            num_groups, item_to_group = spec.n_items + 1, np.arange(1, spec.n_items + 1)
        self.num_groups = int(num_groups)
        self.item_group = ItemGroupLookup(spec.n_items, num_groups, table=item_to_group, name="item_group")
        self.group_embedding = IdEmbedding(num_groups, d, name="group_embedding")
        self.grouping = BehaviorGrouping(num_groups, k, config.max_per_group, name="grouping")
        self.statistics = self.intra_group = self.behavior_embedding = self.hstu = None
        self.group_behavior_features = []
        if config.statistics:
            self.statistics = GroupStatistics(k, spec.n_categories, d, name="group_statistics")
        if config.evolution:
            self.behavior_embedding = BehaviorEmbedding(spec.n_behavior_types, d, config.time_bucket_days,
                                                        name="behavior_embedding")
            # Declared behavior features (e.g. the paper's location E_loc(l_j)) join b_j, concatenated.
            self.group_behavior_features = [
                FeatureEmbedding(dataclasses.replace(fd, embedding_dim=0), d, name=f"group_behavior_{fd.name}")
                for fd in spec.behavior_features]
            self.intra_group = IntraGroupAttention(config.num_heads, d, d, name="intra_group_attention")
        self.group_repr = GroupRepresentation(d, name="group_representation")
        self.top_k = TopKGroups(k, name="top_k_groups")
        if config.hstu_layers:
            self.hstu = HSTU(config.hstu_layers, config.hstu_heads, d, k, config.time_bucket_days, name="hstu")
        self.group_attention = CandidateGroupAttention(d, match_prior=config.match_prior,
                                                       name="candidate_group_attention")
        self._categories = tf.constant(spec.behavior_categories, tf.int32)

    @classmethod
    def needs_item_groups(cls, config) -> bool:
        return config.group_key == "cluster"

    @classmethod
    def config_from_data(cls, config: DMGINConfig, spec, train_data=None, groups=None):
        """Sizes ``top_k_groups`` when it is 0: the smallest k (in [4, ``top_k_max``]) whose kept groups
        hold the target item's group for ``top_k_coverage`` of the training examples that have it in
        their history (``tfrec.grouping.coverage``, over the first ``coverage_batches`` batches of
        ``train_data``: pass a copy of the training pipeline, since iterating it moves a reshuffle on). Returns ``(config, report)``; the report gives the coverage of the k used
        (also when k was set by hand), None without training data."""
        if train_data is None or (config.group_key == "cluster" and groups is None):
            return config, None
        table = np.arange(1, spec.n_items + 1) if config.group_key == "item_id" else np.asarray(groups.table)
        keys = ("item_id", "hist_item_id", "hist_timestamp", HIST_LENGTH)
        batches = [{k: tf.keras.utils.unpack_x_y_sample_weight(element)[0][k].numpy() for k in keys}
                   for element in train_data.take(config.coverage_batches)]
        ranks, counts = target_group_ranks(batches, table)
        if config.top_k_groups:
            report = coverage_at(ranks, counts, config.top_k_groups)
        else:
            report = choose_top_k(ranks, counts, config.top_k_coverage, config.top_k_max)
            config = dataclasses.replace(config, top_k_groups=report.k)
        return config, {"top_k_groups": dataclasses.asdict(report), "top_k_line": report.line()}

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
        positions = tf.maximum(groups["positions"], 0)  # [B, G, m] indices into L
        bmask = groups["behavior_mask"]
        items = self.item_embedding(tf.gather(hist["hist_item_id"], positions, batch_dims=1))  # [B, G, m, d]
        parts = [self.group_embedding(groups["group_id"]), masked_mean(items, bmask, axis=2)]  # eq. 5, in order
        if self.statistics is not None:  # s_i (eq. 1), over the whole history
            category = tf.gather(self._categories, tf.clip_by_value(behavior_type, 0, self.spec.n_behavior_types - 1))
            parts.append(self.statistics({"slot": groups["slot"], "category": category,
                                          "duration": hist["hist_duration"], "amount": hist["hist_amount"],
                                          "age_seconds": age})["embedding"])
        if self.intra_group is not None:  # e_i (eqs. 2-4) over the m most recent behaviors of each group
            tokens = self.behavior_embedding({"behavior_type": tf.gather(behavior_type, positions, batch_dims=1),
                                              "age_seconds": tf.gather(age, positions, batch_dims=1)})
            if self.group_behavior_features:  # b_j = [E_time; E_type; E_f(f_j) for each behavior feature]
                tokens = tf.concat([tokens] + [emb(tf.gather(hist[f"hist_{emb.feature.name}"], positions, batch_dims=1))
                                               for emb in self.group_behavior_features], axis=-1)
            parts.append(self.intra_group({"behaviors": tokens, "mask": bmask}))  # [B, G, d]
        group_vectors = self.group_repr(parts)

        top = self.top_k({"max_timestamp": groups["max_timestamp"], "mask": groups["group_mask"],
                          "values": {"group": group_vectors, "group_id": groups["group_id"]}})
        mask = tf.cast(top["mask"], tf.float32)
        if self.hstu is not None:  # eqs. 7-9
            states = self.hstu({"x": top["group"], "mask": top["mask"], "timestamp": top["max_timestamp"]},
                               training=training)
        else:  # DMGIN-simple: the top-k group vectors themselves
            states = top["group"] * mask[..., None]
        state = {"user_embedding": self.encode_profile(features), **self.encode_recent(hist),
                 "group_states": states, "group_mask": mask}
        if self.config.match_prior:
            state["group_ids"] = top["group_id"]
        return state

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        target_group = self.item_group(candidate_item_id)  # [B, C]
        target = tf.concat([item_emb, self.group_embedding(target_group)], axis=-1)
        inputs = {"query": target, "keys": user_state["group_states"], "mask": user_state["group_mask"]}
        if self.config.match_prior:
            inputs["match"] = tf.cast(
                target_group[:, :, None] == tf.cast(user_state["group_ids"], tf.int32)[:, None, :], tf.float32)
        return [target, self.group_attention(inputs)]

    def get_config(self):
        return {**super().get_config(), "num_groups": self.num_groups}
