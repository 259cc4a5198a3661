"""SQLiteCache: safe across processes and threads, TTL on an injectable clock, failures."""
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cache import FakeClock
from tfrec.cache import CacheUnavailable, SQLiteCache

TFREC_DIR = Path(__file__).resolve().parents[2] / "tfrec"
# Child processes import tfrec.cache from this checkout without running tfrec/__init__.py,
# which imports TensorFlow (4 s per process); the cache itself does not need TensorFlow.
CHILD_PRELUDE = f"""
import sys, types
package = types.ModuleType("tfrec")
package.__path__ = [{str(TFREC_DIR)!r}]
sys.modules["tfrec"] = package
import numpy as np
from tfrec.cache import SQLiteCache
"""


def start_child(body: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD_PRELUDE + body, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> str:
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out


def test_another_process_reads_what_one_writes(tmp_path):
    path = tmp_path / "shared.db"
    finish(start_child(
        "SQLiteCache(sys.argv[1]).put('dmgin', 1, 42,"
        " {'x': np.arange(6, dtype=np.float32).reshape(2, 3), 'n': np.int64(7)})",
        path,
    ))
    with SQLiteCache(path) as cache:
        state = cache.get("dmgin", 1, 42)
        np.testing.assert_array_equal(state["x"], np.arange(6, dtype=np.float32).reshape(2, 3))
        assert state["x"].dtype == np.float32 and state["n"] == 7
        cache.put("dmgin", 1, 43, {"x": np.array([1.5])})
    reader = start_child("print(SQLiteCache(sys.argv[1]).get('dmgin', 1, 43)['x'][0])", path)
    assert finish(reader).strip() == "1.5"


def test_concurrent_writer_processes(tmp_path):
    path, go = tmp_path / "shared.db", tmp_path / "go"
    body = (  # wait for the go file, so both children create the schema and write at once
        "import os, time\n"
        "print('ready', flush=True)\n"
        "while not os.path.exists(sys.argv[3]):\n"
        "    time.sleep(0.001)\n"
        "cache = SQLiteCache(sys.argv[1])\n"
        "offset = int(sys.argv[2])\n"
        "for i in range(200):\n"
        "    cache.put('dmgin', 1, offset + i, {'x': np.array([offset + i], np.int64)})\n"
    )
    children = [start_child(body, path, offset, go) for offset in (0, 1000)]
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
    go.touch()
    for child in children:
        finish(child)
    with SQLiteCache(path) as cache:
        assert cache.count("dmgin", 1) == 400
        ids = [*range(200), *range(1000, 1200)]
        assert [int(s["x"][0]) for s in cache.get_many("dmgin", 1, ids)] == ids
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_share_one_cache(tmp_path):
    cache = SQLiteCache(tmp_path / "threads.db")
    errors = []

    def work(t):
        try:
            for i in range(50):
                cache.put("m", 1, t * 100 + i, {"x": np.array([t, i])})
                assert cache.get("m", 1, t * 100 + i)["x"].tolist() == [t, i]
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.count() == 400
    assert cache.hits == 400
    cache.close()


def test_creates_parent_directories_and_reports_its_url(tmp_path):
    path = tmp_path / "a" / "b" / "cache.db"
    with SQLiteCache(path) as cache:
        assert path.exists()
        assert cache.url == f"sqlite://{path}"


def test_expired_rows_are_misses_and_can_be_purged(tmp_path):
    clock = FakeClock()
    cache = SQLiteCache(tmp_path / "ttl.db", ttl_seconds=10, clock=clock)
    cache.put_many("m", 1, [1, 2], {"x": np.zeros((2, 1))})
    cache.put("m", 1, 3, {"x": np.zeros(1)}, ttl_seconds=100)
    clock.advance(10)  # expires_at == now already counts as expired
    assert [s is None for s in cache.get_many("m", 1, [1, 2, 3])] == [True, True, False]
    assert cache.count() == 3
    assert cache.purge_expired() == 2
    assert cache.count() == 1
    cache.put("m", 1, 1, {"x": np.zeros(1)})  # an expired row is simply overwritten
    assert cache.get("m", 1, 1) is not None
    cache.close()


def test_lock_held_too_long_is_unavailable(tmp_path):
    path = tmp_path / "locked.db"
    cache = SQLiteCache(path, timeout=0.1)
    cache.put("m", 1, 1, {"x": np.zeros(1)})
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        with pytest.raises(CacheUnavailable, match="locked"):
            cache.put("m", 1, 2, {"x": np.zeros(1)})
        assert time.monotonic() - start < 2
    finally:
        other.execute("ROLLBACK")
        other.close()
    cache.put("m", 1, 2, {"x": np.zeros(1)})  # works again once the lock is gone
    cache.close()


def test_not_a_database_is_unavailable(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(CacheUnavailable, match=str(path)):
        SQLiteCache(path)


def test_closed_cache_is_unavailable(tmp_path):
    cache = SQLiteCache(tmp_path / "closed.db")
    cache.close()
    with pytest.raises(CacheUnavailable, match="closed"):
        cache.get("m", 1, 1)


def test_undecodable_entry_reads_as_a_miss(tmp_path):
    path = tmp_path / "corrupt.db"
    cache = SQLiteCache(path)
    cache.put("m", 1, 1, {"x": np.zeros(4)})
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE user_state SET value = substr(value, 1, 10)")
    assert cache.get("m", 1, 1) is None
    assert cache.misses == 1
    cache.close()


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_needs_a_file(path):
    with pytest.raises(ValueError, match="file path"):
        SQLiteCache(path)
