"""DSIN's config (also DSIN-Full). One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


SESSION_ENCODINGS = ("bias", "sinusoidal", "none")


@dataclasses.dataclass(frozen=True)
class DSINConfig:
    """DSIN (Feng et al., IJCAI 2019, "Deep Session Interest Network for Click-Through Rate
    Prediction"; choices the paper leaves open: docs/models.md) and DSIN-Full.

    The history before the request is split into sessions at gaps > ``session_gap_seconds``; the
    ``max_sessions`` most recent sessions (``session_length`` most recent behaviors each) go through
    the session interest extractor (bias encoding + self-attention within each session + average,
    sec. 4.2) and the Bi-LSTM interacting layer (sec. 4.3); the target attends over both (sec. 4.4).
    Ablations are fields (the paper's Table 3): ``encoding="sinusoidal"`` is DSIN-PE,
    ``interacting=False`` is DSIN-BE-No-SIIL. DSIN-Full: ``history_length=0`` (the whole history)
    with more sessions (``pipelines/configs/dsin-full.yaml``).

    Attributes:
      embedding_dim: size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors (before the request) that are split into
        sessions; 0 or None = the whole history (DSIN-Full; None as ``DINConfig.recent_length``).
      max_sessions: K, the most recent sessions kept (DSIN's code: 5).
      session_length: T, the most recent behaviors kept per session (DSIN's code: 10).
      session_gap_seconds: a gap strictly greater than this starts a new session (DSIN: 30 min).
      min_session_length: sessions with fewer behaviors are dropped (DSIN's code: 3; 1 = keep all).
      encoding: position encoding of the session tokens: "bias" (BE, eq. 2), "sinusoidal"
        (DSIN-PE) or "none".
      num_heads: heads of the self-attention within sessions.
      key_dim: query / key / value size per head of that self-attention.
      ffn_dim: hidden units of the self-attention block's FFN.
      layer_norm: a LayerNorm after each residual sum of that block (Vaswani et al.'s; DSIN's code
        has none, the default).
      interacting: the Bi-LSTM session interest interacting layer and the target attention over
        its outputs (False = DSIN-BE-No-SIIL).
      lstm_units: h, hidden units per direction of the Bi-LSTM (``H_k`` has 2h).
      target_heads: heads of the two target attentions (1 = the paper's bilinear eq. 10).
      target_key_dim: query / key size per head of the target attentions.
      short_term_length: recent behaviors in the shared short-term DIN branch (0 = none, the
        default: DSIN's sessions already cover recency).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP (the paper's: 200 x 80).
      dropout: dropout rate in the prediction MLP and the self-attention block.
    """

    embedding_dim: int = 16
    history_length: Optional[int] = 200
    max_sessions: int = 5
    session_length: int = 10
    session_gap_seconds: int = 1800
    min_session_length: int = 1
    encoding: str = "bias"
    num_heads: int = 2
    key_dim: int = 8
    ffn_dim: int = 32
    layer_norm: bool = False
    interacting: bool = True
    lstm_units: int = 8
    target_heads: int = 1
    target_key_dim: int = 16
    short_term_length: int = 0
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        check_positive(self, "embedding_dim", "max_sessions", "session_length", "min_session_length", "num_heads",
                        "key_dim", "ffn_dim", "lstm_units", "target_heads", "target_key_dim")
        if self.history_length is not None and self.history_length < 0:
            raise ValueError("DSINConfig.history_length must be >= 0 (0 or None = the whole history, DSIN-Full). "
                             f"Received: history_length={self.history_length!r}")
        if self.session_gap_seconds < 0:
            raise ValueError(f"DSINConfig.session_gap_seconds must be >= 0. "
                             f"Received: session_gap_seconds={self.session_gap_seconds}")
        if self.encoding not in SESSION_ENCODINGS:
            raise ValueError(f"DSINConfig.encoding must be one of {list(SESSION_ENCODINGS)}. "
                             f"Received: encoding={self.encoding!r}")
        if self.short_term_length < 0:
            raise ValueError("DSINConfig.short_term_length must be >= 0 (0 = no short-term branch). "
                             f"Received: short_term_length={self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DSINConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")
