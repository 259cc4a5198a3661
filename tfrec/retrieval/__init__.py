"""Retrieval outside the SavedModel: SIREN's soft GSU (eq. 7) over long histories with ScaNN.

ScaNN is imported only when a ScaNN index is built; importing this package loads numpy only.
"""
from tfrec.retrieval.narrow import check_external_retrieval, compact_features, narrow_state, repeat_rows
from tfrec.retrieval.scann_gsu import ScannConfig, ScannGSU, UserHistoryIndex, exact_top_k, normalize

__all__ = [
    "ScannConfig",
    "ScannGSU",
    "UserHistoryIndex",
    "check_external_retrieval",
    "compact_features",
    "exact_top_k",
    "narrow_state",
    "normalize",
    "repeat_rows",
]
