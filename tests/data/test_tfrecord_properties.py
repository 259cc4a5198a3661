"""Property-based tests (hypothesis) of the TFRecord codec: writer -> readers round trip, validation
of invalid records (atomic: nothing left behind) and detection of corrupted files.

Every test is derandomized (same examples on every run, no example database) and small enough
for the whole module to run in well under a minute on two cores.
"""
from __future__ import annotations

import math
import os
import struct
import tempfile
import warnings

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from tfrec.data.dataset import load_user_histories, make_dataset
from tfrec.data.schema import FeatureDef
from tfrec.data.sharding import record_shard
from tfrec.data.spec import FLOAT, INT, FeatureSpec
from tfrec.data.tfrecord import (
    CorruptTFRecordError,
    RecordValidationError,
    scan_tfrecord_files,
    write_examples,
    write_sharded_records,
    write_user_histories,
)

INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)

DEFAULT_SPEC = FeatureSpec(n_items=50, n_user_segments=4, max_history_length=5)
# Every kind of declared field a record can carry: bounded and hashed ids, a multi-valued field,
# numeric user / context / behavior features, two Semantic ID levels.
RICH_SPEC = FeatureSpec(
    n_items=30,
    max_history_length=3,
    semantic_id_levels=2,
    semantic_id_vocab=8,
    user_features=(
        FeatureDef("age", "categorical", vocab_size=7),
        FeatureDef("city", "categorical", hash_buckets=100),
        FeatureDef("tags", "multi_categorical", vocab_size=20, max_len=3),
        FeatureDef("income", "numeric"),
    ),
    context_features=(FeatureDef("hour", "categorical", vocab_size=24), FeatureDef("price", "numeric")),
    behavior_features=(FeatureDef("location", "categorical", vocab_size=10), FeatureDef("dwell", "numeric")),
)
SPECS = {"default": DEFAULT_SPEC, "rich": RICH_SPEC}
# layout -> (inline_history, with_true_prob) for examples; None for user-history records
LAYOUTS = {
    "history": None,
    "example": (False, False),
    "example_true_prob": (False, True),
    "example_inline": (True, False),
    "example_inline_true_prob": (True, True),
}

PROPERTY = settings(max_examples=30)  # the rest: the 'tfrec' profile (tests/conftest.py)


def layout_features(spec: FeatureSpec, layout: str):
    if LAYOUTS[layout] is None:
        return spec.history_record_features()
    inline, true_prob = LAYOUTS[layout]
    return spec.example_record_features(inline_history=inline, with_true_prob=true_prob)


def write_layout(path, spec, layout, records):
    """Writes through the public writer of the layout; returns its count."""
    if LAYOUTS[layout] is None:
        return write_user_histories(path, spec, records)
    inline, true_prob = LAYOUTS[layout]
    return write_examples(path, spec, records, inline_history=inline, with_true_prob=true_prob)


# -- strategies ---------------------------------------------------------------------------------
def _ints(lo: int, hi: int):
    """Integers in [lo, hi], with the bounds and small values well represented."""
    special = [v for v in (lo, hi, 0, 1, lo + 1, hi - 1) if lo <= v <= hi]
    small_lo, small_hi = max(lo, -1000), min(hi, 1000)
    small = st.integers(small_lo, small_hi) if small_lo <= small_hi else st.integers(lo, hi)
    return st.one_of(st.sampled_from(special), small, st.integers(lo, hi))


def element_strategy(spec: FeatureSpec, f):
    """Valid single values of field ``f`` (python int / float exactly representable in float32)."""
    if f.dtype == INT:
        vocab = spec.vocab_size(f)
        if f.name == "label":
            return st.sampled_from([0, 1])
        if vocab is not None:
            return _ints(0, vocab - 1)
        if f.non_negative:
            return _ints(0, INT64_MAX)
        return _ints(INT64_MIN, INT64_MAX)
    if f.name == "true_prob":
        return st.floats(0.0, 1.0, width=32)
    if f.non_negative:
        return st.one_of(st.floats(0.0, F32_MAX, width=32), st.sampled_from([0.0, -0.0, F32_TINY, F32_MAX]))
    return st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False),
                     st.sampled_from([-0.0, F32_TINY, -F32_TINY, F32_MAX, -F32_MAX]))


