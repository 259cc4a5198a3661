"""What one user's cached state costs in each store: payload bytes, Redis memory, SQLite file bytes.

For each model row, a seeded untrained model (weights do not change a state's shapes) on the default
schema (``FeatureSpec(n_items=--n-items, max_history_length=--length)``) encodes one dummy user; the
state's layout (keys, dtypes, shapes) plus the ``fingerprint`` the exported ``user_tower`` adds is
what ``tfrec precompute`` writes per user. Then N synthetic states of exactly that layout (random
values) go through tfrec's own cache classes (``tfrec.cache``: the codec, ``RedisCache``,
``SQLiteCache``) into

* a ``redis-server`` this script starts on a loopback port (no persistence): ``used_memory`` after
  minus before, over N = bytes per user with the key, Redis's per-key structures and jemalloc's size
  classes; then the same keys written again with a TTL (``--ttl-days``), the growth over N = what a
  TTL adds; Redis's own ``MEMORY USAGE`` of one key beside it;
* a temporary SQLite file: its size after the cache is closed (WAL checkpointed) over N.

Keys are ``tfrec:<row>:1:<user id>`` with 8-digit user ids (as for 10^8 users). N is
``--users`` unless the row's payload would pass ``--max-mb`` per store (DIN-Full's ~680 KB state):
then ``--max-mb`` / payload, at least ``--min-users``. Nothing is trained or timed.

    .venv/bin/python bench/state_store_memory.py                       # every row, N = 20,000
    .venv/bin/python bench/state_store_memory.py --rows din dmgin-k16 --users 2000 --no-write

Writes bench/results/state-store-memory.md (+ .json) unless ``--no-write``. Without a
``redis-server`` binary (Debian package ``redis-server``) the Redis columns read "n/a" and the
script says so; the payload and SQLite columns are still measured.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfrec.cache import RedisCache, SQLiteCache, encode_state

CONFIG_DIR = ROOT / "pipelines" / "configs"
RESULTS = ROOT / "bench" / "results" / "state-store-memory"
FINGERPRINT = "fingerprint"  # tfrec.export.saved_model.FINGERPRINT: user_tower adds it to the state
USER_ID_BASE = 10_000_000  # 8-digit ids, the key length of a 10^8-user service
CHUNK = 250  # users per put_many
# row -> (model, YAML config stem under pipelines/configs, overrides, what the model needs beyond the spec)
ROWS = {
    "din": ("din", "din", {}, None),
    "din-full": ("din", "din-full", {}, None),
    "dien": ("dien", "dien", {}, None),
    "dsin": ("dsin", "dsin", {}, None),
    "dmgin-k16": ("dmgin", "dmgin", {"top_k_groups": 16}, "groups"),
    "dmgin-k71": ("dmgin", "dmgin", {"top_k_groups": 71}, "groups"),
    "dmqn": ("dmqn", "dmqn", {}, None),
    "sim": ("sim", "sim", {}, "category"),
    "sim-soft": ("sim", "sim-soft", {}, None),
    "eta": ("eta", "eta", {}, None),
    "sdim": ("sdim", "sdim", {}, None),
    "twin": ("twin", "twin", {}, None),
    "twinv2": ("twinv2", "twinv2", {}, "content"),
    "siren": ("siren", "siren", {}, "content"),
    "muse": ("muse", "muse", {}, "content"),
}
NOTES = {
    "dmgin-k16": "top_k_groups = 16 (the cost benches' k, docs/performance.md)",
    "dmgin-k71": "top_k_groups = 71 (the k sized on synthetic long, results/dmgin-tables-synthetic-long.md)",
    "sim": "+ one categorical item feature `category` (the hard GSU matches on it)",
    "twinv2": "random 64-d content vectors (not part of the state)",
    "siren": "random 64-d content vectors, 3 x 64 Semantic IDs (not part of the state)",
    "muse": "random 64-d content vectors, 3 x 64 Semantic IDs (not part of the state)",
}


# -- the state layout of one user ------------------------------------------------------------------

def state_layout(row: str, n_items: int, length: int, seed: int = 0) -> tuple[dict, int]:
    """``({key: (dtype, shape)}, raw bytes)`` of one user's cached state for ``row`` (``ROWS``).

    The layout is ``encode_user``'s outputs for one user without the batch dimension, plus the
    int64 ``fingerprint`` of the exported ``user_tower``; raw bytes = ``bench.cells.state_bytes``
    (the arrays alone, without the fingerprint), the column of the results tables.
    """
    import tensorflow as tf  # after tfrec (imported above): tf-keras

    from bench.cells import state_bytes
    from bench.untrained import untrained_model
    from pipelines.common import load_yaml_config
    from tfrec.data.item_content import ItemContent
    from tfrec.data.item_table import ItemTable
    from tfrec.data.schema import FeatureDef
    from tfrec.data.spec import FeatureSpec
    from tfrec.training import build_model, dummy_features

    model_name, stem, overrides, needs = ROWS[row]
    config = {**load_yaml_config(CONFIG_DIR / f"{stem}.yaml"), **overrides}
    item_features = (FeatureDef("category", "categorical", vocab_size=100),) if needs == "category" else ()
    spec = FeatureSpec(n_items=n_items, max_history_length=length, item_features=item_features)
    if needs in (None, "groups"):
        model = untrained_model(model_name, spec, config=config, seed=seed)
    else:
        rng = np.random.default_rng(seed)
        kwargs = ({"item_table": ItemTable.empty(spec)} if needs == "category" else
                  {"item_content": ItemContent.from_arrays(
                      n_items, vectors=rng.standard_normal((n_items, 64)).astype(np.float32),
                      codes=rng.integers(0, 64, (n_items, 3)), codebook_size=64)})
        tf.keras.utils.set_random_seed(seed)
        model = build_model(model_name, spec, config, **kwargs)
        model(dummy_features(spec))
    state = model.encode_user(dummy_features(spec), training=False)
    layout = {k: (v.dtype.as_numpy_dtype, tuple(v.shape[1:])) for k, v in state.items()}
    layout[FINGERPRINT] = (np.int64, ())
    return layout, state_bytes(model)


def synthetic_states(layout: dict, n: int, rng: np.random.Generator) -> dict:
    """``n`` users' states of ``layout``, batched (leading dimension ``n``), random values."""
    out = {}
    for key, (dtype, shape) in layout.items():
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            out[key] = rng.standard_normal((n, *shape)).astype(dtype)
        else:
            out[key] = rng.integers(0, 1000, (n, *shape)).astype(dtype)
    return out


