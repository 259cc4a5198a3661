"""Semantic IDs in the TFRecords: the item lookup, `write-tfrecords`, the reader's stacked features."""
import argparse
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from pipelines import synthetic, write_tfrecords
from pipelines.common import SEMANTIC_IDS, load_spec, make_split_dataset
from tfrec.configs import DINConfig
from tfrec.data.dataset import load_user_histories, make_dataset
from tfrec.data.semantic_ids import SemanticIDLookup
from tfrec.data.spec import FeatureSpec
from tfrec.data.synthetic.v1 import SyntheticConfig, generate
from tfrec.data.tfrecord import (
    CorruptTFRecordError,
    RecordValidationError,
    encode_record,
    validate_record,
    write_examples,
)
from tfrec.grouping.rqvae import save_semantic_ids
from tfrec.models import DIN

N_ITEMS = 64


def _codes(item_id):
    """A hand-made 3-level table: every level differs, so a misaligned gather shows."""
    item_id = np.asarray(item_id)
    return np.stack([item_id % 5, (item_id // 5) % 4, (item_id * 7) % 6], axis=-1).astype(np.int32)


def _args(argv):
    p = argparse.ArgumentParser()
    write_tfrecords.add_arguments(p)
    return p.parse_args(argv)


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("semids")
    cfg = SyntheticConfig(n_users=20, n_items=N_ITEMS, n_topics=4, min_history_length=3, max_history_length=30,
                          train_examples_per_user=3, test_examples_per_user=1, min_user_topics=1,
                          max_user_topics=2, seed=3)
    synthetic.write_raw(generate(cfg), root / "data", "tiny")
    return root / "data"


@pytest.fixture(scope="module")
def data_with_codes(raw_data):
    items = np.arange(N_ITEMS)
    save_semantic_ids(raw_data / SEMANTIC_IDS, items, _codes(items), {"codebook_size": 8})
    write_tfrecords.run(_args(["--data", str(raw_data)]))
    return raw_data


# -- the lookup ---------------------------------------------------------------------------------
def test_lookup_columns_per_level():
    lookup = SemanticIDLookup.from_table(np.array([3, 0, 2]), np.array([[1, 2], [3, 4], [5, 0]]), n_items=4)
    assert lookup.levels == 2 and lookup.vocab == 6
    cols = lookup.columns(np.array([2, 3, 0, 3]), "hist_semantic_id")
    assert list(cols) == ["hist_semantic_id_1", "hist_semantic_id_2"]
    np.testing.assert_array_equal(cols["hist_semantic_id_1"], [5, 1, 3, 1])
    np.testing.assert_array_equal(cols["hist_semantic_id_2"], [0, 2, 4, 2])
    scalar = lookup.columns(np.int64(0), "item_semantic_id")
    assert scalar["item_semantic_id_1"].shape == () and int(scalar["item_semantic_id_2"]) == 4
    assert lookup.spec_fields() == {"semantic_id_levels": 2, "semantic_id_vocab": 6}


def test_item_without_a_code_is_named_with_where():
    lookup = SemanticIDLookup.from_table(np.array([0, 1]), np.array([[1], [2]]), n_items=4, source="t.npz")
    with pytest.raises(ValueError, match=r"item_id 3 \(row 11\) has no Semantic ID in t\.npz; re-run `tfrec "
                                         r"semantic-ids`"):
        lookup.columns(np.array([0, 3]), "hist_semantic_id", where=lambda i: f"row {10 + i}")
    with pytest.raises(ValueError, match=r"item_id 9 \(position 0\) is outside \[0, 4\)"):
        lookup.columns(np.array([9]), "hist_semantic_id")
    with pytest.raises(ValueError, match=r"item_id nan \(position 1\) is not an integer id"):
        lookup.columns(np.array([1.0, np.nan]), "hist_semantic_id")


@pytest.mark.parametrize("item_id, codes, match", [
    (np.array([0, 0]), np.array([[1], [2]]), "item_id 0 has more than one row"),
    (np.array([0, 7]), np.array([[1], [2]]), r"item_id 7 is outside the data set's \[0, 4\)"),
    (np.array([0, 1]), np.array([[1], [-2]]), "codes must be >= 0"),
    (np.array([0, 1]), np.array([1, 2]), r"codes must be an integer \[N, M\] array"),
])
def test_bad_tables_are_rejected(item_id, codes, match):
    with pytest.raises(ValueError, match=match):
        SemanticIDLookup.from_table(item_id, codes, n_items=4)


def test_spec_requires_levels_and_vocab_together():
    with pytest.raises(ValueError, match="semantic_id_levels and semantic_id_vocab"):
        FeatureSpec(n_items=4, semantic_id_levels=2)
    spec = FeatureSpec(n_items=4, semantic_id_levels=2, semantic_id_vocab=8)
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    names = [f.name for f in spec.history_record_features()]
    assert names[-2:] == ["hist_semantic_id_1", "hist_semantic_id_2"]
    assert "item_semantic_id_1" in [f.name for f in spec.example_record_features()]
    # no Semantic IDs: the record layouts are the old ones
    assert not [f for f in FeatureSpec(n_items=4).history_record_features() if "semantic" in f.name]


# -- write-tfrecords + the reader --------------------------------------------------------------
def test_written_codes_follow_each_item_through_the_cut(data_with_codes):
    spec = load_spec(data_with_codes)
    assert (spec.semantic_id_levels, spec.semantic_id_vocab) == (3, 8)
    n_batches = 0
    for features, _ in make_split_dataset(data_with_codes, "train", spec, batch_size=16):
        n_batches += 1
        assert "hist_semantic_id_1" not in features and "item_semantic_id_1" not in features
        item, hist = features["item_id"].numpy(), features["hist_item_id"].numpy()
        np.testing.assert_array_equal(features["item_semantic_id"].numpy(), _codes(item))
        sem = features["hist_semantic_id"].numpy()
        assert sem.shape == hist.shape + (3,)
        length = features["hist_length"].numpy()
        valid = np.arange(hist.shape[1])[None, :] < length[:, None]
        np.testing.assert_array_equal(sem[valid], _codes(hist[valid]))
        assert not sem[~valid].any()  # padding is 0
    assert n_batches > 1


def test_models_train_on_batches_that_carry_codes(data_with_codes):
    spec = load_spec(data_with_codes)
    model = DIN(spec, DINConfig(embedding_dim=8, recent_length=5, attention_units=(8,), mlp_units=(8,)))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(make_split_dataset(data_with_codes, "train", spec, batch_size=16), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_no_semantic_ids_flag_writes_the_old_layout(raw_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(raw_data / "raw", data / "raw")
    shutil.copy(raw_data / SEMANTIC_IDS, data / SEMANTIC_IDS)
    write_tfrecords.run(_args(["--data", str(data), "--no-semantic-ids"]))
    spec = load_spec(data)
    assert spec.semantic_id_levels == 0
    features, _ = next(iter(make_split_dataset(data, "train", spec, batch_size=4)))
    assert "hist_semantic_id" not in features and "item_semantic_id" not in features


def test_stale_table_names_the_item_and_row(raw_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(raw_data / "raw", data / "raw")
    items = np.arange(N_ITEMS)
    behaviors = pq.read_table(data / "raw" / "behaviors.parquet").to_pydict()
    missing = int(behaviors["item_id"][0])
    keep = items != missing
    save_semantic_ids(tmp_path / "old.npz", items[keep], _codes(items[keep]), {"codebook_size": 8})
    row = int(np.flatnonzero(np.asarray(behaviors["item_id"]) == missing)[0])
    with pytest.raises(ValueError, match=rf"item_id {missing} \(behaviors\.parquet row {row}\) has no Semantic ID"):
        write_tfrecords.run(_args(["--data", str(data), "--semantic-ids", str(tmp_path / "old.npz")]))
    assert not (data / "user_histories.tfrecord").exists()
    with pytest.raises(FileNotFoundError, match="--semantic-ids .*missing.npz not found"):
        write_tfrecords.run(_args(["--data", str(data), "--semantic-ids", str(tmp_path / "missing.npz")]))


def test_inline_histories_carry_codes_too(tmp_path):
    spec = FeatureSpec(n_items=10, max_history_length=2, semantic_id_levels=2, semantic_id_vocab=10)
    lookup = SemanticIDLookup.from_table(np.arange(10), np.stack([np.arange(10), 9 - np.arange(10)], 1), 10)
    hist = {"hist_item_id": [4, 7, 1], "hist_behavior_type": [0, 1, 0], "hist_timestamp": [10, 20, 30],
            "hist_duration": [0.0, 0.0, 0.0], "hist_amount": [0.0, 0.0, 0.0]}
    record = {"user_id": 1, "user_segment": 0, "item_id": 3, "request_timestamp": 30, "label": 1, **hist}
    record = lookup.with_codes(record, "item_id", "item_semantic_id", str)
    record = lookup.with_codes(record, "hist_item_id", "hist_semantic_id", str)
    write_examples(tmp_path / "e.tfrecord", spec, [record], inline_history=True)
    features, _ = next(iter(make_dataset(tmp_path / "e.tfrecord", spec, inline_history=True, batch_size=1)))
    # cut strictly before t=30, most recent 2: items 4, 7
    np.testing.assert_array_equal(features["hist_item_id"].numpy(), [[4, 7]])
    np.testing.assert_array_equal(features["hist_semantic_id"].numpy(), [[[4, 5], [7, 2]]])
    np.testing.assert_array_equal(features["item_semantic_id"].numpy(), [[3, 6]])
    # the writer checks the codes against the spec's vocabulary
    bad = dict(record, hist_semantic_id_2=[5, 2, 10])
    with pytest.raises(RecordValidationError, match=r"field 'hist_semantic_id_2': id 10 at position 2 is outside "
                                                    r"\[0, 10\) \(FeatureSpec.semantic_id_vocab=10\)"):
        write_examples(tmp_path / "bad.tfrecord", spec, [bad], inline_history=True)


def test_spec_with_codes_over_files_without_them_is_a_clear_error(data_with_codes, raw_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(raw_data / "raw", data / "raw")
    write_tfrecords.run(_args(["--data", str(data), "--no-semantic-ids"]))
    with_codes = load_spec(data_with_codes)
    # a missing list field parses as empty: caught, not gathered out of line
    with pytest.raises(ValueError, match=r"values of 'hist_semantic_id_1' for \d+ behaviors; the files were "
                                         r"written with another spec"):
        load_user_histories(data / "user_histories.tfrecord", with_codes)
    # inline histories too (examples carrying sequences but no codes)
    spec = FeatureSpec(n_items=10, semantic_id_levels=1, semantic_id_vocab=4)
    plain = FeatureSpec(n_items=10)
    record = {"user_id": 1, "user_segment": 0, "item_id": 3, "request_timestamp": 30, "label": 1,
              "hist_item_id": [4], "hist_behavior_type": [0], "hist_timestamp": [10], "hist_duration": [0.0],
              "hist_amount": [0.0], "item_semantic_id_1": 2}
    write_examples(tmp_path / "e.tfrecord", plain, [{k: v for k, v in record.items() if "semantic" not in k}],
                   inline_history=True)
    with pytest.raises(CorruptTFRecordError, match="item_semantic_id_1"):  # the target's code is required
        make_dataset(tmp_path / "e.tfrecord", spec, inline_history=True)
    layout = [f.name for f in spec.example_record_features(inline_history=True)]
    partial = {k: v for k, v in record.items() if k in layout}  # target code present, history codes absent
    fields = [f for f in spec.example_record_features(inline_history=True) if f.name != "hist_semantic_id_1"]
    with tf.io.TFRecordWriter(str(tmp_path / "p.tfrecord")) as w:
        w.write(encode_record(validate_record(0, partial, fields, spec), fields))
    with pytest.raises(ValueError, match=r"0 values of 'hist_semantic_id_1' for 1 behaviors"):
        make_dataset(tmp_path / "p.tfrecord", spec, inline_history=True)
