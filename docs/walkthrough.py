"""Your own data, from a notebook: declare a schema, write TFRecords from Parquet, fit, evaluate, export.

Run it as a script (``.venv/bin/python docs/walkthrough.py /tmp/walkthrough``) or paste the cells
into a notebook. It uses only the public API (``import tfrec``) and pyarrow. The data here is a
small made-up shop log with a planted signal (users click items of the categories they bought
from before); replace step 1 with your own tables. The input format is in ``docs/data.md``.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import tfrec

# %% 1. Raw logs: four Parquet tables in DATA/raw/ (your pipeline writes these).
work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tfrec-walkthrough")
raw = work / "data" / "raw"
raw.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
n_users, n_items, n_categories = 400, 300, 12
category = rng.integers(0, n_categories, n_items)  # each item's category
price = rng.lognormal(3.0, 1.0, n_items)
taste = rng.integers(0, n_categories, (n_users, 2))  # two favourite categories per user

rows = []
for u in range(n_users):
    liked = np.flatnonzero(np.isin(category, taste[u]))
    items = np.where(rng.random(30) < 0.7, rng.choice(liked, 30), rng.integers(0, n_items, 30))
    ts = np.sort(1_700_000_000 + rng.integers(0, 30 * 86400, 30))
    rows += [(u, int(i), int(rng.integers(0, 5)), int(t), float(rng.exponential(20)), 0.0, int(rng.integers(0, 24)))
             for i, t in zip(items, ts)]
user_id, item_id, behavior_type, timestamp, duration, amount, hour = map(np.array, zip(*rows))
pq.write_table(pa.table({"user_id": user_id, "item_id": item_id, "behavior_type": behavior_type,
                         "timestamp": timestamp, "duration": duration, "amount": amount,
                         "hour": hour}),  # `hour`: a declared behavior feature
               raw / "behaviors.parquet")
pq.write_table(pa.table({"user_id": np.arange(n_users), "age": rng.integers(0, 6, n_users)}), raw / "users.parquet")
pq.write_table(pa.table({"item_id": np.arange(n_items), "category": category, "price": price}),
               raw / "item_features.parquet")
for split, (start, end) in {"train": (30, 40), "test": (40, 45)}.items():
    n = n_users * 20 if split == "train" else n_users * 10
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    p = np.where((category[items][:, None] == taste[users]).any(axis=1), 0.6, 0.1)  # the planted signal
    pq.write_table(pa.table({"user_id": users, "item_id": items,
                             "request_timestamp": 1_700_000_000 + rng.integers(start * 86400, end * 86400, n),
                             "label": (rng.random(n) < p).astype(np.int64),
                             "device": rng.integers(0, 3, n)}),  # `device`: a declared context feature
                   raw / f"{split}.parquet")
(raw / "dataset.json").write_text(json.dumps({"name": "walkthrough", "n_items": n_items,
                                              "max_history_length": 50}))

# %% 2. The schema: what each extra column is (docs/data.md annotates every key).
(raw / "schema.yaml").write_text("""
user:
  - {name: age, kind: categorical, vocab_size: 6}
context:
  - {name: device, kind: categorical, vocab_size: 3}
item:
  - {name: category, kind: categorical, vocab_size: 12}
  - {name: price, kind: numeric, transform: standardize}   # mean/std measured on your data
behavior:
  - {name: hour, kind: categorical, vocab_size: 24}
""")

# %% 3. TFRecords (validated record by record; histories stored once per user) and the data directory.
data = tfrec.write_tfrecords(work / "data")
print(data.spec.item_features)

# %% 4. Any registered model, model.fit, evaluate.
model = tfrec.build_model("din", data, embedding_dim=8, learning_rate=1e-2)
model.fit(data.dataset("train", batch_size=64, shuffle=True), epochs=4, verbose=2)
metrics = tfrec.evaluate(model, data, "test")
print({k: round(v, 4) for k, v in metrics.items() if k in ("auc", "gauc", "logloss")})

# %% 5. Export for TF Serving: requests carry item ids only; the item table is inside the SavedModel.
path = tfrec.export_model(model, work / "saved_models", "din")
print("exported", path)