def payload_bytes(layout: dict) -> int:
    """Bytes of one encoded state (``tfrec.cache.encode_state``: the value a store holds)."""
    one = synthetic_states(layout, 1, np.random.default_rng(0))
    return len(encode_state({k: v[0] for k, v in one.items()}))


# -- the stores ------------------------------------------------------------------------------------

def _fill(cache, name: str, layout: dict, n: int, seed: int, ttl_seconds: float | None = None) -> None:
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        ids = list(range(USER_ID_BASE + start, USER_ID_BASE + start + count))
        cache.put_many(name, 1, ids, synthetic_states(layout, count, rng), ttl_seconds=ttl_seconds)


def measure_sqlite(layout: dict, n: int, workdir: Path, name: str = "m", seed: int = 0) -> dict:
    """File bytes per user of ``n`` states of ``layout`` in a fresh ``SQLiteCache``."""
    path = Path(workdir) / f"{name}.db"
    cache = SQLiteCache(path)
    _fill(cache, name, layout, n, seed)
    cache.close()  # the last connection checkpoints the WAL into the file
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    total = sum(p.stat().st_size for p in files if p.exists())
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    path.unlink()
    return {"sqlite_file_bytes": total, "sqlite_bytes_per_user": total / n, "sqlite_page_size": page_size}


def _memory(client) -> tuple[int, int]:
    """``(used_memory, used_memory_rss)``; RSS is sampled by Redis's cron (10 times a second), so wait."""
    time.sleep(0.3)
    info = client.info("memory")
    return int(info["used_memory"]), int(info["used_memory_rss"])


