"""DMQN's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import TIME_BUCKET_DAYS


CODEWORD_ORDERS = ("recency", "codebook")


@dataclasses.dataclass(frozen=True)
class DMQNConfig:
    """DMQN (DMQN paper, eqs. 3-13; choices the paper leaves open: docs/models.md).

    Ablations are fields: ``use_icim=False`` is the paper's DMQN-simple (Table 3: no HSTU, the
    candidate attends to the pooled codewords directly); ``num_codebooks`` N and ``codebook_size``
    W; ``estimator="softmax"`` drops the Gumbel noise; ``codeword_order="codebook"`` feeds the
    HSTU the codewords in codebook index order instead of by recency.

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      num_codebooks: N, independent codebooks (eq. 3).
      codebook_size: W, codewords per codebook (N x W ~ "about a hundred" in the paper).
      estimator: "gumbel" (Gumbel-softmax straight-through, eq. 6) or "softmax" (no noise).
      scores: "cosine" (ours, the default: ``s cos(h, c)`` with a learnable scale, initially 10) or
        "dot" (eq. 5's dot products ``h c^T``); ``MultiCodebookQuantizer`` and docs/models.md say why.
      temperature: tau of the relaxation at the first epoch (shapes the straight-through gradient).
      temperature_decay: tau is multiplied by this after every epoch (1 = constant) ...
      temperature_min: ... down to this floor.
      dead_code_reset: restart, before the next epoch, the codewords that won no training
        behavior of the epoch at argmax (``CodebookHealth``; ours, the collapse remedy; off by
        default, as the paper: turn it on when the codebook report shows dead codewords).
      health_batches: training batches the per-epoch served-usage report (argmax) looks at.
      behavior_age: add ``E_time(bucket(t_req - t_i))`` to each behavior token before quantizing
        (ours: the paper's ``e_i`` is unspecified; DMGIN's behaviors carry the same age buckets).
        Without it the long-term branch never sees the request time.
      codeword_count: add ``W_c log1p(|codeword|)`` to each pooled codeword (ours: the avg-pool
        of eq. 9 drops how many behaviors a codeword holds, i.e. the interest's intensity).
      use_icim: the Interest Clusters Interaction Module (HSTU over each codeword sequence).
      codeword_order: "recency" (by each codeword's newest member behavior, oldest -> newest, as
        DMGIN orders its groups) or "codebook" (fixed codebook index order).
      hstu_layers: depth of the HSTU stack (eqs. 11-13).
      hstu_heads: heads per HSTU layer.
      icim_identity_init: start every HSTU block of the ICIM as the identity (``HSTU(identity_init=True)``;
        ours): the pooled codewords are means of small embeddings, and with Glorot output projections
        the blocks' initial updates drown them (synthetic-medium, one batch at initialization: codewords
        0.028 per element, the ICIM's output 0.228; identity init: 0.028, the codewords themselves).
      short_term_length: recent behaviors in the shared short-term DIN branch (ours, as every
        model's; 0 = none, the paper's single behavior sequence: ``dmqn-paper.yaml``).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
      time_bucket_days: boundaries (days) of the HSTU relative-time buckets.
    """

    embedding_dim: int = 16
    num_codebooks: int = 2
    codebook_size: int = 64
    estimator: str = "gumbel"
    scores: str = "cosine"
    temperature: float = 1.0
    temperature_decay: float = 1.0
    temperature_min: float = 0.1
    dead_code_reset: bool = False
    health_batches: int = 8
    behavior_age: bool = False
    codeword_count: bool = False
    use_icim: bool = True
    codeword_order: str = "recency"
    hstu_layers: int = 2
    hstu_heads: int = 2
    icim_identity_init: bool = False
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    time_bucket_days: Tuple[float, ...] = TIME_BUCKET_DAYS

    def __post_init__(self):
        if self.codeword_order not in CODEWORD_ORDERS:
            raise ValueError(f"DMQNConfig.codeword_order must be one of {list(CODEWORD_ORDERS)}. "
                             f"Received: codeword_order={self.codeword_order!r}")
        if self.estimator not in ("gumbel", "softmax"):
            raise ValueError("DMQNConfig.estimator must be one of ['gumbel', 'softmax']. "
                             f"Received: estimator={self.estimator!r}")
        if self.scores not in ("cosine", "dot"):
            raise ValueError("DMQNConfig.scores must be one of ['cosine', 'dot']. "
                             f"Received: scores={self.scores!r}")
        if self.num_codebooks < 1 or self.codebook_size < 2:
            raise ValueError("DMQNConfig needs num_codebooks >= 1 and codebook_size >= 2. Received: "
                             f"num_codebooks={self.num_codebooks}, codebook_size={self.codebook_size}")
        if self.short_term_length < 0 or self.health_batches < 1:
            raise ValueError("DMQNConfig needs short_term_length >= 0 (0 = no short-term branch) and health_batches >= 1. "
                             f"Received: short_term_length={self.short_term_length}, "
                             f"health_batches={self.health_batches}")
        if not (self.temperature > 0 and self.temperature_min > 0 and 0 < self.temperature_decay <= 1):
            raise ValueError("DMQNConfig needs temperature > 0, temperature_min > 0 and 0 < temperature_decay <= 1. "
                             f"Received: temperature={self.temperature}, temperature_min={self.temperature_min}, "
                             f"temperature_decay={self.temperature_decay}")
