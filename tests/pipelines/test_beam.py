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
from tfrec.data.synthetic.v1 import SyntheticConfig, generate

TFRECORDS = ("user_histories.tfrecord", "train.tfrecord", "test.tfrecord")
RAW_TABLES = ("behaviors", "users", "train", "test")


def _args(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def _beam(data, out, *extra):
    beam_tfrecords.run(_args(beam_tfrecords, ["--data", str(data), "--out", str(out), *extra]))


def _same_outputs(a, b, tfrecords=TFRECORDS):
    for name in tfrecords:
        assert filecmp.cmp(a / name, b / name, shallow=False), name
    # spec.json to the byte: same statistics, same key order
    assert (a / "spec.json").read_text() == (b / "spec.json").read_text()
    assert json.loads((a / "splits.json").read_text()) == json.loads((b / "splits.json").read_text())
    # item_features.npz: the same arrays, and the same bytes (np.savez's zip members carry
    # zipfile's fixed 1980 date, not the time of writing)
    assert (a / "item_features.npz").exists() == (b / "item_features.npz").exists()
    if (a / "item_features.npz").exists():
        with np.load(a / "item_features.npz") as x, np.load(b / "item_features.npz") as y:
            assert sorted(x.files) == sorted(y.files)
            for k in x.files:
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k
        assert filecmp.cmp(a / "item_features.npz", b / "item_features.npz", shallow=False)


def _copy_raw(src, dst):
    shutil.copytree(src / "raw", dst / "raw")
    return dst


def _to_csv(src, dst, list_columns=()):
    """raw/ with the four tables as CSV (behaviors in two shards; list columns '|'-joined); the other
    files (dataset.json, schema.yaml, item_features.parquet ...) copied."""
    (dst / "raw").mkdir(parents=True)
    for f in (src / "raw").iterdir():
        if f.stem not in RAW_TABLES:
            shutil.copy(f, dst / "raw")
    for name in RAW_TABLES:
        table = pq.read_table(src / "raw" / f"{name}.parquet")
        for c in list_columns:
            if c in table.column_names:
                cells = ["|".join(map(str, v)) if v is not None else "" for v in table.column(c).to_pylist()]
                table = table.set_column(table.column_names.index(c), c, pa.array(cells, pa.string()))
        if name == "behaviors":  # also: sharded input files, read in file-name order
            half = table.num_rows // 2
            pcsv.write_csv(table.slice(0, half), dst / "raw" / "behaviors-00000.csv")
            pcsv.write_csv(table.slice(half), dst / "raw" / "behaviors-00001.csv")
        else:
            pcsv.write_csv(table, dst / "raw" / f"{name}.csv")
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
    assert json.loads((tiny / "spec.json").read_text())["item_features"]  # synthetic declares category, brand
    _beam(tiny, tmp_path / "out")
    _same_outputs(tiny, tmp_path / "out")


def test_csv_input_gives_the_same_bytes_as_parquet(tiny, tmp_path):
    data = _to_csv(tiny, tmp_path / "csv")
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


# --------------------------------------------------------------------------------------------
# A hand-made raw directory declaring every section of the schema
# --------------------------------------------------------------------------------------------
SCHEMA = """\
max_history_length: 20
user:
  - {name: tags, kind: multi_categorical, vocab_size: 12, max_len: 4}
  - {name: income, kind: numeric, transform: standardize}
  - {name: age, kind: categorical, vocab_size: 5}
context:
  - {name: hour, kind: categorical, vocab_size: 24}
  - {name: load, kind: numeric, transform: standardize}
item:
  - {name: genres, kind: multi_categorical, vocab_size: 6, max_len: 3}
  - {name: price, kind: numeric, transform: standardize}
behavior:
  - {name: location, kind: categorical, vocab_size: 10}
  - {name: dwell, kind: numeric, transform: standardize}
"""
USER_FEATURES = r"\['tags', 'income', 'age'\]"
N_USERS, N_ITEMS = 25, 30  # user 24 has no behavior (an empty history); items 25.. are not listed


def _declared_raw(data):
    """Shuffled, tied behaviors in several row groups; null and empty tag lists; unlisted items."""
    rng = np.random.default_rng(7)
    raw = data / "raw"
    raw.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"n_items": N_ITEMS, "n_user_segments": 8,
                                                  "max_history_length": 50}))
    (raw / "schema.yaml").write_text(SCHEMA)
    tags = [list(rng.choice(12, size=rng.integers(0, 5), replace=False).tolist()) for _ in range(N_USERS)]
    tags[3], tags[5] = None, []
    users = pa.table({"user_id": pa.array(rng.permutation(N_USERS), pa.int64()),
                      "tags": pa.array(tags, pa.list_(pa.int64())),
                      "income": rng.lognormal(10, 1, N_USERS),
                      "age": rng.integers(0, 5, N_USERS)})
    pq.write_table(users, raw / "users.parquet")
    n = rng.integers(3, 25, N_USERS - 1)
    uid = np.repeat(np.arange(N_USERS - 1), n)
    ts = 1_600_000_000 + rng.integers(0, 50, len(uid)) * 3600  # many ties
    order = rng.permutation(len(uid))
    behaviors = {"user_id": uid, "item_id": rng.integers(0, N_ITEMS, len(uid)),
                 "behavior_type": rng.integers(0, 6, len(uid)), "timestamp": ts,
                 "duration": rng.exponential(30, len(uid)),
                 "amount": rng.exponential(5, len(uid)) * (rng.random(len(uid)) < .2),
                 "location": rng.integers(0, 10, len(uid)), "dwell": rng.normal(3, 2, len(uid))}
    pq.write_table(pa.table({k: v[order] for k, v in behaviors.items()}), raw / "behaviors.parquet", row_group_size=64)
    for split, per_user in (("train", 3), ("test", 2)):
        u = np.repeat(np.arange(N_USERS), per_user)
        pq.write_table(pa.table({"user_id": u, "item_id": rng.integers(0, N_ITEMS, len(u)),
                                 "request_timestamp": 1_600_200_000 + rng.integers(0, 1000, len(u)),
                                 "label": rng.integers(0, 2, len(u)), "hour": rng.integers(0, 24, len(u)),
                                 "load": rng.gamma(2, 1.5, len(u))}), raw / f"{split}.parquet")
    genres = [list(rng.choice(6, size=rng.integers(0, 4), replace=False).tolist()) for _ in range(25)]
    genres[2] = None
    pq.write_table(pa.table({"item_id": pa.array(rng.permutation(25), pa.int64()),
                             "genres": pa.array(genres, pa.list_(pa.int64())),
                             "price": rng.lognormal(3, 1, 25)}), raw / "item_features.parquet")
    return data


