"""Tests for the Parquet prototype (tfrec.data.parquet): typed column reads with tensorflow-io and the
pyarrow fallback, CSR histories straight from behaviors.parquet, and parity with the TFRecord reader."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tfrec.data import parquet as pqt
from tfrec.data.dataset import features_to_numpy, load_user_histories, make_dataset
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.data.tfrecord import write_examples, write_user_histories

SCALARS = {
    "i64": (pa.array([3, -1, 2**40], pa.int64()), tf.int64),
    "i32": (pa.array([7, 8, -9], pa.int32()), tf.int32),
    "f32": (pa.array([0.5, -1.25, 3.0e-8], pa.float32()), tf.float32),
    "f64": (pa.array([0.1, 2.5, -1e300], pa.float64()), tf.float64),
    "flag": (pa.array([True, False, True]), tf.bool),
    "name": (pa.array(["a", "", "ccc"]), tf.string),
}
LISTS = [[1, 2], [], [3, 4, 5]]


def _write(path, columns, **kwargs):
    pq.write_table(pa.table(columns), path, **kwargs)
    return path


@pytest.fixture()
def scalar_file(tmp_path):
    return _write(tmp_path / "scalars.parquet", {name: array for name, (array, _) in SCALARS.items()})


def _rows(dataset):
    return [{k: v.numpy() for k, v in row.items()} for row in dataset]


def _expected(name):
    array, dtype = SCALARS[name]
    values = array.to_pylist()
    return [v.encode() for v in values] if dtype == tf.string else values


# --------------------------------------------------------------------------------------------
# parquet_columns_dataset
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["tfio", "pyarrow", "auto"])
def test_scalar_columns_per_row_exact(scalar_file, reader):
    columns = {name: dtype for name, (_, dtype) in SCALARS.items()}
    dataset = pqt.parquet_columns_dataset(scalar_file, columns, reader=reader)
    assert list(dataset.element_spec) == list(columns)
    for name, dtype in columns.items():
        assert dataset.element_spec[name] == tf.TensorSpec([], dtype), name
    rows = _rows(dataset)
    assert len(rows) == 3
    for name in columns:
        assert [r[name] for r in rows] == _expected(name), name
        if columns[name] != tf.string:
            assert rows[0][name].dtype == columns[name].as_numpy_dtype, name


@pytest.mark.parametrize("reader", ["tfio", "pyarrow"])
def test_batches_across_row_groups_and_files(tmp_path, reader):
    n = 1000
    values = np.arange(n, dtype=np.int64) * 3
    first = _write(tmp_path / "a.parquet", {"x": values, "y": values.astype(np.float32) / 2}, row_group_size=128)
    second = _write(tmp_path / "b.parquet", {"x": -values[:10], "y": np.zeros(10, np.float32)})
    columns = {"x": tf.int64, "y": tf.float32}
    batches = list(pqt.parquet_columns_dataset([first, second], columns, reader=reader, batch_size=256,
                                               chunk_rows=300))
    assert [len(b["x"]) for b in batches] == [256, 256, 256, 242]
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches]), np.r_[values, -values[:10]])
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in batches]), np.r_[values / 2, np.zeros(10)])
    per_row = np.array([r["x"] for r in _rows(pqt.parquet_columns_dataset([first, second], columns, reader=reader))])
    np.testing.assert_array_equal(per_row, np.r_[values, -values[:10]])


def test_list_columns_fall_back_to_pyarrow(tmp_path):
    path = _write(tmp_path / "lists.parquet", {"k": pa.array([1, 2, 3], pa.int64()),
                                                "l": pa.array(LISTS, pa.list_(pa.int64())),
                                                "w": pa.array([[0.5], [], [1.5, 2.5]], pa.list_(pa.float32()))})
    columns = {"k": tf.int64, "l": tf.int64, "w": tf.float32}
    rows = _rows(pqt.parquet_columns_dataset(path, columns))  # auto -> pyarrow
    assert [r["k"] for r in rows] == [1, 2, 3]
    assert [r["l"].tolist() for r in rows] == LISTS
    assert [r["w"].tolist() for r in rows] == [[0.5], [], [1.5, 2.5]]
    assert rows[1]["l"].dtype == np.int64 and rows[0]["w"].dtype == np.float32
    (batch,) = list(pqt.parquet_columns_dataset(path, columns, reader="pyarrow", batch_size=8))
    assert isinstance(batch["l"], tf.RaggedTensor)
    assert batch["l"].to_list() == LISTS
    np.testing.assert_array_equal(batch["k"], [1, 2, 3])


def test_list_column_with_tfio_reader_is_a_clear_error(tmp_path):
    path = _write(tmp_path / "lists.parquet", {"l": pa.array(LISTS, pa.list_(pa.int64()))})
    with pytest.raises(pqt.ParquetColumnError, match=r"column 'l' is a list column.*l\.list\.element.*"
                                                     r"reader='pyarrow'") as err:
        pqt.parquet_columns_dataset(path, {"l": tf.int64}, reader="tfio")
    assert err.value.column == "l"


def test_tfio_and_pyarrow_give_the_same_structure(scalar_file):
    columns = {"i64": tf.int64, "f32": tf.float32, "name": tf.string}
    for batch_size in (None, 2):
        a = pqt.parquet_columns_dataset(scalar_file, columns, reader="tfio", batch_size=batch_size)
        b = pqt.parquet_columns_dataset(scalar_file, columns, reader="pyarrow", batch_size=batch_size)
        assert tf.nest.map_structure(lambda s: (s.dtype, s.shape.rank), a.element_spec) == \
            tf.nest.map_structure(lambda s: (s.dtype, s.shape.rank), b.element_spec)
        for x, y in zip(a, b):
            for name in columns:
                np.testing.assert_array_equal(x[name].numpy(), y[name].numpy())


def test_missing_column_names_it_and_the_fix(scalar_file):
    with pytest.raises(pqt.ParquetColumnError, match=r"column 'nope' is missing \(the file has \['i64'.*add the "
                                                     r"column, or fix its name") as err:
        pqt.parquet_columns_dataset(scalar_file, {"i64": tf.int64, "nope": tf.int64})
    assert err.value.column == "nope" and err.value.row is None
    with pytest.raises(FileNotFoundError):
        pqt.parquet_columns_dataset(scalar_file.parent / "absent.parquet", {"i64": tf.int64})


@pytest.mark.parametrize("column, declared, found", [
    ("i32", tf.int64, "int32"), ("i64", tf.int32, "int64"), ("f64", tf.float32, "double"),
    ("f32", tf.float64, "float"), ("name", tf.int64, "string"),
])
def test_wrong_type_names_the_column_and_the_cast(scalar_file, column, declared, found):
    with pytest.raises(pqt.ParquetColumnError, match=rf"column '{column}' is {found} in the file but declared "
                                                     r".*cast it when writing the file \(pa\.Table\.cast"):
        pqt.parquet_columns_dataset(scalar_file, {column: declared}, reader="tfio")


def test_wrong_list_value_type(tmp_path):
    path = _write(tmp_path / "l32.parquet", {"l": pa.array(LISTS, pa.list_(pa.int32()))})
    with pytest.raises(pqt.ParquetColumnError, match=r"column 'l' is int32 in the file but declared int64 \(list"):
        pqt.parquet_columns_dataset(path, {"l": tf.int64})


def test_nulls_are_rejected_with_their_row(tmp_path):
    path = _write(tmp_path / "nulls.parquet", {"x": pa.array([1, 2, None, 4], pa.int64()),
                                               "l": pa.array([[1], None, [], [2]], pa.list_(pa.int64())),
                                               "e": pa.array([[1], [], [2, None], [3]], pa.list_(pa.int64())),
                                               "ok": pa.array([[1], [], [], [3]], pa.list_(pa.int64()))})
    with pytest.raises(pqt.ParquetColumnError, match=r"row 2, column 'x' holds a null; fill or drop") as err:
        pqt.parquet_columns_dataset(path, {"x": tf.int64})
    assert err.value.row == 2
    with pytest.raises(pqt.ParquetColumnError, match=r"row 1, column 'l' holds a null"):
        pqt.parquet_columns_dataset(path, {"l": tf.int64})
    with pytest.raises(pqt.ParquetColumnError, match=r"row 2, column 'e' holds a null list element"):
        pqt.parquet_columns_dataset(path, {"e": tf.int64})
    rows = _rows(pqt.parquet_columns_dataset(path, {"ok": tf.int64}))  # empty lists are not nulls
    assert [r["ok"].tolist() for r in rows] == [[1], [], [], [3]]


def test_file_rewritten_after_a_tfio_read_is_refused(tmp_path):
    path = _write(tmp_path / "x.parquet", {"x": pa.array([1, 2, 3], pa.int64())})
    assert [r["x"] for r in _rows(pqt.parquet_columns_dataset(path, {"x": tf.int64}, reader="tfio"))] == [1, 2, 3]
    _write(path, {"x": pa.array([10, 20, 30, 40], pa.int64())})
    with pytest.raises(pqt.ParquetFileChangedError, match="new file name"):
        pqt.parquet_columns_dataset(path, {"x": tf.int64}, reader="tfio")
    # pyarrow has no such cache
    assert [r["x"] for r in _rows(pqt.parquet_columns_dataset(path, {"x": tf.int64}, reader="pyarrow"))] == \
        [10, 20, 30, 40]


def test_bad_arguments(scalar_file):
    with pytest.raises(ValueError, match="reader must be one of"):
        pqt.parquet_columns_dataset(scalar_file, {"i64": tf.int64}, reader="polars")
    with pytest.raises(ValueError, match="batch_size must be positive"):
        pqt.parquet_columns_dataset(scalar_file, {"i64": tf.int64}, batch_size=0)
    with pytest.raises(ValueError, match="columns is empty"):
        pqt.parquet_columns_dataset(scalar_file, {})


# --------------------------------------------------------------------------------------------
# Histories and the joined dataset
# --------------------------------------------------------------------------------------------
SPEC = FeatureSpec(n_items=50, n_user_segments=4, max_history_length=3)
# behaviors.parquet rows, deliberately not sorted; user 20 has a timestamp tie (file order kept).
BEHAVIORS = [  # user_id, item_id, behavior_type, timestamp, duration, amount
    (20, 8, 5, 100, 1.0, 2.0), (10, 3, 2, 30, 1.5, 0.0), (10, 1, 0, 10, 0.5, 0.0), (20, 9, 0, 200, 1.0, 3.0),
    (10, 5, 4, 50, 2.5, 9.25), (20, 7, 5, 100, 1.0, 1.0), (10, 2, 1, 20, 1.0, 0.0), (10, 4, 3, 40, 2.0, 0.0),
]
USERS = {10: 2, 20: 1, 30: 3}  # user 30 has a segment but no behavior: no history row (cold start)
REQUESTS = [(10, 5), (10, 11), (10, 41), (10, 1000), (20, 100), (20, 101), (30, 500), (99, 7), (20, 201)]


def _behavior_columns(rows=BEHAVIORS):
    cols = list(zip(*rows))
    return {"user_id": pa.array(cols[0], pa.int64()), "item_id": pa.array(cols[1], pa.int64()),
            "behavior_type": pa.array(cols[2], pa.int64()), "timestamp": pa.array(cols[3], pa.int64()),
            "duration": pa.array(cols[4], pa.float32()), "amount": pa.array(cols[5], pa.float32())}


def _example_columns(requests=REQUESTS):
    n = len(requests)
    return {"user_id": pa.array([u for u, _ in requests], pa.int64()), "item_id": pa.array(range(n), pa.int64()),
            "request_timestamp": pa.array([t for _, t in requests], pa.int64()),
            "label": pa.array([i % 2 for i in range(n)], pa.int64()),
            "true_prob": pa.array([i / 10 for i in range(n)], pa.float32())}


@pytest.fixture()
def raw(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write(raw / "behaviors.parquet", _behavior_columns())
    _write(raw / "users.parquet", {"user_id": pa.array(list(USERS), pa.int64()),
                                   "user_segment": pa.array(list(USERS.values()), pa.int64())})
    _write(raw / "train.parquet", _example_columns())
    return raw


def _tfrecords(tmp_path, spec=SPEC, behaviors=BEHAVIORS, users=None, requests=REQUESTS, extra_user=None,
               extra_behavior=None, extra_example=None):
    """The same raw rows written as TFRecords with the project's writers (sorted as write-tfrecords sorts)."""
    users = USERS if users is None else users
    records = []
    for u in sorted({b[0] for b in behaviors}):
        rows = sorted([(b[3], i) for i, b in enumerate(behaviors) if b[0] == u])
        pick = [behaviors[i] for _, i in rows]
        record = dict(user_id=u, user_segment=users[u], hist_item_id=[b[1] for b in pick],
                      hist_behavior_type=[b[2] for b in pick], hist_timestamp=[b[3] for b in pick],
                      hist_duration=[b[4] for b in pick], hist_amount=[b[5] for b in pick])
        record.update(extra_user(u) if extra_user else {})
        record.update(extra_behavior([i for _, i in rows]) if extra_behavior else {})
        records.append(record)
    write_user_histories(tmp_path / "hist.tfrec", spec, records)
    examples = [dict(user_id=u, item_id=i, request_timestamp=t, label=i % 2, true_prob=np.float32(i / 10),
                     **(extra_example(i) if extra_example else {})) for i, (u, t) in enumerate(requests)]
    write_examples(tmp_path / "ex.tfrec", spec, examples, with_true_prob=True)
    return tmp_path / "hist.tfrec", tmp_path / "ex.tfrec"


