"""The notebook API (tfrec.open_data / build_model / evaluate / export) on a schema data set."""
import numpy as np
import pytest
import tensorflow as tf

import tfrec
from tests.export.test_schema_roundtrip import N_ITEMS, _write_raw


def test_notebook_api_end_to_end(tmp_path):
    _write_raw(tmp_path / "data" / "raw", np.random.default_rng(3))
    data = tfrec.write_tfrecords(tmp_path / "data")
    assert [f.name for f in data.spec.item_features] == ["category", "genres", "price", "mm"]
    assert data.item_table.n_items == N_ITEMS and data.groups is None
    reopened = tfrec.open_data(tmp_path / "data")
    assert reopened.spec == data.spec

    model = tfrec.build_model("din", data, embedding_dim=4)
    history = model.fit(data.dataset("train", batch_size=16, shuffle=True), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    metrics = tfrec.evaluate(model, data, "test")
    assert metrics["n_examples"] == 40 and 0.0 <= metrics["auc"] <= 1.0
    path = tfrec.export_model(model, tmp_path / "saved_models", "din")
    assert path.name == "1" and set(tf.saved_model.load(str(path)).signatures) == {
        "user_tower", "score", "serving_default"}


def test_dmgin_needs_the_group_table(tmp_path):
    _write_raw(tmp_path / "data" / "raw", np.random.default_rng(4))
    data = tfrec.write_tfrecords(tmp_path / "data")
    with pytest.raises(ValueError, match="item->group table"):
        tfrec.build_model("dmgin", data)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        tfrec.no_such_thing  # noqa: B018


def test_siren_through_the_notebook_api_reads_a_dense_item_feature(tmp_path):
    _write_raw(tmp_path / "data" / "raw", np.random.default_rng(5))
    data = tfrec.write_tfrecords(tmp_path / "data")
    with pytest.raises(ValueError, match="semantic-ids"):  # no semantic_ids.npz in this directory
        tfrec.build_model("siren", data, content_feature="mm")
    model = tfrec.build_model("siren", data, embedding_dim=4, content_feature="mm", semantic_id=False,
                              history_length=8, gsu_k=3)
    # build_model adapted the similarity range to the training split (no longer the default [-1, 1])
    assert not np.allclose(model.buckets.similarity_range.numpy(), [-1.0, 1.0])
    model.fit(data.dataset("train", batch_size=16, shuffle=True), epochs=1, verbose=0)
    assert 0.0 <= tfrec.evaluate(model, data, "test")["auc"] <= 1.0