def measure_redis(layout: dict, n: int, url: str, name: str = "m", seed: int = 0,
                  ttl_seconds: float | None = 7 * 86400) -> dict:
    """Redis memory per user of ``n`` states of ``layout`` written through ``RedisCache`` at ``url``
    (an otherwise empty server: it is flushed before and after).

    Returns ``redis_bytes_per_user`` (``used_memory`` delta / n), ``redis_rss_bytes_per_user``,
    ``redis_ttl_bytes_per_user`` (the growth when the same keys are written again with
    ``ttl_seconds``; None without a TTL) and ``redis_memory_usage_key`` (``MEMORY USAGE`` of one key).
    """
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushall()
        used0, rss0 = _memory(client)
        cache = RedisCache(url, socket_timeout=30)
        _fill(cache, name, layout, n, seed)
        cache.close()  # the writer's connection and its buffers go before the reading
        used1, rss1 = _memory(client)
        key_usage = client.memory_usage(f"tfrec:{name}:1:{USER_ID_BASE}", samples=0)
        out = {"redis_bytes_per_user": (used1 - used0) / n, "redis_rss_bytes_per_user": (rss1 - rss0) / n,
               "redis_memory_usage_key": key_usage, "redis_ttl_bytes_per_user": None,
               "redis_keys": client.dbsize()}
        if ttl_seconds:
            cache = RedisCache(url, socket_timeout=30)
            _fill(cache, name, layout, n, seed, ttl_seconds=ttl_seconds)
            cache.close()
            out["redis_ttl_bytes_per_user"] = (_memory(client)[0] - used1) / n
        return out
    finally:
        client.flushall()
        client.close()


