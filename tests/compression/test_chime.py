import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.compression.conftest import N_TOPICS, T1, TINY
from tfrec.compression.chime import SequenceCompressor, sequence_dataset
from tfrec.compression.sequences import user_sequences
from tfrec.compression.stage import REPORT_FILE, VECTORS_FILE, compress, load_compressor
from tfrec.configs import CompressorConfig
from tfrec.data.user_vectors import UserVectors

INPUTS = ("item_id", "behavior_type", "label", "mask")


def _model(data, **changes):
    config = CompressorConfig(**{**TINY, **changes})
    return SequenceCompressor(data.spec, config, item_table=data.item_table if data.spec.item_features else None,
                              content_vectors=data.item_content.vectors)


def test_sequences_are_the_last_behaviors_before_the_boundary_right_padded(planted):
    h = planted.histories
    seqs = user_sequences(h, T1, 48, (1, 2, 3, 4))
    row = int(np.flatnonzero(h.user_ids == 7)[0])
    start, end = h.row_splits[row], h.row_splits[row + 1]
    ts, items, types = (h.sequences[k][start:end] for k in ("hist_timestamp", "hist_item_id", "hist_behavior_type"))
    before = ts < T1
    i = int(np.flatnonzero(seqs["user_id"] == 7)[0])
    n = int(before.sum())
    assert seqs["length"][i] == n == 40
    np.testing.assert_array_equal(seqs["item_id"][i, :n], items[before])
    np.testing.assert_array_equal(seqs["label"][i, :n], np.where(types[before] == 1, 1.0, -1.0))
    assert (seqs["item_id"][i, n:] == -1).all() and not seqs["mask"][i, n:].any()
    short = user_sequences(h, T1, 10, (1,), users=[7])
    np.testing.assert_array_equal(short["item_id"][0], items[before][-10:])  # the most recent 10
    positives = user_sequences(h, T1, 48, (1,), positives_only=True, users=[7])
    assert positives["length"][0] == int((types[before] == 1).sum()) and (positives["label"][0, :positives["length"][0]] == 1).all()


def test_no_position_sees_the_future(planted):
    model = _model(planted)
    seqs = user_sequences(planted.histories, T1, 48, (1, 2, 3, 4), users=[0, 1])
    batch = {k: tf.constant(seqs[k]) for k in INPUTS}
    changed = dict(seqs)
    changed["item_id"] = seqs["item_id"].copy()
    changed["item_id"][:, 20:40] = (seqs["item_id"][:, 20:40] + 1) % 120
    a = model(batch, training=False)
    b = model({k: tf.constant(changed[k]) for k in INPUTS}, training=False)
    np.testing.assert_allclose(a["z"].numpy()[:, :20], b["z"].numpy()[:, :20], atol=1e-5)
    np.testing.assert_array_equal(a["codes"].numpy()[:, :20], b["codes"].numpy()[:, :20])
    assert not np.allclose(a["z"].numpy()[:, 20:40], b["z"].numpy()[:, 20:40])


def test_ablations_are_config_switches(planted):
    seqs = user_sequences(planted.histories, T1, 48, (1, 2, 3, 4), users=[0, 1, 2])
    batch = {k: tf.constant(seqs[k]) for k in INPUTS}
    full = _model(planted)
    assert full.vector_dim == 12 and full.projector is not None and full.action is not None
    no_il = _model(planted, immediate_loss=False)
    assert float(no_il.losses_of(batch)["immediate"]) == 0.0 and float(full.losses_of(batch)["immediate"]) > 0
    no_icm = _model(planted, compression="mean_pool")
    assert no_icm.compression is None and no_icm.user_vectors(batch).shape == (3, 16)
    no_iam = _model(planted, adaptation=False)
    assert no_iam.projector is None and no_iam.content is None and no_iam.items.lookup is None
    learn = _model(planted, method="learn")
    assert learn.compression is None and learn.immediate_bias is None and learn.user_vectors(batch).shape == (3, 16)
    with pytest.raises(ValueError, match="compression"):
        CompressorConfig(compression="pca")
    with pytest.raises(ValueError, match="model_dim=384"):
        _model(planted, backbone="minilm")


