"""Planted long-term-interest data, written once per session for the compression tests.

Each user has a taste (one of 4 item topics) that only their *old* behaviors show: before ``T1``
they click items of their topic and skip others; after ``T1`` they only view random items. Every
example's label is (mostly) "the target's topic is the user's taste". A ranker whose history
window (``max_history_length``) covers only the recent, random views cannot tell; a compressed
long-term vector built from the behaviors before ``T1`` can.
"""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

N_ITEMS, N_USERS, N_TOPICS = 120, 240, 4
T1 = 1_700_000_000
T2 = T1 + 20 * 86400
RECENT = 6  # the history window the ranker sees: the recent, uninformative views only


def write_planted(root, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    raw = root / "raw"
    raw.mkdir(parents=True)
    topic = np.arange(N_ITEMS) % N_TOPICS
    taste = rng.integers(0, N_TOPICS, N_USERS)
    emb = np.concatenate([np.eye(N_TOPICS)[topic] * 2.0, rng.normal(0, 0.3, (N_ITEMS, 4))], 1).astype(np.float32)
    np.savez(raw / "items.npz", item_id=np.arange(N_ITEMS), embedding=emb)
    by_topic = [np.flatnonzero(topic == k) for k in range(N_TOPICS)]
    rows = {k: [] for k in ("user_id", "item_id", "behavior_type", "timestamp")}

    def add(u, item, kind, t):
        rows["user_id"].append(u), rows["item_id"].append(int(item))
        rows["behavior_type"].append(kind), rows["timestamp"].append(int(t))

    for u in range(N_USERS):
        old = np.sort(rng.integers(T1 - 200 * 86400, T1 - 1, 40))
        for t in old:
            if rng.random() < 0.7:
                add(u, rng.choice(by_topic[taste[u]]), 1, t)  # click on the taste topic
            else:
                add(u, rng.integers(N_ITEMS), 0, t)  # view of anything
        for t in np.sort(rng.integers(T1, T1 + 86400, RECENT)):
            add(u, rng.integers(N_ITEMS), 0, t)  # recent views: random
    n = len(rows["user_id"])
    pq.write_table(pa.table({**{k: pa.array(v, pa.int64()) for k, v in rows.items()},
                             "duration": pa.array(np.zeros(n), pa.float32()),
                             "amount": pa.array(np.zeros(n), pa.float32())}), raw / "behaviors.parquet")
    pq.write_table(pa.table({"user_id": pa.array(np.arange(N_USERS), pa.int64()),
                             "user_segment": pa.array(rng.integers(0, 8, N_USERS), pa.int64())}), raw / "users.parquet")

    def examples(per_user, start, end):
        users = np.repeat(np.arange(N_USERS), per_user)
        items = rng.integers(0, N_ITEMS, len(users))
        prob = np.where(topic[items] == taste[users], 0.9, 0.1)
        return pa.table({"user_id": pa.array(users, pa.int64()), "item_id": pa.array(items, pa.int64()),
                         "request_timestamp": pa.array(rng.integers(start, end, len(users)), pa.int64()),
                         "label": pa.array((rng.random(len(users)) < prob).astype(np.int64), pa.int64()),
                         "true_prob": pa.array(prob, pa.float32())})

    pq.write_table(examples(16, T1 + 2 * 86400, T2), raw / "train.parquet")
    pq.write_table(examples(8, T2, T2 + 10 * 86400), raw / "test.parquet")
    (raw / "dataset.json").write_text(json.dumps({"name": "planted-long-term", "n_items": N_ITEMS,
                                                  "max_history_length": RECENT, "n_user_segments": 8}))
    np.save(root / "taste.npy", taste)


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """The planted data directory, TFRecords written (``tfrec.api.DataDir``)."""
    from tfrec import api

    root = tmp_path_factory.mktemp("planted-long-term")
    write_planted(root)
    return api.write_tfrecords(root)


TINY = dict(max_length=48, id_dim=8, action_dim=4, content_dim=8, layers=1, heads=2, hidden_dim=16,
            codebook_sizes=(8, 4), batch_size=16, epochs=2, dropout=0.0, warmup_steps=5)


@pytest.fixture(scope="session")
def compressed(planted, tmp_path_factory):
    """CHIME compressed the planted data before T1 (tiny config, 2 epochs): the output directory."""
    from tfrec.compression.stage import compress
    from tfrec.configs import CompressorConfig

    out = tmp_path_factory.mktemp("chime")
    compress(planted, CompressorConfig(**TINY), out, t1=T1)
    return out