def values_strategy(spec, f, n: int):
    """Valid values of ``f``: a scalar, ``n`` parallel behaviors, or a list of <= max_len."""
    elems = element_strategy(spec, f)
    if f.sequence:
        values = st.lists(elems, min_size=n, max_size=n)
        return values.map(sorted) if f.name == "hist_timestamp" else values
    if f.multi:
        return st.lists(elems, max_size=f.max_len)
    return elems


def _fits(values, dtype) -> bool:
    info = np.iinfo(dtype)
    return all(info.min <= v <= info.max for v in values)


@st.composite
def representation(draw, f, values):
    """``values`` in one of the forms the writer accepts: python, numpy scalar / array, narrower dtypes."""
    if isinstance(values, list):
        forms = ["list", "tuple", "array"]
        if f.dtype == INT and _fits(values, np.int32):
            forms.append("int32")
        if f.dtype == INT and _fits(values, np.uint64) and values:
            forms.append("uint64")
        if f.dtype == FLOAT:
            forms += ["float64", "float16_exact"] if all(abs(v) <= 65504 and np.float16(v) == v for v in values) else [
                "float64"]
        form = draw(st.sampled_from(forms))
        if form == "list":
            return list(values)
        if form == "tuple":
            return tuple(values)
        dtype = {"array": f.np_dtype, "int32": np.int32, "uint64": np.uint64, "float64": np.float64,
                 "float16_exact": np.float16}[form]
        return np.asarray(values, dtype=dtype)
    forms = ["python", "numpy", "0d"]
    if f.dtype == INT and _fits([values], np.int32):
        forms.append("int32")
    if f.dtype == INT and values >= 0:
        forms.append("uint64")
    if f.dtype == FLOAT:
        forms.append("float64")
    form = draw(st.sampled_from(forms))
    if form == "python":
        return values
    if form == "numpy":
        return f.np_dtype(values)
    if form == "0d":
        return np.array(values, dtype=f.np_dtype)
    return {"int32": np.int32, "uint64": np.uint64, "float64": np.float64}[form](values)


@st.composite
def record_strategy(draw, spec, layout, min_behaviors=0, max_behaviors=6):
    """``(record as handed to the writer, expected arrays)``."""
    n = draw(st.integers(min_behaviors, max_behaviors))
    record, expected = {}, {}
    for f in layout_features(spec, layout):
        values = draw(values_strategy(spec, f, n))
        record[f.name] = draw(representation(f, values))
        expected[f.name] = np.asarray(values, dtype=f.np_dtype)
    return record, expected


def record_lists(spec, layout, min_size=0, max_size=6, unique_users=False, min_behaviors=0):
    return st.lists(record_strategy(spec, layout, min_behaviors), min_size=min_size, max_size=max_size,
                    unique_by=(lambda r: int(r[1]["user_id"])) if unique_users else None)


# -- reading back -------------------------------------------------------------------------------
def read_back(path, spec, features):
    """Every record of ``path`` as field -> numpy array (scan_tfrecord_files' parsed batches)."""
    rows = []

    def on_batch(_, batch):
        n = int(batch["user_id"].shape[0])
        columns = {}
        for f in features:
            value = batch[f.name]
            if isinstance(value, tf.RaggedTensor):
                splits, flat = value.row_splits.numpy(), value.flat_values.numpy()
                columns[f.name] = [flat[splits[i]:splits[i + 1]] for i in range(n)]
            else:
                columns[f.name] = list(value.numpy())
        rows.extend({name: np.asarray(col[i]) for name, col in columns.items()} for i in range(n))

    report = scan_tfrecord_files(path, spec, features, on_batch=on_batch)
    assert report.skipped == []
    assert report.record_counts == {str(path): len(rows)}
    return rows


def assert_exact(expected: np.ndarray, got: np.ndarray, what: str):
    """Same dtype, shape and values; floats compared bit for bit (so -0.0, subnormals count)."""
    got = np.asarray(got)
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    if expected.dtype == np.float32:
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32), err_msg=what)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=what)


