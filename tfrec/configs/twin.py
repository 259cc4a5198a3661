"""TWIN's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive, check_two_stage


@dataclasses.dataclass(frozen=True)
class TWINConfig:
    """TWIN (Chang et al., KDD 2023, "TWIN: TWo-stage Interest Network for lifelong user behavior
    modeling in CTR prediction at Kuaishou"): the consistency-preserved GSU (CP-GSU) retrieves, per
    head, the K behaviors the ESU's own attention scores highest; the ESU attends over them.

    Attributes:
      embedding_dim, history_length (N), gsu_k (K = 50), short_term_length, attention_units,
      mlp_units, dropout: as ``SIMConfig``.
      num_heads, key_dim: the shared scorer's heads and query / key size per head (TWIN: 4 heads).
      cross_bias: add the behavior-cross-feature term ``(K_c W_beta) beta`` (behavior type and the
        declared behavior features, one scalar per behavior) to the logits; False = the
        inherent-feature scores alone (an ablation).
      cross_in_retrieval: the cross term is part of the CP-GSU's ranking score (the paper: retrieval
        and attention share one relevance); False = it re-weights the retrieved behaviors only.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu_k: int = 50
    num_heads: int = 4
    key_dim: int = 16
    cross_bias: bool = True
    cross_in_retrieval: bool = True
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        check_two_stage(self)
        check_positive(self, "gsu_k", "num_heads", "key_dim")
