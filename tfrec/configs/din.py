"""DIN's config (also DIN-Middle / DIN-Full, DIN + CHIME / LEARN). One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401


REGULARIZATIONS = ("l2", "mba")


@dataclasses.dataclass(frozen=True)
class DINConfig:
    """DIN (Zhou et al. 2018) on the most recent behaviors.

    The item representation is the paper's: the item id's embedding concatenated with the schema's
    item side features (``ItemEmbedding``); user and context features reach the head.

    Defaults chosen by measurement (``bench/side_features.py --dataset synthetic-medium --models din
    --variants schema``, 3 seeds, test AUC / GAUC): sigmoid unit + ReLU head 0.6180 / 0.6117
    (default); PReLU both 0.6152 / 0.6125; Dice both 0.6112 / 0.6118; + MBA λ = 0.01 0.6204 /
    0.6177, within noise (std 0.002-0.006). So the cheaper defaults stay; the paper's choices are
    ``pipelines/configs/din-paper.yaml``.

    Attributes:
      embedding_dim: size of item / behavior-type / profile embeddings.
      recent_length: number of most recent behaviors attended (50 = "DIN"; 200 = "DIN-Middle";
        None = the schema's whole history, "DIN-Full").
      attention_units: hidden units of the local activation unit.
      attention_activation: activation of the local activation unit's hidden layers: "sigmoid"
        (ours, the earlier default), "prelu" or "dice" (the paper's, sec. 5.3).
      mlp_units: hidden units of the prediction MLP.
      head_activation: activation of the prediction MLP: "relu", "prelu" or "dice" (the paper's).
      dropout: dropout rate in the prediction MLP.
      embedding_l2: λ of the embedding regularization (0 = none).
      regularization: "l2" (λ times the squared norm of every embedding table, the classic
        penalty the paper calls prohibitive at its scale) or "mba" (the paper's mini-batch aware
        regularization, eq. 5: λ Σ_j ||w_j||² / n_j over the item ids j present in the batch,
        n_j = item j's occurrences in the training data).
    """

    embedding_dim: int = 16
    recent_length: Optional[int] = 50
    attention_units: Tuple[int, ...] = (36,)
    attention_activation: str = "sigmoid"
    mlp_units: Tuple[int, ...] = (64, 32)
    head_activation: str = "relu"
    dropout: float = 0.0
    embedding_l2: float = 0.0
    regularization: str = "l2"

    def __post_init__(self):
        if self.regularization not in REGULARIZATIONS:
            raise ValueError(f"DINConfig.regularization must be one of {list(REGULARIZATIONS)}. "
                             f"Received: regularization={self.regularization!r}")
        if self.embedding_l2 < 0:
            raise ValueError(f"DINConfig.embedding_l2 must be >= 0. Received: embedding_l2={self.embedding_l2!r}")
        if self.recent_length is not None and self.recent_length < 1:
            raise ValueError("DINConfig.recent_length must be >= 1 (DIN is its recent-behavior branch). "
                             f"Received: recent_length={self.recent_length!r}")