def _dir_listing(directory):
    return sorted(os.listdir(directory))


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- round trip ---------------------------------------------------------------------------------
@PROPERTY
@given(spec_name=st.sampled_from(sorted(SPECS)), layout=st.sampled_from(sorted(LAYOUTS)), data=st.data())
def test_valid_records_round_trip_exactly(spec_name, layout, data):
    spec = SPECS[spec_name]
    features = layout_features(spec, layout)
    pairs = data.draw(record_lists(spec, layout), label="records")
    as_generator = data.draw(st.booleans(), label="as_generator")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "part.tfrec")
        records = [r for r, _ in pairs]
        assert write_layout(path, spec, layout, iter(records) if as_generator else records) == len(pairs)
        assert _dir_listing(tmp) == ["part.tfrec"]  # no temp file left
        rows = read_back(path, spec, features)
    assert len(rows) == len(pairs)
    for i, ((_, expected), row) in enumerate(zip(pairs, rows)):
        assert set(row) == set(expected)
        for name in expected:
            assert_exact(expected[name], row[name], f"record {i} field {name}")


@PROPERTY
@given(spec_name=st.sampled_from(sorted(SPECS)), data=st.data())
def test_user_histories_load_exactly(spec_name, data):
    """load_user_histories (the CSR reader) returns every user's exact profile and behaviors."""
    spec = SPECS[spec_name]
    pairs = data.draw(record_lists(spec, "history", unique_users=True), label="records")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "h.tfrec")
        write_user_histories(path, spec, [r for r, _ in pairs])
        histories = load_user_histories(path, spec)
    assert_exact(np.asarray([e["user_id"] for _, e in pairs], np.int64).reshape(-1), histories.user_ids, "user_ids")
    assert histories.n_behaviors == sum(len(e["hist_timestamp"]) for _, e in pairs)
    for _, expected in pairs:
        got = histories.history(int(expected["user_id"]))
        for f in spec.user_fields():
            want = expected[f.name]
            if f.multi:  # padded with -1 to max_len
                want = np.concatenate([want, np.full(f.max_len - len(want), -1, np.int64)])
            assert_exact(want, got[f.name], f"user {expected['user_id']} {f.name}")
        for f in spec.sequence_features():
            assert_exact(expected[f.name], got[f.name], f"user {expected['user_id']} {f.name}")


@settings(PROPERTY, max_examples=15)
@given(spec_name=st.sampled_from(sorted(SPECS)), data=st.data())
def test_inline_examples_read_by_make_dataset_are_cut_at_the_request_time(spec_name, data):
    """make_dataset(inline_history=True) gives each example exactly its behaviors strictly before
    ``request_timestamp``, the most recent ``max_history_length`` of them, zero-padded."""
    spec = SPECS[spec_name]
    pairs = data.draw(record_lists(spec, "example_inline", min_size=1, max_size=5), label="records")
    # make the cut interesting: request times near the behaviors' timestamps
    for record, expected in pairs:
        ts = expected["hist_timestamp"]
        if len(ts):
            req = int(ts[data.draw(st.integers(0, len(ts) - 1), label="cut_at")]) + data.draw(
                st.sampled_from([-1, 0, 1]), label="offset")
            req = min(max(req, 0), INT64_MAX)
            record["request_timestamp"] = req
            expected["request_timestamp"] = np.asarray(req, np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "e.tfrec")
        write_examples(path, spec, [r for r, _ in pairs], inline_history=True)
        batches = list(make_dataset(path, spec, inline_history=True, batch_size=len(pairs) + 1))
    assert len(batches) == 1
    features, labels = batches[0]
    L = spec.max_history_length
    kept = []
    for _, e in pairs:
        cut = int(np.searchsorted(e["hist_timestamp"], e["request_timestamp"], side="left"))
        kept.append((max(0, cut - L), cut))
    width = max([1] + [b - a for a, b in kept])
    assert_exact(np.asarray([b - a for a, b in kept], np.int32), features["hist_length"].numpy(), "hist_length")
    for name in ("user_id", "item_id", "request_timestamp"):
        assert_exact(np.stack([e[name] for _, e in pairs]), features[name].numpy(), name)
    assert_exact(np.stack([e["label"] for _, e in pairs]).astype(np.float32), labels.numpy(), "label")
    for f in spec.context_fields():
        assert_exact(np.stack([e[f.name] for _, e in pairs]), features[f.name].numpy(), f.name)
    for f in spec.history_sequence_features():
        want = np.zeros((len(pairs), width), f.np_dtype)
        for i, ((_, e), (a, b)) in enumerate(zip(pairs, kept)):
            want[i, : b - a] = e[f.name][a:b]
        assert_exact(want, features[f.name].numpy(), f.name)
    for f in spec.user_fields():
        want = np.stack([np.concatenate([e[f.name], np.full(f.max_len - len(e[f.name]), -1, np.int64)])
                         if f.multi else e[f.name] for _, e in pairs])
        assert_exact(want, features[f.name].numpy(), f.name)
    if spec.semantic_id_levels:
        M = spec.semantic_id_levels
        want = np.zeros((len(pairs), width, M), np.int64)
        for i, ((_, e), (a, b)) in enumerate(zip(pairs, kept)):
            for m in range(M):
                want[i, : b - a, m] = e[f"hist_semantic_id_{m + 1}"][a:b]
        assert_exact(want, features["hist_semantic_id"].numpy(), "hist_semantic_id")
        want = np.stack([[e[f"item_semantic_id_{m}"] for m in range(1, spec.semantic_id_levels + 1)] for _, e in pairs])
        assert_exact(want, features["item_semantic_id"].numpy(), "item_semantic_id")


