"""Item content for the multimodal models: each item's content vector and its Semantic ID.

SIREN, MUSE and MISS read two per-item tables besides the declared item features:

* **content vectors** ``[n_items, D]`` float32: the items' pre-trained multimodal embeddings
  (SIREN's ``e^mm``): ``raw/items.npz``'s ``embedding`` (the synthetic generator's vectors, or
  ``embed-items``' text embeddings for MovieLens), the same vectors K-means and the RQ-VAE read;
  or, with ``content_feature`` set in the model config, a declared dense item feature of the item
  table. Items without a vector hold zeros (cosine 0 with everything).
* **Semantic IDs** ``[n_items, M]`` int: the RQ-VAE codes of ``semantic_ids.npz`` (``tfrec
  semantic-ids``), -1 for items without a code.

Like the item table and the item -> group table, both are stored inside the model as non-trainable
weights (and so inside the SavedModel): requests carry item ids only.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

ITEMS_FILE = "items.npz"  # in raw/: item_id, embedding [, topic]


@dataclasses.dataclass(frozen=True)
class ItemContent:
    """Per-item content vectors and Semantic IDs (either may be absent).

    Attributes:
      vectors: float32 ``[n_items, D]`` or None.
      codes: int32 ``[n_items, M]`` (-1 = no code) or None.
      codebook_size: codes lie in ``[0, codebook_size)`` (0 without codes).
    """

    vectors: Optional[np.ndarray] = None
    codes: Optional[np.ndarray] = None
    codebook_size: int = 0

    @classmethod
    def from_arrays(cls, n_items: int, vectors=None, vector_item_id=None, codes=None, code_item_id=None,
                    codebook_size: Optional[int] = None) -> "ItemContent":
        """Dense ``[n_items, ...]`` tables from ``(item_id, rows)`` pairs (ids in ``[0, n_items)``).

        Raises:
          ValueError: naming the array, for bad shapes, duplicate or out-of-range item ids,
            negative codes, or a ``codebook_size`` that does not cover every code.
        """
        dense_vectors = dense_codes = None
        if vectors is not None:
            vectors = np.asarray(vectors, np.float32)
            ids = np.arange(len(vectors)) if vector_item_id is None else np.asarray(vector_item_id)
            _check_ids("vectors", ids, len(vectors), n_items)
            if vectors.ndim != 2 or vectors.shape[1] < 1:
                raise ValueError(f"content vectors must be [N, D] with D >= 1. Received: shape={vectors.shape}")
            if not np.all(np.isfinite(vectors)):
                raise ValueError("content vectors hold NaN or inf: fix the embedding stage (raw/items.npz)")
            dense_vectors = np.zeros((n_items, vectors.shape[1]), np.float32)
            dense_vectors[ids] = vectors
        if codes is not None:
            codes = np.asarray(codes)
            ids = np.arange(len(codes)) if code_item_id is None else np.asarray(code_item_id)
            _check_ids("codes", ids, len(codes), n_items)
            if codes.ndim != 2 or codes.shape[1] < 1 or codes.dtype.kind not in "iu":
                raise ValueError(f"Semantic ID codes must be integer [N, M] with M >= 1. Received: "
                                 f"shape={codes.shape}, dtype={codes.dtype}")
            if codes.size and codes.min() < 0:
                raise ValueError(f"Semantic ID codes must be >= 0. Received: min={codes.min()}")
            top = int(codes.max()) + 1 if codes.size else 1
            codebook_size = top if codebook_size is None else int(codebook_size)
            if codebook_size < top:
                raise ValueError(f"codebook_size={codebook_size} does not cover the largest code {top - 1}")
            dense_codes = np.full((n_items, codes.shape[1]), -1, np.int32)
            dense_codes[ids] = codes
        return cls(dense_vectors, dense_codes, int(codebook_size or 0) if codes is not None else 0)

    @classmethod
    def load(cls, data_dir, n_items: int) -> "ItemContent":
        """``raw/items.npz`` and ``semantic_ids.npz`` of a data directory (each optional)."""
        data_dir = Path(data_dir)
        vectors = vector_ids = codes = code_ids = None
        size = None
        items = data_dir / "raw" / ITEMS_FILE
        if items.exists():
            with np.load(items) as data:
                vectors, vector_ids = data["embedding"], data["item_id"]
        sem = data_dir / "semantic_ids.npz"
        if sem.exists():
            from tfrec.grouping import load_semantic_ids

            table = load_semantic_ids(sem)
            codes, code_ids = table.codes, table.item_id
            size = int(table.report.get("codebook_size", int(codes.max()) + 1 if codes.size else 1))
        return cls.from_arrays(n_items, vectors, vector_ids, codes, code_ids, size)


def _check_ids(what: str, ids: np.ndarray, rows: int, n_items: int) -> None:
    if ids.ndim != 1 or len(ids) != rows:
        raise ValueError(f"{what}: item_id must be 1-D with one entry per row. Received: {ids.shape} for {rows} rows")
    if len(ids) and (ids.min() < 0 or ids.max() >= n_items):
        raise ValueError(f"{what}: item ids must lie in [0, {n_items}). Received: min={ids.min()}, max={ids.max()}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{what}: duplicate item ids")


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised rows (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, np.float32)
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.where(norm > 0, vectors / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def prefix_table(codes: np.ndarray, depth: int):
    """Exact prefix ids of SIREN's prefix encoding (eq. 2).

    Every distinct prefix ``(c^1..c^j)``, ``j = 1..depth``, observed among the items gets its own
    row of one shared table: the depth-1 prefixes first, then depth 2, and so on. Exact ids rather
    than hashed ones: the table holds at most ``depth x n_items`` rows (far fewer than the
    ``V^depth`` possible prefixes), never collides, and an item's prefixes are looked up by item id
    in graph (the table lives in the model), so nothing needs hashing at serving time.

    Args:
      codes: int ``[n_items, M]`` (-1 = item without a code).
      depth: K <= M, the deepest prefix.

    Returns:
      ``(ids, num_prefixes)``: int32 ``[n_items, depth]`` prefix rows (-1 for items without a code)
      and the number of distinct prefixes.
    """
    codes = np.asarray(codes, np.int64)
    if codes.ndim != 2 or not 1 <= depth <= codes.shape[1]:
        raise ValueError(f"prefix depth must lie in [1, M={codes.shape[-1] if codes.ndim == 2 else '?'}] for "
                         f"codes [n_items, M]. Received: depth={depth}, codes.shape={codes.shape}")
    known = np.all(codes >= 0, axis=1)
    ids = np.full((len(codes), depth), -1, np.int32)
    offset = 0
    for j in range(1, depth + 1):
        if not known.any():
            break
        _, inverse = np.unique(codes[known, :j], axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        ids[known, j - 1] = inverse + offset
        offset += int(inverse.max()) + 1
    return ids, offset
