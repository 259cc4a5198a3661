"""Tests for the tf.data reader: history join, cut at the request time, padding, corruption."""
import gc
import logging

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.dataset import features_to_numpy, load_user_histories, make_dataset
from tfrec.data.spec import SEQUENCE_FEATURES, FeatureSpec
from tfrec.data.tfrecord import CorruptTFRecordError, write_examples, write_user_histories
from tests.data.test_tfrecord import append_garbage_record

SPEC = FeatureSpec(n_items=50, n_user_segments=4, max_history_length=3)
SEQ = [f.name for f in SEQUENCE_FEATURES]

USERS = [
    dict(user_id=10, user_segment=2, hist_item_id=[1, 2, 3, 4, 5], hist_behavior_type=[0, 1, 2, 3, 4],
         hist_timestamp=[10, 20, 30, 40, 50], hist_duration=[0.5, 1.0, 1.5, 2.0, 2.5],
         hist_amount=[0.0, 0.0, 0.0, 0.0, 9.25]),
    dict(user_id=20, user_segment=1, hist_item_id=[7, 8, 9], hist_behavior_type=[5, 5, 0],
         hist_timestamp=[100, 100, 200], hist_duration=[1.0, 1.0, 1.0], hist_amount=[1.0, 2.0, 3.0]),
    dict(user_id=30, user_segment=3, hist_item_id=[], hist_behavior_type=[], hist_timestamp=[],
         hist_duration=[], hist_amount=[]),
]
# (user_id, request_timestamp); user 99 has no history record (cold start).
REQUESTS = [(10, 5), (10, 10), (10, 11), (10, 40), (10, 41), (10, 1000), (20, 100), (20, 101), (30, 500),
            (99, 7)]
EXPECTED = {
    "user_id": [u for u, _ in REQUESTS],
    "request_timestamp": [t for _, t in REQUESTS],
    "item_id": list(range(10)),
    "user_segment": [2, 2, 2, 2, 2, 2, 1, 1, 3, -1],  # user 99: cold start, unknown segment (the OOV row)
    "hist_length": [0, 0, 1, 3, 3, 3, 0, 2, 0, 0],
    "hist_item_id": [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 0, 0], [7, 8, 0],
                     [0, 0, 0], [0, 0, 0]],
    "hist_behavior_type": [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 2], [1, 2, 3], [2, 3, 4], [0, 0, 0],
                           [5, 5, 0], [0, 0, 0], [0, 0, 0]],
    "hist_timestamp": [[0, 0, 0], [0, 0, 0], [10, 0, 0], [10, 20, 30], [20, 30, 40], [30, 40, 50], [0, 0, 0],
                       [100, 100, 0], [0, 0, 0], [0, 0, 0]],
    "hist_duration": [[0, 0, 0], [0, 0, 0], [0.5, 0, 0], [0.5, 1, 1.5], [1, 1.5, 2], [1.5, 2, 2.5], [0, 0, 0],
                      [1, 1, 0], [0, 0, 0], [0, 0, 0]],
    "hist_amount": [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 9.25], [0, 0, 0], [1, 2, 0],
                    [0, 0, 0], [0, 0, 0]],
}
DTYPES = {"user_id": tf.int64, "user_segment": tf.int64, "item_id": tf.int64, "request_timestamp": tf.int64,
          "hist_item_id": tf.int64, "hist_behavior_type": tf.int64, "hist_timestamp": tf.int64,
          "hist_duration": tf.float32, "hist_amount": tf.float32, "hist_length": tf.int32}


def _examples(requests, inline_users=None, spec=SPEC):
    """Example records (label = position parity, true_prob = (position % 100) / 100)."""
    out = []
    for i, (user, ts) in enumerate(requests):
        record = dict(user_id=user, item_id=i % spec.n_items, request_timestamp=ts, label=i % 2,
                      true_prob=(i % 100) / 100)
        if inline_users is not None:
            empty = dict(user_segment=0, **{name: [] for name in SEQ})
            profile = inline_users.get(user, empty)
            record.update({k: v for k, v in profile.items() if k != "user_id"})
        out.append(record)
    return out