def _assert_same_histories(a, b):
    np.testing.assert_array_equal(a.user_ids, b.user_ids)
    np.testing.assert_array_equal(a.row_splits, b.row_splits)
    assert sorted(a.sequences) == sorted(b.sequences) and sorted(a.profile) == sorted(b.profile)
    for part in ("sequences", "profile"):
        for name, values in getattr(a, part).items():
            other = getattr(b, part)[name]
            assert values.dtype == other.dtype, name
            np.testing.assert_array_equal(values, other, err_msg=name)


def _assert_same_batches(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for (fa, la), (fb, lb) in zip(a, b):
        fa, fb = features_to_numpy(fa), features_to_numpy(fb)
        assert sorted(fa) == sorted(fb)
        for name in fa:
            assert fa[name].dtype == fb[name].dtype and fa[name].shape == fb[name].shape, name
            np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)
        np.testing.assert_array_equal(la.numpy(), lb.numpy())


@pytest.mark.parametrize("reader", ["pyarrow", "tfio"])
def test_histories_csr_exact(raw, reader):
    history = pqt.histories_from_parquet(raw / "behaviors.parquet", SPEC, reader=reader)
    np.testing.assert_array_equal(history.user_ids, [10, 20])
    np.testing.assert_array_equal(history.row_splits, [0, 5, 8])
    np.testing.assert_array_equal(history.profile["user_segment"], [2, 1])
    np.testing.assert_array_equal(history.sequences["hist_timestamp"], [10, 20, 30, 40, 50, 100, 100, 200])
    np.testing.assert_array_equal(history.sequences["hist_item_id"], [1, 2, 3, 4, 5, 8, 7, 9])  # tie: file order
    np.testing.assert_array_equal(history.sequences["hist_amount"], np.float32([0, 0, 0, 0, 9.25, 2, 1, 3]))
    assert history.sequences["hist_duration"].dtype == np.float32
    assert history.sequences["hist_behavior_type"].dtype == np.int64
    assert history.scan.n_records == 2


