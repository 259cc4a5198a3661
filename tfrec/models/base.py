"""CTRModel: the one two-tower interface every tfrec model implements.

* ``encode_user(features) -> user_state``: the candidate-independent half (cacheable per user);
  ``user_state`` is a dict of fixed-shape dense tensors ``[B, ...]``.
* ``score(user_state, candidate_item_id, context) -> p(click)`` for ``[B, C]`` candidates per user
  and the request's context features (``[B]`` each; none in the default schema).
* ``call(features) = score(encode_user(features), item_id[:, None], context)[:, 0]`` for ``model.fit``.

Export and serving use only these methods, never the model class.

Feature handling is shared here, once, for every model (``tfrec.layers.embedding``): the item
representation ``e_item = [E_id(item); E_f(f(item)) ...]`` (``ItemEmbedding``, item features
looked up from the item table inside the model) for the target and for every behavior; each user
feature and each context feature through ``FeatureEmbedding``, concatenated, reaching the head;
each declared behavior feature embedded and added to the behavior tokens.

A precomputed per-user vector (``FeatureSpec.user_vector_dim`` D > 0: CHIME's compressed
long-term interests, LEARN's user embedding; ``tfrec.data.user_vectors``) is a numerical user
feature (CHIME sec. 4.1, "Utilization Stage") and is shared here too: ``encode_profile`` appends its
projection to the user features' embeddings, so it reaches every model's head through
``user_state["user_embedding"]`` with no per-model code.

The short-term branch (DIN's target attention over the most recent behaviors) is shared here:
DIN is that branch alone; DMGIN adds it next to its long-term group interest.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec import configs as configs_lib
from tfrec.data.spec import HIST_LENGTH, USER_VECTOR, FeatureSpec
from tfrec.layers.din_attention import DINAttention
from tfrec.layers.embedding import FeatureEmbedding, ItemEmbedding
from tfrec.layers.id_embedding import IdEmbedding
from tfrec.layers.mlp import MLP
from tfrec.layers.recent_behaviors import RecentBehaviors


class CTRModel(tfrs.models.Model):
    """Base class: shared embeddings, the short-term branch, the prediction head, the interface.

    Subclasses set ``config_class`` and implement ``encode_user`` and ``head_inputs``.

    Args:
      spec: the FeatureSpec (vocabulary sizes and declared features).
      config: the model's config dataclass (needs ``embedding_dim``, ``mlp_units``, ``dropout``,
        ``attention_units`` and a recent-behavior length, see ``recent_length``; optional
        ``attention_activation`` / ``head_activation``, ``embedding_l2``, ``regularization``).
      item_table: optional ``ItemTable`` (``tfrec.data.item_table``) with the declared item
        features' initial values; checkpoints restore it, so a model rebuilt from its config needs none.
      item_frequency: optional ``[n_items]`` occurrences of each item in the training data, the
        ``n_j`` of the mini-batch aware regularization (``regularization="mba"``; default 1).
    """

    config_class: Any = None
    # True for models built with ``num_groups`` / ``item_to_group`` (the K-means table).
    uses_item_groups: bool = False
    # True for models built with ``item_content`` (content vectors / Semantic IDs, ``tfrec.data.item_content``).
    uses_item_content: bool = False

    def __init__(self, spec: FeatureSpec, config, item_table=None, item_frequency=None, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.config = config
        d = config.embedding_dim
        self.item_embedding = ItemEmbedding(spec.n_items, d, spec.item_features,
                                            tables=item_table.columns if item_table is not None else None,
                                            name="item_embedding")
        item_dim = self.item_embedding.output_dim
        self.type_embedding = IdEmbedding(spec.n_behavior_types, item_dim, name="behavior_type_embedding")
        # Added to the behavior tokens, so each is as wide as the item representation.
        self.behavior_feature_embeddings = [
            FeatureEmbedding(dataclasses.replace(fd, embedding_dim=0), item_dim, name=f"behavior_{fd.name}")
            for fd in spec.behavior_features]
        self.user_embeddings = [FeatureEmbedding(fd, d, name=f"user_{fd.name}") for fd in spec.user_features]
        self.context_embeddings = [FeatureEmbedding(fd, d, name=f"context_{fd.name}")
                                   for fd in spec.context_features]
        # The precomputed user vector [B, D] -> [B, d] (see encode_profile); None without one.
        self.user_vector_projection = (tf.keras.layers.Dense(d, name="user_vector_projection")
                                       if spec.user_vector_dim else None)
        # recent_length 0 = no short-term branch (e.g. a paper-exact model reading one sequence)
        self.recent = self.recent_attention = None
        if self.recent_length < 0:
            raise ValueError(f"The recent-behavior length must be >= 0 (0 = no short-term branch). "
                             f"Received: {self.recent_length}")
        if self.recent_length > 0:
            self.recent = RecentBehaviors(self.recent_length, name="recent_behaviors")
            self.recent_attention = DINAttention(config.attention_units, name="recent_attention",
                                                 **_optional(config, activation="attention_activation"))
        self.head = MLP(config.mlp_units, output_units=1, dropout=config.dropout, name="head",
                        **_optional(config, activation="head_activation"))
        self.embedding_l2 = float(getattr(config, "embedding_l2", 0.0))
        self.regularization = getattr(config, "regularization", "l2")
        if self.embedding_l2 and self.regularization == "mba":
            freq = np.ones(spec.n_items) if item_frequency is None else np.asarray(item_frequency, np.float64)
            if freq.shape != (spec.n_items,):
                raise ValueError(f"item_frequency must have shape ({spec.n_items},). Received: {freq.shape}")
            self.item_frequency = self.add_weight(
                name="item_frequency", shape=[spec.n_items], trainable=False,
                initializer=tf.keras.initializers.Constant(np.maximum(freq, 1.0).astype(np.float32)))

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

    def score(self, user_state: Dict[str, tf.Tensor], candidate_item_id: tf.Tensor,
              context: Optional[Dict[str, tf.Tensor]] = None, training=None) -> tf.Tensor:
        """p(click) ``[B, C]`` for ``[B, C]`` candidate item ids and the request's context features."""
        return tf.sigmoid(self.candidate_logits(user_state, candidate_item_id, context, training=training))

    def candidate_logits(self, user_state, candidate_item_id, context=None, training=None) -> tf.Tensor:
        candidate_item_id = tf.cast(candidate_item_id, tf.int64)
        item_emb = self.item_embedding(candidate_item_id)  # [B, C, d_item]
        c = tf.shape(candidate_item_id)[1]
        parts = [item_emb]  # (this order is part of trained checkpoints: the head's kernel rows)
        if self.recent_attention is not None:
            parts.append(self.recent_attention({"query": item_emb, "keys": user_state["recent_behaviors"],
                                                "mask": user_state["recent_mask"]}, training=training))
        parts.append(tf.tile(user_state["user_embedding"][:, None, :], [1, c, 1]))
        if self.context_embeddings:
            ctx = self.encode_context(context)  # [B, d_ctx]
            parts.append(tf.tile(ctx[:, None, :], [1, c, 1]))
        parts += list(self.head_inputs(user_state, candidate_item_id, item_emb, training))
        return tf.squeeze(self.head(tf.concat(parts, axis=-1), training=training), -1)

    def call(self, features, training=None, return_state: bool = False):
        """p(click) ``[B]`` of each example's ``item_id``; with ``return_state`` also the user state
        (``compute_loss`` hands it to ``auxiliary_losses``, so the user tower runs once per step)."""
        state = self.encode_user(features, training=training)
        context = {f.name: features[f.name] for f in self.spec.context_fields()}
        probs = self.score(state, tf.cast(features["item_id"], tf.int64)[:, None], context, training=training)[:, 0]
        return (probs, state) if return_state else probs

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def config_from_data(cls, config, spec: FeatureSpec, train_data=None, groups=None):
        """``(config, report)``: the config with its data-sized fields resolved from the training
        ``(features, label)`` batches (e.g. DMGIN's ``top_k_groups=0``) and a JSON-able report of what
        was measured (None when nothing was). ``tfrec.training.build_model`` calls it before building
        the model; the report lands in the run's model.json. Default: unchanged, no report."""
        return config, None

    @classmethod
    def needs_item_groups(cls, config) -> bool:
        """Whether this model, with ``config``, needs the item -> group table (``tfrec cluster``)."""
        return cls.uses_item_groups

    def adapt(self, dataset, batches=None):
        """Sets the model's data-derived constants from training batches before fitting (e.g.
        SIREN's similarity-bucket range). ``tfrec.training.train`` calls it; with ``model.fit`` in a
        notebook call it first. Default: nothing to adapt (returns None)."""
        return None

    def training_callbacks(self, train_ds, out_dir) -> list:
        """Keras callbacks this model adds to ``tfrec.training.train`` (e.g. DMQN's codebook
        report); they run before the TensorBoard callback, so the logs they add are recorded."""
        return []

    # -- the training loss: tensorflow-recommenders' compute_loss pattern ----------------------
    # ``tfrs.models.Model.train_step`` differentiates ``compute_loss(inputs, training=True)``;
    # ``test_step`` reports ``compute_loss(inputs, training=False)``. Every auxiliary loss (the
    # embedding penalty, SIM's GSU loss, DIEN's next-behavior loss) enters here through
    # ``auxiliary_losses``: never through ``call``, so never into a serving graph.
    # Not converted by autograph: its conditions are Python-level, and converting it would make
    # autograph transpile the whole tf_keras loss machinery it calls (minutes of tracing).
    @tf.autograph.experimental.do_not_convert
    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        """The compiled CTR loss on ``(features, label[, weight])`` + (training only) the auxiliary losses.

        Updates the compiled metrics (AUC, logloss) and one running-mean tracker per loss term
        (``ctr_loss``, each key of ``auxiliary_losses``, ``loss`` = their sum), which the logs report.
        Under a distribution strategy the returned loss is this replica's share (the mean terms
        divided by the replicas in sync, as Keras scales the compiled loss; ``batch_sum_losses``
        not); the trackers hold the unscaled values, weighted by batch size. A replica left without
        examples (a last batch smaller than the replicas) adds 0, not NaN.
        """
        features, labels, weights = tf.keras.utils.unpack_x_y_sample_weight(inputs)
        if labels is None:
            raise ValueError("training needs (features, label) batches; the dataset yields features only "
                             "(make_dataset(..., labels=True) / tfrec.api.DataDir.dataset yield both)")
        labels = tf.reshape(tf.cast(labels, tf.float32), [-1, 1])  # [B, 1]: one loss per example, weightable
        predictions, state = self(features, training=training, return_state=True)
        predictions = predictions[:, None]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        loss = self.compiled_loss(labels, predictions, weights)  # Keras divides it by the replicas
        self.compiled_metrics.update_state(labels, predictions, weights)
        batch = tf.cast(tf.shape(labels)[0], tf.float32)
        total = loss * replicas
        self._loss_tracker("ctr_loss").update_state(total, sample_weight=batch)
        if training:
            sums = self.batch_sum_losses()
            for name, value in self.auxiliary_losses(features, labels[:, 0], state).items():
                value = tf.where(batch > 0, value, tf.zeros_like(value))  # a replica left without examples
                self._loss_tracker(name).update_state(value, sample_weight=batch)
                total += value
                loss += value if name in sums else value / replicas
        self._loss_tracker("loss").update_state(total, sample_weight=batch)
        return loss

    def auxiliary_losses(self, features, labels, user_state=None) -> Dict[str, tf.Tensor]:
        """Scalar, already weighted losses added to the CTR loss in training only, by name (each is
        logged as a running mean). ``user_state``: this step's ``encode_user(features, training=True)``
        (reuse it rather than running the user tower again; None = compute it). Base: ``embedding_penalty`` when
        ``embedding_l2`` > 0. Overrides extend ``super().auxiliary_losses(features, labels, user_state)``."""
        if self.embedding_l2:
            return {"embedding_penalty": self.embedding_penalty(features)}
        return {}

    def batch_sum_losses(self) -> set:
        """Names of the auxiliary losses that are sums over the batch rather than means or whole-model
        terms: under a distribution strategy each replica's term counts in full (the global batch's
        sum is the replicas' sum) instead of being divided by the replicas. Base: the mini-batch
        aware penalty (``regularization="mba"``, a sum over the batch's ids)."""
        return {"embedding_penalty"} if self.embedding_l2 and self.regularization == "mba" else set()

    def prepare_training_data(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """The training ``(features, label)`` dataset as this model trains on it: e.g. DIEN adds
        sampled negative behaviors for its auxiliary loss in the input pipeline.
        ``tfrec.training.train`` applies it; with ``model.fit`` in a notebook, map the training
        dataset with it first. Default: unchanged."""
        return dataset

    def request_stage(self):
        """The parameter-free start of ``encode_user`` that may run once per request in the input
        pipeline instead of in every train step (``tfrec.data.request_states``), or None (default).

        Returns ``(fn, history_length)``: ``fn(features)`` gives tensors of ``[B, ...]`` that depend
        only on each example's history before its request, which the train step reads instead of
        recomputing them (``encode_user`` must accept features that carry them), and the train step
        still needs the ``history_length`` most recent raw behaviors. ``tfrec train`` computes them
        once and trains on histories cut to ``history_length``."""
        return None

    def train_step(self, inputs):
        return self._epoch_logs(super().train_step(inputs), training=True)

    def test_step(self, inputs):
        return self._epoch_logs(super().test_step(inputs), training=False)

    def _epoch_logs(self, logs, training: bool):
        """tfrs reports the last batch's loss; Keras (progress bar, ``History``, ``EarlyStopping`` on
        ``val_loss``) expects the running mean over the epoch: report the trackers' means (the
        auxiliary losses in training only: evaluation's loss is the CTR loss)."""
        logs = {k: v for k, v in logs.items() if k not in self._loss_trackers
                and k not in ("regularization_loss", "total_loss")}
        logs.update({name: tracker.result() for name, tracker in self._loss_trackers.items()
                     if training or name in ("ctr_loss", "loss")})
        return logs

    def _loss_tracker(self, name: str) -> tf.keras.metrics.Mean:
        trackers = self.__dict__.setdefault("_loss_trackers_", {})
        if name not in trackers:
            with tf.init_scope():
                trackers[name] = tf.keras.metrics.Mean(name=name)
        return trackers[name]

    @property
    def _loss_trackers(self) -> Dict[str, tf.keras.metrics.Mean]:
        return self.__dict__.get("_loss_trackers_", {})

    @property
    def metrics(self):
        """The compiled metrics + the loss trackers (reset by Keras at every epoch)."""
        return [m for m in super().metrics if m.name != "loss"] + list(self._loss_trackers.values())

    def embedding_penalty(self, features) -> tf.Tensor:
        """``embedding_l2`` x the regularizer of ``regularization`` (see ``DINConfig``).

        ``"l2"``: the squared norm of every embedding table. ``"mba"`` (DIN eq. 5): for each item id
        j among the batch's targets and valid behaviors, ``||w_j||² / n_j`` on the item id table.
        """
        if self.regularization == "l2":
            tables = [w for w in self.trainable_weights  # (a table sharded across parameter servers: .../embeddings/part_i)
                      if any(part.startswith("embeddings") for part in w.name.split("/")[-2:])]
            return self.embedding_l2 * tf.add_n([tf.reduce_sum(tf.square(t)) for t in tables])
        items = tf.cast(features["hist_item_id"], tf.int64)
        valid = tf.range(tf.shape(items)[1])[None, :] < tf.cast(features[HIST_LENGTH], tf.int32)[:, None]
        ids = tf.concat([tf.cast(features["item_id"], tf.int64), tf.boolean_mask(items, valid)], 0)
        ids = tf.unique(tf.boolean_mask(ids, (ids >= 0) & (ids < self.spec.n_items))).y
        rows = tf.nn.embedding_lookup(self.item_embedding.id_embedding.embeddings, ids)
        return self.embedding_l2 * tf.reduce_sum(tf.reduce_sum(tf.square(rows), -1) / tf.gather(self.item_frequency, ids))

    # -- shared pieces -----------------------------------------------------------------------
    def padded_history(self, features) -> Dict[str, tf.Tensor]:
        """The padded history, at least one column wide (an all-empty batch may have L = 0)."""
        out = {}
        keys = [f.name for f in self.spec.history_sequence_features()]
        for key in keys:
            value = features[key]
            pad = tf.maximum(1 - tf.shape(value)[1], 0)
            out[key] = tf.pad(value, [[0, 0], [0, pad]])
        out[HIST_LENGTH] = tf.minimum(tf.cast(features[HIST_LENGTH], tf.int32), tf.shape(out[keys[0]])[1])
        return out

    def encode_recent(self, hist) -> Dict[str, tf.Tensor]:
        """The short-term half of the user state: the S most recent behavior tokens (none when S = 0)."""
        if self.recent is None:
            return {}
        extras = {f"hist_{e.feature.name}": hist[f"hist_{e.feature.name}"] for e in self.behavior_feature_embeddings}
        recent = self.recent({"length": hist[HIST_LENGTH], "values": {
            "hist_item_id": hist["hist_item_id"], "hist_behavior_type": hist["hist_behavior_type"], **extras}})
        tokens = self.behavior_tokens(recent)
        return {"recent_behaviors": tokens * recent["mask"][..., None], "recent_mask": recent["mask"]}

    def behavior_tokens(self, values) -> tf.Tensor:
        """Behavior tokens ``E_item(item) + E_type(type) + sum of E_f(f)`` over the declared behavior
        features, ``[B, L, d_item]``, from a dict holding ``hist_item_id``, ``hist_behavior_type``
        and each declared ``hist_<feature>`` at ``[B, L]`` (padding is not masked here)."""
        tokens = self.item_embedding(values["hist_item_id"]) + self.type_embedding(values["hist_behavior_type"])
        for emb in self.behavior_feature_embeddings:
            tokens += emb(values[f"hist_{emb.feature.name}"])
        return tokens

    def encode_profile(self, features) -> tf.Tensor:
        """The user features' embeddings, concatenated: ``[B, sum of sizes]``.

        With ``spec.user_vector_dim`` D > 0, the precomputed ``user_vector`` ``[B, D]`` goes through a
        learned linear projection to ``embedding_dim`` (``user_vector_projection``, our choice) and is
        appended: ``[B, sum of sizes + embedding_dim]``. A projection rather than the raw vector, so
        the head's input width does not grow with D and the vector gets its own learned scale. An
        all-zeros vector (the lookup's "no vector": a user without a row, or a request before the
        first time slice) projects to the bias alone. Non-finite entries (NaN / inf from a bad
        request) are replaced by 0 in the graph, so they cannot poison the score.

        Raises:
          ValueError: ``user_vector`` is missing or not ``[B, D]``.
        """
        parts = [emb(features[emb.feature.name]) for emb in self.user_embeddings]
        if self.user_vector_projection is not None:
            parts.append(self.user_vector_projection(self._user_vector(features)))
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def _user_vector(self, features) -> tf.Tensor:
        """``features["user_vector"]`` as finite float32 ``[B, D]`` (NaN / inf -> 0)."""
        dim = self.spec.user_vector_dim
        if USER_VECTOR not in features:
            raise ValueError(f"the spec declares user_vector_dim={dim}: the features need {USER_VECTOR!r} [B, {dim}] "
                             "(make_dataset(..., user_vectors=UserVectors.load(path)) adds it). "
                             f"Received: {sorted(features)}")
        vector = tf.cast(features[USER_VECTOR], tf.float32)
        if vector.shape.rank != 2 or vector.shape[-1] not in (None, dim):
            raise ValueError(f"{USER_VECTOR} must be [B, {dim}] (spec.user_vector_dim). Received: shape={vector.shape}")
        if vector.shape[-1] is None:  # the projection needs the static width
            vector = tf.ensure_shape(vector, [None, dim])
        return tf.where(tf.math.is_finite(vector), vector, tf.zeros_like(vector))

    def encode_context(self, context) -> tf.Tensor:
        """The context features' embeddings, concatenated: ``[B, sum of sizes]``."""
        if context is None or any(e.feature.name not in context for e in self.context_embeddings):
            raise ValueError(f"score needs the context features {[e.feature.name for e in self.context_embeddings]} "
                             f"declared by the schema. Received: {sorted(context or {})}")
        parts = [emb(context[emb.feature.name]) for emb in self.context_embeddings]
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def get_config(self):
        return {"spec": self.spec.to_dict(), "config": configs_lib.to_dict(self.config)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds the model from ``get_config`` (tables and weights come from a checkpoint)."""
        config = dict(config)
        spec = FeatureSpec.from_dict(config.pop("spec"))
        model_config = configs_lib.from_dict(cls.config_class, config.pop("config"))
        return cls(spec, model_config, **config)


def _optional(config, **names) -> Dict[str, Any]:
    """Layer keyword arguments taken from the config fields that exist (``kwarg=field``)."""
    return {kwarg: getattr(config, field) for kwarg, field in names.items() if hasattr(config, field)}
