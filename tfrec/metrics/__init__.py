"""Offline evaluation metrics."""
from tfrec.metrics.ctr import GAUCResult, auc, ctr_metrics, gauc, logloss

__all__ = ["GAUCResult", "auc", "ctr_metrics", "gauc", "logloss"]