def test_histories_identical_to_load_user_histories(raw, tmp_path):
    hist, _ = _tfrecords(tmp_path)
    _assert_same_histories(pqt.histories_from_parquet(raw / "behaviors.parquet", SPEC),
                           load_user_histories(hist, SPEC))


@pytest.mark.parametrize("kwargs", [dict(reader="tfio"), dict(reader="tfio", per_row=True), dict(reader="pyarrow")])
def test_dataset_identical_to_make_dataset(raw, tmp_path, kwargs):
    hist, ex = _tfrecords(tmp_path)
    expected = make_dataset(ex, SPEC, load_user_histories(hist, SPEC), batch_size=4, include_true_prob=True)
    history = pqt.histories_from_parquet(raw / "behaviors.parquet", SPEC)
    got = pqt.make_parquet_dataset(raw / "train.parquet", SPEC, history, batch_size=4, include_true_prob=True,
                                   chunk_rows=3, **kwargs)
    _assert_same_batches(expected, got)
    features, _ = next(iter(got))
    np.testing.assert_array_equal(features["hist_length"], [0, 1, 3, 3])


def test_declared_schema_features_identical_to_make_dataset(tmp_path):
    spec = FeatureSpec(
        n_items=50, max_history_length=3,
        user_features=(FeatureDef("user_segment", "categorical", vocab_size=4),
                       FeatureDef("tags", "multi_categorical", vocab_size=10, max_len=3),
                       FeatureDef("income", "numeric")),
        context_features=(FeatureDef("hour", "categorical", vocab_size=24),),
        behavior_features=(FeatureDef("location", "categorical", vocab_size=100),),
    )
    tags = {10: [1, 2], 20: [], 30: [9, 8, 7]}
    income = {10: 1.5, 20: 0.0, 30: 7.25}
    location = [3 * i for i in range(len(BEHAVIORS))]
    raw = tmp_path / "raw"
    raw.mkdir()
    _write(raw / "behaviors.parquet", {**_behavior_columns(), "location": pa.array(location, pa.int64())})
    _write(raw / "users.parquet", {"user_id": pa.array(list(USERS), pa.int64()),
                                   "user_segment": pa.array(list(USERS.values()), pa.int64()),
                                   "tags": pa.array([tags[u] for u in USERS], pa.list_(pa.int64())),
                                   "income": pa.array([income[u] for u in USERS], pa.float32())})
    _write(raw / "train.parquet", {**_example_columns(), "hour": pa.array(range(len(REQUESTS)), pa.int64())})
    hist, ex = _tfrecords(tmp_path, spec=spec, extra_user=lambda u: dict(tags=tags[u], income=income[u]),
                          extra_behavior=lambda rows: dict(hist_location=[location[i] for i in rows]),
                          extra_example=lambda i: dict(hour=i))
    history = pqt.histories_from_parquet(raw / "behaviors.parquet", spec)
    _assert_same_histories(history, load_user_histories(hist, spec))
    np.testing.assert_array_equal(history.profile["tags"], [[1, 2, -1], [-1, -1, -1]])
    _assert_same_batches(
        make_dataset(ex, spec, load_user_histories(hist, spec), batch_size=4, include_true_prob=True),
        pqt.make_parquet_dataset(raw / "train.parquet", spec, history, batch_size=4, include_true_prob=True))