@pytest.fixture(scope="module")
def declared(tmp_path_factory):
    data = _declared_raw(tmp_path_factory.mktemp("declared") / "data")
    write_tfrecords.run(_args(write_tfrecords, ["--data", str(data)]))
    return data


def test_declared_schema_is_byte_identical(declared, tmp_path):
    spec = json.loads((declared / "spec.json").read_text())
    measured = {fd["name"]: (fd["mean"], fd["std"]) for s in ("user", "context", "item", "behavior")
                for fd in spec[f"{s}_features"] if "mean" in fd}
    assert sorted(measured) == ["dwell", "income", "load", "price"] and all(std > 0 for _, std in measured.values())
    _beam(declared, tmp_path / "out")
    _same_outputs(declared, tmp_path / "out")


def test_declared_schema_user_shards_are_byte_identical(declared, tmp_path):
    """--num-shards 3: both writers shard examples and histories by user into the same bytes."""
    data = _copy_raw(declared, tmp_path / "data")
    write_tfrecords.run(_args(write_tfrecords, ["--data", str(data), "--num-shards", "3"]))
    _beam(data, tmp_path / "out", "--num-shards", "3")
    shards = [f"{name[:-len('.tfrecord')]}-{s:05d}-of-00003.tfrecord" for name in TFRECORDS for s in range(3)]
    _same_outputs(data, tmp_path / "out", shards)
    assert (data / "splits.json").read_text() == (tmp_path / "out" / "splits.json").read_text()
    assert json.loads((data / "splits.json").read_text())["sharding"]["num_shards"] == 3


def test_declared_schema_csv_input_with_id_lists(declared, tmp_path):
    data = _to_csv(declared, tmp_path / "csv", list_columns=("tags",))
    assert "|" in (data / "raw" / "users.csv").read_text()  # e.g. "3|7|11"; null and [] are empty cells
    _beam(data, tmp_path / "out", "--input-format", "csv")
    _same_outputs(declared, tmp_path / "out")


def test_schema_flag_and_remote_paths(declared, tmp_path, monkeypatch):
    """--schema PATH as in write-tfrecords; and the remote-filesystem code paths (spec, item table,
    its save) through Beam's FileSystems, taken here on local paths."""
    from tfrec.data import beam as tb

    data = _copy_raw(declared, tmp_path / "data")
    schema = tmp_path / "elsewhere.yaml"
    (data / "raw" / "schema.yaml").rename(schema)
    with pytest.raises(FileNotFoundError, match=r"--schema .*missing\.yaml not found"):
        _beam(data, tmp_path / "out", "--schema", str(tmp_path / "missing.yaml"))
    _beam(data, tmp_path / "out", "--schema", str(schema))
    _same_outputs(declared, tmp_path / "out")
    monkeypatch.setattr(tb, "is_local", lambda path: False)
    _beam(data, tmp_path / "remote", "--schema", str(schema))
    _same_outputs(declared, tmp_path / "remote")
    schema.write_text(SCHEMA.replace("vocab_size: 24", "vocab_size: -1"))
    with pytest.raises(ValueError, match=rf"schema {schema}: context\.hour: vocab_size must be"):
        _beam(data, tmp_path / "remote2", "--schema", str(schema))


