"""User-sharded data: examples and user histories co-partitioned by splitmix64(user_id) % N, from
`write-tfrecords --num-shards N` and (identically) `beam-tfrecords --num-shards N`."""
import collections
import filecmp
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from pipelines import write_tfrecords
from pipelines.common import (
    data_sharding,
    load_spec,
    make_split_dataset,
    shard_files,
    tfrecord_files,
)
from tests.pipelines.test_beam import _args, _beam, tiny  # noqa: F401 - tiny: the beam tests' data fixture
from tfrec.data.dataset import load_user_histories
from tfrec.data.sharding import (
    shard_paths,
    splitmix64,
    stale_outputs,
    user_shard,
    worker_shards,
)
from tfrec.data.spec import FeatureSpec
from tfrec.data.tfrecord import RecordValidationError, write_sharded_records

N = 3
STEMS = ("user_histories", "train", "test")


def _write(data, *extra):
    write_tfrecords.run(_args(write_tfrecords, ["--data", str(data), *extra]))


def _copy_raw(src, dst):
    shutil.copytree(src / "raw", dst / "raw")
    return dst


def _records(path):
    return list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())


def _user(record: bytes) -> int:
    return tf.train.Example.FromString(record).features.feature["user_id"].int64_list.value[0]


@pytest.fixture(scope="module")
def sharded(tiny, tmp_path_factory):  # noqa: F811 - the imported fixture
    data = _copy_raw(tiny, tmp_path_factory.mktemp("sharded") / "data")
    _write(data, "--num-shards", str(N))
    return data