# -- invalid records ----------------------------------------------------------------------------
EXTRA_NAMES = st.sampled_from(["hist_colour", "userid", "label2", "", "item_id ", "HIST_ITEM_ID", "hist_length",
                               "candidate_item_id", "\u00e9t\u00e9"])
# Wrong-type / wrong-shape values by class: each is never a valid value of any field.
WRONG_VALUES = {
    "object": [None, object(), {"a": 1}, 1 + 2j, {1, 2}],
    "string": ["12", b"12", "nan", ""],
    "nested": [[[1, 2], [3]], [[0.5], []], [1, [2, 3]]],  # ragged nesting
}


def _applicable(spec_name: str, layout: str, kind: str) -> bool:
    spec = SPECS[spec_name]
    features = layout_features(spec, layout)
    if kind in ("length", "unsorted"):
        return any(f.sequence for f in features)
    if kind == "non_finite":
        return any(f.dtype == FLOAT for f in features)
    if kind == "label":
        return LAYOUTS[layout] is not None
    if kind == "true_prob":
        return LAYOUTS[layout] is not None and LAYOUTS[layout][1]
    if kind == "too_many_values":
        return any(f.multi for f in features)
    return True


INVALID_KINDS = ("missing", "extra", "object", "string", "nested", "float_for_int", "scalar_vs_list",
                 "out_of_range", "negative", "non_finite", "length", "unsorted", "label", "true_prob",
                 "too_many_values")


