"""Training losses that are not a Keras built-in (kept out of every serving graph)."""
from tfrec.losses.contrastive import holistic_loss, immediate_loss

__all__ = ["holistic_loss", "immediate_loss"]
