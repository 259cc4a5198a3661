"""TWIN-V2: hierarchical clustering of the behaviors + cluster-aware TWIN attention (Si et al., CIKM 2024)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from tfrec.configs.twin_v2 import TWINV2Config
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import HIST_LENGTH
from tfrec.grouping.hierarchical_clustering import cluster_histories, principal_directions
from tfrec.layers.embedding.item_features import ItemFeatureLookup
from tfrec.layers.hierarchical_clustering import HierarchicalClustering
from tfrec.layers.retrieval import TopKTargetAttention
from tfrec.models.two_stage import CONTENT, TwoStageModel
from tfrec.registry import register

# Model-feature keys of clusters precomputed in the input pipeline (``TWINV2.precompute_clusters``).
PRECOMPUTED = ("twinv2_assignment", "twinv2_representative", "twinv2_size", "twinv2_mask")
BUILTIN_NUMERIC = ("duration", "amount")
CLUSTER_CONTENT = "cluster_content"  # the projected content column the clustering reads


@register
class TWINV2(TwoStageModel):
    """TWIN-V2 on the two-stage contract: clusters in the user tower, TWIN's scorer over them.

    User tower (cached per user), TWIN V2 sec. 3.2 (Algorithm 1) on the window of the N most recent
    behaviors: ``HierarchicalClustering`` of their content vectors (the ``content`` table, rows
    L2-normalised; vectors wider than ``config.cluster_dim`` (default 32) are projected onto their top
    principal directions over the item table, a non-trainable ``cluster_content`` table of the
    checkpoint),
    first split by ``group_feature``; each cluster becomes one "virtual item": the
    categorical fields (item id, behavior type, categorical behavior features) of its representative
    (the member closest to the cluster mean), numeric behavior features averaged over its members
    (sec. 3.3), its size n. State: ``cluster_<f>`` ``[B, M]`` per behavior field (ids int32 as
    ``TwoStageModel``), ``cluster_size``, ``cluster_mask`` float32 ``[B, M]``, + the shared profile
    and short-term branch: 3,472 bytes per user at M = 128 with the default schema (the window of
    ``TwoStageModel`` at N = 1,024: 13.7 KB). The clustering may instead run once per example in the input pipeline
    (``precompute_clusters``, numpy): ``encode_user`` then reads ``PRECOMPUTED`` from the features and
    gives identical tensors (tested).

    Score, per candidate t, with ``TopKTargetAttention`` (TWIN eqs. 5-7 + TWIN V2 eq. 8):
      keys: the representatives' inherent features ``e_j`` (item id + declared item features);
      values: the cluster tokens (inherent + behavior type + behavior features);
      per head ``alpha'_j = (W_q e_t)·(W_k e_j) / sqrt(d_h) + b_j + ln n_j`` with TWIN's cross bias
      ``b_j = w · c_j`` (``c_j`` = the behavior-type and behavior-feature part of the token) and the
      cluster-aware term (softmax over ``alpha + ln n`` weighs a cluster like n copies of its
      representative); the top-K clusters per head by ``alpha'`` (CP-GSU: the ESU's own score),
      ``softmax_K(alpha')``, ``u = Concat_h sum alpha W_v x``.
      Head: ``[e_t, short-term DIN, user, context, u]``.

    Choices the paper leaves open, ours (docs/models.md, "TWIN-V2"): clustering runs on the window
    (N, not the whole life cycle: ScaNN / narrowing serve longer ones for the other models) over the
    items' content vectors (the paper clusters on item embeddings it does not specify), PCA-projected
    to ``cluster_dim`` = 32 dimensions when wider (the clustering's cost grows with the width: the
    layer alone is ~11x slower at 384-d than at 32-d, ``bench/clustering_width.py``; on ml-100k's
    384-d text vectors a benchmark cell took 5,890 s against TWIN's 290 s; ``principal_directions``); the paper's
    play-completion groups map to ``group_feature`` (default the behavior type); fixed-depth recursion
    (``max_depth``), deterministic farthest-point seeds and ``kmeans_iterations`` Lloyd steps; at most
    ``max_clusters`` clusters (the largest kept); ``ln n`` and the cross bias rank the clusters for retrieval
    too (``size_in_retrieval``, ``cross_in_retrieval``; the paper uses cluster-aware attention in both
    GSU and ESU); the cross term is one scalar per cluster shared by the heads (as ``TWIN``); no Δt
    features (as every model here).
    """

    config_class = TWINV2Config
    model_name = "twinv2"

    def __init__(self, spec, config: TWINV2Config = TWINV2Config(), cluster_dim: Optional[int] = None, **kwargs):
        if cluster_dim is not None:  # a model saved when cluster_dim was a constructor argument
            config = dataclasses.replace(config, cluster_dim=int(cluster_dim))
        super().__init__(spec, config, **kwargs)
        self.cluster_dim = config.cluster_dim
        d_item = self.item_embedding.output_dim
        self.check_heads(d_item, "the item representation")
        if any(e.feature.name == "size" for e in self.behavior_feature_embeddings):
            raise ValueError("TWINV2: a behavior feature named 'size' would collide with the user state's "
                             "cluster_size: rename it in the schema")
        self.group_field, self.num_groups = self._group_key(spec, config)
        self.numeric_fields = [e.feature.name for e in self.behavior_feature_embeddings if not e.feature.is_id]
        self.clustering = HierarchicalClustering(
            self.num_groups, cluster_size=config.cluster_size, max_clusters=config.max_clusters,
            max_depth=config.max_depth, iterations=config.kmeans_iterations, max_branching=config.max_branching,
            branching_exponent=config.branching_exponent, name="hierarchical_clustering")
        self.cluster_content = self._cluster_content(spec)
        self.attention = TopKTargetAttention(config.num_heads, config.key_dim, d_item, config.gsu_k, name="twin")
        self.cross = tf.keras.layers.Dense(1, use_bias=False, name="cross_bias") if config.cross_bias else None

    def _cluster_content(self, spec):
        """The projected content table (``ItemFeatureLookup`` of ``CLUSTER_CONTENT``, ``cluster_dim``
        wide) when the content vectors are wider than ``cluster_dim``, else None (cluster on them)."""
        if self.content is None or self.content_dim <= self.cluster_dim:
            return None
        # the initial L2-normalised rows (zeros: none given). (A public accessor on ItemFeatureLookup
        # would change every two-stage model's benchmark key: add it when that file changes anyway.)
        table = self.content._initial[CONTENT][:-1]
        tables = None
        if np.any(table):  # rebuilt from its config: zeros, the checkpoint restores the projected table
            tables = {CLUSTER_CONTENT: table @ principal_directions(table, self.cluster_dim)}
        return ItemFeatureLookup(spec.n_items, [FeatureDef(CLUSTER_CONTENT, "dense", dim=self.cluster_dim)], tables,
                                 name="cluster_content")

    def load_weights(self, *args, **kwargs):
        """``Model.load_weights``, refusing a checkpoint without the projected table: one written before
        TWIN-V2 projected wide content vectors leaves it at zeros, which would silently put every
        behavior of a group in one cluster."""
        status = super().load_weights(*args, **kwargs)
        if self.cluster_content is not None and self.cluster_content.built and not any(
                tf.reduce_any(t != 0.0).numpy() for t in self.cluster_content.tables.values()):
            raise ValueError(f"TWINV2: the checkpoint {args[0] if args else ''} has no projected cluster_content "
                             f"table (content vectors of {self.content_dim} dims are clustered on their "
                             f"{self.cluster_dim} top principal directions since tfrec 57ab237): retrain the run")
        return status

    @staticmethod
    def _group_key(spec, config) -> tuple[str, int]:
        """``(window field of the group key or "", number of groups)``; raises on a bad config."""
        name, bounds = config.group_feature, config.group_boundaries
        declared = {fd.name: fd for fd in spec.behavior_features}
        numeric = name in BUILTIN_NUMERIC or (name in declared and declared[name].kind == "numeric")
        if bounds and not numeric:
            raise ValueError(f"TWINV2Config.group_boundaries bucket a numeric group_feature; "
                             f"group_feature={name!r} is not one: remove group_boundaries")
        if name == "":
            return "", 1
        if name == "behavior_type":
            return name, spec.n_behavior_types
        if numeric:
            if not bounds:
                raise ValueError(f"TWINV2Config.group_feature={name!r} is numeric: give group_boundaries (the bucket "
                                 "edges, e.g. [0.3, 0.7] for a completion ratio), or group by behavior_type")
            return name, len(bounds) + 1
        fd = declared.get(name)
        if fd is not None and fd.kind == "categorical" and fd.vocab_size:
            return name, fd.vocab_size + 1  # unknown ids: the last group
        raise ValueError(f"TWINV2Config.group_feature={name!r} must be '', 'behavior_type', 'duration', 'amount' "
                         "or a declared behavior feature (numeric with group_boundaries, or categorical with a "
                         f"vocab_size). Declared: {sorted(declared)}")

    @property
    def window_fields(self):
        """The window's fields: the state's behavior fields + the group key's."""
        extra = [self.group_field] if self.group_field and self.group_field not in self.behavior_fields else []
        return self.behavior_fields + extra

    def _window(self, features) -> dict[str, tf.Tensor]:
        hist = self.padded_history(features)
        return self.window({"length": hist[HIST_LENGTH],
                            "values": {f: hist[f"hist_{f}"] for f in self.window_fields}})

    def _groups(self, window) -> tf.Tensor:
        """Group key ``[B, N]`` int32 in ``[0, num_groups)``."""
        name = self.group_field
        if not name:
            return tf.zeros_like(window["mask"], tf.int32)
        values = window[name]
        if self.config.group_boundaries:
            return tf.cast(tf.raw_ops.Bucketize(input=tf.cast(values, tf.float32),
                                                boundaries=[float(b) for b in self.config.group_boundaries]), tf.int32)
        ids = tf.cast(values, tf.int64)
        unknown = self.num_groups - 1 if name != "behavior_type" else 0
        return tf.cast(tf.where((ids >= 0) & (ids < self.num_groups), ids, unknown), tf.int32)

    def _clustering_inputs(self, window):
        if self.cluster_content is not None:
            vectors = self.cluster_content.column(window["item_id"], CLUSTER_CONTENT)
        else:
            vectors = self.content.column(window["item_id"], CONTENT)
        return {"vectors": vectors, "groups": self._groups(window),
                "mask": window["mask"]}

    def precompute_clusters(self, features) -> dict[str, np.ndarray]:
        """The input-pipeline path: the clusters of each example's window by the numpy reference
        (``tfrec.grouping.hierarchical_clustering``), as the ``PRECOMPUTED`` features."""
        inputs = {k: np.asarray(v) for k, v in self._clustering_inputs(self._window(features)).items()}
        layer = self.clustering
        out = cluster_histories(inputs["vectors"], inputs["groups"], inputs["mask"], num_groups=layer.num_groups,
                                cluster_size=layer.cluster_size, max_clusters=layer.max_clusters,
                                max_depth=layer.max_depth, iterations=layer.iterations,
                                max_branching=layer.max_branching, branching_exponent=layer.branching_exponent)
        return {f"twinv2_{k}": v for k, v in out.items()}

    def encode_user(self, features, training=None):
        hist = self.padded_history(features)
        window = self._window(features)
        if all(k in features for k in PRECOMPUTED):
            clusters = {k[len("twinv2_"):]: features[k] for k in PRECOMPUTED}
        else:
            clusters = self.clustering(self._clustering_inputs(window))
        rep, cmask = tf.cast(clusters["representative"], tf.int32), tf.cast(clusters["mask"], tf.float32)
        size = tf.cast(clusters["size"], tf.float32)
        assignment = tf.cast(clusters["assignment"], tf.int32)
        state = {}
        m = self.config.max_clusters
        b = tf.shape(rep)[0]
        seg = tf.where(assignment >= 0, tf.range(b)[:, None] * m + tf.maximum(assignment, 0), b * m)
        for f in self.behavior_fields:
            if f in self.numeric_fields:  # averaged over the members (TWIN V2 sec. 3.3)
                total = tf.math.unsorted_segment_sum(tf.cast(window[f], tf.float32), seg, b * m + 1)[:-1]
                state[f"cluster_{f}"] = tf.reshape(total, [b, m]) / tf.maximum(size, 1.0)
                continue
            value = tf.gather(window[f], rep, batch_dims=1)  # the representative's
            state[f"cluster_{f}"] = tf.where(cmask > 0, value, tf.zeros_like(value))
        # int32 ids as TwoStageModel (out-of-vocabulary ids -> -1 first)
        for f, vocab in (("item_id", self.spec.n_items), ("behavior_type", self.spec.n_behavior_types)):
            ids = tf.cast(state[f"cluster_{f}"], tf.int64)
            state[f"cluster_{f}"] = tf.cast(tf.where((ids >= 0) & (ids < vocab), ids, -1), tf.int32)
        return {"user_embedding": self.encode_profile(features), **self.encode_recent(hist), **state,
                "cluster_size": size, "cluster_mask": cmask}

    def attend(self, user_state, item_emb) -> dict:
        """``TopKTargetAttention``'s output (``output`` ``[B, C, d_item]``, ``positions`` / ``mask``
        ``[B, C, H, K]`` over the cluster slots) for candidates ``item_emb`` ``[B, C, d_item]``."""
        keys = self.item_embedding(user_state["cluster_item_id"])  # [B, M, d_item], inherent
        tokens = self.behavior_tokens({f"hist_{f}": user_state[f"cluster_{f}"] for f in self.behavior_fields})
        inputs = {"query": item_emb, "keys": keys, "values": tokens, "mask": user_state["cluster_mask"]}
        before, after = [], []  # biases added before / after the per-head top-K
        if self.config.cluster_aware:
            log_size = tf.math.log(tf.maximum(user_state["cluster_size"], 1.0))  # [B, M], 0 on empty slots
            (before if self.config.size_in_retrieval else after).append(log_size)
        if self.cross is not None:
            cross = tf.squeeze(self.cross(tokens - keys), -1)  # [B, M]
            (before if self.config.cross_in_retrieval else after).append(cross)
        if before:
            inputs["score_bias"] = tf.add_n(before)
        if after:
            inputs["bias"] = tf.add_n(after)
        return self.attention(inputs)

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        return [self.attend(user_state, item_emb)["output"]]
