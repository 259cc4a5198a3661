"""Tests for the TFRecord codec: validating atomic writer and the per-file integrity scan."""
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfrec.data.spec import FeatureSpec
from tfrec.data.tfrecord import (
    CorruptTFRecordError,
    RecordValidationError,
    read_request_timestamps,
    scan_tfrecord_files,
    write_examples,
    write_records,
    write_user_histories,
)

SPEC = FeatureSpec(n_items=50, n_user_segments=4, max_history_length=5)


def _history(user_id=1, n=4):
    return {
        "user_id": user_id,
        "user_segment": 3,
        "hist_item_id": list(range(n)),
        "hist_behavior_type": [i % 6 for i in range(n)],
        "hist_timestamp": [100 * (i + 1) for i in range(n)],
        "hist_duration": [0.5 * i for i in range(n)],
        "hist_amount": np.arange(n, dtype=np.float32) * 1.25,
    }


def _example(user_id=1, item_id=7, request_timestamp=1000, label=1):
    return {"user_id": user_id, "item_id": item_id, "request_timestamp": request_timestamp, "label": label}


def _read(path, features):
    raw = next(iter(tf.data.TFRecordDataset(str(path)).batch(1000)))
    return tf.io.parse_example(raw, SPEC.parse_spec(features))


def _write_good_examples(path, n=200):
    return write_examples(path, SPEC, [_example(user_id=i, item_id=i % 50) for i in range(n)])