# -- the hash -----------------------------------------------------------------------------------
def _splitmix64_reference(x: int) -> int:
    """Vigna's splitmix64.c next() with state = x, in Python ints (the reference)."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_user_shard_is_splitmix64_mod_n():
    # Published first outputs: seed 0 (splitmix64.c) and seed 1234567 (Rosetta Code "Splitmix64").
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(1234567) == 6457827717110365317
    assert user_shard(1234567, 10) == 7 and user_shard(0, 10) == 0xE220A8397B1DCDAF % 10
    ids = np.array([0, 1, 42, 1234567, 2**62 + 3, -1], np.int64)
    want = [_splitmix64_reference(int(u) & ((1 << 64) - 1)) for u in ids]
    assert splitmix64(ids).tolist() == want  # vectorized uint64 == Python ints
    assert [splitmix64(int(u)) for u in ids] == want and splitmix64(np.int64(42)) == want[2]
    shards = user_shard(ids, 5)
    assert shards.dtype == np.int64 and shards.tolist() == [w % 5 for w in want]
    with pytest.raises(ValueError, match="num_shards=0"):
        user_shard(3, 0)


def test_user_shard_is_balanced_on_consecutive_ids():
    counts = np.bincount(user_shard(np.arange(10_000), 8), minlength=8)
    assert counts.min() > 1250 * 0.9 and counts.max() < 1250 * 1.1, counts
    assert not np.array_equal(user_shard(np.arange(100), 8), np.arange(100) % 8)  # a hash, not id % N


def test_worker_shards_partition_the_shards():
    assert worker_shards(7, 1, 3) == [1, 4]
    parts = [worker_shards(7, w, 3) for w in range(3)]
    assert sorted(s for p in parts for s in p) == list(range(7))
    with pytest.raises(ValueError, match=r"2 user shard\(s\) but 4 workers.*--num-shards N.*>= the workers"):
        worker_shards(2, 0, 4)
    with pytest.raises(ValueError, match="worker_index=3"):
        worker_shards(8, 3, 3)


def test_stale_outputs():
    names = ["train.tfrecord", "train-00000-of-00002.tfrecord", "train-00001-of-00003.tfrecord",
             "train_b.tfrecord", "test.tfrecord", "train-00000-of-00003.tfrecord"]
    assert stale_outputs(names, "train", 3) == ["train-00000-of-00002.tfrecord", "train.tfrecord"]
    assert stale_outputs(names, "train", 1) == ["train-00000-of-00002.tfrecord", "train-00000-of-00003.tfrecord",
                                                "train-00001-of-00003.tfrecord"]
    assert stale_outputs(names, "train", 0) == ["train.tfrecord"]


# -- write-tfrecords --num-shards -----------------------------------------------------------------
def test_every_example_finds_its_history_in_its_shard(sharded):
    spec = load_spec(sharded)
    for s in range(N):
        histories = load_user_histories(shard_files(sharded, "user_histories", [s]), spec)
        users = set(histories.user_ids.tolist())
        assert users and all(user_shard(u, N) == s for u in users)
        for split in ("train", "test"):
            example_users = {_user(r) for r in _records(shard_files(sharded, split, [s])[0])}
            assert example_users and example_users <= users, (s, split)


def test_shards_keep_the_single_files_order(tiny, sharded):  # noqa: F811
    for stem in STEMS:
        single = _records(tiny / f"{stem}.tfrecord")
        for s, path in enumerate(shard_paths(str(sharded / stem), N)):
            assert _records(path) == [r for r in single if user_shard(_user(r), N) == s], (stem, s)
        assert not (sharded / f"{stem}.tfrecord").exists()


def test_splits_json_records_the_sharding(tiny, sharded):  # noqa: F811
    splits = json.loads((sharded / "splits.json").read_text())
    counts = {stem: [len(_records(p)) for p in shard_paths(str(sharded / stem), N)] for stem in STEMS}
    assert splits["sharding"] == {"key": "user_id", "hash": "splitmix64", "num_shards": N, "shard_counts": counts}
    assert data_sharding(sharded) == splits["sharding"] and data_sharding(tiny) is None
    unsharded = json.loads((tiny / "splits.json").read_text())
    assert {k: v for k, v in splits.items() if k != "sharding"} == unsharded
    assert [sum(counts[s]) for s in ("train", "test")] == [unsharded[s]["examples"] for s in ("train", "test")]


def test_readers_see_the_same_examples(tiny, sharded):  # noqa: F811
    spec = load_spec(tiny)

    def rows(data, split):
        out = collections.Counter()
        for batch, label in make_split_dataset(data, split, spec, batch_size=64):
            for i in range(len(label)):
                out[(int(batch["user_id"][i]), int(batch["item_id"][i]), int(batch["request_timestamp"][i]),
                     int(label[i]), int(batch["hist_length"][i]))] += 1
        return out

    for split in ("train", "test"):
        assert rows(sharded, split) == rows(tiny, split)
    assert tfrecord_files(sharded, "train") == [str(p) for p in shard_paths(str(sharded / "train"), N)]


def test_shard_files_names_what_is_missing(tiny, sharded, tmp_path):  # noqa: F811
    assert shard_files(sharded, "train", worker_shards(N, 1, 2)) == [str(sharded / "train-00001-of-00003.tfrecord")]
    assert shard_files(tiny, "test", [0]) == [str(tiny / "test.tfrecord")]
    with pytest.raises(ValueError, match=r"shard 3 of train does not exist: the data has 3 user shard\(s\)"):
        shard_files(sharded, "train", [3])
    data = tmp_path / "data"
    shutil.copytree(sharded, data)
    (data / "test-00002-of-00003.tfrecord").unlink()
    with pytest.raises(FileNotFoundError, match=r"test-00002-of-00003\.tfrecord not found: .* user-sharded into 3"):
        shard_files(data, "test", [0, 2])
    with pytest.raises(ValueError, match=r"test shards are not one complete set \(2 files, -of-00003\)"):
        tfrecord_files(data, "test")


def test_one_shard_is_the_default_and_rewrites_remove_stale_files(tiny, tmp_path):  # noqa: F811
    data = _copy_raw(tiny, tmp_path / "data")
    _write(data, "--num-shards", "2")
    _write(data, "--num-shards", str(N))
    assert sorted(p.name for p in data.glob("train*")) == [f"train-0000{s}-of-00003.tfrecord" for s in range(N)]
    _write(data, "--num-shards", "1")
    for name in ("user_histories.tfrecord", "train.tfrecord", "test.tfrecord", "spec.json", "splits.json"):
        assert filecmp.cmp(data / name, tiny / name, shallow=False), name
    assert not list(data.glob("*-of-*")) and data_sharding(data) is None


def test_write_sharded_records_is_atomic_and_numbers_records_globally(tmp_path):
    spec = FeatureSpec(n_items=50, n_user_segments=4, max_history_length=5)
    records = [{"user_id": u, "item_id": 7, "request_timestamp": 1000, "label": 1} for u in range(5)]
    records[3]["item_id"] = 99
    paths = shard_paths(str(tmp_path / "train"), 2)
    with pytest.raises(RecordValidationError, match=r"record 3, field 'item_id'"):
        write_sharded_records(paths, records, spec.example_record_features(), spec,
                              shard_of=lambda r: int(r["user_id"]) % 2)
    assert not list(tmp_path.iterdir())  # no shard and no temp file


# -- beam-tfrecords --num-shards ------------------------------------------------------------------
def test_beam_shards_are_byte_identical(sharded, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.tfrecord").write_bytes(b"stale")  # an earlier single-file output
    _beam(sharded, out, "--num-shards", str(N))
    for stem in STEMS:
        for path in shard_paths(stem, N):
            assert filecmp.cmp(sharded / path, out / path, shallow=False), path
    for name in ("spec.json", "splits.json"):
        assert (out / name).read_text() == (sharded / name).read_text(), name
    assert not (out / "train.tfrecord").exists()


def test_beam_runner_ordered_shards_are_not_marked_co_partitioned(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    _beam(tiny, out, "--no-deterministic", "--num-shards", "2")
    assert len(list(out.glob("train-*-of-00002.tfrecord"))) == 2
    assert "sharding" not in json.loads((out / "splits.json").read_text()) and data_sharding(out) is None
