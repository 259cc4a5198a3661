"""SIREN's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


GSU_MODES = ("soft", "hard")


@dataclasses.dataclass(frozen=True)
class SIRENConfig:
    """SIREN (SIREN paper, secs. 4.1-4.3; choices the paper leaves open: docs/models.md).

    Ablations are fields (Table 2): ``semantic_id`` (prefix-encoded SemIDs in ``h_i``),
    ``similarity_buckets`` (``e^Sim`` in the attention inputs), ``target_interaction`` (TI, eq. 12);
    all three off = the "target attention (base)" row. ``gsu`` picks SIREN_sim-GSU ("soft", eq. 7)
    or SIREN_SemID-GSU ("hard", eq. 8).

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors the GSU searches (the user state holds them; a
        longer history is cut to its N most recent behaviors; ScaNN serves longer ones outside the
        SavedModel, ``tfrec.retrieval``).
      gsu: "soft" (top-K by content cosine, eq. 7) or "hard" (behaviors sharing the target's
        level-1 Semantic ID, the K most recent, eq. 8).
      gsu_k: K, behaviors the GSU passes to the ESU (50, as the paper).
      semantic_id: add the prefix-encoded Semantic ID ``e^sem`` to every item (eq. 9).
      prefix_depth: the deepest prefix (eq. 2); 0 = every level M of the codes.
      semantic_id_dim: the size of one prefix embedding (``e^sem`` has ``depth x`` this).
      similarity_buckets: concatenate the similarity bucket embedding to the attention inputs (eq. 11).
      num_buckets: B (eq. 5).
      bucket_dim: the size of a bucket embedding.
      similarity_quantiles: ``[s_min, s_max]`` = these quantiles of the similarities the ESU sees
        in the training data (the GSU-retrieved behaviors' cosines; ``SIREN.adapt``).
      adapt_batches: training batches ``adapt`` reads to estimate the range.
      target_interaction: TI, ``u ⊙ h_t`` (eq. 12) instead of ``u``.
      num_heads: heads of the ESU target attention (eq. 11).
      key_dim: query / key size per head.
      content_feature: "" = the content vectors of ``raw/items.npz``; else the name of a declared
        dense item feature of the item table.
      short_term_length: recent behaviors in the shared short-term DIN branch (ours, as every
        model's; 0 = none, the paper's: ``siren-paper.yaml``).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP ``g`` (eq. 13).
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu: str = "soft"
    gsu_k: int = 50
    semantic_id: bool = True
    prefix_depth: int = 0
    semantic_id_dim: int = 8
    similarity_buckets: bool = True
    num_buckets: int = 20
    bucket_dim: int = 8
    similarity_quantiles: Tuple[float, float] = (0.01, 0.99)
    adapt_batches: int = 20
    target_interaction: bool = True
    num_heads: int = 2
    key_dim: int = 16
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        if self.gsu not in GSU_MODES:
            raise ValueError(f"SIRENConfig.gsu must be one of {list(GSU_MODES)}. Received: gsu={self.gsu!r}")
        check_positive(self, "embedding_dim", "history_length", "gsu_k", "semantic_id_dim", "num_buckets",
                        "bucket_dim", "adapt_batches", "num_heads", "key_dim")
        if self.prefix_depth < 0 or self.short_term_length < 0:
            raise ValueError("SIRENConfig needs prefix_depth >= 0 (0 = every level) and short_term_length >= 0. "
                             f"Received: prefix_depth={self.prefix_depth}, short_term_length={self.short_term_length}")
        lo, hi = self.similarity_quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError("SIRENConfig.similarity_quantiles must satisfy 0 <= low < high <= 1. "
                             f"Received: similarity_quantiles={self.similarity_quantiles}")
