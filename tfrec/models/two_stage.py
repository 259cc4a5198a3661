"""TwoStageModel: the shared base of the two-stage (GSU -> ESU) lifelong models.

SIREN, MUSE and MISS (and the SIM / ETA / TWIN family) retrieve, for each candidate, a few of the
user's behaviors (the General Search Unit) before attending to them (the Exact Search Unit).
Retrieval needs the candidate, so the cacheable user state is what the GSU searches over: the N
most recent behaviors (item id, behavior type, declared behavior features) and their mask. Item
content (content vectors, Semantic IDs) is looked up by item id from tables stored in the model.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from tfrec.data.item_content import ItemContent, normalize_rows, prefix_table
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import HIST_LENGTH
from tfrec.layers.embedding import ItemFeatureLookup
from tfrec.layers.multi_head_target_attention import MultiHeadTargetAttention
from tfrec.layers.recent_behaviors import RecentBehaviors
from tfrec.layers.retrieval import TopKBehaviors
from tfrec.models.base import CTRModel

CONTENT, PREFIX, LEVEL1 = "content", "semantic_prefix", "semantic_code_1"


class TwoStageModel(CTRModel):
    """Base class: the behavior-window user state and the item content tables of two-stage models.

    Subclasses implement ``head_inputs`` (GSU + ESU per candidate) and may override
    ``content_needs`` (which item content the config requires). The config needs
    ``history_length`` (N) and may have ``content_feature`` and ``prefix_depth``.

    User state: ``user_embedding`` ``[B, d]`` (+ the shared short-term branch's
    ``recent_behaviors`` / ``recent_mask``), ``history_item_id`` int32 ``[B, N]``,
    ``history_behavior_type`` int32 ``[B, N]``, one ``history_<f>`` per declared behavior feature,
    ``history_mask`` float32 ``[B, N]`` (the N most recent behaviors, oldest -> newest, left-padded).

    Args:
      spec: FeatureSpec.
      config: the model's config dataclass.
      item_content: ``ItemContent`` (content vectors and/or Semantic IDs) setting the initial
        tables; checkpoints restore them, so a model rebuilt from its config needs none.
      content_dim, semantic_id_levels, num_prefixes, codebook_size: the table sizes (taken from
        ``item_content`` when it is given; ``get_config`` stores them).
    """

    uses_item_content = True

    def __init__(self, spec, config, item_content: Optional[ItemContent] = None, content_dim: int = 0,
                 semantic_id_levels: int = 0, num_prefixes: int = 0, codebook_size: int = 0, **kwargs):
        super().__init__(spec, config, **kwargs)
        if not self.uses_item_content:  # a model that reads no item content ignores the tables
            item_content = None
        if any(e.feature.name == "mask" for e in self.behavior_feature_embeddings):
            raise ValueError(f"{type(self).__name__}: a behavior feature named 'mask' would collide with the user "
                             "state's history_mask (the window's validity mask): rename it in the schema")
        need_vectors, need_codes = self.content_needs(config)
        item_table = kwargs.get("item_table")
        vectors = codes = None
        if item_content is not None:
            vectors, codes = item_content.vectors, item_content.codes
            codebook_size = item_content.codebook_size or codebook_size
        content_feature = getattr(config, "content_feature", "")
        if content_feature:
            fd = next((f for f in spec.item_features if f.name == content_feature), None)
            if fd is None or fd.kind != "dense":
                raise ValueError(f"{type(config).__name__}.content_feature={content_feature!r} must name a declared "
                                 f"dense item feature. Declared: "
                                 f"{[f.name for f in spec.item_features if f.kind == 'dense']}")
            content_dim = fd.dim
            vectors = item_table.columns[fd.name] if item_table is not None else None
        if vectors is not None:
            content_dim = int(np.asarray(vectors).shape[1])
        if codes is not None:
            semantic_id_levels = int(codes.shape[1])
        name = type(self).__name__
        if need_vectors and not content_dim:
            raise ValueError(f"{name} with this config needs the items' content vectors: put them in "
                             "DATA/raw/items.npz (`tfrec synthetic` / `tfrec embed-items`) or name a dense item "
                             "feature in content_feature")
        if need_codes and not semantic_id_levels:
            raise ValueError(f"{name} with this config needs the items' Semantic IDs: run "
                             "`tfrec semantic-ids --data DATA` (writes semantic_ids.npz)")
        self.content_dim = int(content_dim) if need_vectors else 0
        self.semantic_id_levels = int(semantic_id_levels) if need_codes else 0
        self.codebook_size = int(codebook_size) if need_codes else 0
        self.prefix_depth = (getattr(config, "prefix_depth", 0) or self.semantic_id_levels) if need_codes else 0
        if self.prefix_depth > self.semantic_id_levels:
            raise ValueError(f"{type(config).__name__}.prefix_depth={self.prefix_depth} exceeds the "
                             f"{self.semantic_id_levels} Semantic ID levels of the data")
        prefixes = None
        if need_codes and codes is not None:
            prefixes, num_prefixes = prefix_table(codes, self.prefix_depth)
        self.num_prefixes = max(int(num_prefixes), 1) if need_codes else 0

        defs, tables = [], {}  # unknown items: zero vector, codes -1
        if self.content_dim:
            defs.append(FeatureDef(CONTENT, "dense", dim=self.content_dim))
            if vectors is not None:
                tables[CONTENT] = normalize_rows(vectors)
        if self.semantic_id_levels:
            defs += [FeatureDef(PREFIX, "multi_categorical", vocab_size=self.num_prefixes, max_len=self.prefix_depth),
                     FeatureDef(LEVEL1, "categorical", vocab_size=max(self.codebook_size, 1))]
            if codes is not None:
                tables[PREFIX], tables[LEVEL1] = prefixes, np.asarray(codes)[:, 0]
        if tables and set(tables) != {fd.name for fd in defs}:
            raise ValueError(f"{name} needs all of its item content tables at once. Received: {sorted(tables)}")
        self.content = ItemFeatureLookup(spec.n_items, defs, tables or None, name="item_content") if defs else None
        self.window = RecentBehaviors(config.history_length, name="gsu_window")

    def check_heads(self, size: int, what: str) -> None:
        """Raises unless ``config.num_heads`` divides ``size`` (an ESU splits ``what`` over its heads)."""
        if size % self.config.num_heads:
            raise ValueError(f"{type(self).__name__}'s ESU splits {what} (size {size}) over "
                             f"num_heads={self.config.num_heads} heads: pick num_heads dividing it")

    @property
    def external_retrieval(self) -> bool:
        """Whether the model reads its behavior window only through a content-cosine top-K GSU, so
        that it may be scored on behaviors retrieved outside the SavedModel (ScaNN,
        ``tfrec.retrieval.narrow_state`` / ``compact_features``) with unchanged outputs. False by
        default (e.g. MUSE's recent SimTier reads the window's last behaviors directly)."""
        return False

    @classmethod
    def content_needs(cls, config) -> Tuple[bool, bool]:
        """``(content vectors, Semantic IDs)`` this config needs (default: vectors iff the model
        ``uses_item_content``)."""
        return cls.uses_item_content, False

    @property
    def recent_length(self) -> int:
        """S of the shared short-term branch: every two-stage config's ``short_term_length``."""
        return self.config.short_term_length

    def window_tokens(self, user_state) -> tf.Tensor:
        """The behavior tokens of the whole window, ``[B, N, d_item]``."""
        return self.behavior_tokens({f"hist_{f}": user_state[f"history_{f}"] for f in self.behavior_fields})

    @property
    def behavior_fields(self):
        """The per-behavior fields of the user state (``history_<f>``)."""
        return ["item_id", "behavior_type"] + [e.feature.name for e in self.behavior_feature_embeddings]

    def encode_user(self, features, training=None):
        hist = self.padded_history(features)
        window = self.window({"length": hist[HIST_LENGTH],
                              "values": {f: hist[f"hist_{f}"] for f in self.behavior_fields}})
        state = {f"history_{f}": window[f] for f in self.behavior_fields}
        # int32 halves the cached bytes; ids outside the vocabulary become -1 first (the unknown
        # row everywhere), so a huge id cannot wrap onto a real item
        for f, vocab in (("item_id", self.spec.n_items), ("behavior_type", self.spec.n_behavior_types)):
            ids = tf.cast(state[f"history_{f}"], tf.int64)
            state[f"history_{f}"] = tf.cast(tf.where((ids >= 0) & (ids < vocab), ids, -1), tf.int32)
        return {"user_embedding": self.encode_profile(features), **self.encode_recent(hist), **state,
                "history_mask": window["mask"]}

    def cosine(self, user_state, candidate_item_id):
        """Content cosine of every (candidate, behavior) pair: ``[B, C, N]`` (SIREN eq. 4).

        Computed in float64 and rounded to float32: a float32 matmul can give the same item, repeated
        in a history, scores 1 ulp apart (the rounding depends on the column's place in the kernel's
        blocking), which would decide ties against the recency rule of the GSU; float64 differences
        of that size vanish in the rounding to float32.
        """
        target = self.content.column(candidate_item_id, CONTENT)  # [B, C, D], rows L2-normalised
        history = self.content.column(user_state["history_item_id"], CONTENT)  # [B, N, D]
        return tf.cast(tf.einsum("bcd,bnd->bcn", tf.cast(target, tf.float64), tf.cast(history, tf.float64)),
                       tf.float32)

    def gather_behaviors(self, user_state, positions):
        """The behaviors at ``positions`` ``[B, C, K]``: dict ``hist_<f>`` -> ``[B, C, K]`` (the input
        of ``behavior_tokens``)."""
        return {f"hist_{f}": tf.gather(user_state[f"history_{f}"], positions, batch_dims=1)
                for f in self.behavior_fields}

    def get_config(self):
        return {**super().get_config(), "content_dim": self.content_dim,
                "semantic_id_levels": self.semantic_id_levels, "num_prefixes": self.num_prefixes,
                "codebook_size": self.codebook_size}


