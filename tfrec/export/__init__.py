"""Export: SavedModels with user_tower / score / serving_default signatures."""
from tfrec.export.saved_model import (CANDIDATES, FINGERPRINT, PROBABILITIES, ExportError, export_saved_model,
                                      list_versions, non_stock_ops, read_export_metadata,
                                      read_warmup_requests)

__all__ = ["CANDIDATES", "FINGERPRINT", "PROBABILITIES", "ExportError", "export_saved_model", "list_versions",
           "non_stock_ops", "read_export_metadata",
           "read_warmup_requests"]
