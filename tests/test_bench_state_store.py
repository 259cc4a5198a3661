"""bench/state_store_memory.py's measurement on a tiny layout: sane bytes per user in each store."""
import numpy as np

from bench.state_store_memory import FINGERPRINT, measure_row, payload_bytes
from tfrec.cache import encode_state

LAYOUT = {"group_states": (np.float32, (4, 16)), "group_ids": (np.int32, (4,)), FINGERPRINT: (np.int64, ())}


def test_payload_is_one_encoded_state():
    state = {"group_states": np.zeros((4, 16), np.float32), "group_ids": np.zeros(4, np.int32),
             FINGERPRINT: np.int64(7)}
    assert payload_bytes(LAYOUT) == len(encode_state(state))


def test_bytes_per_user_lie_between_the_payload_and_a_small_overhead(redis_server, tmp_path):
    payload = payload_bytes(LAYOUT)
    got = measure_row(LAYOUT, raw=272, n_users=2000, max_bytes=1 << 30, min_users=1, workdir=tmp_path,
                      redis_url=redis_server.url, name="tiny")
    assert got["payload_bytes"] == payload and got["n_users"] == 2000
    # Redis: key + per-key structures + size-class rounding, well under a kilobyte here
    assert payload < got["redis_bytes_per_user"] < payload + 512
    assert 0 < got["redis_ttl_bytes_per_user"] < 128  # one entry in the expires table
    assert got["redis_keys"] == 2000
    # SQLite: whole pages, a row and its primary-key index entry
    assert payload < got["sqlite_bytes_per_user"] < payload + got["sqlite_page_size"]


def test_n_is_capped_by_the_byte_budget(tmp_path):
    got = measure_row(LAYOUT, raw=272, n_users=10_000, max_bytes=50 * payload_bytes(LAYOUT), min_users=20,
                      workdir=tmp_path, redis_url=None)
    assert got["n_users"] == 50 and "redis_bytes_per_user" not in got