def measure_row(layout: dict, raw: int, n_users: int, max_bytes: int, min_users: int, workdir: Path,
                redis_url: str | None, name: str = "m", ttl_seconds: float | None = 7 * 86400) -> dict:
    """Every column for one layout: payload, N, SQLite and (with ``redis_url``) Redis bytes per user."""
    payload = payload_bytes(layout)
    n = max(min_users, min(n_users, max_bytes // payload))
    out = {"raw_bytes": raw, "payload_bytes": payload, "n_users": n,
           "layout": {k: [np.dtype(d).str, list(s)] for k, (d, s) in layout.items()}}
    out.update(measure_sqlite(layout, n, workdir, name))
    if redis_url:
        out.update(measure_redis(layout, n, redis_url, name, ttl_seconds=ttl_seconds))
        out["redis_overhead_ratio"] = out["redis_bytes_per_user"] / payload
    return out


def start_redis():
    """A started ``RedisServer`` (tests/redis_fixtures.py) or None, saying why, without a binary."""
    from tests.redis_fixtures import RedisServer

    try:
        return RedisServer().start()
    except FileNotFoundError as err:
        print(f"no Redis columns: {err}. The payload and SQLite columns are still measured.")
        return None


def redis_environment(url: str) -> dict:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {"redis_version": client.info("server")["redis_version"],
                "redis_allocator": client.info("memory")["mem_allocator"]}
    finally:
        client.close()


# -- output ----------------------------------------------------------------------------------------

def _fmt(value, digits=0):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def table(rows: dict, project_users: float) -> str:
    head = ("| row | raw state bytes | payload bytes (codec) | N users | Redis bytes/user (used_memory) "
            "| Redis / payload | + TTL bytes/user | Redis MEMORY USAGE (1 key) | Redis RSS bytes/user "
            f"| SQLite bytes/user | Redis GB at {project_users:.0e} users (no TTL) |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for row, r in rows.items():
        redis_gb = (r["redis_bytes_per_user"] * project_users / 1e9 if r.get("redis_bytes_per_user") is not None
                    else None)
        lines.append(
            f"| {row} | {r['raw_bytes']:,} | {r['payload_bytes']:,} | {r['n_users']:,} "
            f"| {_fmt(r.get('redis_bytes_per_user'))} | {_fmt(r.get('redis_overhead_ratio'), 3)} "
            f"| {_fmt(r.get('redis_ttl_bytes_per_user'))} | {_fmt(r.get('redis_memory_usage_key'))} "
            f"| {_fmt(r.get('redis_rss_bytes_per_user'))} | {_fmt(r['sqlite_bytes_per_user'])} "
            f"| {_fmt(redis_gb, 1)} |")
    return "\n".join(lines)


def write_results(rows: dict, env: dict, command: str, project_users: float) -> Path:
    notes = "\n".join(f"- `{row}`: {NOTES[row]}" for row in rows if row in NOTES)
    layouts = "\n".join(
        f"| {row} | " + ", ".join(f"`{k}` {d} {tuple(s)}" for k, (d, s) in r["layout"].items()) + " |"
        for row, r in rows.items())
    text = f"""# User-state store memory per user

`{command}`

One user's cached state (`encode_user` of a seeded untrained model on the default schema, L =
{env['length']:,}, {env['n_items']:,} items, YAML config of `pipelines/configs/`, + the `fingerprint`
`user_tower` adds), N synthetic states of that layout written through `tfrec.cache` (codec,
`RedisCache`, `SQLiteCache`), keys `tfrec:<row>:1:<8-digit user id>`. Redis {env['redis_version']}
({env['redis_allocator']}, no persistence, started by the script), SQLite {env['sqlite_version']}
(WAL, page size {env['sqlite_page_size']}). Memory, not time: the box's noise does not enter.

- raw state bytes: the arrays (`bench.cells.state_bytes`, the "state bytes/user" of the results tables);
- payload bytes: one encoded state (`tfrec.cache.encode_state`: keys, dtypes, shapes, CRC, fingerprint);
- Redis bytes/user: `used_memory` after minus before, over N (key, Redis's per-key structures, jemalloc's
  size-class rounding); + TTL: the growth when the same keys are written again with a {env['ttl_days']:g}-day
  TTL; MEMORY USAGE: Redis's own estimate for one key; RSS: `used_memory_rss` delta over N (allocator
  pages, noisier);
- SQLite bytes/user: the file after the cache is closed, over N (table + primary-key index);
- Redis GB at {project_users:.0e} users: Redis bytes/user x {project_users:.0e} (one copy, no replica, no TTL).

A small N (DIN-Full's 100) leaves Redis's fixed bookkeeping in the per-user deltas: read its TTL column
as noise. Capacity arithmetic from these figures: `docs/capacity.md`.

{table(rows, project_users)}

Rows beyond the default config:
{notes}

State layouts (key, dtype, shape per user):

| row | layout |
|---|---|
{layouts}
"""
    out = RESULTS.with_suffix(".md")
    out.write_text(text)
    RESULTS.with_suffix(".json").write_text(json.dumps({"command": command, "env": env, "rows": rows}, indent=2))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--users", type=int, default=20_000, help="N states per store (default 20,000)")
    p.add_argument("--max-mb", type=float, default=64, help="cap on N x payload per store, MiB (default 64)")
    p.add_argument("--min-users", type=int, default=100)
    p.add_argument("--length", type=int, default=10_000, help="L, the schema's max_history_length")
    p.add_argument("--n-items", type=int, default=20_000)
    p.add_argument("--ttl-days", type=float, default=7, help="TTL of the second Redis pass (0: skip it)")
    p.add_argument("--project-users", type=float, default=1e8)
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    args = p.parse_args(argv)
    command = ".venv/bin/python bench/state_store_memory.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))

    env = {"length": args.length, "n_items": args.n_items, "ttl_days": args.ttl_days,
           "sqlite_version": sqlite3.sqlite_version, "redis_version": None, "redis_allocator": None}
    rows = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfrec-state-store-") as workdir:
        for row in args.rows:
            layout, raw = state_layout(row, args.n_items, args.length)
            server = start_redis()  # a fresh server per row: its RSS starts from nothing
            try:
                if server is not None and env["redis_version"] is None:
                    env.update(redis_environment(server.url))
                rows[row] = measure_row(layout, raw, args.users, int(args.max_mb * 2**20), args.min_users,
                                        Path(workdir), server.url if server else None, name=row,
                                        ttl_seconds=args.ttl_days * 86400 or None)
            finally:
                if server is not None:
                    server.close()
            r = rows[row]
            print(f"{row:10s} payload {r['payload_bytes']:>9,} B  N {r['n_users']:>6,}  "
                  f"Redis {_fmt(r.get('redis_bytes_per_user')):>9} B/user  "
                  f"SQLite {_fmt(r['sqlite_bytes_per_user']):>9} B/user  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    env["sqlite_page_size"] = next(iter(rows.values()))["sqlite_page_size"]
    print(table(rows, args.project_users))
    if not args.no_write:
        print(f"wrote {write_results(rows, env, command, args.project_users)}")


if __name__ == "__main__":
    main()