class SearchThenAttendModel(TwoStageModel):
    """Base class of the two-stage models whose GSU picks K behaviors by a search rule and whose ESU is a
    multi-head target attention over them (SIM hard / soft, ETA).

    Subclasses implement ``gsu_scores`` (the rule: scores and eligibility of every behavior of the
    window, per candidate); ``TopKBehaviors`` keeps the K best (padding and ineligible behaviors never,
    ties to the more recent), and ``MultiHeadTargetAttention`` (query ``e_t``) attends over the K
    retrieved behavior tokens. Head input: the ESU output ``[B, C, d_item]``. The config needs
    ``gsu_k``, ``num_heads`` and ``key_dim``. These models read no item content table.
    """

    uses_item_content = False

    def __init__(self, spec, config, **kwargs):
        super().__init__(spec, config, **kwargs)
        d_item = self.item_embedding.output_dim
        self.check_heads(d_item, "the item representation")
        self.gsu = TopKBehaviors(config.gsu_k, name="gsu")
        self.esu = MultiHeadTargetAttention(config.num_heads, config.key_dim, d_item, name="esu")

    def gsu_scores(self, user_state, candidate_item_id, item_emb, tokens) -> Tuple[tf.Tensor, tf.Tensor]:
        """``(scores [B, C, N] float32, eligible [B, C, N] or [B, 1, N] bool)`` of the window's
        behaviors for ``[B, C]`` candidates (``item_emb`` ``[B, C, d_item]``, ``tokens`` the window's
        behavior tokens ``[B, N, d_item]``). Padding must be ineligible."""
        raise NotImplementedError

    def retrieve(self, user_state, candidate_item_id, item_emb, tokens):
        """The GSU: ``TopKBehaviors`` output (``positions`` / ``mask`` / ``scores``, ``[B, C, K]``)."""
        scores, eligible = self.gsu_scores(user_state, candidate_item_id, item_emb, tokens)
        return self.gsu({"scores": scores, "mask": eligible})

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        tokens = self.window_tokens(user_state)
        retrieved = self.retrieve(user_state, tf.cast(candidate_item_id, tf.int64), item_emb, tokens)
        h = tf.gather(tokens, retrieved["positions"], batch_dims=1)  # [B, C, K, d_item]
        return [self.esu({"query": item_emb, "keys": h, "values": h, "mask": retrieved["mask"]})]