def _corrupt_copy(src, dst):
    """Copies ``src`` to ``dst`` and flips 4 bytes in the middle."""
    data = bytearray(open(src, "rb").read())
    for k in range(len(data) // 2, len(data) // 2 + 4):
        data[k] ^= 0xFF
    open(dst, "wb").write(bytes(data))


# -- writer -------------------------------------------------------------------------------------
def test_history_round_trip_exact(tmp_path):
    records = [_history(user_id=5, n=4), _history(user_id=9, n=0), _history(user_id=2, n=1)]
    assert write_user_histories(tmp_path / "h.tfrec", SPEC, records) == 3
    parsed = _read(tmp_path / "h.tfrec", SPEC.history_record_features())
    np.testing.assert_array_equal(parsed["user_id"], [5, 9, 2])
    np.testing.assert_array_equal(parsed["user_segment"], [3, 3, 3])
    assert parsed["hist_item_id"].to_list() == [[0, 1, 2, 3], [], [0]]
    assert parsed["hist_timestamp"].to_list() == [[100, 200, 300, 400], [], [100]]
    assert parsed["hist_duration"].to_list() == [[0.0, 0.5, 1.0, 1.5], [], [0.0]]
    assert parsed["hist_amount"].to_list() == [[0.0, 1.25, 2.5, 3.75], [], [0.0]]
    assert parsed["hist_duration"].dtype == tf.float32


def test_example_round_trip_with_true_prob_and_numpy_scalars(tmp_path):
    records = [
        dict(_example(user_id=np.int32(3), label=np.int64(0)), true_prob=np.float32(0.25)),
        dict(_example(user_id=4, item_id=49, request_timestamp=2**40), true_prob=1.0),
    ]
    assert write_examples(tmp_path / "e.tfrec", SPEC, records, with_true_prob=True) == 2
    parsed = _read(tmp_path / "e.tfrec", SPEC.example_record_features(with_true_prob=True))
    np.testing.assert_array_equal(parsed["user_id"], [3, 4])
    np.testing.assert_array_equal(parsed["item_id"], [7, 49])
    np.testing.assert_array_equal(parsed["request_timestamp"], [1000, 2**40])
    np.testing.assert_array_equal(parsed["label"], [0, 1])
    np.testing.assert_array_equal(parsed["true_prob"], np.float32([0.25, 1.0]))


def test_inline_example_round_trip(tmp_path):
    record = {**_example(), **{k: v for k, v in _history().items() if k != "user_id"}}
    write_examples(tmp_path / "e.tfrec", SPEC, [record], inline_history=True)
    parsed = _read(tmp_path / "e.tfrec", SPEC.example_record_features(inline_history=True))
    assert parsed["hist_behavior_type"].to_list() == [[0, 1, 2, 3]]
    np.testing.assert_array_equal(parsed["user_segment"], [3])


def _set(**changes):
    return lambda r: {**r, **changes}


def _drop(name):
    return lambda r: {k: v for k, v in r.items() if k != name}


HISTORY_CASES = {
    "missing": (_drop("hist_amount"), "hist_amount", "missing"),
    "unknown": (_set(hist_colour=[1, 2, 3, 4]), "hist_colour", "unknown field"),
    "float_in_int_scalar": (_set(user_segment=1.5), "user_segment", "expected int64"),
    "float_in_int_sequence": (_set(hist_item_id=[1, 2, 2.5, 3]), "hist_item_id", "position 2"),
    "string": (_set(user_id="12"), "user_id", "expected int64"),
    "nan": (_set(hist_duration=[0.0, math.nan, 1.0, 2.0]), "hist_duration", "NaN/inf"),
    "inf": (_set(hist_amount=[0.0, 1.0, math.inf, 2.0]), "hist_amount", "NaN/inf"),
    "float32_overflow": (_set(hist_amount=[0.0, 1.0, 1e300, 2.0]), "hist_amount", "NaN/inf"),
    "item_out_of_vocab": (_set(hist_item_id=[0, 1, 50, 2]), "hist_item_id", "outside [0, 50)"),
    "negative_item": (_set(hist_item_id=[0, -1, 2, 3]), "hist_item_id", "n_items"),
    "behavior_type_out_of_vocab": (_set(hist_behavior_type=[0, 6, 0, 0]), "hist_behavior_type", "[0, 6)"),
    "segment_out_of_vocab": (_set(user_segment=4), "user_segment", "n_user_segments"),
    "negative_user": (_set(user_id=-3), "user_id", "negative"),
    "negative_duration": (_set(hist_duration=[0.0, -0.5, 1.0, 2.0]), "hist_duration", "negative"),
    "unequal_lengths": (_set(hist_amount=[1.0, 2.0, 3.0]), "hist_amount", "has 3 behaviors"),
    "scalar_as_list": (_set(user_segment=[1]), "user_segment", "expected a scalar"),
    "sequence_as_scalar": (_set(hist_duration=1.0), "hist_duration", "1-D list"),
}


@pytest.mark.parametrize("case", sorted(HISTORY_CASES))
def test_history_validation_names_record_and_field(tmp_path, case):
    mutate, field, what = HISTORY_CASES[case]
    records = [_history(1), _history(2), mutate(_history(3))]
    with pytest.raises(RecordValidationError) as info:
        write_user_histories(tmp_path / "h.tfrec", SPEC, records)
    message = str(info.value)
    assert message.startswith(f"record 2, field '{field}': ")
    assert what in message
    assert (info.value.record, info.value.field) == (2, field)
    assert os.listdir(tmp_path) == []  # no file, no temp file


def test_unsorted_timestamps_message(tmp_path):
    bad = _history(1, n=5)
    bad["hist_timestamp"] = [100, 1500, 1800, 1700, 1900]
    records = [_history(u) for u in range(17)] + [bad]
    with pytest.raises(RecordValidationError) as info:
        write_user_histories(tmp_path / "h.tfrec", SPEC, records)
    assert str(info.value) == (
        "record 17, field 'hist_timestamp': behaviors must be sorted oldest first (value 1700 at "
        "position 3 follows 1800); sort each user's behaviors by timestamp."
    )
    assert os.listdir(tmp_path) == []


EXAMPLE_CASES = {
    "label_2": (_set(label=2), "label", "0 or 1"),
    "label_float": (_set(label=0.5), "label", "expected int64"),
    "true_prob_high": (_set(true_prob=1.5), "true_prob", "[0, 1]"),
    "true_prob_nan": (_set(true_prob=math.nan), "true_prob", "NaN/inf"),
    "target_out_of_vocab": (_set(item_id=50), "item_id", "outside [0, 50)"),
    "negative_request_ts": (_set(request_timestamp=-1), "request_timestamp", "negative"),
}


@pytest.mark.parametrize("case", sorted(EXAMPLE_CASES))
def test_example_validation_names_record_and_field(tmp_path, case):
    mutate, field, what = EXAMPLE_CASES[case]
    records = [dict(_example(), true_prob=0.5), mutate(dict(_example(), true_prob=0.5))]
    with pytest.raises(RecordValidationError, match=rf"^record 1, field '{field}': .*{what[:6]}"):
        write_examples(tmp_path / "e.tfrec", SPEC, records, with_true_prob=True)
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_existing_file(tmp_path):
    path = tmp_path / "e.tfrec"
    _write_good_examples(path, n=3)
    before = path.read_bytes()
    with pytest.raises(RecordValidationError):
        write_examples(path, SPEC, [_example(), _example(label=5)])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["e.tfrec"]


def test_generator_error_leaves_no_file(tmp_path):
    def records():
        yield _example()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_records(tmp_path / "e.tfrec", records(), SPEC.example_record_features(), SPEC)
    assert os.listdir(tmp_path) == []


# -- scan ---------------------------------------------------------------------------------------
def test_scan_counts_records_and_accepts_globs_and_lists(tmp_path):
    _write_good_examples(tmp_path / "a.tfrec", n=5)
    _write_good_examples(tmp_path / "b.tfrec", n=1500)
    features = SPEC.example_record_features()
    report = scan_tfrecord_files(str(tmp_path / "*.tfrec"), SPEC, features)
    assert report.record_counts == {str(tmp_path / "a.tfrec"): 5, str(tmp_path / "b.tfrec"): 1500}
    assert report.n_records == 1505 and report.skipped == []
    report = scan_tfrecord_files([tmp_path / "b.tfrec", str(tmp_path / "a*")], SPEC, features)
    assert report.good_files == [str(tmp_path / "b.tfrec"), str(tmp_path / "a.tfrec")]


def test_missing_file_and_empty_glob(tmp_path):
    features = SPEC.example_record_features()
    with pytest.raises(FileNotFoundError, match="nope.tfrec"):
        scan_tfrecord_files(str(tmp_path / "nope.tfrec"), SPEC, features)
    with pytest.raises(FileNotFoundError, match=r"part-\*\.tfrec"):
        scan_tfrecord_files(str(tmp_path / "part-*.tfrec"), SPEC, features)


def test_corrupt_file_raises_naming_file(tmp_path):
    good, bad = str(tmp_path / "good.tfrec"), str(tmp_path / "bad.tfrec")
    _write_good_examples(good)
    _corrupt_copy(good, bad)
    with pytest.raises(CorruptTFRecordError) as info:
        scan_tfrecord_files([good, bad], SPEC, SPEC.example_record_features())
    assert info.value.path == bad and bad in str(info.value)
    assert 0 < info.value.records_readable < 200
    assert f"after {info.value.records_readable} readable records" in str(info.value)
    assert "skip_corrupt=True" in str(info.value)


def test_corrupt_file_skipped_with_warning(tmp_path):
    good, bad = str(tmp_path / "good.tfrec"), str(tmp_path / "bad.tfrec")
    _write_good_examples(good)
    _corrupt_copy(good, bad)
    with pytest.warns(RuntimeWarning, match="unreadable rest") as record:
        report = scan_tfrecord_files([bad, good], SPEC, SPEC.example_record_features(), skip_corrupt=True)
    assert bad in str(record[0].message)
    assert report.good_files == [good] and report.n_records == 200
    (skipped,) = report.skipped
    assert skipped.path == bad and 0 < skipped.records_readable < 200


def test_truncated_file_is_corrupt(tmp_path):
    good, cut = str(tmp_path / "good.tfrec"), str(tmp_path / "cut.tfrec")
    _write_good_examples(good, n=10)
    data = open(good, "rb").read()
    open(cut, "wb").write(data[: len(data) - 5])
    with pytest.raises(CorruptTFRecordError, match="truncated") as info:
        scan_tfrecord_files(cut, SPEC, SPEC.example_record_features())
    assert info.value.records_readable == 9


def test_unparseable_record_is_corrupt_with_record_range(tmp_path):
    path = str(tmp_path / "h.tfrec")
    shutil.copy(_write_history_file(tmp_path), path)
    expected = r"record 0 \(in records \[0, 2\)\) does not parse"
    with pytest.raises(CorruptTFRecordError, match=expected) as info:
        scan_tfrecord_files(path, SPEC, SPEC.example_record_features())
    assert "item_id" in str(info.value)


def _write_history_file(tmp_path):
    path = str(tmp_path / "hist_src.tfrec")
    write_user_histories(path, SPEC, [_history(1), _history(2)])
    return path


def append_garbage_record(path, payload=b"\xff\xfe\x00garbage\xff"):
    """Appends one record whose framing and CRCs are valid but whose payload is no Example."""
    garbage = str(path) + ".garbage"
    with tf.io.TFRecordWriter(garbage) as writer:
        writer.write(payload)
    with open(path, "ab") as f:
        f.write(open(garbage, "rb").read())
    os.remove(garbage)


def test_crc_valid_garbage_record_is_named_and_skippable(tmp_path):
    # TF quotes the payload's raw bytes in its parse error, and pybind fails to decode them: the scan
    # must still name the file and the record rather than let a bare UnicodeDecodeError through.
    good, bad = str(tmp_path / "good.tfrec"), str(tmp_path / "bad.tfrec")
    _write_good_examples(good, n=3)
    _write_good_examples(bad, n=1500)  # the garbage lands in the second batch of 1024
    append_garbage_record(bad)
    features = SPEC.example_record_features()
    with pytest.raises(CorruptTFRecordError) as info:
        scan_tfrecord_files([good, bad], SPEC, features)
    message = str(info.value)
    assert info.value.path == bad and info.value.records_readable == 1500
    assert message.startswith(f"TFRecord file {bad!r} is corrupt after 1500 readable records: ")
    assert "record 1500 (in records [1024, 1501)) does not parse against the feature spec (" in message
    assert r"\xff\xfe" in message and "function_node" not in message and "skip_corrupt=True" in message

    with pytest.warns(RuntimeWarning, match=r"bad\.tfrec.*record 1500"):
        report = scan_tfrecord_files([bad, good], SPEC, features, skip_corrupt=True)
    assert report.good_files == [good] and report.n_records == 3
    (skipped,) = report.skipped
    assert (skipped.path, skipped.records_readable) == (bad, 1500) and "record 1500" in skipped.reason


def test_long_garbage_payload_gives_a_short_reason(tmp_path):
    path = str(tmp_path / "e.tfrec")
    _write_good_examples(path, n=2)
    append_garbage_record(path, b"\xff" * 1000)  # TF's message quotes all 1000 bytes
    with pytest.raises(CorruptTFRecordError, match=r"record 2 \(in records \[0, 3\)\)") as info:
        scan_tfrecord_files(path, SPEC, SPEC.example_record_features())
    assert len(info.value.reason) < 400 and info.value.reason.endswith("...)")


def test_request_timestamps_are_read_through_the_scan(tmp_path):
    """The epoch count of distributed training and CHIME's t1 read only request times: a garbage
    record there is named too (it was a bare UnicodeDecodeError), and skip_corrupt drops the file."""
    good, bad = str(tmp_path / "good.tfrec"), str(tmp_path / "bad.tfrec")
    write_examples(good, SPEC, [_example(user_id=i, request_timestamp=1000 + i) for i in range(3)])
    _write_good_examples(bad, n=2)
    append_garbage_record(bad)
    with pytest.raises(CorruptTFRecordError, match=r"bad\.tfrec.* record 2 "):
        read_request_timestamps([good, bad], SPEC)
    with pytest.warns(RuntimeWarning):
        times, report = read_request_timestamps([good, bad], SPEC, skip_corrupt=True)
    assert times.tolist() == [1000, 1001, 1002] and [s.path for s in report.skipped] == [bad]
