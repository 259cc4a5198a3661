"""MISS's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


@dataclasses.dataclass(frozen=True)
class MISSConfig:
    """MISS (Guo et al., CIKM 2025) as SIREN's Table 1 baseline: an ID GSU next to a multimodal GSU.

    Each GSU retrieves K behaviors per candidate and has its own ESU (multi-head target attention
    over its K behaviors); both outputs reach the head. The ID GSU (the paper's Co-GSU) scores
    ``(W_a e_t)·(W_b e_i)`` with its ESU's query / key projections (so they are trained through the
    ESU); the multimodal GSU (MM-GSU) ranks by content cosine. Choices the paper leaves open: the
    ``MISS`` class docstring. Ablations: ``id_gsu`` / ``mm_gsu`` off (one of them must stay on).

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors both GSUs search (the user state holds them).
      id_gsu: the ID-based GSU (Co-GSU) and its ESU.
      mm_gsu: the multimodal GSU (MM-GSU, content cosine) and its ESU.
      gsu_k: K, behaviors each GSU passes to its ESU (50, as SIREN's Table 1).
      num_heads: heads of each ESU (must divide the item representation's size).
      key_dim: query / key size per head (also the ID GSU's relevance space, per head).
      content_feature: "" = the content vectors of ``raw/items.npz``; else the name of a declared
        dense item feature of the item table.
      short_term_length: recent behaviors in the shared short-term DIN branch (ours, as every
        model's; 0 = none).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    id_gsu: bool = True
    mm_gsu: bool = True
    gsu_k: int = 50
    num_heads: int = 2
    key_dim: int = 16
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        if not (self.id_gsu or self.mm_gsu):
            raise ValueError("MISSConfig needs at least one GSU. Received: id_gsu=False, mm_gsu=False")
        check_positive(self, "embedding_dim", "history_length", "gsu_k", "num_heads", "key_dim")
        if self.short_term_length < 0:
            raise ValueError(f"MISSConfig.short_term_length must be >= 0. Received: "
                             f"short_term_length={self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MISSConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")
