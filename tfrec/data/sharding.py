"""User-hash sharding: examples and user histories co-partitioned by a hash of ``user_id``.

``write-tfrecords --num-shards N`` and ``beam-tfrecords --num-shards N`` put every example and
every user-history record in shard ``user_shard(user_id, N)``. Both files of a shard then hold the
same users, so a training worker that reads only its shards (``worker_shards``) finds every
history its examples join against in its own history shards: each worker loads ``~1/W`` of the
histories instead of all of them, and memory per worker falls with the number of workers.

The hash is the splitmix64 output function (Steele, Lea & Flood, "Fast splittable pseudorandom
number generators", OOPSLA 2014; Vigna's reference ``splitmix64.c``): the first output of a
splitmix64 generator seeded with the id, i.e. the 64-bit finalizer applied to ``id + 0x9E3779B97F4A7C15``.
It is fixed here (not Python's ``hash()``, which is salted per process for strings and the
identity for small ints), so every writer, runner and reader computes the same shard, and
consecutive ids spread evenly.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

SHARD_KEY = "user_id"
SHARD_HASH = "splitmix64"
# What splits.json records under "sharding" (with "num_shards" and "shard_counts").
SHARDING = {"key": SHARD_KEY, "hash": SHARD_HASH}
# splits.json's "shard_counts" keys, in the order written: the file stems.
SHARDED_STEMS = ("user_histories", "train", "test")
REWRITE_FIX = "rewrite the data with `tfrec write-tfrecords --num-shards N` (or beam-tfrecords) with N >= the workers"

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB
_SHARD_NAME = re.compile(r"-(\d{5})-of-(\d{5})")


def splitmix64(x: int | np.ndarray) -> int | np.ndarray:
    """The first splitmix64 output for seed ``x``: ``mix(x + 0x9E3779B97F4A7C15)`` mod 2^64.

    Args:
      x: a Python / numpy int or an integer numpy array; negative int64 values are taken as their
        two's-complement uint64.

    Returns:
      A Python int in ``[0, 2^64)`` for a scalar, a uint64 array of ``x``'s shape for an array.
    """
    if np.ndim(x) == 0 and isinstance(x, (int, np.integer)):
        z = (int(x) + _GAMMA) & _MASK
        z = ((z ^ (z >> 30)) * _MUL1) & _MASK
        z = ((z ^ (z >> 27)) * _MUL2) & _MASK
        return z ^ (z >> 31)
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"splitmix64 takes integer ids; Received: dtype={a.dtype}")
    z = a.astype(np.int64).view(np.uint64) if a.dtype.kind == "i" else a.astype(np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps mod 2^64, as intended
        z = z + np.uint64(_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MUL1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MUL2)
    return z ^ (z >> np.uint64(31))


def user_shard(user_id: int | np.ndarray, num_shards: int) -> int | np.ndarray:
    """The shard of a user: ``splitmix64(user_id) % num_shards``.

    Examples and user histories use the same function, so a user's examples and its history
    record land in the same shard index (co-partitioning for the per-worker join).

    Args:
      user_id: an int64 user id (Python or numpy int) or an integer numpy array of them.
      num_shards: int >= 1.

    Returns:
      A Python int in ``[0, num_shards)`` for a scalar id, an int64 array for an array.
    """
    if int(num_shards) < 1:
        raise ValueError(f"num_shards must be >= 1; Received: num_shards={num_shards}")
    h = splitmix64(user_id)
    if isinstance(h, int):
        return h % int(num_shards)
    return (h % np.uint64(num_shards)).astype(np.int64)


def record_shard(record: Mapping[str, Any], num_shards: int) -> int:
    """``user_shard`` of a record's ``user_id`` (an example or a user history, as validated)."""
    return user_shard(int(record[SHARD_KEY]), num_shards)


def worker_shards(num_shards: int, worker_index: int, num_workers: int) -> list[int]:
    """The shards worker ``worker_index`` of ``num_workers`` reads: ``{s : s % num_workers == worker_index}``.

    A worker reads the same shard indices of the examples and of the histories, so it joins
    only its own users' histories.

    Raises:
      ValueError: ``num_shards < num_workers`` (some worker would get no data), or an index out of range.
    """
    if num_workers < 1 or not 0 <= worker_index < num_workers:
        raise ValueError(f"need 0 <= worker_index < num_workers; Received: worker_index={worker_index}, "
                         f"num_workers={num_workers}")
    if num_shards < num_workers:
        raise ValueError(f"the data has {num_shards} user shard(s) but {num_workers} workers read it, so a worker "
                         f"would get none: {REWRITE_FIX}")
    return [s for s in range(num_shards) if s % num_workers == worker_index]


def sharding_entry(num_shards: int, shard_counts: Mapping[str, Iterable[int]]) -> dict[str, Any]:
    """splits.json's ``"sharding"`` entry: ``SHARDING`` + ``num_shards`` + records per shard of each
    output (``{"user_histories": [...], "train": [...], "test": [...]}``, keys in that order)."""
    return {**SHARDING, "num_shards": int(num_shards),
            "shard_counts": {stem: [int(n) for n in shard_counts[stem]] for stem in SHARDED_STEMS}}


def shard_paths(prefix: str, num_shards: int, suffix: str = ".tfrecord") -> list[str]:
    """``prefix.tfrecord`` for one shard, else ``prefix-SSSSS-of-NNNNN.tfrecord`` (both writers' names)."""
    if num_shards == 1:
        return [prefix + suffix]
    return [f"{prefix}-{s:05d}-of-{num_shards:05d}{suffix}" for s in range(num_shards)]


def stale_outputs(names: Iterable[str], stem: str, num_shards: int, suffix: str = ".tfrecord") -> list[str]:
    """Of the file names ``names`` in an output directory, the earlier outputs of ``stem`` that a
    write of ``num_shards`` files leaves stale (to delete, so readers never mix two writes).

    ``num_shards``: 1 = the single ``stem.tfrecord`` was written (every shard file is stale);
    N > 1 = shards ``-of-N`` (the single file and shards of other counts are stale); 0 = shard
    files of a count the runner chose (only the single file is stale).
    """
    out = []
    for name in names:
        if not name.startswith(stem) or not name.endswith(suffix):
            continue
        middle = name[len(stem): len(name) - len(suffix)]
        if middle == "":
            if num_shards != 1:
                out.append(name)
            continue
        match = _SHARD_NAME.fullmatch(middle)
        if match and num_shards != 0 and (num_shards == 1 or int(match.group(2)) != num_shards):
            out.append(name)
    return sorted(out)
