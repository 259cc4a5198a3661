"""DMGIN: Deep Multimodal Group Interest Network (DMGIN paper; DESIGN.md's reconstruction)."""
import dataclasses
from typing import Dict

import numpy as np
import tensorflow as tf

from tfrec.configs.dmgin import DMGINConfig
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
from tfrec.layers.recent_behaviors import recent_history
from tfrec.layers.item_group_lookup import ItemGroupLookup, lookup_groups
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

    # -- the parameter-free stage: grouping, statistics and every gather over the L raw behaviors ----
    def grouped_keys(self):
        """Names of the tensors ``group_history`` returns (the pipeline path's extra features)."""
        keys = ["grouped_ids", "grouped_mask", "grouped_max_timestamp", "grouped_behavior_mask", "grouped_item_id"]
        if self.statistics is not None:
            keys.append("grouped_statistics")
        if self.intra_group is not None:
            keys += ["grouped_behavior_type", "grouped_age"]
            keys += [f"grouped_{emb.feature.name}" for emb in self.group_behavior_features]
        return keys

    def group_history(self, features, table=None) -> Dict[str, tf.Tensor]:
        """Everything of the user tower before its first trainable layer, from the raw behaviors.

        ItemGroupLookup -> BehaviorGrouping (k groups x m most recent behaviors) -> the raw group
        statistics (eq. 1, over the whole history) -> the groups ordered oldest -> newest (TopKGroups,
        eq. 6; moved ahead of the per-group layers, which act on each group alone) -> the kept
        behaviors' fields gathered to ``[B, k, m]`` (0 where empty). ``encode_user`` runs it in-graph
        (the serving ``user_tower``); with ``input_grouping`` the training input pipeline runs it once
        per request (``prepare_training_data``, ``tfrec.data.request_states``) on ``table``, a constant
        copy of the item -> group table, and the train step reads its outputs.

        Returns:
          ``grouped_ids`` int32 ``[B, k]``, ``grouped_mask`` bool ``[B, k]``, ``grouped_max_timestamp``
          int64 ``[B, k]`` (-1 where empty), ``grouped_behavior_mask`` bool ``[B, k, m]``,
          ``grouped_item_id`` int64 ``[B, k, m]``; with ``statistics``: ``grouped_statistics``
          float32 ``[B, k, n_categories + 5]``; with ``evolution``: ``grouped_behavior_type`` int32,
          ``grouped_age`` float32 (seconds before the request) and ``grouped_<feature>`` per declared
          behavior feature, each ``[B, k, m]``.
        """
        hist = self.padded_history(features)
        request_ts = tf.cast(features["request_timestamp"], tf.int64)
        group_of = self.item_group(hist["hist_item_id"]) if table is None else lookup_groups(table, hist["hist_item_id"])
        groups = self.grouping({"group_id": group_of, "timestamp": hist["hist_timestamp"], "length": hist[HIST_LENGTH]})
        values = {"ids": groups["group_id"], "positions": groups["positions"]}
        behavior_type = tf.cast(hist["hist_behavior_type"], tf.int32)
        if self.statistics is not None:  # s_i (eq. 1) over the whole history, before its projection
            age = tf.cast(request_ts[:, None] - tf.cast(hist["hist_timestamp"], tf.int64), tf.float32)  # [B, L]
            category = tf.gather(self._categories, tf.clip_by_value(behavior_type, 0, self.spec.n_behavior_types - 1))
            values["statistics"] = self.statistics.raw_statistics({
                "slot": groups["slot"], "category": category, "duration": hist["hist_duration"],
                "amount": hist["hist_amount"], "age_seconds": age})
        top = self.top_k({"max_timestamp": groups["max_timestamp"], "mask": groups["group_mask"], "values": values})
        mask = top["positions"] >= 0  # [B, k, m]
        positions = tf.maximum(top["positions"], 0)

        def gather(seq):  # [B, L] -> [B, k, m], 0 where empty
            out = tf.gather(seq, positions, batch_dims=1)
            return tf.where(mask, out, tf.zeros_like(out))

        out = {"grouped_ids": tf.cast(top["ids"], tf.int32), "grouped_mask": top["mask"],
               "grouped_max_timestamp": top["max_timestamp"], "grouped_behavior_mask": mask,
               "grouped_item_id": gather(tf.cast(hist["hist_item_id"], tf.int64))}
        if self.statistics is not None:
            out["grouped_statistics"] = top["statistics"]
        if self.intra_group is not None:
            out["grouped_behavior_type"] = gather(behavior_type)
            ts = gather(tf.cast(hist["hist_timestamp"], tf.int64))
            out["grouped_age"] = tf.where(mask, tf.cast(request_ts[:, None, None] - ts, tf.float32), 0.0)
            for emb in self.group_behavior_features:
                out[f"grouped_{emb.feature.name}"] = gather(hist[f"hist_{emb.feature.name}"])
        return out

    def pipeline_features(self, features, table) -> Dict[str, tf.Tensor]:
        """``features`` as the train step reads them with ``input_grouping``: ``group_history``'s tensors
        plus the raw sequences cut to the S most recent behaviors (the short-term branch's input)."""
        out = {k: v for k, v in features.items() if not k.startswith("hist_")}
        out.update(self.group_history(features, table))
        out.update(recent_history(self.padded_history(features), self.config.short_term_length))
        return out

    def prepare_training_data(self, dataset):
        """With ``input_grouping``: maps ``pipeline_features`` over the batches (on a constant copy of
        the item -> group table), unless they already carry the grouped tensors (``tfrec train``
        joins them precomputed, ``tfrec.data.request_states``)."""
        dataset = super().prepare_training_data(dataset)
        features_spec = tf.keras.utils.unpack_x_y_sample_weight(dataset.element_spec)[0]
        if not self.config.input_grouping or "grouped_mask" in features_spec:
            return dataset
        table = tf.constant(self.item_group_table())

        def stage(*element):
            x, y, w = tf.keras.utils.unpack_x_y_sample_weight(element)
            return tf.keras.utils.pack_x_y_sample_weight(self.pipeline_features(x, table), y, w)

        return dataset.map(stage, num_parallel_calls=tf.data.AUTOTUNE)

    def request_stage(self):
        """``group_history`` on a constant copy of the item -> group table, and the S most recent raw
        behaviors (the short-term branch): with ``input_grouping``, ``tfrec train`` groups each request
        once (``tfrec.data.request_states``)."""
        if not self.config.input_grouping:
            return None
        table = tf.constant(self.item_group_table())
        return (lambda features: self.group_history(features, table)), self.config.short_term_length

    def item_group_table(self) -> np.ndarray:
        """The item -> group table as numpy (the model's weight once built, else its initial value)."""
        if self.item_group.built:
            with tf.init_scope():  # (also when an input function is being traced, e.g. for remote workers)
                return self.item_group.table.numpy()
        if self.item_group._initial_table is None:
            return np.zeros([self.spec.n_items], np.int32)
        return np.asarray(self.item_group._initial_table, np.int32)

    # -- the trainable user tower -------------------------------------------------------------------
    def encode_user(self, features, training=None):
        grouped = features if "grouped_mask" in features else self.group_history(features)
        hist = self.padded_history(features)
        bmask = grouped["grouped_behavior_mask"]
        items = self.item_embedding(grouped["grouped_item_id"])  # [B, k, m, d]
        parts = [self.group_embedding(grouped["grouped_ids"]), masked_mean(items, bmask, axis=2)]  # eq. 5, in order
        if self.statistics is not None:  # s_i (eq. 1)
            parts.append(self.statistics({"raw": grouped["grouped_statistics"]})["embedding"])
        if self.intra_group is not None:  # e_i (eqs. 2-4) over the m most recent behaviors of each group
            tokens = self.behavior_embedding({"behavior_type": grouped["grouped_behavior_type"],
                                              "age_seconds": grouped["grouped_age"]})
            if self.group_behavior_features:  # b_j = [E_time; E_type; E_f(f_j) for each behavior feature]
                tokens = tf.concat([tokens] + [emb(grouped[f"grouped_{emb.feature.name}"])
                                               for emb in self.group_behavior_features], axis=-1)
            parts.append(self.intra_group({"behaviors": tokens, "mask": bmask}))  # [B, k, d]
        group_vectors = self.group_repr(parts)
        mask = tf.cast(grouped["grouped_mask"], tf.float32)
        if self.hstu is not None:  # eqs. 7-9
            states = self.hstu({"x": group_vectors, "mask": grouped["grouped_mask"],
                                "timestamp": grouped["grouped_max_timestamp"]}, training=training)
        else:  # DMGIN-simple: the top-k group vectors themselves
            states = group_vectors * mask[..., None]
        state = {"user_embedding": self.encode_profile(features), **self.encode_recent(hist),
                 "group_states": states, "group_mask": mask}
        if self.config.match_prior:
            state["group_ids"] = grouped["grouped_ids"]
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