def test_learn_vector_is_the_last_positions_state(planted):
    model = _model(planted, method="learn")
    seqs = user_sequences(planted.histories, T1, 48, (1,), positives_only=True, users=[3, 4])
    batch = {k: tf.constant(seqs[k]) for k in INPUTS}
    z = model(batch, training=False)["z"].numpy()
    v = model.user_vectors(batch).numpy()
    for i in range(2):
        np.testing.assert_allclose(v[i], z[i, seqs["length"][i] - 1], atol=1e-6)
    empty = {k: tf.constant(np.zeros_like(seqs[k][:1]) if k != "item_id" else -np.ones_like(seqs[k][:1]))
             for k in INPUTS}
    np.testing.assert_array_equal(model.user_vectors(empty).numpy(), 0.0)


def test_stage_writes_vectors_that_round_trip_and_the_codebook_report(planted, tmp_path):
    config = CompressorConfig(**{**TINY, "epochs": 1})
    later = T1 + 86400 + 1  # a second slice that also sees the recent views
    summary = compress(planted, config, tmp_path, t1=T1, boundaries=[T1, later])
    uv = UserVectors.load(tmp_path / VECTORS_FILE)
    assert uv.vectors.shape == (240, 2, 12) and list(uv.boundaries) == [T1, later]
    assert uv.name == "chime" and summary["vector_dim"] == 12
    # every level of every histogram sums to 1 (each user has behaviors before T1)
    np.testing.assert_allclose(uv.vectors[:, :, :8].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(uv.vectors[:, :, 8:].sum(-1), 1.0, atol=1e-5)
    # the rebuilt compressor gives the same vectors
    model = load_compressor(tmp_path, planted)
    seqs = user_sequences(planted.histories, later, config.max_length, config.positive_types)
    again = np.concatenate([model.user_vectors(b).numpy() for b in sequence_dataset(seqs, 64)])
    np.testing.assert_allclose(again, uv.vectors[:, 1], atol=1e-6)
    report = json.loads((tmp_path / REPORT_FILE).read_text())
    levels = report["codebooks"]["per_level"]
    assert [lv["codebook_size"] for lv in levels] == [8, 4]
    assert all(0 < lv["hit_ratio"] <= 1 and 1 <= lv["perplexity"] <= lv["codebook_size"] for lv in levels)
    assert report["codebooks"]["positions"] == 40 * report["train_users"]
    assert len(report["history"]["val_holistic"]) == 1 and report["eval_users"] > 0


def test_histograms_carry_the_planted_long_term_taste(planted, compressed):
    """The taste shows only in behaviors before T1: nearest-centroid on the vectors recovers it."""
    summary = json.loads((compressed / REPORT_FILE).read_text())
    uv = UserVectors.load(compressed / VECTORS_FILE)
    taste = np.load(planted.path / "taste.npy")[uv.user_id]
    x = uv.vectors[:, 0]
    train, test = np.arange(len(x)) % 2 == 0, np.arange(len(x)) % 2 == 1
    centroids = np.stack([x[train & (taste == k)].mean(0) for k in range(N_TOPICS)])
    predicted = np.argmin(((x[test][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (predicted == taste[test]).mean()
    assert accuracy > 0.8, (accuracy, summary["codebooks"])


def test_shipped_compressor_configs_load():
    from pipelines.common import load_yaml_config
    from tfrec import configs as configs_lib

    files = sorted((Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "compression").glob("*.yaml"))
    names = {f.stem: configs_lib.from_dict(CompressorConfig, load_yaml_config(f)) for f in files}
    assert set(names) >= {"chime", "chime-minilm", "chime-no-il", "chime-no-icm", "chime-no-iam", "learn"}
    assert names["chime"] == CompressorConfig(max_length=256, epochs=3)
    assert not names["chime-no-il"].immediate_loss and names["chime-no-icm"].compression == "mean_pool"
    assert not names["chime-no-iam"].adaptation and names["learn"].method == "learn"
    assert names["chime-minilm"].backbone == "minilm" and names["chime-minilm"].model_dim == 384


def test_stage_refuses_slices_before_t1_and_bad_fractions(planted, tmp_path):
    config = CompressorConfig(**TINY)
    with pytest.raises(ValueError, match="precedes t1"):
        compress(planted, config, tmp_path, t1=T1, boundaries=[T1 - 1, T1])
    with pytest.raises(ValueError, match="eval_fraction"):
        compress(planted, config, tmp_path, t1=T1, eval_fraction=1.0)
