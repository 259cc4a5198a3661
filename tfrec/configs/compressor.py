"""The CHIME / LEARN compressor's config. One module per model, so that a change to one model's config re-runs only that
model's benchmark cells (``tfrec.benchmark.cells``)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple  # noqa: F401

from tfrec.configs.base import check_positive


COMPRESSION_METHODS = ("chime", "learn")
COMPRESSIONS = ("rvq", "mean_pool")
HISTOGRAMS = ("frequency", "count")


@dataclasses.dataclass(frozen=True)
class CompressorConfig:
    """CHIME's compression model (or LEARN's, ``method="learn"``): ``tfrec.compression``.

    The paper's values where it gives them (Qwen2.5-0.5B, 24 layers, codebooks (32, 16, 16), rotation
    trick, tau 0.2 / 0.07, lr 7e-4 new / 7e-6 pretrained); sizes scaled to a 2-core CPU otherwise.

    Attributes:
      method: ``"chime"`` (holistic + immediate losses, residual-VQ histograms) or ``"learn"``
        (LEARN: frozen content vectors -> causal transformer, dense all-action in-batch softmax over
        the positive behaviors; the user vector is the last position's hidden state).
      max_length: T, the most recent behaviors (before a slice boundary) one forward pass reads.
      id_dim: the item id embedding size (and each declared item feature's, as ``ItemEmbedding``).
      action_dim: the behavior-type embedding size (user input only, as the paper's action label).
      content_dim: the GLU projection of the frozen content vector (``raw/items.npz``); 0 = unused.
      model_dim: the transformer width; 0 = the concatenated input width, else a linear map to it
        (the ``minilm`` backbone needs 384).
      backbone: ``"random"`` or ``"minilm"`` (all-MiniLM-L6-v2's layers under a causal mask).
      layers, heads, ffn_dim (0 = 4 x model_dim), dropout: the causal transformer.
      rope: rotary position embeddings in its attention (Qwen, the paper's backbone, has them);
        False = order from the causal mask alone (what MiniLM's layers were trained without).
      hidden_dim: size of z_t and p_t (the user and item GLU outputs).
      codebook_sizes: K_m of each residual-VQ level (CHIME: (32, 16, 16)).
      rotation_trick: the rotation trick instead of straight-through (CHIME uses it).
      commitment_beta: weight of the commitment loss.
      holistic_temperature, immediate_temperature: tau of the two losses (CHIME: 0.2, 0.07).
      immediate_loss: False = Table 3 "w/o IL".
      compression: ``"rvq"`` or ``"mean_pool"`` (Table 3 "w/o ICM": the mean over positions of the
        user GLU output, ``hidden_dim`` wide, is the user vector).
      adaptation: False = Table 3 "w/o IAM": the behavior input is the item id and action embeddings
        alone (no item features, no content vector, no GLU projector).
      histogram: ``"frequency"`` (each level's histogram sums to 1) or ``"count"``.
      positive_types: behavior types with label +1 (default click, favorite, cart, order; view and
        negative are -1).
      learn_window: LEARN only: a position's positives are the positive behaviors within this many
        steps ahead (0 = all later ones).
      learning_rate, pretrained_learning_rate: Adam rates of new and of pretrained weights, reached
        after ``warmup_steps`` of linear warm-up, then cosine-annealed to 0 over the run (CHIME: 50
        warm-up steps, cosine; without the warm-up the first large steps move the transformer's
        outputs away from their K-means codebooks and the codes collapse onto a few).
      batch_size: users per step; epochs; seed.
    """

    method: str = "chime"
    max_length: int = 256
    id_dim: int = 32
    action_dim: int = 16
    content_dim: int = 32
    model_dim: int = 0
    backbone: str = "random"
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 0
    dropout: float = 0.1
    rope: bool = False
    hidden_dim: int = 64
    codebook_sizes: Tuple[int, ...] = (32, 16, 16)
    rotation_trick: bool = True
    commitment_beta: float = 0.25
    holistic_temperature: float = 0.2
    immediate_temperature: float = 0.07
    immediate_loss: bool = True
    compression: str = "rvq"
    adaptation: bool = True
    histogram: str = "frequency"
    positive_types: Tuple[int, ...] = (1, 2, 3, 4)
    learn_window: int = 32
    learning_rate: float = 1e-3
    pretrained_learning_rate: float = 1e-5
    warmup_steps: int = 50
    batch_size: int = 16
    epochs: int = 3
    seed: int = 0

    def __post_init__(self):
        for name, allowed in (("method", COMPRESSION_METHODS), ("compression", COMPRESSIONS),
                              ("histogram", HISTOGRAMS), ("backbone", ("random", "minilm"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"CompressorConfig.{name} must be one of {allowed}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        check_positive(self, "max_length", "id_dim", "layers", "heads", "hidden_dim", "batch_size", "epochs")
        for name in ("action_dim", "content_dim", "model_dim", "ffn_dim", "learn_window", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"CompressorConfig.{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if not self.codebook_sizes or min(self.codebook_sizes) < 1:
            raise ValueError("CompressorConfig.codebook_sizes must be a non-empty list of positive ints. "
                             f"Received: {self.codebook_sizes}")
        if not self.positive_types:
            raise ValueError("CompressorConfig.positive_types must name at least one behavior type")
        for name in ("holistic_temperature", "immediate_temperature", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CompressorConfig.{name} must be > 0. Received: {getattr(self, name)}")