@st.composite
def invalid_case(draw, spec, layout, records, index, kind):
    """Mutates ``records[index]`` (in place) into an invalid record of ``kind``; returns (field, also_ok)."""
    features = layout_features(spec, layout)
    record = records[index]
    n = len(np.asarray(record["hist_timestamp"])) if "hist_timestamp" in record else 0
    seq = [f.name for f in features if f.sequence]
    by_name = {f.name: f for f in features}

    def field_of(candidates):
        return draw(st.sampled_from(list(candidates)), label="field")

    def set_element(f, bad):
        value = list(np.asarray(record[f.name]).reshape(-1).tolist())
        if (f.sequence or f.multi) and value:
            value[draw(st.integers(0, len(value) - 1), label="position")] = bad
            record[f.name] = value
        elif f.multi:
            record[f.name] = [bad]
        else:
            record[f.name] = bad

    if kind == "missing":
        name = field_of(by_name)
        del record[name]
        return name, ()
    if kind == "extra":
        name = draw(EXTRA_NAMES.filter(lambda s: s not in by_name), label="field")
        record[name] = draw(st.sampled_from([0, 1.5, [1, 2], "x", None]), label="value")
        return name, ()
    if kind in WRONG_VALUES:  # the whole field, or one element of a list field
        f = by_name[field_of(by_name)]
        bad = draw(st.sampled_from(WRONG_VALUES[kind]), label="value")
        if (f.sequence or f.multi) and draw(st.booleans(), label="as_element"):
            set_element(f, bad)
        else:
            record[f.name] = bad
        return f.name, ()
    if kind == "float_for_int":
        f = by_name[field_of(f.name for f in features if f.dtype == INT)]
        set_element(f, draw(st.sampled_from([1.5, 3.0, math.nan, math.inf, np.float32(2.0), -0.5]), label="value"))
        return f.name, ()
    if kind == "scalar_vs_list":
        f = by_name[field_of(by_name)]
        value = np.asarray(record[f.name])
        if f.sequence or f.multi:
            record[f.name] = draw(st.sampled_from([0, 1.0, np.int64(3), [[0] * max(len(value), 1)],
                                                   np.zeros((1, len(value)))]), label="value")
        else:
            record[f.name] = draw(st.sampled_from([[value.item()], (value.item(), value.item()), [], [[value.item()]],
                                                   np.asarray([value.item()])]), label="value")
        return f.name, ()
    if kind == "out_of_range":
        f = by_name[field_of(f.name for f in features if spec.vocab_size(f) is not None and (not f.sequence or n))]
        vocab = spec.vocab_size(f)
        set_element(f, draw(st.one_of(_ints(vocab, INT64_MAX), _ints(INT64_MIN, -1)), label="value"))
        return f.name, ()
    if kind == "negative":
        f = by_name[field_of(f.name for f in features if f.non_negative and (not f.sequence or n))]
        bad = draw(_ints(INT64_MIN, -1) if f.dtype == INT else st.one_of(
            st.floats(max_value=-F32_TINY, width=32, allow_infinity=False), st.sampled_from([-F32_TINY, -F32_MAX])),
            label="value")
        set_element(f, bad)
        return f.name, ()
    if kind == "non_finite":
        f = by_name[field_of(f.name for f in features if f.dtype == FLOAT and (not f.sequence or n))]
        bad = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e39, -1e39, 1e300, np.float64(np.nan)]),
                   label="value")
        set_element(f, bad)
        return f.name, ()
    if kind == "length":
        f = by_name[field_of(seq)]
        value = list(np.asarray(record[f.name]).reshape(-1).tolist())
        if value and draw(st.booleans(), label="shorten"):
            value = value[:-1]
        else:
            value = value + [value[-1] if value else 0]  # keeps timestamps sorted, ids in range
        record[f.name] = value
        # the writer compares every list with the first one: a wrong first list is reported on the next
        return f.name, tuple(seq) if f.name == seq[0] else ()
    if kind == "unsorted":
        ts = list(np.asarray(record["hist_timestamp"]).reshape(-1).tolist())
        j = draw(st.integers(0, n - 2), label="position")
        hi = draw(_ints(1, INT64_MAX), label="later")
        lo = draw(_ints(0, hi - 1), label="earlier")
        ts[j], ts[j + 1] = hi, lo
        record["hist_timestamp"] = ts
        return "hist_timestamp", ()
    if kind == "label":
        record["label"] = draw(st.one_of(_ints(2, INT64_MAX), _ints(INT64_MIN, -1)), label="value")
        return "label", ()
    if kind == "true_prob":
        record["true_prob"] = draw(st.one_of(st.floats(min_value=1.0, exclude_min=True, width=32, allow_infinity=False),
                                             st.floats(max_value=0.0, exclude_max=True, width=32,
                                                       allow_infinity=False)), label="value")
        return "true_prob", ()
    assert kind == "too_many_values"
    f = by_name[field_of(f.name for f in features if f.multi)]
    record[f.name] = [0] * (f.max_len + draw(st.integers(1, 3), label="extra_values"))
    return f.name, ()


@pytest.mark.parametrize("kind", INVALID_KINDS)
@settings(PROPERTY, max_examples=6)
@given(data=st.data())
def test_invalid_record_raises_naming_record_and_field_and_leaves_nothing(kind, data):
    """Any record breaking the spec -> RecordValidationError (never another exception) naming its
    index and field; no file, no temp file, and files it would have replaced keep their bytes."""
    combos = [(s, l) for s in sorted(SPECS) for l in sorted(LAYOUTS) if _applicable(s, l, kind)]
    spec_name, layout = data.draw(st.sampled_from(combos), label="spec, layout")
    spec = SPECS[spec_name]
    features = layout_features(spec, layout)
    pairs = data.draw(record_lists(spec, layout, min_size=1, max_size=4,
                                   min_behaviors={"unsorted": 2, "non_finite": 1}.get(kind, 0)),
                      label="records")
    records = [dict(r) for r, _ in pairs]
    index = data.draw(st.integers(0, len(records) - 1), label="index")
    field, also = data.draw(invalid_case(spec, layout, records, index, kind), label="field")
    note(f"record {index} after mutation: {records[index]!r}")
    num_shards = data.draw(st.integers(1, 3), label="num_shards")
    existing = data.draw(st.booleans(), label="existing_files")
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"part-{s}.tfrec") for s in range(num_shards)]
        if existing:  # a failed write must keep the files it would have replaced
            for p in paths:
                with open(p, "wb") as out:
                    out.write(b"previous contents")
        before = {name: _read_bytes(os.path.join(tmp, name)) for name in _dir_listing(tmp)}
        with pytest.raises(RecordValidationError) as info:
            if num_shards == 1:
                write_layout(paths[0], spec, layout, records)
            else:
                write_sharded_records(paths, records, features, spec,
                                      shard_of=lambda r: record_shard(r, num_shards))
        after = {name: _read_bytes(os.path.join(tmp, name)) for name in _dir_listing(tmp)}
    err = info.value
    assert err.record == index, str(err)
    assert err.field == field or err.field in also, (field, str(err))
    assert str(err).startswith(f"record {index}, field {err.field!r}: "), str(err)
    assert after == before  # no file, no temp file, previous files untouched


