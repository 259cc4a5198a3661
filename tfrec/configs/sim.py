"""SIM's config (hard and soft search). One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


SIM_GSUS = ("hard", "soft")


@dataclasses.dataclass(frozen=True)
class SIMConfig:
    """SIM (Pi et al., CIKM 2020): a General Search Unit over the lifelong window, then an ESU.

    ``gsu="hard"``: behaviors whose ``category_feature`` equals the target's, the K most recent kept
    (non-differentiable). ``gsu="soft"``: relevance ``(W_a e_t)·(W_b h_i)`` with the GSU's own
    projections, top-K; the GSU is trained by SIM's auxiliary loss (the softmax(relevance)-weighted
    sum of the whole window's behaviors next to ``e_t`` through a small MLP, a CTR loss on the same
    label), ``gsu_loss_weight`` x L_gsu + L_esu, in ``compute_loss`` only (never in a serving graph).

    Attributes:
      embedding_dim, history_length (N), gsu_k (K = 50, as the papers), num_heads, key_dim,
      short_term_length, attention_units, mlp_units, dropout: as ``MISSConfig``.
      gsu: ``"hard"`` or ``"soft"``.
      category_feature: the declared categorical item feature the hard GSU matches on (multi_categorical:
        a behavior sharing any value with the target matches).
      gsu_loss_weight: alpha of the soft GSU's auxiliary loss (SIM: 1; 0 = no auxiliary loss).
      gsu_units: hidden units of the auxiliary loss's MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu: str = "hard"
    gsu_k: int = 50
    category_feature: str = "category"
    num_heads: int = 2
    key_dim: int = 16
    gsu_loss_weight: float = 1.0
    gsu_units: Tuple[int, ...] = (32,)
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        if self.gsu not in SIM_GSUS:
            raise ValueError(f"SIMConfig.gsu must be one of {SIM_GSUS}. Received: gsu={self.gsu!r}")
        check_positive(self, "embedding_dim", "history_length", "gsu_k", "num_heads", "key_dim")
        if self.short_term_length < 0:
            raise ValueError(f"SIMConfig.short_term_length must be >= 0. Received: {self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SIMConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")
        if not self.gsu_loss_weight >= 0:
            raise ValueError(f"SIMConfig.gsu_loss_weight must be >= 0. Received: {self.gsu_loss_weight}")
