"""SDIM's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive, check_two_stage


@dataclasses.dataclass(frozen=True)
class SDIMConfig:
    """SDIM (Cao et al., 2022, "Sampling is all you need on modeling long-term user behaviors for CTR
    prediction"): ``num_hashes`` SimHash functions of ``hash_bits`` bits each put the target and every
    behavior into buckets; per hash, the behaviors sharing the target's bucket are summed (optionally
    L2-normalised), and the hashes are averaged: the long-term interest, with no attention at all.

    Attributes:
      embedding_dim, history_length (N), short_term_length, attention_units, mlp_units, dropout: as
        ``SIMConfig``.
      num_hashes: m, the hash functions (public grids: 16, 32, 48).
      hash_bits: tau, bits per hash function, 2^tau buckets (public grids: 4, 8).
      normalize: L2-normalise each hash's sum before the mean over hashes (SDIM eq. 7).
      hash_seed: seed of the fixed random projection.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    num_hashes: int = 48
    hash_bits: int = 4
    normalize: bool = True
    hash_seed: int = 0
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        check_two_stage(self)
        check_positive(self, "num_hashes", "hash_bits")
        if self.hash_bits > 16:
            raise ValueError(f"SDIMConfig.hash_bits is bits per hash (2^hash_bits buckets): pick <= 16. "
                             f"Received: hash_bits={self.hash_bits}")
