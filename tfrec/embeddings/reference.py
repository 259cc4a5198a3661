"""An independent pure-NumPy BERT sentence encoder: the reference the TensorFlow encoder is tested against.

It reads ``model.safetensors`` with ``safetensors.numpy`` (no TensorFlow, no transformers model code,
no torch) and runs, in float64: embeddings (word + position + token_type, LayerNorm) -> N encoder
layers (multi-head self-attention with the padding mask, residual + LayerNorm, exact-erf GELU
feed-forward, residual + LayerNorm) -> mean pooling over the attention mask -> L2 normalisation.
Slow (one sentence at a time) and meant for a handful of test sentences only.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

try:
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover
    _erf = np.vectorize(math.erf, otypes=[np.float64])


def _layer_norm(x, gamma, beta, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


class NumpyBertEncoder:
    def __init__(self, model_dir):
        from safetensors.numpy import load_file

        model_dir = Path(model_dir)
        self.config = json.loads((model_dir / "config.json").read_text())
        assert self.config.get("hidden_act", "gelu") == "gelu", self.config.get("hidden_act")
        assert self.config.get("position_embedding_type", "absolute") == "absolute"
        raw = load_file(str(model_dir / "model.safetensors"))
        # Some checkpoints prefix every name with "bert."
        self.w = {(k[5:] if k.startswith("bert.") else k): v.astype(np.float64) for k, v in raw.items()}
        self.n_layers = int(self.config["num_hidden_layers"])
        self.n_heads = int(self.config["num_attention_heads"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))

    def _dense(self, x, name):
        # PyTorch Linear layout: weight [out, in]
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _ln(self, x, name):
        return _layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def hidden_states(self, input_ids, token_type_ids=None, attention_mask=None) -> np.ndarray:
        """Last hidden state ``[T, H]`` for one sequence of token ids ``[T]``."""
        ids = np.asarray(input_ids, np.int64)
        t = len(ids)
        tt = np.zeros(t, np.int64) if token_type_ids is None else np.asarray(token_type_ids, np.int64)
        mask = np.ones(t) if attention_mask is None else np.asarray(attention_mask, np.float64)
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t]
             + w["embeddings.token_type_embeddings.weight"][tt])
        x = self._ln(x, "embeddings.LayerNorm")
        h = x.shape[-1]
        dh = h // self.n_heads
        key_bias = np.where(mask > 0, 0.0, -1e30)[None, None, :]  # [1, 1, T] over keys
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}"
            q = self._dense(x, f"{p}.attention.self.query").reshape(t, self.n_heads, dh).transpose(1, 0, 2)
            k = self._dense(x, f"{p}.attention.self.key").reshape(t, self.n_heads, dh).transpose(1, 0, 2)
            v = self._dense(x, f"{p}.attention.self.value").reshape(t, self.n_heads, dh).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(dh) + key_bias  # [heads, T, T]
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(1, 0, 2).reshape(t, h)
            x = self._ln(self._dense(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            inter = _gelu(self._dense(x, f"{p}.intermediate.dense"))
            x = self._ln(self._dense(inter, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x

    def encode_ids(self, input_ids, attention_mask=None, token_type_ids=None, normalize=True) -> np.ndarray:
        """Sentence embedding (mean pooling over the mask, then L2) for one sequence; float64 ``[H]``."""
        ids = np.asarray(input_ids)
        mask = np.ones(len(ids)) if attention_mask is None else np.asarray(attention_mask, np.float64)
        hidden = self.hidden_states(ids, token_type_ids, mask)
        pooled = (hidden * mask[:, None]).sum(0) / max(mask.sum(), 1e-9)
        if normalize:
            pooled = pooled / max(np.linalg.norm(pooled), 1e-12)
        return pooled

    def encode(self, tokenizer, texts, max_length=256, normalize=True) -> np.ndarray:
        """``[N, H]`` float64 embeddings, each text tokenised on its own (no padding at all)."""
        out = []
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_length, return_token_type_ids=True)
            out.append(self.encode_ids(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                                       normalize=normalize))
        return np.stack(out)
