"""MUSE's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


@dataclasses.dataclass(frozen=True)
class MUSEConfig:
    """MUSE (Wu et al. 2025, arXiv 2512.07216; public code alimama-tech/MUSE; choices: docs/models.md).

    GSU: the K behaviors of highest content cosine to the target. ESU: multi-head target attention
    over them with MUSE's semantic-aware target attention (SA-TA: the cosine mixed into every
    head's logit). SimTier: histograms of the target's cosines to the ``simtier_recent`` most recent
    behaviors and to the K retrieved ones. Head: ``[ESU output, SimTier features]`` next to the
    shared item / short-term / user inputs. Ablations are fields: ``simtier`` off (no histograms),
    ``semantic_aware_attention`` off (plain target attention).

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors the GSU searches (the user state holds them).
      gsu_k: K, behaviors the GSU passes to the ESU (50, as MUSE and SIREN's Table 1).
      simtier: add the SimTier histogram features to the head.
      simtier_bins: tiers of each histogram, even and >= 4 (22, MUSE's: tier width 0.1).
      simtier_recent: the most recent behaviors of the second histogram (50, MUSE's real-time
        sequence); 0 = only the histogram of the K retrieved behaviors.
      semantic_aware_attention: SA-TA in the ESU (``MultiHeadTargetAttention(semantic_aware=True)``);
        off = plain multi-head target attention.
      num_heads: heads of the ESU target attention (must divide the item representation's size).
      key_dim: query / key size per head.
      content_feature: "" = the content vectors of ``raw/items.npz``; else the name of a declared
        dense item feature of the item table.
      short_term_length: recent behaviors in the shared short-term DIN branch (MUSE's real-time
        attention reads 50; 0 = none).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu_k: int = 50
    simtier: bool = True
    simtier_bins: int = 22
    simtier_recent: int = 50
    semantic_aware_attention: bool = True
    num_heads: int = 2
    key_dim: int = 16
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        check_positive(self, "embedding_dim", "history_length", "gsu_k", "num_heads", "key_dim")
        if self.simtier_bins < 4 or self.simtier_bins % 2:
            raise ValueError(f"MUSEConfig.simtier_bins must be even and >= 4. "
                             f"Received: simtier_bins={self.simtier_bins}")
        if self.simtier_recent < 0 or self.short_term_length < 0:
            raise ValueError("MUSEConfig needs simtier_recent >= 0 (0 = none) and short_term_length >= 0. Received: "
                             f"simtier_recent={self.simtier_recent}, short_term_length={self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MUSEConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")
