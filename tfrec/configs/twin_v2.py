"""TWIN-V2's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


@dataclasses.dataclass(frozen=True)
class TWINV2Config:
    """TWIN-V2 (Si et al., CIKM 2024, arXiv 2407.16357): hierarchical clustering of the user's behaviors
    (per user, deterministic, in the user tower), then TWIN's shared GSU / ESU scorer over the cluster
    representatives with cluster-aware target attention (``+ ln n``). Choices: the ``TWINV2`` docstring.

    Attributes:
      embedding_dim, history_length (N, the window clustered), short_term_length, attention_units,
        mlp_units, dropout, content_feature: as ``MUSEConfig``.
      group_feature: the paper's first split (play-completion ratio): ``"behavior_type"`` (default),
        ``""`` (one group), ``"duration"`` or a declared numeric behavior feature (bucketed by
        ``group_boundaries``), or a declared categorical behavior feature with a vocabulary.
      group_boundaries: strictly increasing bucket boundaries of a numeric ``group_feature``.
      cluster_size: gamma, the largest cluster left unsplit (paper: 20).
      max_clusters: M, cluster slots of the user state (the largest clusters are kept).
      max_depth: k-means levels after the grouping (bounds the paper's recursion).
      kmeans_iterations: Lloyd steps per split.
      max_branching: the largest k of one split.
      branching_exponent: e of the adaptive ``k = floor(n^e)`` (paper: 0.3).
      cluster_dim: content vectors wider than this are clustered on their ``cluster_dim`` top
        principal directions over the item table (ours: the clustering's cost grows with the width;
        docs/models.md, "TWIN-V2").
      gsu_k: K, clusters retrieved per head (the paper retrieves 100 of ~10^4 clusters).
      num_heads, key_dim: the shared scorer's heads and query / key size per head (TWIN: 4 heads).
      cluster_aware: add ``ln n`` (cluster size) to the attention logits (paper eq. 8); False = the
        paper's "w/o cluster-aware" ablation.
      size_in_retrieval: ``ln n`` also ranks the clusters for the GSU (the paper uses cluster-aware
        attention in both stages); False = added after retrieval only.
      cross_bias: TWIN's behavior-cross term ``w · c_j`` (behavior type + behavior features of the
        cluster) in the logits.
      cross_in_retrieval: the cross term is part of the GSU's ranking too (as ``TWINConfig``: TWIN-V2's
        ``alpha`` holds it and ranks the clusters); False = it re-weights the retrieved clusters only.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    group_feature: str = "behavior_type"
    group_boundaries: Tuple[float, ...] = ()
    cluster_size: int = 20
    max_clusters: int = 128
    max_depth: int = 4
    kmeans_iterations: int = 5
    max_branching: int = 8
    branching_exponent: float = 0.3
    cluster_dim: int = 32
    gsu_k: int = 50
    num_heads: int = 4
    key_dim: int = 16
    cluster_aware: bool = True
    size_in_retrieval: bool = True
    cross_bias: bool = True
    cross_in_retrieval: bool = True
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        check_positive(self, "embedding_dim", "history_length", "cluster_size", "max_clusters", "kmeans_iterations",
                        "cluster_dim", "gsu_k", "num_heads", "key_dim")
        if self.max_depth < 0 or self.short_term_length < 0:
            raise ValueError("TWINV2Config needs max_depth >= 0 (0 = groups only) and short_term_length >= 0. "
                             f"Received: max_depth={self.max_depth}, short_term_length={self.short_term_length}")
        if self.max_branching < 2:
            raise ValueError(f"TWINV2Config.max_branching must be >= 2. Received: max_branching={self.max_branching}")
        if not 0.0 < self.branching_exponent <= 1.0:
            raise ValueError("TWINV2Config.branching_exponent must lie in (0, 1] (paper: 0.3). "
                             f"Received: branching_exponent={self.branching_exponent}")
        bounds = list(self.group_boundaries)
        if (any(bounds[i] >= bounds[i + 1] for i in range(len(bounds) - 1))
                or not all(-float("inf") < b < float("inf") for b in bounds)):
            raise ValueError("TWINV2Config.group_boundaries must be finite and strictly increasing. "
                             f"Received: group_boundaries={self.group_boundaries}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TWINV2Config.dropout must lie in [0, 1). Received: dropout={self.dropout}")


# ---- DIENConfig (issue 15: the DIEN helper's spot) ----
