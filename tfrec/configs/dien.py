"""DIEN's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


DIEN_EVOLUTIONS = ("augru", "agru", "aigru")


@dataclasses.dataclass(frozen=True)
class DIENConfig:
    """DIEN (Zhou et al., AAAI 2019): interest extractor GRU + auxiliary loss, then the interest
    evolving AUGRU driven by target attention (choices the paper leaves open: docs/models.md).

    Ablations of the paper's tables are fields: ``evolution`` ("augru" = DIEN, "agru", "aigru") and
    ``aux_loss_weight=0`` (DIEN without the auxiliary loss).

    Attributes:
      embedding_dim: size of the item / behavior-type / profile embeddings.
      sequence_length: S, the most recent behaviors the two GRUs read (DIEN's behavior sequence).
      gru_units: d_h, the hidden size of both GRUs; None = the item representation's width
        (embedding_dim plus the declared item features' embeddings), so the auxiliary loss's
        ``h_t · e_{t+1}`` needs no projection.
      evolution: the interest evolving layer: "augru" (the paper's DIEN, ``ũ_t = a_t · u_t``),
        "agru" (attention replaces the update gate) or "aigru" (attention scales the GRU's input).
      aux_loss_weight: α of the auxiliary loss (paper eq. L = L_target + α L_aux; 0 = none, the
        "DIEN without auxiliary loss" ablation, and no negatives are drawn).
      negative_seed: seed of the auxiliary loss's negative behaviors (``tfrec.data.negatives``).
      short_term_length: recent behaviors in the shared short-term DIN branch (ours; 0 = none, the
        default: DIEN's own sequence already is the recent one).
      attention_units: hidden units of the short-term DIN local activation unit (unused at 0).
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    sequence_length: int = 50
    gru_units: int | None = None
    evolution: str = "augru"
    aux_loss_weight: float = 1.0
    negative_seed: int = 0
    short_term_length: int = 0
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        check_positive(self, "embedding_dim", "sequence_length")
        if self.gru_units is not None and self.gru_units < 1:
            raise ValueError(f"DIENConfig.gru_units must be >= 1 or None (= the item representation's width). "
                             f"Received: gru_units={self.gru_units!r}")
        if self.evolution not in DIEN_EVOLUTIONS:
            raise ValueError(f"DIENConfig.evolution must be one of {list(DIEN_EVOLUTIONS)}. "
                             f"Received: evolution={self.evolution!r}")
        if not self.aux_loss_weight >= 0:
            raise ValueError(f"DIENConfig.aux_loss_weight must be >= 0. Received: aux_loss_weight={self.aux_loss_weight!r}")
        if self.short_term_length < 0:
            raise ValueError("DIENConfig.short_term_length must be >= 0 (0 = no short-term branch). "
                             f"Received: short_term_length={self.short_term_length!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DIENConfig.dropout must lie in [0, 1). Received: dropout={self.dropout!r}")


# ---- DSINConfig (issue 15: the DSIN helper's spot) ----
