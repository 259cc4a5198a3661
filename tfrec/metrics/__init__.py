"""Offline evaluation metrics."""
from tfrec.metrics.ctr import GAUCResult, auc, ctr_metrics, gauc, logloss
from tfrec.metrics.information import (
    conditional_entropy,
    label_entropy,
    mutual_information,
)

__all__ = ["GAUCResult", "auc", "conditional_entropy", "ctr_metrics", "gauc", "label_entropy", "logloss",
           "mutual_information"]