@pytest.fixture()
def files(tmp_path):
    write_user_histories(tmp_path / "hist.tfrec", SPEC, USERS)
    write_examples(tmp_path / "ex.tfrec", SPEC, _examples(REQUESTS), with_true_prob=True)
    write_examples(tmp_path / "inline.tfrec", SPEC, _examples(REQUESTS, {u["user_id"]: u for u in USERS}),
                   inline_history=True, with_true_prob=True)
    return tmp_path


def _collect(dataset):
    """Concatenates all batches (padding each to the widest) into numpy arrays."""
    batches = [(features_to_numpy(f), l.numpy()) for f, l in dataset]
    width = max(b[0]["hist_item_id"].shape[1] for b in batches)
    out = {}
    for name in batches[0][0]:
        parts = [b[0][name] for b in batches]
        if parts[0].ndim == 2:
            parts = [np.pad(p, [(0, 0), (0, width - p.shape[1])]) for p in parts]
        out[name] = np.concatenate(parts)
    return out, np.concatenate([b[1] for b in batches])


def test_join_exact_padded_tensors(files, caplog):
    history = load_user_histories(files / "hist.tfrec", SPEC)
    with caplog.at_level(logging.WARNING):
        dataset = make_dataset(files / "ex.tfrec", SPEC, history, batch_size=16, include_true_prob=True)
    assert "1 of 10 examples" in caplog.text
    features, label = next(iter(dataset))
    for name, dtype in DTYPES.items():
        assert features[name].dtype == dtype, name
        expected = np.asarray(EXPECTED[name], dtype.as_numpy_dtype)
        np.testing.assert_array_equal(features[name].numpy(), expected)
    assert label.dtype == tf.float32
    np.testing.assert_array_equal(label.numpy(), [i % 2 for i in range(10)])
    np.testing.assert_allclose(features["true_prob"].numpy(), np.arange(10) / 100)


def test_width_is_longest_history_in_batch_at_least_one(files):
    batches = list(make_dataset(files / "ex.tfrec", SPEC, files / "hist.tfrec", batch_size=2))
    assert [b[0]["hist_item_id"].shape.as_list() for b in batches] == [[2, 1], [2, 3], [2, 3], [2, 2], [2, 1]]
    np.testing.assert_array_equal(batches[0][0]["hist_timestamp"], [[0], [0]])
    assert "true_prob" not in batches[0][0]


def test_inline_mode_identical_to_history_file(files):
    from_file, label_file = _collect(
        make_dataset(files / "ex.tfrec", SPEC, files / "hist.tfrec", batch_size=4)
    )
    inline, label_inline = _collect(
        make_dataset(files / "inline.tfrec", SPEC, batch_size=4, inline_history=True)
    )
    assert sorted(from_file) == sorted(inline)
    # The cold-start user (no history record) has an unknown segment (-1) from the history file; its
    # inline record carries the segment 0 it was written with.
    cold = np.asarray(EXPECTED["user_segment"]) == -1
    np.testing.assert_array_equal(inline["user_segment"][cold], 0)
    inline["user_segment"][cold] = -1
    for name in from_file:
        np.testing.assert_array_equal(inline[name], from_file[name], err_msg=name)
    np.testing.assert_array_equal(label_inline, label_file)
    np.testing.assert_array_equal(from_file["hist_item_id"], EXPECTED["hist_item_id"])


def _reference(users, requests, max_len):
    """Plain numpy reference: behaviors strictly before the request, most recent max_len."""
    by_id = {u["user_id"]: u for u in users}
    rows = []
    for user, ts in requests:
        u = by_id.get(user)
        if u is None:
            rows.append({name: np.zeros(0) for name in SEQ})
            continue
        keep = np.flatnonzero(np.asarray(u["hist_timestamp"]) < ts)[-max_len:]
        rows.append({name: np.asarray(u[name])[keep] for name in SEQ})
    return rows


