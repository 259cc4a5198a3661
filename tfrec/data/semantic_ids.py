"""Semantic ID fields for the TFRecord writers (in-process ``write-tfrecords`` and Beam).

``tfrec semantic-ids`` writes the item table ``semantic_ids.npz`` (``item_id`` ``[N]``, ``codes``
``[N, M]``). ``SemanticIDLookup`` turns it into the per-level record fields of
``FeatureSpec.semantic_id_features``: ``item_semantic_id_1..M`` for an example's target and
``hist_semantic_id_1..M`` (parallel to ``hist_item_id``) for a history. Both writers call the same
``columns`` method, so their records stay byte-identical.

An item id without a code is an error that names the item and where it was met (a stale table:
items were added after ``semantic-ids`` ran); it is never written as a made-up code.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, Mapping

import numpy as np

from tfrec.data import spec as spec_lib

_MISSING = -1
_FIX = "re-run `tfrec semantic-ids` over the current raw/items.npz (or pass --no-semantic-ids)"


@dataclasses.dataclass(frozen=True)
class SemanticIDLookup:
    """Dense item -> Semantic ID table.

    Attributes:
      codes_by_item: int64 ``[n_items, M]``, row = item id, ``-1`` for items without a code.
      vocab: codes lie in ``[0, vocab)`` at every level (``FeatureSpec.semantic_id_vocab``).
      source: where the table came from (for error messages).
    """

    codes_by_item: np.ndarray
    vocab: int
    source: str = "semantic_ids.npz"

    @classmethod
    def from_table(cls, item_id, codes, n_items: int, vocab: int | None = None,
                   source: str = "semantic_ids.npz") -> "SemanticIDLookup":
        """Builds the lookup from ``item_id`` ``[N]`` and ``codes`` ``[N, M]``.

        Args:
          item_id: int ``[N]``, unique, in ``[0, n_items)``.
          codes: int ``[N, M]`` (M >= 1), values >= 0.
          n_items: the data set's item vocabulary (``FeatureSpec.n_items``).
          vocab: the code vocabulary; default: ``max(code) + 1``.
          source: named in error messages.

        Raises:
          ValueError: shapes, duplicate or out-of-range item ids, negative codes, or a ``vocab``
            that does not cover every code.
        """
        item_id, codes = np.asarray(item_id), np.asarray(codes)
        if item_id.ndim != 1 or item_id.dtype.kind not in "iu":
            raise ValueError(f"{source}: item_id must be a 1-D integer array. Received: shape={item_id.shape}, "
                             f"dtype={item_id.dtype}")
        if codes.ndim != 2 or codes.dtype.kind not in "iu" or len(codes) != len(item_id) or codes.shape[1] < 1:
            raise ValueError(f"{source}: codes must be an integer [N, M] array (M >= 1) with one row per item_id. "
                             f"Received: codes.shape={codes.shape}, item_id.shape={item_id.shape}")
        if len(item_id) and (item_id.min() < 0 or item_id.max() >= n_items):
            bad = item_id[(item_id < 0) | (item_id >= n_items)][0]
            raise ValueError(f"{source}: item_id {int(bad)} is outside the data set's [0, {n_items}); "
                             f"the table belongs to another data set: {_FIX}")
        if len(np.unique(item_id)) != len(item_id):
            values, counts = np.unique(item_id, return_counts=True)
            raise ValueError(f"{source}: item_id {int(values[counts > 1][0])} has more than one row; "
                             "write one Semantic ID per item")
        if codes.size and codes.min() < 0:
            raise ValueError(f"{source}: codes must be >= 0. Received: min={int(codes.min())}")
        top = int(codes.max()) + 1 if codes.size else 1
        vocab = top if vocab is None else int(vocab)
        if vocab < top:
            raise ValueError(f"{source}: codes reach {top - 1} but the vocabulary is {vocab}; "
                             "pass vocab > max(code)")
        table = np.full((n_items, codes.shape[1]), _MISSING, np.int64)
        table[item_id.astype(np.int64)] = codes
        return cls(table, vocab, source)

    @classmethod
    def load(cls, path: str | os.PathLike, n_items: int) -> "SemanticIDLookup":
        """Reads a ``semantic_ids.npz`` written by ``tfrec semantic-ids``."""
        from tfrec.grouping.rqvae import load_semantic_ids

        table = load_semantic_ids(path)
        codes = table.codes
        vocab = int(table.report.get("codebook_size", 0))
        dedup = table.report.get("dedup") or {}
        vocab = max(vocab, int(dedup.get("appended_level_size", 0)), int(codes.max()) + 1 if codes.size else 1)
        return cls.from_table(table.item_id, codes, n_items, vocab=vocab, source=os.fspath(path))

    @property
    def levels(self) -> int:
        """M."""
        return int(self.codes_by_item.shape[1])

    def spec_fields(self) -> Dict[str, int]:
        """``FeatureSpec`` keyword arguments declaring these codes."""
        return {"semantic_id_levels": self.levels, "semantic_id_vocab": self.vocab}

    def columns(self, item_ids, prefix: str, where: Callable[[int], str] = lambda i: f"position {i}"
                ) -> Dict[str, np.ndarray]:
        """The per-level fields of ``item_ids``: ``{<prefix>_m: int64 array shaped like item_ids}``.

        Args:
          item_ids: an int scalar or array of item ids.
          prefix: ``spec.ITEM_SEMANTIC_ID`` or ``spec.HIST_SEMANTIC_ID``.
          where: index (into the flattened ids) -> where that id was read, for error messages.

        Raises:
          ValueError: an id is outside the table or has no code; the message names it and ``where``.
        """
        ids = np.asarray(item_ids)
        flat = ids.reshape(-1)
        if flat.dtype.kind not in "iu":
            numeric = flat.dtype.kind == "f"
            whole = np.isfinite(flat) & (flat == np.round(flat)) if numeric else np.zeros(len(flat), bool)
            if not whole.all():
                i = int(np.flatnonzero(~whole)[0])
                raise ValueError(f"item_id {flat[i]!r} ({where(i)}) is not an integer id; fill or drop the row "
                                 "and cast item_id to int64")
            flat = flat.astype(np.int64)
        inside = (flat >= 0) & (flat < len(self.codes_by_item))
        codes = self.codes_by_item[np.where(inside, flat, 0).astype(np.int64)]
        bad = np.flatnonzero(~inside | (codes[:, 0] == _MISSING))
        if len(bad):
            i = int(bad[0])
            if not inside[i]:
                raise ValueError(f"item_id {int(flat[i])} ({where(i)}) is outside [0, {len(self.codes_by_item)}) "
                                 "(FeatureSpec.n_items); remap ids into the vocabulary")
            raise ValueError(f"item_id {int(flat[i])} ({where(i)}) has no Semantic ID in {self.source}; {_FIX}")
        return {spec_lib.semantic_id_field(prefix, m + 1): codes[:, m].reshape(ids.shape)
                for m in range(self.levels)}

    def with_codes(self, record: Mapping, item_key: str, prefix: str, where: Callable[[int], str]) -> dict:
        """``record`` plus the per-level fields of ``record[item_key]``."""
        return {**record, **self.columns(record[item_key], prefix, where)}


__all__ = ["SemanticIDLookup"]
