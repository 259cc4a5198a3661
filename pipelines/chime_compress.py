"""Stage `chime-compress`: CHIME's compression model (or LEARN's) -> every user's long-term vector.

Trains the compressor on each user's behaviors before t1 (default: the first training example's
request time, so the ranker keeps every training example and never sees a vector built from its
own future), then writes OUT/user_vectors.npz (one vector per user per time slice: CHIME's
concatenated residual-VQ code histograms, or LEARN's user embedding), OUT/compressor.json (losses
per epoch on training and held-out users, codebook hit ratio and perplexity per level -- CHIME
Table 5 --, costs) and the compressor's weights. Rankers take the vectors with
`tfrec train --user-vectors OUT/user_vectors.npz` (any model: a user feature on the shared head).

Config: --config YAML (keys of tfrec.configs.CompressorConfig, e.g. pipelines/configs/chime.yaml,
learn.yaml, or the Table 3 ablations chime-no-il.yaml, chime-no-icm.yaml, chime-no-iam.yaml);
--set KEY=VALUE overrides single keys.
"""
from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("--data", required=True, help="data directory (TFRecords + raw/items.npz)")
    p.add_argument("--out", required=True, help="output directory (user_vectors.npz, compressor.json, weights)")
    p.add_argument("--config", default=None, help="CompressorConfig YAML (default: CHIME's defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (YAML value syntax), e.g. --set epochs=2 --set backbone=minilm")
    p.add_argument("--t1", type=int, default=None,
                   help="end of the representation set, epoch seconds (default: first training request time)")
    p.add_argument("--boundaries", default=None,
                   help="comma-separated time-slice boundaries of the written vectors (default: t1)")
    p.add_argument("--eval-fraction", type=float, default=0.1, help="users held out for the held-out loss")
    p.add_argument("--verbose", type=int, default=2)


def load_config(path, overrides) -> "CompressorConfig":  # noqa: F821
    import yaml

    from pipelines.common import load_yaml_config
    from tfrec import configs as configs_lib

    values = load_yaml_config(path) if path else {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE. Received: {item!r}")
        key, value = item.split("=", 1)
        values[key.strip()] = yaml.safe_load(value)
    return configs_lib.from_dict(configs_lib.CompressorConfig, values)


def run(args):
    from tfrec import api
    from tfrec.compression.stage import REPORT_FILE, VECTORS_FILE, compress

    config = load_config(args.config, args.set)
    try:
        boundaries = [int(b) for b in args.boundaries.split(",")] if args.boundaries else None
    except ValueError:
        raise ValueError(f"--boundaries takes comma-separated epoch seconds (e.g. 1700000000,1700086400). "
                         f"Received: {args.boundaries!r}") from None
    summary = compress(api.open_data(args.data), config, args.out, t1=args.t1, boundaries=boundaries,
                       eval_fraction=args.eval_fraction, verbose=args.verbose)
    out = Path(args.out)
    print(f"{config.method}: {summary['users']} users x {len(summary['boundaries'])} slice(s) -> "
          f"{summary['vector_dim']}-d vectors in {out / VECTORS_FILE} (t1={summary['t1']}, "
          f"train {summary['train_seconds']} s, {summary['infer_ms_per_user_slice']} ms per user and slice)")
    if summary["codebooks"]:
        for level in summary["codebooks"]["per_level"]:
            print(f"  codebook {level['level']}: hit ratio {level['hit_ratio']:.2%}, perplexity "
                  f"{level['perplexity']:.2f} / {level['codebook_size']}")
    print(f"report: {out / REPORT_FILE}")
    return json.loads((out / REPORT_FILE).read_text())