def test_shuffle_and_drop_remainder(raw):
    history = pqt.histories_from_parquet(raw / "behaviors.parquet", SPEC)
    plain = list(pqt.make_parquet_dataset(raw / "train.parquet", SPEC, history, batch_size=4, drop_remainder=True))
    assert [len(label) for _, label in plain] == [4, 4]
    shuffled = pqt.make_parquet_dataset(raw / "train.parquet", SPEC, history, batch_size=4, shuffle=True, seed=3)
    items = sorted(np.concatenate([f["item_id"].numpy() for f, _ in shuffled]).tolist())
    assert items == list(range(len(REQUESTS)))


def test_cold_start_users_are_counted(raw, caplog):
    history = pqt.histories_from_parquet(raw / "behaviors.parquet", SPEC)
    with caplog.at_level("WARNING"):
        pqt.make_parquet_dataset(raw / "train.parquet", SPEC, history)
    assert "2 of 9 examples" in caplog.text  # users 30 (segment, no behavior) and 99 (unknown)


def test_histories_reject_bad_values_with_their_row(tmp_path):
    rows = list(BEHAVIORS)
    rows[3] = (20, 50, 0, 200, 1.0, 3.0)  # item 50 outside [0, 50)
    _write(tmp_path / "behaviors.parquet", _behavior_columns(rows))
    _write(tmp_path / "users.parquet", {"user_id": pa.array([10, 20], pa.int64()),
                                        "user_segment": pa.array([2, 1], pa.int64())})
    with pytest.raises(pqt.ParquetColumnError, match=r"row 3, column 'item_id' holds id 50 outside \[0, 50\)"):
        pqt.histories_from_parquet(tmp_path / "behaviors.parquet", SPEC)
    rows[3] = (20, 9, 0, -5, 1.0, 3.0)
    _write(tmp_path / "b2.parquet", _behavior_columns(rows))
    with pytest.raises(pqt.ParquetColumnError, match=r"row 3, column 'timestamp' holds negative value -5"):
        pqt.histories_from_parquet(tmp_path / "b2.parquet", SPEC)