def test_matches_numpy_reference_on_random_data(tmp_path):
    spec = FeatureSpec(n_items=50, n_user_segments=4, max_history_length=4)
    rng = np.random.default_rng(3)
    users = []
    for uid in range(0, 60, 2):
        n = int(rng.integers(0, 20))
        users.append(dict(
            user_id=uid, user_segment=int(rng.integers(0, 4)), hist_item_id=rng.integers(0, 50, n),
            hist_behavior_type=rng.integers(0, 6, n), hist_timestamp=np.sort(rng.integers(0, 30, n)),
            hist_duration=rng.random(n).astype(np.float32), hist_amount=rng.random(n).astype(np.float32)))
    requests = [(int(rng.integers(0, 64)), int(rng.integers(0, 32))) for _ in range(300)]
    write_user_histories(tmp_path / "h.tfrec", spec, users)
    write_examples(tmp_path / "e.tfrec", spec, _examples(requests, spec=spec), with_true_prob=True)
    inline = _examples(requests, {u["user_id"]: u for u in users}, spec=spec)
    write_examples(tmp_path / "i.tfrec", spec, inline, inline_history=True, with_true_prob=True)
    expected = _reference(users, requests, 4)
    for kwargs in ({"history": tmp_path / "h.tfrec", "example_paths": tmp_path / "e.tfrec"},
                   {"inline_history": True, "example_paths": tmp_path / "i.tfrec"}):
        got, _ = _collect(make_dataset(spec=spec, batch_size=32, **kwargs))
        np.testing.assert_array_equal(got["hist_length"], [len(r["hist_timestamp"]) for r in expected])
        for i, row in enumerate(expected):
            for name in SEQ:
                n = len(row[name])
                np.testing.assert_array_equal(got[name][i, :n], row[name].astype(got[name].dtype))
                assert not got[name][i, n:].any()


