"""DMGIN's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import TIME_BUCKET_DAYS, check_positive


GROUP_KEYS = ("cluster", "item_id")


@dataclasses.dataclass(frozen=True)
class DMGINConfig:
    """DMGIN (DMGIN paper, eqs. 1-10; DESIGN.md's reconstruction; choices: docs/models.md).

    Every paper ablation is a field: ``hstu_layers=0`` is DMGIN-simple and, on it, ``statistics`` /
    ``evolution`` off are Table 3's "-Interest Statistical" / "-Behavior Evolution"; ``hstu_layers``
    1 -> 6 is Table 4; ``group_key="item_id"`` is DGIN (groups by item id, no multimodal K-means:
    ``dmgin-dgin.yaml``). ``pipelines/configs/dmgin-paper.yaml`` is the paper as written (no
    match prior, the paper's Amazon short sequence of 10); the defaults are our measured best
    (docs/models.md, "DMGIN").

    Attributes:
      embedding_dim: d, the size of every embedding and group vector.
      top_k_groups: k, the number of most recent groups kept (eq. 6); 0 = sized from the training
        data (``DMGIN.config_from_data``: the smallest k keeping the target item's group for
        ``top_k_coverage`` of the examples that have it in their history, at most ``top_k_max``).
      top_k_coverage: the coverage ``top_k_groups=0`` is sized for.
      top_k_max: the largest k ``top_k_groups=0`` may choose.
      coverage_batches: training batches the sizing reads.
      max_per_group: m, behaviors per group fed to intra-group attention (most recent first).
      num_heads: heads of the intra-group multi-head self-attention (eqs. 2-3).
      hstu_layers: depth of the inter-group HSTU stack (eqs. 7-9; paper: 1 -> 6, monotone gains);
        0 = DMGIN-simple (the candidate attends to the top-k group vectors directly).
      hstu_heads: heads per HSTU layer.
      statistics: the interest statistics ``s_i`` (eq. 1) in the group representation (eq. 5).
      evolution: the intra-group behavior evolution ``e_i`` (eqs. 2-4) in the group representation.
      match_prior: add a learned bias on the candidate's own group to the candidate-aware attention
        (ours, not the paper's eq. 10; ``CandidateGroupAttention``).
      group_key: "cluster" (the multimodal K-means groups, ``tfrec cluster``) or "item_id" (DGIN:
        every item is its own group; needs no group table). The grouping then builds ``[B, n_items + 1]``
        tensors per step: fine to ~10^5 items (B = 256: 26M entries), not for a 10^7-item catalog.
      short_term_length: recent behaviors in the short-term DIN branch (0 = none).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
      time_bucket_days: boundaries (days) of the behavior-age buckets, E_time.
      input_grouping: group the history in the input pipeline, not in the train step (the grouping,
        the statistics and every gather over the L raw behaviors have no trainable parameter):
        ``tfrec train`` computes each request's grouped tensors once (``tfrec.data.request_states``)
        and trains on ``k x m`` tensors; ``prepare_training_data`` maps the same function over a
        notebook's batches. False = group in the train step (the serving ``user_tower`` always groups
        in-graph from the raw behaviors; both paths give identical tensors, tested).
    """

    embedding_dim: int = 16
    top_k_groups: int = 0
    top_k_coverage: float = 0.95
    top_k_max: int = 128
    coverage_batches: int = 20
    max_per_group: int = 16
    num_heads: int = 2
    hstu_layers: int = 2
    hstu_heads: int = 2
    statistics: bool = True
    evolution: bool = True
    match_prior: bool = True
    group_key: str = "cluster"
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    time_bucket_days: Tuple[float, ...] = TIME_BUCKET_DAYS
    input_grouping: bool = True

    def __post_init__(self):
        if self.group_key not in GROUP_KEYS:
            raise ValueError(f"DMGINConfig.group_key must be one of {list(GROUP_KEYS)}. "
                             f"Received: group_key={self.group_key!r}")
        for name in ("top_k_groups", "hstu_layers", "short_term_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"DMGINConfig.{name} must be >= 0 (top_k_groups 0 = sized from the data, "
                                 f"hstu_layers 0 = DMGIN-simple, short_term_length 0 = no short-term branch). "
                                 f"Received: {name}={getattr(self, name)!r}")
        check_positive(self, "embedding_dim", "top_k_max", "coverage_batches", "max_per_group", "num_heads",
                        "hstu_heads")
        if self.top_k_max < 4:
            raise ValueError(f"DMGINConfig.top_k_max must be >= 4 (the smallest k the sizing picks). "
                             f"Received: top_k_max={self.top_k_max!r}")
        if not 0.0 < self.top_k_coverage <= 1.0:
            raise ValueError(f"DMGINConfig.top_k_coverage must lie in (0, 1]. "
                             f"Received: top_k_coverage={self.top_k_coverage!r}")