# -- corruption ---------------------------------------------------------------------------------
def record_boundaries(data: bytes):
    """Start offsets of the records of a TFRecord file, plus its size."""
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        pos += 16 + length
    assert pos == len(data)
    return offsets + [len(data)]


def _example_bytes(features: dict) -> bytes:
    example = tf.train.Example()
    for name, (kind, values) in features.items():
        getattr(example.features.feature[name], kind).value.extend(values)
    return example.SerializeToString()


# Payloads that pass their CRC but are not records of the file's layout.
GARBAGE_PAYLOADS = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([
        b"",
        b"\xff\xfe garbage",
        b"\x0a\x03\xff\xfe\xfd",
        _example_bytes({"user_id": ("float_list", [1.0])}),
        _example_bytes({"user_id": ("bytes_list", [b"\xff\xfe"])}),
        _example_bytes({"\xff": ("int64_list", [1])}),
        _example_bytes({"user_id": ("int64_list", [1, 2])}),
        _example_bytes({"user_id": ("int64_list", [])}),
    ]),
)
CORRUPTIONS = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 2**32), st.integers(1, 255)), min_size=1,
                                        max_size=4)),
    st.tuples(st.just("flip_burst"), st.tuples(st.integers(0, 2**32), st.binary(min_size=1, max_size=4).filter(
        lambda b: any(b)))),
    st.tuples(st.just("truncate"), st.integers(0, 2**32)),
    st.tuples(st.just("append_bytes"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("append_record"), GARBAGE_PAYLOADS),
)


def corrupt(data: bytes, corruption, boundaries):
    """-> (damaged bytes, expected): expected is ("records", k) for a file that is an exact prefix of
    k records, or ("corrupt", records_readable)."""
    kind, arg = corruption
    n = len(boundaries) - 1
    size = len(data)

    def record_of(pos):
        return int(np.searchsorted(boundaries, pos, side="right")) - 1

    if kind in ("flip", "flip_burst"):
        if not size:
            return data, ("records", 0)
        out = bytearray(data)
        if kind == "flip":
            for seed, mask in arg:
                out[seed % size] ^= mask
        else:
            start = arg[0] % size
            for i, mask in enumerate(arg[1][: size - start]):
                out[start + i] ^= mask
        changed = [i for i in range(size) if out[i] != data[i]]
        if not changed:  # flips that cancel out
            return data, ("records", n)
        return bytes(out), ("corrupt", record_of(changed[0]))
    if kind == "truncate":
        if not size:
            return data, ("records", 0)
        cut = arg % size
        if cut in boundaries:  # a shorter, valid file: indistinguishable from one written that way
            return data[:cut], ("records", boundaries.index(cut))
        return data[:cut], ("corrupt", record_of(cut))
    if kind == "append_bytes":
        return data + arg, ("corrupt", n)
    with tempfile.TemporaryDirectory() as tmp:  # append_record: a CRC-valid record of garbage
        path = os.path.join(tmp, "garbage.tfrec")
        with tf.io.TFRecordWriter(path) as writer:
            writer.write(arg)
        with open(path, "rb") as f:
            return data + f.read(), ("corrupt", n)


def _garbage_example():
    record = {"user_id": 1, "item_id": 7, "request_timestamp": 1000, "label": 1}
    expected = {k: np.asarray(v, np.int64) for k, v in record.items()}
    return {"layout": "example", "pairs": [(record, expected)], "corruption": ("append_record", b"\xff\xfe garbage")}


