"""The serving client against a real ``tfrec serve``: cache hit / miss on both backends, stale
states, Redis stopped mid-test, batch precompute and the ``tfrec query`` command."""
import json
import logging

import numpy as np
import pytest

from tests.models.test_models import SPEC
from tests.serving.conftest import keras_probabilities
from tfrec.cache import RedisCache, SQLiteCache
from tfrec.data.dataset import UserHistories
from tfrec.serving.client import ServingClient
from tfrec.serving.precompute import data_now, precompute_user_states

RNG = np.random.default_rng(3)
CANDIDATES = [0, 7, 13, 21, 39]


def history(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return {"item_id": rng.integers(0, SPEC.n_items, n), "behavior_type": rng.integers(0, 6, n),
            "timestamp": np.sort(1_700_000_000 - rng.integers(1, 10**7, n)), "duration": rng.exponential(20.0, n),
            "amount": np.zeros(n)}


def reference(exported, client, user_id, hist, segment=None, ts=None):
    features = client.features(user_id, hist, segment, ts)
    return keras_probabilities(exported["models"][client.model_name], features, np.array([CANDIDATES]))[0]


@pytest.fixture
def sqlite_cache(tmp_path):
    cache = SQLiteCache(tmp_path / "state.db")
    yield cache
    cache.close()


def test_score_without_cache_matches_keras(server, exported):
    with ServingClient(server.target, "din", max_history_length=SPEC.max_history_length) as client:
        hist = history(30, seed=1)  # longer than max_history_length: the client keeps the recent 16
        probs = client.score(11, hist, CANDIDATES, profile={"user_segment": 2})
        np.testing.assert_allclose(probs, reference(exported, client, 11, hist, 2), atol=1e-5)
        assert client.stats["user_tower_calls"] == 1 and probs.shape == (5,)


def test_cache_miss_then_hit_sqlite(server, exported, sqlite_cache):
    client = ServingClient(server.target, "dmgin", sqlite_cache, max_history_length=SPEC.max_history_length)
    hist = history(12, seed=2)
    first, (version, source1) = client.score_with_source(21, hist, CANDIDATES)
    second, (_, source2) = client.score_with_source(21, hist, CANDIDATES)
    assert (version, source1, source2) == (1, "user_tower", "cache")
    np.testing.assert_allclose(first, reference(exported, client, 21, hist), atol=1e-5)
    np.testing.assert_array_equal(first, second)
    assert client.stats["cache_hits"] == 1 and client.stats["cache_misses"] == 1
    assert client.stats["user_tower_calls"] == 1
    # the entry is keyed by model and version: another version or model does not see it
    assert sqlite_cache.get("dmgin", 1, 21) is not None
    assert sqlite_cache.get("dmgin", 2, 21) is None and sqlite_cache.get("din", 1, 21) is None


def test_stale_state_in_cache_is_recomputed(server, exported, sqlite_cache):
    """A state left by another export of the same name and version fails the fingerprint check;
    the client recomputes it, overwrites the entry and answers correctly."""
    client = ServingClient(server.target, "dmgin", sqlite_cache, max_history_length=SPEC.max_history_length)
    hist = history(8, seed=3)
    state, version, _ = client.user_state(31, hist)
    stale = {k: v[0] for k, v in state.items()}
    stale["fingerprint"] = np.int64(12345)
    sqlite_cache.put("dmgin", version, 31, stale)
    probs, (_, source) = client.score_with_source(31, hist, CANDIDATES)
    assert source == "user_tower" and client.stats["retries"] == 1
    np.testing.assert_allclose(probs, reference(exported, client, 31, hist), atol=1e-5)
    assert sqlite_cache.get("dmgin", version, 31)["fingerprint"] == state["fingerprint"][0]


def test_redis_hit_miss_and_outage(server, exported, redis_server, caplog):
    cache = RedisCache(redis_server.url)
    client = ServingClient(server.target, "dmgin", cache, max_history_length=SPEC.max_history_length)
    hist = history(9, seed=4)
    expected = reference(exported, client, 41, hist)
    assert client.score_with_source(41, hist, CANDIDATES)[1][1] == "user_tower"
    assert client.score_with_source(41, hist, CANDIDATES)[1][1] == "cache"
    assert cache.get("dmgin", 2, 41) is None  # version isolation
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="tfrec.serving.client"):
        for _ in range(3):  # Redis is down: the client still answers, computing the state
            probs, (_, source) = client.score_with_source(41, hist, CANDIDATES)
            assert source == "user_tower"
            np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert client.stats["cache_errors"] >= 3
    assert sum("user-state cache get failed" in r.message for r in caplog.records) == 1  # logged once
    redis_server.start()  # back (empty: the throwaway server keeps no data)
    assert client.score_with_source(41, hist, CANDIDATES)[1][1] == "user_tower"
    assert client.score_with_source(41, hist, CANDIDATES)[1][1] == "cache"
    client.close()


