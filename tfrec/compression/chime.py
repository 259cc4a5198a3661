"""The compression model of CHIME (Interest Adaptation -> causal transformer -> residual VQ), and LEARN.

CHIME (../shared/papers/CHIME.md, Fig. 2, sec. 4):

* **IAM** (sec. 4.2): a behavior's *user input* ``e^u_t`` = [item id and item-feature embeddings;
  action (behavior type) embedding; GLU(frozen content vector)]; its *item input* ``e^i_t`` is the
  same without the action. When the concatenation is not the backbone's width, a linear map fits it
  (the paper sizes the parts to the LLM's width instead).
* **IRM** (sec. 4.3): a causal transformer over the user's whole sequence (``CausalTransformer``:
  random init, or all-MiniLM-L6-v2's layers under a causal mask -- CHIME reuses Qwen2.5-0.5B's
  decoder layers, which we cannot load offline in TF; see docs/models.md).
* **ICM** (sec. 4.4): residual VQ of the transformer output (``InterestCompression``); the sum of
  the per-level straight-through estimators goes through the *user GLU* to ``z_t``; the item input
  through the *item GLU* to ``p_t``.
* Loss (eq. 1): holistic + immediate (``tfrec.losses.contrastive``) + the commitment loss.
* Inference: the per-level code histograms of the user's positions, concatenated
  (``code_histograms``), are the user's compressed long-term interest.

Table 3 ablations are config switches (``CompressorConfig``): ``immediate_loss=False`` (w/o IL),
``compression="mean_pool"`` (w/o ICM: the mean of ``z_t`` over positions is the user vector),
``adaptation=False`` (w/o IAM: item id + action embeddings only).

LEARN (``method="learn"``, the compression baseline of CHIME Table 2; Jia et al. 2024): the frozen
content vector of each *positive* behavior, linearly projected, is the input of the same causal
transformer; ``z_t`` (a linear user head) is trained against the item tower's ``p_j`` (a linear
projection of item j's content vector) with an in-batch softmax over the positives in the next
``learn_window`` positions (the dense all-action loss); the user vector is ``z`` at the last position.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf

from tfrec.compression.backbone import MINILM_DIM, MINILM_FFN_DIM, build_backbone
from tfrec.configs.compressor import CompressorConfig
from tfrec.data.item_content import normalize_rows
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.layers.embedding import ItemEmbedding
from tfrec.layers.embedding.item_features import ItemFeatureLookup
from tfrec.layers.glu import GLU
from tfrec.layers.id_embedding import IdEmbedding
from tfrec.layers.interest_compression import InterestCompression, code_histograms
from tfrec.losses.contrastive import holistic_loss, immediate_loss
from tfrec.registry import register

CONTENT = "content"


@register
class SequenceCompressor(tf.keras.Model):
    """CHIME's (or LEARN's) compression model; ``fit`` on ``user_sequences`` batches.

    Args:
      spec: the data's FeatureSpec (item count, behavior types, declared item features).
      config: ``CompressorConfig``.
      item_table: optional ``ItemTable`` (declared item features' values).
      content_vectors: optional float ``[n_items, D]`` frozen content vectors (``ItemContent.vectors``);
        required by LEARN and by CHIME with ``content_dim > 0`` and ``adaptation``.
      content_width: D when ``content_vectors`` is None (a model rebuilt from its config).
      pretrained_init: load the pretrained backbone weights (False when a checkpoint restores them).

    Inputs (a batch of ``user_sequences``): ``item_id``, ``behavior_type`` int ``[B, T]``, ``label``
    float ``[B, T]`` in {-1, +1}, ``mask`` bool ``[B, T]``.
    """

    def __init__(self, spec: FeatureSpec, config: CompressorConfig, item_table=None, content_vectors=None,
                 content_width: int = 0, pretrained_init: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.config = spec, config
        c = config
        learn = c.method == "learn"
        if content_vectors is not None:
            content_width = int(np.asarray(content_vectors).shape[1])
        self.uses_content = learn or (c.adaptation and c.content_dim > 0)
        if self.uses_content and not content_width:
            raise ValueError(f"the {c.method} compressor needs the items' content vectors (raw/items.npz, from "
                             "`tfrec synthetic` or `tfrec embed-items`); set content_dim=0 to train CHIME without them")
        self.content_width = int(content_width) if self.uses_content else 0
        self.content = None
        if self.uses_content:
            tables = {CONTENT: normalize_rows(content_vectors)} if content_vectors is not None else None
            self.content = ItemFeatureLookup(spec.n_items, [FeatureDef(CONTENT, "dense", dim=self.content_width)],
                                             tables, name="item_content")
        # IAM
        self.items = self.action = self.projector = None
        width = item_width = 0
        if not learn:
            features = spec.item_features if c.adaptation else ()
            tables = item_table.columns if (item_table is not None and features) else None
            self.items = ItemEmbedding(spec.n_items, c.id_dim, features, tables=tables, name="item_embedding")
            width = item_width = self.items.output_dim
            if c.action_dim:
                self.action = IdEmbedding(spec.n_behavior_types, c.action_dim, name="action_embedding")
                width += c.action_dim
            if self.uses_content:
                self.projector = GLU(c.content_dim, name="content_projector")
                width += c.content_dim
                item_width += c.content_dim
        else:
            width = item_width = self.content_width
        model_dim = c.model_dim or width
        if c.backbone == "minilm" and model_dim != MINILM_DIM:
            raise ValueError(f"CompressorConfig.backbone='minilm' needs model_dim={MINILM_DIM} (MiniLM's width). "
                             f"Received: model_dim={c.model_dim}")
        self.model_dim = model_dim
        self.input_projection = (tf.keras.layers.Dense(model_dim, name="input_projection")
                                 if (model_dim != width or learn) else None)
        # IRM
        ffn = c.ffn_dim or 4 * model_dim
        if c.backbone == "minilm":
            ffn = c.ffn_dim or MINILM_FFN_DIM
        kind = c.backbone if pretrained_init else "random"
        self.backbone = build_backbone(kind, c.layers, dim=model_dim, heads=c.heads, ffn_dim=ffn,
                                       dropout=c.dropout, rope=c.rope, name="backbone")
        self.pretrained = c.backbone == "minilm"
        # ICM
        self.compression = (InterestCompression(c.codebook_sizes, model_dim, beta=c.commitment_beta,
                                                gradient="rotation" if c.rotation_trick else "ste",
                                                name="interest_compression")
                            if (not learn and c.compression == "rvq") else None)
        if learn:  # LEARN's two towers: linear heads
            self.user_head = tf.keras.layers.Dense(c.hidden_dim, name="user_head")
            self.item_head = tf.keras.layers.Dense(c.hidden_dim, name="item_head")
        else:
            self.user_head = GLU(c.hidden_dim, name="user_glu")
            self.item_head = GLU(c.hidden_dim, name="item_glu")
        self.immediate_bias = self.add_weight(name="immediate_bias", shape=(), initializer="zeros") \
            if (not learn and c.immediate_loss) else None
        self.backbone_optimizer = None
        self.loss_trackers = {name: tf.keras.metrics.Mean(name=name)
                              for name in ("loss", "holistic", "immediate", "commitment")}

    # -- the forward pass ---------------------------------------------------------------------
    @property
    def vector_dim(self) -> int:
        """Width of the user vector: sum of K_m (histograms) or ``hidden_dim``."""
        if self.compression is not None:
            return int(sum(self.config.codebook_sizes))
        return self.config.hidden_dim

    def adaptation(self, features):
        """IAM: ``(user input [B, T, W], item input [B, T, W_i])``."""
        items = tf.cast(features["item_id"], tf.int64)
        if self.config.method == "learn":
            content = self.content.column(items, CONTENT)
            return content, content
        item = self.items(items)
        user_parts, item_parts = [item], [item]
        if self.action is not None:
            user_parts.append(self.action(tf.cast(features["behavior_type"], tf.int64)))
        if self.projector is not None:
            projected = self.projector(self.content.column(items, CONTENT))
            user_parts.append(projected)
            item_parts.append(projected)
        return tf.concat(user_parts, -1), tf.concat(item_parts, -1)

    def representation(self, features, training=None):
        """IAM + IRM: ``(b [B, T, model_dim], item input [B, T, W_i])``."""
        mask = tf.cast(features["mask"], tf.bool)
        user_input, item_input = self.adaptation(features)
        x = self.input_projection(user_input) if self.input_projection is not None else user_input
        return self.backbone({"inputs": x, "mask": mask}, training=training), item_input

    def initialize_codebooks(self, dataset, batches: int = 8, seed: int = 0) -> None:
        """K-means codebooks (level by level) on the backbone outputs of ``batches`` batches, before
        training: random codebooks far from the transformer's outputs collapse onto a few codes."""
        if self.compression is None:
            return
        rows, per_batch = [], []
        for features in dataset.take(batches):
            hidden, _ = self.representation(features, training=False)
            valid = hidden.numpy()[features["mask"].numpy().astype(bool)]
            rows.append(valid)
            per_batch.append(len(valid))
        latents = np.concatenate(rows)
        if len(latents) < max(self.config.codebook_sizes):
            return  # too little data for K-means: keep the random init
        self.compression.initialize_codebooks(latents, seed=seed, batch_size=int(np.mean(per_batch)))

    def call(self, features, training=None):
        """``z`` ``[B, T, h]``, ``p`` ``[B, T, h]``, ``codes`` ``[B, T, M]`` (or None), ``commitment``."""
        mask = tf.cast(features["mask"], tf.bool)
        hidden, item_input = self.representation(features, training=training)
        codes, commitment = None, tf.constant(0.0)
        if self.compression is not None:
            out = self.compression({"inputs": hidden, "mask": mask}, training=training)
            hidden, codes, commitment = out["quantized"], out["codes"], out["commitment_loss"]
        z = self.user_head(hidden)
        p = self.item_head(item_input)
        return {"z": z, "p": p, "codes": codes, "commitment": commitment}

    def user_vectors(self, features) -> tf.Tensor:
        """The compressed long-term interest ``[B, vector_dim]`` (all zeros for an empty sequence)."""
        out = self(features, training=False)
        mask = tf.cast(features["mask"], tf.float32)
        if self.config.method == "learn":  # z at the last valid position
            last = tf.maximum(tf.cast(tf.reduce_sum(mask, -1), tf.int32) - 1, 0)
            z = tf.gather(out["z"], last, batch_dims=1)
            return z * tf.minimum(tf.reduce_sum(mask, -1, keepdims=True), 1.0)
        if out["codes"] is not None:
            return code_histograms(out["codes"], self.config.codebook_sizes,
                                   normalize=self.config.histogram == "frequency")
        return tf.math.divide_no_nan(tf.reduce_sum(out["z"] * mask[..., None], 1),
                                     tf.reduce_sum(mask, -1, keepdims=True))

    # -- losses and training ------------------------------------------------------------------
    def compile_for(self, steps: int) -> "SequenceCompressor":
        """Compiles with CHIME's schedule: Adam, ``warmup_steps`` of linear warm-up to the config's
        rate, then cosine annealing to 0 at ``steps``; pretrained backbone weights get their own
        optimizer at ``pretrained_learning_rate`` on the same schedule."""
        c = self.config

        def schedule(rate):
            warmup = min(c.warmup_steps, max(steps - 1, 0))
            if not warmup:
                return tf.keras.optimizers.schedules.CosineDecay(rate, max(steps, 1))
            return tf.keras.optimizers.schedules.CosineDecay(0.0, max(steps - warmup, 1), warmup_target=rate,
                                                             warmup_steps=warmup)

        if self.pretrained:
            self.backbone_optimizer = tf.keras.optimizers.Adam(schedule(c.pretrained_learning_rate))
        self.compile(optimizer=tf.keras.optimizers.Adam(schedule(c.learning_rate)))
        return self

    def losses_of(self, features, training=None) -> Dict[str, tf.Tensor]:
        out = self(features, training=training)
        mask, labels = features["mask"], features["label"]
        c = self.config
        window = c.learn_window if c.method == "learn" else 0
        losses = {"holistic": holistic_loss(out["z"], out["p"], labels, mask, c.holistic_temperature, window=window),
                  "immediate": tf.constant(0.0), "commitment": out["commitment"]}
        if self.immediate_bias is not None:
            losses["immediate"] = immediate_loss(out["z"], out["p"], labels, mask, self.immediate_bias,
                                                 c.immediate_temperature)
        losses["loss"] = losses["holistic"] + losses["immediate"] + losses["commitment"]
        return losses

    def _split(self, variables):
        if self.backbone_optimizer is None:  # compiled by hand: one optimizer for everything
            return list(variables), []
        ids = {id(v) for v in self.backbone.trainable_variables}
        return [v for v in variables if id(v) not in ids], [v for v in variables if id(v) in ids]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.losses_of(data, training=True)
        new, pretrained = self._split(self.trainable_variables)
        grads = tape.gradient(losses["loss"], new + pretrained)
        self.optimizer.apply_gradients(zip(grads[:len(new)], new))
        if pretrained:
            self.backbone_optimizer.apply_gradients(zip(grads[len(new):], pretrained))
        return self._track(losses)

    def test_step(self, data):
        return self._track(self.losses_of(data, training=False))

    def _track(self, losses):
        for name, tracker in self.loss_trackers.items():
            tracker.update_state(losses[name])
        return {name: t.result() for name, t in self.loss_trackers.items()}

    @property
    def metrics(self):
        return list(self.loss_trackers.values())

    def get_config(self):
        from tfrec import configs as configs_lib
        return {"spec": self.spec.to_dict(), "config": configs_lib.to_dict(self.config),
                "content_width": self.content_width}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from tfrec import configs as configs_lib
        config = dict(config)
        spec = FeatureSpec.from_dict(config.pop("spec"))
        model_config = configs_lib.from_dict(CompressorConfig, config.pop("config"))
        return cls(spec, model_config, pretrained_init=False, **config)


def sequence_dataset(sequences: Dict[str, np.ndarray], batch_size: int, shuffle: bool = False,
                     seed: int = 0) -> tf.data.Dataset:
    """``tf.data`` batches of the model inputs of ``user_sequences`` output (one user per row)."""
    keys = ("item_id", "behavior_type", "label", "mask")
    ds = tf.data.Dataset.from_tensor_slices({k: sequences[k] for k in keys})
    if shuffle:
        ds = ds.shuffle(len(sequences["item_id"]), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
