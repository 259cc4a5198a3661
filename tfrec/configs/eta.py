"""ETA's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive, check_two_stage


@dataclasses.dataclass(frozen=True)
class ETAConfig:
    """ETA (Chen et al., 2021, "End-to-end user behavior retrieval in click-through rate prediction
    models"): SimHash signatures of the item representations, the K behaviors nearest to the target in
    Hamming distance, then an ESU (multi-head target attention), end to end.

    Attributes:
      embedding_dim, history_length (N), gsu_k (K = 50), num_heads, key_dim, short_term_length,
      attention_units, mlp_units, dropout: as ``SIMConfig``.
      hash_bits: signature length (bits, one random hyperplane each; public code: 32).
      hash_seed: seed of the fixed random projection (drawn once, stored as a non-trainable weight).
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu_k: int = 50
    hash_bits: int = 32
    hash_seed: int = 0
    num_heads: int = 2
    key_dim: int = 16
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        check_two_stage(self)
        check_positive(self, "gsu_k", "hash_bits", "num_heads", "key_dim")
