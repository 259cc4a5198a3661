"""SIREN: unified multi-granularity semantic interaction for multimodal lifelong interest (SIREN paper)."""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import tensorflow as tf

from tfrec.configs.siren import SIRENConfig
from tfrec.layers.multi_head_target_attention import MultiHeadTargetAttention
from tfrec.layers.multimodal import PrefixSemanticIdEmbedding, SimilarityBucketEmbedding
from tfrec.layers.retrieval import TopKBehaviors
from tfrec.models.two_stage import LEVEL1, PREFIX, TwoStageModel
from tfrec.registry import register


@register
class SIREN(TwoStageModel):
    """SIREN: a multimodal GSU (soft or hard) + a target-conditioned ESU with SemIDs and similarity buckets.

    User tower (candidate-independent, cached per user): the N most recent behaviors (item id,
      behavior type, declared behavior features) and their mask: what the GSU searches over. The
      content vectors and Semantic IDs are looked up by item id inside the model.
    Score, per candidate t:
      GSU (sec. 4.2): soft = the K behaviors of highest content cosine ``sim(e_i^mm, e_t^mm)``
        (eq. 7); hard = the K most recent behaviors whose level-1 code equals the target's (eq. 8).
        ``TopKBehaviors`` (padding at -inf, ties to the more recent behavior).
      ESU (sec. 4.3): ``h_i = [e_id_i; e^sem_i]`` (eq. 9: behavior token + prefix-encoded SemID,
        eqs. 2-3); multi-head target attention with keys ``h_i ⊕ e^Sim_{i,t}`` and query
        ``h_t ⊕ e^Sim_t`` (eq. 11; bucketized cosine, eqs. 4-6), values ``h_i``; ``ũ = u ⊙ h_t``
        (eq. 12); head ``g([ũ, h_t, user, context])`` (eq. 13) + the shared short-term branch.

    User state: ``user_embedding`` ``[B, d]`` (+ ``recent_behaviors`` / ``recent_mask`` of the
    short-term branch), ``history_item_id`` int32 ``[B, N]``, ``history_behavior_type`` int32
    ``[B, N]``, one ``history_<f>`` per declared behavior feature, ``history_mask`` ``[B, N]``.

    Args:
      spec: FeatureSpec.
      config: SIRENConfig.
      item_content: ``ItemContent`` (content vectors and/or Semantic IDs) setting the initial
        tables; checkpoints restore them, so a model rebuilt from its config needs none.
      content_dim, semantic_id_levels, num_prefixes, codebook_size: the table sizes (set from
        ``item_content`` when it is given; ``get_config`` stores them).
    """

    config_class = SIRENConfig
    model_name = "siren"
    uses_item_content = True

    def __init__(self, spec, config: SIRENConfig = SIRENConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        d_item = self.item_embedding.output_dim
        self.gsu = TopKBehaviors(config.gsu_k, name="gsu")
        self.prefix_embedding = (PrefixSemanticIdEmbedding(self.num_prefixes, self.prefix_depth, config.semantic_id_dim,
                                                           name="prefix_semantic_id_embedding")
                                 if config.semantic_id else None)
        self.buckets = (SimilarityBucketEmbedding(config.num_buckets, config.bucket_dim, name="similarity_buckets")
                        if config.similarity_buckets else None)
        self.h_dim = d_item + (self.prefix_embedding.output_dim if self.prefix_embedding else 0)
        self.check_heads(self.h_dim, "h")
        self.esu = MultiHeadTargetAttention(config.num_heads, config.key_dim, self.h_dim, name="esu")

    @property
    def external_retrieval(self) -> bool:
        return self.config.gsu == "soft"  # the hard GSU re-filters by level-1 code

    @classmethod
    def content_needs(cls, config):
        return config.gsu == "soft" or config.similarity_buckets, config.gsu == "hard" or config.semantic_id

    def retrieve(self, user_state, candidate_item_id):
        """The GSU: per candidate the K retrieved behaviors (``positions`` / ``mask`` ``[B, C, K]``)
        and their content cosine ``similarity`` ``[B, C, K]`` (when the model has content vectors)."""
        mask = user_state["history_mask"] > 0  # [B, N]
        cosine = self.cosine(user_state, candidate_item_id) if self.content_dim else None  # [B, C, N]
        if self.config.gsu == "soft":
            scores, eligible = cosine, mask[:, None, :]
        else:  # same level-1 code as the target; the score is the position, so the K most recent win
            code_t = tf.cast(self.content.column(candidate_item_id, LEVEL1), tf.int32)[:, :, None]
            code_i = tf.cast(self.content.column(user_state["history_item_id"], LEVEL1), tf.int32)[:, None, :]
            eligible = mask[:, None, :] & (code_i == code_t) & (code_t >= 0)
            n = tf.shape(mask)[1]
            scores = tf.broadcast_to(tf.cast(tf.range(n), tf.float32)[None, None, :], tf.shape(eligible))
        out = self.gsu({"scores": scores, "mask": eligible})
        if cosine is not None:
            out["similarity"] = tf.gather(cosine, out["positions"], batch_dims=2)
        return out

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        retrieved = self.retrieve(user_state, candidate_item_id)
        pos = retrieved["positions"]  # [B, C, K]
        values = self.gather_behaviors(user_state, pos)
        h_i = self.behavior_tokens(values)  # [B, C, K, d_item]
        h_t = item_emb  # [B, C, d_item]
        parts = []
        if self.prefix_embedding is not None:  # eq. 9: h = [e_id; e_sem]
            sem_t = self.prefix_embedding(self.content.column(candidate_item_id, PREFIX))
            sem_i = self.prefix_embedding(self.content.column(values["hist_item_id"], PREFIX))
            h_i, h_t = tf.concat([h_i, sem_i], -1), tf.concat([h_t, sem_t], -1)
            parts.append(sem_t)  # with item_emb (first in the head) the head sees all of h_t
        keys, query = h_i, h_t
        if self.buckets is not None:  # eq. 11: h_i ⊕ e^Sim_{i,t}, h_t ⊕ e^Sim_t
            keys = tf.concat([h_i, self.buckets(retrieved["similarity"])], -1)
            target_sim = tf.broadcast_to(self.buckets.target_embedding,
                                         tf.concat([tf.shape(h_t)[:-1], [self.config.bucket_dim]], 0))
            query = tf.concat([h_t, target_sim], -1)
        u = self.esu({"query": query, "keys": keys, "values": h_i, "mask": retrieved["mask"]})
        if self.config.target_interaction:
            u = u * h_t  # eq. 12
        return parts + [u]

    # -- training ------------------------------------------------------------------------------
    def adapt(self, dataset, batches: Optional[int] = None):
        """Estimates the similarity-bucket range ``[s_min, s_max]`` from training data (eq. 5).

        The range is the ``similarity_quantiles`` of the cosines the ESU sees: those of the
        behaviors the GSU retrieves for each example's target, over ``batches`` (default
        ``adapt_batches``) batches of ``dataset`` (``(features, label)`` as ``model.fit`` reads).
        ``tfrec.training.train`` calls it before fitting; call it yourself before ``model.fit``.
        Returns ``(s_min, s_max)``, or None without similarity buckets / without data.
        """
        if self.buckets is None:
            return None

        @tf.function(reduce_retracing=True)
        def similarities(features):
            state = self.encode_user(features, training=False)
            r = self.retrieve(state, tf.cast(features["item_id"], tf.int64)[:, None])
            return tf.boolean_mask(r["similarity"], r["mask"] > 0)

        values = []
        for element in dataset.take(batches or self.config.adapt_batches):
            features = element[0] if isinstance(element, (tuple, list)) else element
            if len(features["item_id"].shape) != 1:
                raise ValueError("SIREN.adapt reads batches of model features (item_id [B]); batch the dataset "
                                 f"first. Received: item_id of shape {features['item_id'].shape}")
            values.append(similarities(features).numpy())
        values = np.concatenate(values) if values else np.zeros(0)
        if values.size < 2:
            logging.getLogger(__name__).warning(
                "SIREN.adapt found %d retrieved behaviors in the data: the similarity buckets keep their range",
                values.size)
            return None
        lo, hi = (float(x) for x in np.quantile(values, self.config.similarity_quantiles))
        if hi <= lo:  # every retrieved behavior equally similar: a tiny range around it
            lo, hi = lo - 1e-3, hi + 1e-3
        self.buckets.set_range(lo, hi)
        return lo, hi
