"""Item content embeddings (pretrained sentence encoder, offline, TensorFlow)."""
from tfrec.embeddings.text import ModelUnavailableError, TextEncoder, default_cache_dir, ensure_model_dir

__all__ = ["ModelUnavailableError", "TextEncoder", "default_cache_dir", "ensure_model_dir"]
