"""Top-k group coverage of DMGIN's grouping on each data set: the share of examples whose target item's
group is among the k most recent groups of the user's history, at k = 16 (the default before issue 15)
and at the k sized from the data (``tfrec/grouping/coverage.py``, 95% of the examples that have the group).

  .venv/bin/python bench/top_k_coverage.py        # needs the data dirs the other bench scripts prepare

Reads 20 shuffled batches of 256 of each split (train, test) of synthetic medium / long and ml-100k.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfrec  # noqa: E402,F401  (tf-keras before TensorFlow)
from pipelines.common import GROUPS, load_spec  # noqa: E402
from pipelines.train import history_files, make_split_dataset  # noqa: E402
from tfrec.data.dataset import load_user_histories  # noqa: E402
from tfrec.grouping import load_group_table  # noqa: E402
from tfrec.grouping.coverage import choose_top_k, coverage_at, target_group_ranks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = {"synthetic-medium": "runs/synthetic-v2/medium/data", "synthetic-long": "runs/synthetic-v2/long/data",
        "ml-100k": "runs/side-features/ml-100k/schema"}
KEYS = ("item_id", "hist_item_id", "hist_timestamp", "hist_length")


def main() -> int:
    for name, path in DATA.items():
        data = ROOT / path
        spec = load_spec(data)
        groups = load_group_table(data / GROUPS)
        history = load_user_histories(history_files(data), spec)
        for split in ("train", "test"):
            ds = make_split_dataset(data, split, spec, 256, shuffle=True, seed=0, history=history)
            ranks, counts = target_group_ranks([{k: f[k].numpy() for k in KEYS} for f, _ in ds.take(20)],
                                               groups.table)
            sized = choose_top_k(ranks, counts, 0.95, 128)
            print(f"{name} {split}: k=16 covers {coverage_at(ranks, counts, 16).coverage:.3f}; sized k={sized.k} "
                  f"covers {sized.coverage:.3f}; present anywhere {sized.present:.3f}; distinct groups per "
                  f"history p50 {sized.groups_p50:.0f} p95 {sized.groups_p95:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
