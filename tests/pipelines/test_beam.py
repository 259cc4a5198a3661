"""`beam-tfrecords` (Apache Beam, DirectRunner) against the in-process `write-tfrecords`: same bytes."""
import argparse
import filecmp
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from pipelines import beam_tfrecords, synthetic, write_tfrecords
from tfrec.data.synthetic import SyntheticConfig, generate

TFRECORDS = ("user_histories.tfrecord", "train.tfrecord", "test.tfrecord")
RAW_TABLES = ("behaviors", "users", "train", "test")


def _args(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def _beam(data, out, *extra):
    beam_tfrecords.run(_args(beam_tfrecords, ["--data", str(data), "--out", str(out), *extra]))


def _same_outputs(a, b):
    for name in TFRECORDS:
        assert filecmp.cmp(a / name, b / name, shallow=False), name
    for name in ("spec.json", "splits.json"):
        assert json.loads((a / name).read_text()) == json.loads((b / name).read_text()), name


def _copy_raw(src, dst):
    shutil.copytree(src / "raw", dst / "raw")
    return dst


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny synthetic data set with timestamp ties and a user without behaviors, written in-process."""
    root = tmp_path_factory.mktemp("beam")
    cfg = SyntheticConfig(n_users=30, n_items=64, n_topics=6, min_history_length=5, max_history_length=40,
                          train_examples_per_user=4, test_examples_per_user=2, min_user_topics=2,
                          max_user_topics=3, seed=1)
    raw = synthetic.write_raw(generate(cfg), root / "data", "tiny")
    # Ties: equal timestamps must keep the original row order (the in-process stable sort).
    beh = pq.read_table(raw / "behaviors.parquet").to_pydict()
    ts = np.asarray(beh["timestamp"])
    ts[1::3] = ts[0::3][: len(ts[1::3])]
    beh["timestamp"] = ts
    # Shuffle rows so grouping really has to sort; add a user with no behaviors.
    order = np.random.default_rng(0).permutation(len(ts))
    beh = {k: np.asarray(v)[order] for k, v in beh.items()}
    pq.write_table(pa.table(beh), raw / "behaviors.parquet", row_group_size=500)  # several row groups
    users = pq.read_table(raw / "users.parquet").to_pydict()
    users["user_id"].append(10_000)
    users["user_segment"].append(3)
    pq.write_table(pa.table(users), raw / "users.parquet")
    write_tfrecords.run(_args(write_tfrecords, ["--data", str(root / "data")]))
    return root / "data"


def test_direct_runner_output_is_byte_identical(tiny, tmp_path):
    _beam(tiny, tmp_path / "out")
    _same_outputs(tiny, tmp_path / "out")


def test_csv_input_gives_the_same_bytes_as_parquet(tiny, tmp_path):
    data = tmp_path / "csv"
    (data / "raw").mkdir(parents=True)
    shutil.copy(tiny / "raw" / "dataset.json", data / "raw")
    for name in RAW_TABLES:
        table = pq.read_table(tiny / "raw" / f"{name}.parquet")
        if name == "behaviors":  # also: sharded input files, read in file-name order
            half = table.num_rows // 2
            pcsv.write_csv(table.slice(0, half), data / "raw" / "behaviors-00000.csv")
            pcsv.write_csv(table.slice(half), data / "raw" / "behaviors-00001.csv")
        else:
            pcsv.write_csv(table, data / "raw" / f"{name}.csv")
    _beam(data, tmp_path / "out", "--input-format", "csv")
    _same_outputs(tiny, tmp_path / "out")


def _with_semantic_ids(tiny, dst, items):
    from tfrec.grouping.rqvae import save_semantic_ids

    data = _copy_raw(tiny, dst)
    codes = np.stack([items % 7, (items * 3) % 5], axis=1)
    save_semantic_ids(data / "semantic_ids.npz", items, codes, {"codebook_size": 7})
    return data


def test_semantic_ids_are_written_byte_identically(tiny, tmp_path):
    data = _with_semantic_ids(tiny, tmp_path / "data", np.arange(64))
    write_tfrecords.run(_args(write_tfrecords, ["--data", str(data)]))
    assert json.loads((data / "spec.json").read_text())["semantic_id_levels"] == 2
    _beam(data, tmp_path / "out")
    _same_outputs(data, tmp_path / "out")
    assert (data / "train.tfrecord").stat().st_size > (tiny / "train.tfrecord").stat().st_size


def test_item_without_semantic_id_names_the_file_and_row(tiny, tmp_path):
    train = pq.read_table(tiny / "raw" / "train.parquet").to_pydict()
    beh = pq.read_table(tiny / "raw" / "behaviors.parquet").to_pydict()
    missing = next(i for i in train["item_id"] if i not in set(beh["item_id"]))
    data = _with_semantic_ids(tiny, tmp_path / "data", np.setdiff1d(np.arange(64), [missing]))
    row = train["item_id"].index(missing)
    with pytest.raises(ValueError, match=rf"train\.parquet row {row} \(record {row}\), field 'item_id': "
                                         rf"item_id {missing} \(.*train\.parquet row {row}\) has no Semantic ID"):
        _beam(data, tmp_path / "out")


def test_sharded_deterministic_output_holds_every_record(tiny, tmp_path):
    import tensorflow as tf

    _beam(tiny, tmp_path / "out", "--num-shards", "3")
    for name in TFRECORDS:
        stem = name[: -len(".tfrecord")]
        shards = sorted((tmp_path / "out").glob(f"{stem}-*-of-00003.tfrecord"))
        assert len(shards) == 3
        got = sorted(r for s in shards for r in tf.data.TFRecordDataset(str(s)).as_numpy_iterator())
        want = sorted(tf.data.TFRecordDataset(str(tiny / name)).as_numpy_iterator())
        assert got == want, name
    # the readers take the shards: the same examples, joined with the same histories
    from pipelines.common import load_spec, make_split_dataset
    spec = load_spec(tiny)

    def rows(data):
        out = []
        for batch, label in make_split_dataset(data, "train", spec, batch_size=64):
            for i in range(len(label)):
                out.append((int(batch["user_id"][i]), int(batch["request_timestamp"][i]), int(batch["item_id"][i]),
                            int(label[i]), tuple(batch["hist_item_id"][i, :batch["hist_length"][i]].numpy())))
        return sorted(out)

    assert rows(tmp_path / "out") == rows(tiny)


def test_negative_item_id_names_the_row_and_field(tiny, tmp_path):
    data = _copy_raw(tiny, tmp_path / "bad")
    train = pq.read_table(data / "raw" / "train.parquet").to_pydict()
    train["item_id"][7] = -5
    pq.write_table(pa.table(train), data / "raw" / "train.parquet")
    with pytest.raises(ValueError, match=r"train\.parquet row 7 \(record 7\), field 'item_id': id -5 "
                                         r"is outside \[0, 64\)"):
        _beam(data, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())  # a failed run leaves no (temp) file behind


def test_bad_behavior_names_the_user_and_field(tiny, tmp_path):
    data = _copy_raw(tiny, tmp_path / "bad")
    beh = pq.read_table(data / "raw" / "behaviors.parquet").to_pydict()
    beh["behavior_type"][0] = 9
    user = beh["user_id"][0]
    pq.write_table(pa.table(beh), data / "raw" / "behaviors.parquet")
    with pytest.raises(ValueError, match=rf"user_id {user}, field 'hist_behavior_type': id 9 "):
        _beam(data, tmp_path / "out")


def test_missing_column_is_named(tiny, tmp_path):
    data = _copy_raw(tiny, tmp_path / "bad")
    pq.write_table(pq.read_table(data / "raw" / "behaviors.parquet").drop(["duration"]),
                   data / "raw" / "behaviors.parquet")
    with pytest.raises(ValueError, match=r"behaviors\.parquet: missing column\(s\) \['duration'\]"):
        _beam(data, tmp_path / "out")


def test_beam_options_after_double_dash_and_defaults():
    args = _args(beam_tfrecords, ["--data", "d", "--", "--runner=DataflowRunner", "--project=p"])
    assert args.beam_args == ["--runner=DataflowRunner", "--project=p"]
    assert beam_tfrecords._runner(args) == "DataflowRunner"
    assert beam_tfrecords._runner(_args(beam_tfrecords, ["--data", "d"])) == "DirectRunner"