@settings(PROPERTY, max_examples=35)
@given(layout=st.sampled_from(["history", "example", "example_inline"]),
       pairs=record_lists(DEFAULT_SPEC, "example", max_size=5), corruption=CORRUPTIONS)
@example(**_garbage_example())
def test_corruption_is_detected_naming_the_file_or_the_file_reads_exactly(layout, pairs, corruption):
    """Byte flips (CRC-checked), truncation, appended bytes and appended CRC-valid garbage records:
    the scan raises CorruptTFRecordError naming the file and the number of records readable before
    the damage, or (only for a cut exactly between records: a valid shorter file) reads the exact
    records; with skip_corrupt=True it never raises and reports the damaged file instead."""
    spec = DEFAULT_SPEC
    features = layout_features(spec, layout)
    if layout != "example":  # re-draw-free conversion: the example pairs carry the example fields only
        pairs = [_as_layout(spec, layout, e, i) for i, (_, e) in enumerate(pairs)]
    with tempfile.TemporaryDirectory() as tmp:
        good, victim = os.path.join(tmp, "good.tfrec"), os.path.join(tmp, "victim.tfrec")
        write_layout(good, spec, layout, [r for r, _ in pairs])
        data = _read_bytes(good)
        boundaries = record_boundaries(data)
        damaged, (outcome, count) = corrupt(data, corruption, boundaries)
        note(f"size {len(data)}, boundaries {boundaries}, expected {outcome} {count}")
        with open(victim, "wb") as f:
            f.write(damaged)
        if outcome == "records":
            rows = read_back(victim, spec, features)
            assert len(rows) == count
            for i, ((_, expected), row) in enumerate(zip(pairs, rows)):
                for name in expected:
                    assert_exact(expected[name], row[name], f"record {i} field {name}")
        else:
            with pytest.raises(CorruptTFRecordError) as info:
                scan_tfrecord_files(victim, spec, features)
            err = info.value
            assert err.path == victim and victim in str(err)
            assert err.records_readable == count, str(err)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = scan_tfrecord_files([victim, good], spec, features, skip_corrupt=True)
    if outcome == "records":
        assert report.record_counts == {victim: count, good: len(pairs)} and report.skipped == []
    else:
        assert report.record_counts == {good: len(pairs)}
        assert [(s.path, s.records_readable) for s in report.skipped] == [(victim, count)]
        assert any(issubclass(w.category, RuntimeWarning) and victim in str(w.message) for w in caught)


def _as_layout(spec, layout, example_values, i):
    """A record of ``layout`` derived deterministically from an example record's values."""
    uid = int(example_values["user_id"])
    hist = {"hist_item_id": [i % spec.n_items, 3], "hist_behavior_type": [1, 2], "hist_timestamp": [min(5, uid), uid],
            "hist_duration": [0.5, 1e-45], "hist_amount": [0.0, 3.25]}
    if layout == "history":
        record = {"user_id": uid, "user_segment": i % spec.n_user_segments, **hist}
    else:
        record = {k: v.item() for k, v in example_values.items()}
        record.update({"user_segment": 1, **hist})
    features = layout_features(spec, layout)
    expected = {f.name: np.asarray(record[f.name], f.np_dtype) for f in features}
    return record, expected


@settings(PROPERTY, max_examples=12)
@given(pairs=record_lists(DEFAULT_SPEC, "example", max_size=3), corruption=CORRUPTIONS)
def test_corrupt_file_error_is_a_short_readable_sentence(pairs, corruption):
    """The error says what is wrong in a sentence, without TF's op / function-node dump."""
    spec, features = DEFAULT_SPEC, DEFAULT_SPEC.example_record_features()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "victim.tfrec")
        write_layout(path, spec, "example", [r for r, _ in pairs])
        data = _read_bytes(path)
        damaged, (outcome, _) = corrupt(data, corruption, record_boundaries(data))
        with open(path, "wb") as f:
            f.write(damaged)
        if outcome == "records":
            return
        with pytest.raises(CorruptTFRecordError) as info:
            scan_tfrecord_files(path, spec, features)
    message = str(info.value)
    for noise in ("{{function_node", "device:CPU", "name:)"):
        assert noise not in message, message
    assert len(message) < 600 and "\n" not in message, message