def test_corrupt_example_file(files):
    good, bad = str(files / "ex.tfrec"), str(files / "bad.tfrec")
    write_examples(good, SPEC, _examples([(10, 1000 + i) for i in range(200)]), with_true_prob=True)
    data = bytearray(open(good, "rb").read())
    data[len(data) // 2 : len(data) // 2 + 4] = b"\xde\xad\xbe\xef"
    open(bad, "wb").write(bytes(data))
    with pytest.raises(CorruptTFRecordError, match="bad.tfrec"):
        make_dataset([good, bad], SPEC, files / "hist.tfrec")
    with pytest.warns(RuntimeWarning, match="bad.tfrec"):
        dataset = make_dataset([good, bad], SPEC, files / "hist.tfrec", batch_size=64, skip_corrupt=True)
    got, _ = _collect(dataset)
    np.testing.assert_array_equal(got["request_timestamp"], 1000 + np.arange(200))


def test_corrupt_history_file_skipped_users_become_cold(files):
    data = bytearray(open(files / "hist.tfrec", "rb").read())
    data[-6] ^= 0xFF
    open(files / "hist_bad.tfrec", "wb").write(bytes(data))
    write_user_histories(files / "hist_more.tfrec", SPEC, [dict(USERS[0], user_id=42)])
    paths = [files / "hist_bad.tfrec", files / "hist_more.tfrec"]
    with pytest.raises(CorruptTFRecordError, match="hist_bad.tfrec"):
        load_user_histories(paths, SPEC)
    with pytest.warns(RuntimeWarning, match="hist_bad.tfrec"):
        history = load_user_histories(paths, SPEC, skip_corrupt=True)
    assert history.user_ids.tolist() == [42] and history.scan.skipped[0].records_readable == 2


def test_crc_valid_garbage_records_are_named_and_skipped_with_a_report(files):
    # (parse_example's error is then a UnicodeDecodeError: TF quotes the payload's non-UTF-8 bytes)
    write_user_histories(files / "hist_ok.tfrec", SPEC, USERS)
    append_garbage_record(files / "hist.tfrec")
    with pytest.raises(CorruptTFRecordError, match=r"hist\.tfrec.*record 3 \(in records \[0, 4\)\)"):
        load_user_histories(files / "hist.tfrec", SPEC)
    write_examples(files / "more.tfrec", SPEC, _examples([(10, 2000)]), with_true_prob=True)
    append_garbage_record(files / "ex.tfrec")
    examples = [files / "ex.tfrec", files / "more.tfrec"]
    with pytest.raises(CorruptTFRecordError, match=r"ex\.tfrec.*record 10 \(in records \[0, 11\)\)"):
        make_dataset(examples, SPEC, files / "hist_ok.tfrec")

    reports = []
    with pytest.warns(RuntimeWarning, match="does not parse"):
        dataset = make_dataset(examples, SPEC, files / "hist.tfrec", skip_corrupt=True, scan_reports=reports)
    got, _ = _collect(dataset)
    assert got["request_timestamp"].tolist() == [2000] and got["hist_length"].tolist() == [0]  # user 10: cold
    assert [[(s.path, s.records_readable) for s in r.skipped] for r in reports] == [
        [(str(files / "hist.tfrec"), 3)], [(str(files / "ex.tfrec"), 10)]]


def test_empty_history_file_means_all_cold_start(files):
    write_user_histories(files / "empty.tfrec", SPEC, [])
    history = load_user_histories(files / "empty.tfrec", SPEC)
    assert len(history) == 0 and history.n_behaviors == 0
    features, _ = next(iter(make_dataset(files / "ex.tfrec", SPEC, history, batch_size=16)))
    assert features["hist_item_id"].shape == (10, 1)
    assert not features["hist_length"].numpy().any() and (features["user_segment"].numpy() == -1).all()


def test_duplicate_user_is_an_error(files):
    write_user_histories(files / "hist2.tfrec", SPEC, [USERS[1]])
    with pytest.raises(ValueError, match="user_id 20 has 2 user-history records"):
        load_user_histories([files / "hist.tfrec", files / "hist2.tfrec"], SPEC)


def test_unsorted_history_from_foreign_writer_is_an_error(tmp_path):
    example = tf.train.Example()
    for name, value in dict(USERS[0], hist_timestamp=[10, 20, 5, 40, 50]).items():
        feature = example.features.feature[name]
        values = value if isinstance(value, list) else [value]
        if name in ("hist_duration", "hist_amount"):
            feature.float_list.value.extend(values)
        else:
            feature.int64_list.value.extend(values)
    with tf.io.TFRecordWriter(str(tmp_path / "h.tfrec")) as writer:
        writer.write(example.SerializeToString())
    with pytest.raises(ValueError, match="user_id 10: hist_timestamp is not sorted"):
        load_user_histories(tmp_path / "h.tfrec", SPEC)


def test_history_tables_outlive_the_history_object(files):
    history = load_user_histories(files / "hist.tfrec", SPEC)
    dataset = make_dataset(files / "ex.tfrec", SPEC, history, batch_size=16)
    del history
    gc.collect()
    features, _ = next(iter(dataset))
    np.testing.assert_array_equal(features["hist_length"], EXPECTED["hist_length"])


def test_shuffle_repeat_and_drop_remainder(files):
    def user_order(**kwargs):
        dataset = make_dataset(files / "ex.tfrec", SPEC, files / "hist.tfrec", batch_size=4, **kwargs)
        return np.concatenate([f["request_timestamp"].numpy() for f, _ in dataset.take(5)])

    options = dict(shuffle=True, seed=7, repeat=True, drop_remainder=True)
    shuffled = user_order(**options)
    assert len(shuffled) == 20
    np.testing.assert_array_equal(shuffled, user_order(**options))
    assert sorted(shuffled[:10]) == sorted(EXPECTED["request_timestamp"])  # first epoch is complete
    dataset = make_dataset(files / "ex.tfrec", SPEC, files / "hist.tfrec", batch_size=4, drop_remainder=True)
    assert dataset.element_spec[0]["hist_item_id"].shape.as_list() == [4, None]
    assert sum(1 for _ in dataset) == 2


def test_missing_history_argument(files):
    with pytest.raises(ValueError, match="load_user_histories"):
        make_dataset(files / "ex.tfrec", SPEC)
    with pytest.raises(FileNotFoundError, match="none-"):
        make_dataset(files / "none-*.tfrec", SPEC, files / "hist.tfrec")