def test_histories_schema_errors(tmp_path):
    columns = _behavior_columns()
    _write(tmp_path / "users.parquet", {"user_id": pa.array([10], pa.int64()),
                                        "user_segment": pa.array([2], pa.int64())})
    _write(tmp_path / "double.parquet", {**columns, "duration": columns["duration"].cast(pa.float64())})
    with pytest.raises(pqt.ParquetColumnError, match=r"column 'duration' is double in the file but declared float"):
        pqt.histories_from_parquet(tmp_path / "double.parquet", SPEC)
    _write(tmp_path / "int32.parquet", {**columns, "user_id": columns["user_id"].cast(pa.int32())})
    with pytest.raises(pqt.ParquetColumnError, match=r"column 'user_id' is int32 in the file but declared int64"):
        pqt.histories_from_parquet(tmp_path / "int32.parquet", SPEC)
    _write(tmp_path / "behaviors.parquet", columns)
    with pytest.raises(pqt.ParquetColumnError, match=r"users\.parquet: column 'user_id' has no row for user_id 20"):
        pqt.histories_from_parquet(tmp_path / "behaviors.parquet", SPEC)
    _write(tmp_path / "dup.parquet", {"user_id": pa.array([10, 20, 10], pa.int64()),
                                      "user_segment": pa.array([2, 1, 2], pa.int64())})
    with pytest.raises(pqt.ParquetColumnError, match=r"row 2, column 'user_id' holds user_id 10 2 times"):
        pqt.histories_from_parquet(tmp_path / "behaviors.parquet", SPEC, users_path=tmp_path / "dup.parquet")


def test_examples_are_checked_like_the_writer(raw, tmp_path):
    history = pqt.histories_from_parquet(raw / "behaviors.parquet", SPEC)
    bad = _example_columns()
    bad["label"] = pa.array([0, 1, 2] + [0] * (len(REQUESTS) - 3), pa.int64())
    _write(tmp_path / "bad.parquet", bad)
    with pytest.raises(pqt.ParquetColumnError, match=r"row 2, column 'label' holds label 2; binarize"):
        pqt.make_parquet_dataset(tmp_path / "bad.parquet", SPEC, history)
    missing = _example_columns()
    del missing["true_prob"]
    _write(tmp_path / "noprob.parquet", missing)
    with pytest.raises(pqt.ParquetColumnError, match=r"column 'true_prob' is missing"):
        pqt.make_parquet_dataset(tmp_path / "noprob.parquet", SPEC, history, include_true_prob=True)


def test_semantic_ids_are_not_supported(raw):
    spec = FeatureSpec(n_items=50, n_user_segments=4, max_history_length=3, semantic_id_levels=2,
                       semantic_id_vocab=8)
    with pytest.raises(NotImplementedError, match="Semantic IDs"):
        pqt.histories_from_parquet(raw / "behaviors.parquet", spec)
