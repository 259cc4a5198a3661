"""Item grouping for DMGIN: K-means over item embeddings and the item -> group table."""
from tfrec.grouping.kmeans import (
    GroupTable,
    KMeansResult,
    balance_report,
    check_balance,
    format_balance_report,
    item_to_group_table,
    kmeans,
    load_group_table,
    save_group_table,
)

__all__ = [
    "GroupTable",
    "KMeansResult",
    "balance_report",
    "check_balance",
    "format_balance_report",
    "item_to_group_table",
    "kmeans",
    "load_group_table",
    "save_group_table",
]
