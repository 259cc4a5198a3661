"""Stage `semantic-ids`: RQ-VAE over item embeddings -> Semantic IDs (SIREN sec. 4.1.1, eq. 1).

Reads raw/items.npz (item_id, embedding), trains an RQ-VAE (M codebooks x K codewords, EMA
codebooks initialised by K-means), and writes semantic_ids.npz (item_id, codes int32 [N, M])
plus the codebook report semantic_ids.json: per level hit ratio and perplexity, collision rate
of the full code tuples. Run it before write-tfrecords / beam-tfrecords: they copy the codes into
the records (item_semantic_id_1..M, hist_semantic_id_1..M). Codes are 0..K-1 (no reserved id). With --dedup one more level makes
every tuple unique (TIGER style).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipelines.common import RAW, SEMANTIC_IDS


def add_arguments(p):
    p.add_argument("--data", required=True, help="data directory (reads raw/items.npz)")
    p.add_argument("--levels", type=int, default=3, help="M, codebooks = SemID length (default 3)")
    p.add_argument("--codebook-size", type=int, default=64, help="K, codewords per level (default 64, <= n_items)")
    p.add_argument("--latent-dim", type=int, default=32, help="d, RQ-VAE latent size (default 32)")
    p.add_argument("--epochs", type=int, default=100, help="training passes over the items (default 100)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--codebook-update", choices=["ema", "loss"], default="ema",
                   help="EMA codebooks (CHIME, default) or a VQ-VAE codebook loss")
    p.add_argument("--gradient", choices=["ste", "rotation"], default="ste",
                   help="gradient through the quantizer: straight-through (default) or the rotation trick "
                        "(Fifty et al. 2024, CHIME)")
    p.add_argument("--dedup", action="store_true",
                   help="append a level that makes every code tuple unique (TIGER-style de-collision)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no training progress bar")
    p.add_argument("--deterministic", action="store_true",
                   help="enable TensorFlow op determinism (needed for bit-identical codes on GPU; CPU is already)")


def run(args):
    from tfrec.grouping.rqvae import (
        RQVAEConfig,
        append_collision_level,
        codebook_report,
        fit_semantic_ids,
        format_codebook_report,
        save_semantic_ids,
    )

    t0 = time.time()
    path = Path(args.data) / RAW / "items.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: generate or import a data set first")
    with np.load(path) as items:
        emb, ids = items["embedding"], items["item_id"]
    if emb.ndim != 2 or len(ids) != len(emb):
        raise ValueError(f"{path}: embedding must be [n_items, D] with one row per item_id. "
                         f"Received: embedding.shape={emb.shape}, item_id.shape={ids.shape}")
    config = RQVAEConfig(levels=args.levels, codebook_size=args.codebook_size, latent_dim=args.latent_dim,
                         epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                         seed=args.seed, codebook_update=args.codebook_update, gradient=args.gradient)
    result = fit_semantic_ids(emb, config, verbose=0 if args.quiet else 1, deterministic=args.deterministic)
    codes, report = result.codes, result.report
    print(format_codebook_report(report))
    if args.dedup:
        codes = append_collision_level(codes)
        extra = int(codes[:, -1].max()) + 1
        report["dedup"] = {"appended_level_size": extra,
                           "n_unique_after": codebook_report(codes, max(extra, config.codebook_size))["n_unique"]}
        print(f"  --dedup: appended level {codes.shape[1]} of size {extra}; every tuple is unique")
    out = Path(args.data) / SEMANTIC_IDS
    _, json_path = save_semantic_ids(out, ids, codes, report)
    print(f"Semantic IDs [{len(ids)} x {codes.shape[1]}] -> {out} + {json_path.name} ({time.time() - t0:.1f}s)")
    return result