def _histories(n_users=5, seed=6):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 25, n_users)
    lengths[0] = 0  # a cold-start user
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(splits[-1])
    ts = np.concatenate([np.sort(1_700_000_000 - rng.integers(1, 10**7, k)) for k in lengths]).astype(np.int64)
    seqs = {"hist_item_id": rng.integers(0, SPEC.n_items, n), "hist_behavior_type": rng.integers(0, 6, n),
            "hist_timestamp": ts, "hist_duration": rng.exponential(9.0, n).astype(np.float32),
            "hist_amount": np.zeros(n, np.float32)}
    return UserHistories(user_ids=np.arange(100, 100 + n_users, dtype=np.int64),
                         profile={"user_segment": rng.integers(0, SPEC.n_user_segments, n_users).astype(np.int64)},
                         row_splits=splits, sequences=seqs, scan=None)


def test_precompute_fills_the_cache_for_every_user(server, exported, sqlite_cache):
    histories = _histories()
    client = ServingClient(server.target, "dmgin", sqlite_cache, max_history_length=SPEC.max_history_length)
    summary = precompute_user_states(client, sqlite_cache, histories, batch_size=2)
    now = data_now(histories)
    assert (summary["users"], summary["version"], summary["request_timestamp"]) == (5, 1, now)
    for uid in histories.user_ids:
        hist = histories.history(int(uid))
        segment = int(hist.pop("user_segment"))
        probs, (_, source) = client.score_with_source(int(uid), hist, CANDIDATES, segment, now)
        assert source == "cache"
        np.testing.assert_allclose(probs, reference(exported, client, int(uid), hist, segment, now), atol=1e-5)
    assert client.stats["user_tower_calls"] == 0


def test_query_command(server, tmp_path, capsys):
    from tfrec.cli import main
    hist = history(6, seed=8)
    path = tmp_path / "h.json"
    path.write_text(json.dumps({**{k: np.asarray(v).tolist() for k, v in hist.items()}, "user_segment": 1}))
    argv = ["query", "--target", server.target, "--model", "dmgin", "--user-id", "5", "--candidates", "3,9",
            "--history-json", str(path), "--cache", f"sqlite:///{tmp_path}/q.db"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["user_state"], second["user_state"], first["version"]) == ("user_tower", "cache", 1)
    assert [s["item_id"] for s in first["scores"]] == [3, 9] and first["scores"] == second["scores"]
    assert main(argv[:-6] + ["--candidates", "x,y", "--history-json", str(path)]) == 2  # clear error, no trace
    assert "--candidates must be comma-separated" in capsys.readouterr().err


def test_precompute_command_reads_the_user_history_tfrecord(server, tmp_path, capsys):
    """`tfrec precompute` over a real user_histories.tfrecord, then `tfrec query` hits the cache."""
    from tfrec.cli import main
    from tfrec.data.tfrecord import write_user_histories
    histories = _histories(n_users=7, seed=9)
    records = []
    for uid in histories.user_ids:
        h = histories.history(int(uid))
        records.append({"user_id": int(uid), **{k: np.asarray(v) for k, v in h.items()}})
    data = tmp_path / "data"
    data.mkdir()
    write_user_histories(data / "user_histories.tfrecord", SPEC, records)
    (data / "spec.json").write_text(json.dumps(SPEC.to_dict()))
    cache = f"sqlite:///{tmp_path}/state.db"
    assert main(["precompute", "--target", server.target, "--data", str(data), "--cache", cache,
                 "--batch-size", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["users"], summary["version"], summary["request_timestamp"]) == (7, 1, data_now(histories))
    assert SQLiteCache(tmp_path / "state.db").count(model="dmgin", version=1) == 7
    assert main(["query", "--target", server.target, "--data", str(data), "--user-id", str(histories.user_ids[3]),
                 "--candidates", "1,2", "--cache", cache, "--request-timestamp", str(data_now(histories))]) == 0
    assert json.loads(capsys.readouterr().out)["user_state"] == "cache"