def _both_fail(data, tmp_path, pattern_in_process, pattern_beam):
    """The in-process writer and beam-tfrecords both stop on ``data``, each with its message."""
    with pytest.raises(ValueError, match=pattern_in_process):
        write_tfrecords.run(_args(write_tfrecords, ["--data", str(data)]))
    with pytest.raises(ValueError, match=pattern_beam):
        _beam(data, tmp_path / "out")
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix != ".json"]  # no (temp) record file


def test_user_with_behaviors_but_no_users_row(declared, tmp_path):
    data = _copy_raw(declared, tmp_path / "bad")
    t = pq.read_table(data / "raw" / "users.parquet")
    row = t.column("user_id").to_pylist().index(7)
    pq.write_table(pa.concat_tables([t.slice(0, row), t.slice(row + 1)]), data / "raw" / "users.parquet")
    msg = rf"users\.parquet: user_id 7 has behaviors but no row; add a row with its user features {USER_FEATURES}"
    _both_fail(data, tmp_path, msg, msg)


def test_duplicate_users_row(declared, tmp_path):
    data = _copy_raw(declared, tmp_path / "bad")
    t = pq.read_table(data / "raw" / "users.parquet")
    row = t.column("user_id").to_pylist().index(24)  # the user without behaviors: checked too
    pq.write_table(pa.concat_tables([t, t.slice(row, 1)]), data / "raw" / "users.parquet")
    _both_fail(data, tmp_path, r"users\.parquet: user_id 24 has 2 rows; give each user one row",
               rf"users\.parquet: user_id 24 has 2 rows \(row {row}, row {N_USERS}\); give each user one row")


@pytest.mark.parametrize("table, column, value, field, problem", [
    ("users", "tags", [3, 99], "tags", (r"id 99 at position 1 is outside \[0, 12\) \(the schema's vocab_size of "
                                        r"'tags'=12\)")),
    ("users", "tags", [1, 2, 3, 4, 5], "tags", r"5 values but the schema's max_len is 4"),
    ("users", "age", 5, "age", r"id 5 is outside \[0, 5\)"),
    ("behaviors", "location", 11, "hist_location", r"id 11 at position \d+ is outside \[0, 10\)"),
    ("train", "hour", 30, "hour", r"id 30 is outside \[0, 24\) \(the schema's vocab_size of 'hour'=24\)"),
    ("test", "load", float("nan"), "load", r"NaN/inf value nan \(as float32\)"),
])
def test_bad_declared_feature_names_the_field(declared, tmp_path, table, column, value, field, problem):
    data = _copy_raw(declared, tmp_path / "bad")
    t = pq.read_table(data / "raw" / f"{table}.parquet").to_pydict()
    row = t["user_id"].index(4)
    t[column][row] = value
    pq.write_table(pa.table(t, schema=pq.read_schema(data / "raw" / f"{table}.parquet")),
                   data / "raw" / f"{table}.parquet")
    if table in ("users", "behaviors"):  # histories: in-process record k = user 4 (user_id order)
        where_in_process, where_beam = "record 4", "user-history record for user_id 4"
    else:
        where_in_process, where_beam = f"record {row}", rf"{table}\.parquet row {row} \(record {row}\)"
    _both_fail(data, tmp_path, rf"{where_in_process}, field '{field}': {problem}",
               rf"{where_beam}, field '{field}': {problem}")


def test_missing_declared_column_is_named(declared, tmp_path):
    data = _copy_raw(declared, tmp_path / "bad")
    pq.write_table(pq.read_table(data / "raw" / "test.parquet").drop(["hour"]), data / "raw" / "test.parquet")
    _both_fail(data, tmp_path, r"test\.parquet: missing column\(s\) \['hour'\]",
               r"test\.parquet: missing column\(s\) \['hour'\]")


def test_csv_id_list_that_does_not_parse_names_the_cell(declared, tmp_path):
    data = _to_csv(declared, tmp_path / "csv", list_columns=("tags",))
    lines = (data / "raw" / "users.csv").read_text().splitlines()
    cells = lines[3].split(",")
    cells[1] = '"3;4"'
    lines[3] = ",".join(cells)
    (data / "raw" / "users.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"users\.csv row 2, field 'tags': '3;4' is not a list of integer ids "
                                         r"separated by '\|'"):
        _beam(data, tmp_path / "out", "--input-format", "csv")
