"""CodebookHealth (DMQN): usage statistics, the per-epoch report in History / JSON / TensorBoard,
the temperature schedule and the dead-codeword restart, on a tiny DMQN."""
import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tfrec.callbacks.codebook_health import CodebookHealth, codebook_stats
from tfrec.configs import DMQNConfig, TrainConfig
from tfrec.data.spec import HIST_LENGTH, FeatureSpec
from tfrec.models import DMQN
from tfrec.testing import random_features
from tfrec.training import compile_model, train

SPEC = FeatureSpec(n_items=40, n_user_segments=3, max_history_length=16)
CONFIG = DMQNConfig(embedding_dim=8, num_codebooks=2, codebook_size=4, hstu_layers=1, short_term_length=5,
                    attention_units=(8,), mlp_units=(16,), time_bucket_days=(1.0, 7.0, 30.0, 90.0))
N, W, L = 2, 4, 12
BATCH, PROBE_BATCHES = 8, 2


def test_codebook_stats_golden():
    uniform, collapsed, mixed, unused = codebook_stats(np.array([[5, 5, 5, 5], [0, 9, 0, 0], [2, 1, 1, 0],
                                                                 [0, 0, 0, 0]]))
    assert uniform == pytest.approx({"hit_ratio": 1.0, "perplexity": 4.0, "dead": 0})
    assert collapsed == pytest.approx({"hit_ratio": 0.25, "perplexity": 1.0, "dead": 3})
    # p = (1/2, 1/4, 1/4): H = 1.5 ln 2, perplexity 2^1.5
    assert mixed == pytest.approx({"hit_ratio": 0.75, "perplexity": 2 ** 1.5, "dead": 1})
    assert unused == pytest.approx({"hit_ratio": 0.0, "perplexity": 1.0, "dead": 4})  # no behavior: no NaN
    assert codebook_stats(np.array([[3, 1]]))[0]["perplexity"] == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))


def _dataset(n=24, seed=0):
    features = random_features(SPEC, n, L, seed)
    labels = np.random.default_rng(seed).integers(0, 2, n).astype(np.float32)
    return features, tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH)


def _model(features, learning_rate=1e-3, **overrides):
    tf.keras.utils.set_random_seed(0)
    model = DMQN(SPEC, dataclasses.replace(CONFIG, **overrides))
    model({k: v[:2] for k, v in features.items()})  # build
    compile_model(model, learning_rate)
    model.run_eagerly = True  # no tracing: seconds instead of tens of seconds on 2 cores
    return model


def _probe_usage(model, features):
    """Inference codes of the probe batches (the first PROBE_BATCHES batches), as a histogram [N, W]."""
    probe = {k: v[:BATCH * PROBE_BATCHES] for k, v in features.items()}
    inputs, _ = model.quantizer_inputs(probe)
    codes = model.quantizer(inputs, training=False)["codes"].numpy()
    return np.stack([np.bincount(codes[:, j][codes[:, j] >= 0], minlength=W) for j in range(N)])


def test_report_in_history_and_json(tmp_path):
    features, ds = _dataset()
    model = _model(features)
    path = tmp_path / "health" / "codebook_health.json"
    health = CodebookHealth(ds, batches=PROBE_BATCHES, json_path=str(path))
    history = model.fit(ds, epochs=2, verbose=0, callbacks=[health]).history

    reports = json.loads(path.read_text())
    assert reports == health.reports and [r["epoch"] for r in reports] == [1, 2]
    valid = int(np.minimum(features[HIST_LENGTH][:BATCH * PROBE_BATCHES], L).sum())
    assert valid > 0
    for key in ("codebook0_hit_ratio", "codebook0_perplexity", "codebook0_dead", "codebook1_hit_ratio",
                "codebook1_perplexity", "codebook1_dead", "codebook_temperature"):
        assert len(history[key]) == 2, key
    for epoch, report in enumerate(reports):
        assert report["behaviors"] == valid and report["restarted"] == 0
        assert history["codebook_temperature"][epoch] == report["temperature"] == 1.0
        for j, book in enumerate(report["codebooks"]):
            usage = np.array(book["usage"])
            assert usage.shape == (W,) and usage.sum() == valid
            p = usage[usage > 0] / valid
            assert book["hit_ratio"] == pytest.approx((usage > 0).mean())
            assert book["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
            assert book["dead"] == (usage == 0).sum()
            for stat in ("hit_ratio", "perplexity", "dead"):
                assert history[f"codebook{j}_{stat}"][epoch] == pytest.approx(book[stat]), (epoch, j, stat)
    # the last report is the inference assignment of the probe batches after the last epoch
    np.testing.assert_array_equal(_probe_usage(model, features), [b["usage"] for b in reports[-1]["codebooks"]])


def test_temperature_schedule():
    features, ds = _dataset(n=8)
    model = _model(features, temperature=1.0)
    health = CodebookHealth(ds, batches=1, temperature_decay=0.5, temperature_min=0.3)
    seen = []
    probe = tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(float(model.quantizer.temperature.numpy())))
    history = model.fit(ds, epochs=3, verbose=0, callbacks=[health, probe]).history
    np.testing.assert_allclose(history["codebook_temperature"], [1.0, 0.5, 0.3], rtol=1e-6)
    np.testing.assert_allclose([r["temperature"] for r in health.reports], [1.0, 0.5, 0.3], rtol=1e-6)
    np.testing.assert_allclose(seen, [1.0, 0.5, 0.3], rtol=1e-6)  # set before each epoch's training


def _collapse(model):
    """Every behavior token and projection in the positive orthant, codeword 0 of each codebook huge
    along (1, ..., 1) and the others in the negative orthant: codeword 0 has the best score with
    every behavior (dot product and cosine alike), by a margin no Gumbel sample overturns."""
    for table in (model.item_embedding.weights[0], model.type_embedding.weights[0]):
        table.assign(tf.abs(table) + 0.01)
    q = model.quantizer
    q.projection.assign(tf.abs(q.projection))
    book = q.codebooks.numpy()
    book[:, 1:] = -np.abs(book[:, 1:])
    book[:, 0] = 100.0 / np.sqrt(book.shape[-1])
    q.codebooks.assign(book)


@pytest.mark.parametrize("reset", [True, False])
def test_dead_codewords_restart(reset):
    features, ds = _dataset(n=16)
    model = _model(features, learning_rate=0.0)
    _collapse(model)
    before = model.quantizer.codebooks.numpy()
    usage = _probe_usage(model, features)
    assert (usage[:, 1:] == 0).all() and (usage[:, 0] > 0).all()  # collapsed

    health = CodebookHealth(ds, batches=PROBE_BATCHES, dead_code_reset=reset)
    model.fit(ds, epochs=2, verbose=0, callbacks=[health])
    first, second = health.reports
    for book in first["codebooks"]:  # the first epoch: collapsed as served and in training (noise included)
        assert (book["dead"], book["perplexity"], book["train_dead"]) == (W - 1, 1.0, W - 1)
        assert sum(book["training_usage"]) == first["training_behaviors"] > 0
    after = model.quantizer.codebooks.numpy()
    stats = codebook_stats(health.observe()[0])
    if reset:
        # restarted at the start of epoch 2 (never after the last epoch), on observed behaviors
        assert (first["restarted"], second["restarted"]) == (N * (W - 1), 0)
        np.testing.assert_array_equal(after[:, 0], before[:, 0])
        np.testing.assert_allclose(np.linalg.norm(after[:, 1:], axis=-1), 100.0, rtol=1e-5)
        assert all(b["dead"] < W - 1 and b["perplexity"] > 1.5 for b in second["codebooks"]), second
        assert all(s["dead"] < W - 1 and s["perplexity"] > 1.5 for s in stats), stats
        slots = [v for v in model.optimizer.variables() if v.name.endswith("quantizer/codebooks:0")]
        assert len(slots) == 2  # Adam's m and v
    else:
        assert (first["restarted"], second["restarted"]) == (0, 0)
        np.testing.assert_array_equal(after, before)
        assert [s["dead"] for s in stats] == [W - 1] * N


def test_no_restart_after_the_last_epoch():
    # Validation, checkpoints and the saved weights must see the codewords the epoch trained.
    features, ds = _dataset(n=16)
    model = _model(features, learning_rate=0.0)
    _collapse(model)
    before = model.quantizer.codebooks.numpy()
    health = CodebookHealth(ds, batches=PROBE_BATCHES, dead_code_reset=True)
    model.fit(ds, epochs=1, verbose=0, callbacks=[health])
    assert health.reports[0]["restarted"] == 0 and health.reports[0]["codebooks"][0]["train_dead"] == W - 1
    np.testing.assert_array_equal(model.quantizer.codebooks.numpy(), before)


def test_restart_zeroes_the_optimizer_moments_of_restarted_codewords():
    features, ds = _dataset(n=16)
    model = _model(features, learning_rate=1e-3)
    _collapse(model)
    health = CodebookHealth(ds, batches=PROBE_BATCHES, dead_code_reset=True)
    health.set_model(model)
    model.fit(ds, epochs=1, verbose=0)  # creates Adam's moments (dead codewords get softmax gradients)
    slots = [v for v in model.optimizer.variables() if v.name.endswith("quantizer/codebooks:0")]
    assert len(slots) == 2 and all(np.abs(v.numpy()[:, 1:]).sum() > 0 for v in slots)
    # codeword 0 saturates the softmax, so its own moments may be exactly 0 on some CPUs: give it
    # known ones, so that "the live codeword keeps its moments" can fail
    for v in slots:
        value = v.numpy()
        value[:, 0] = 0.5
        v.assign(value)
    dead = np.zeros((N, W), bool)
    dead[:, 1:] = True
    health._zero_optimizer_slots(dead)
    for v in slots:
        np.testing.assert_array_equal(v.numpy()[:, 1:], 0.0)
        np.testing.assert_array_equal(v.numpy()[:, 0], 0.5)  # the live codeword keeps its moments


def test_a_resumed_fit_keeps_earlier_reports(tmp_path):
    features, ds = _dataset(n=16)
    model = _model(features, learning_rate=1e-3)
    path = tmp_path / "health.json"
    model.fit(ds, epochs=2, verbose=0, callbacks=[CodebookHealth(ds, batches=1, json_path=str(path))])
    model.fit(ds, epochs=3, initial_epoch=1, verbose=0, callbacks=[CodebookHealth(ds, batches=1, json_path=str(path))])
    assert [r["epoch"] for r in json.loads(path.read_text())] == [1, 2, 3]


def test_training_usage_counts_the_epochs_training_assignments():
    features, ds = _dataset(n=16)
    model = _model(features, learning_rate=0.0)
    health = CodebookHealth(ds, batches=1)
    model.fit(ds, epochs=1, verbose=0, callbacks=[health])
    valid = int(np.minimum(features["hist_length"], features["hist_item_id"].shape[1]).sum())
    report = health.reports[0]
    assert report["training_behaviors"] == valid  # every valid behavior once per codebook
    assert all(sum(b["training_usage"]) == valid for b in report["codebooks"])


def _event_scalars(directory):
    out = {}
    for f in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for v in event.summary.value:
                out.setdefault(v.tag, []).append(float(tf.make_ndarray(v.tensor)) if v.HasField("tensor")
                                                 else v.simple_value)
    return out


def _train(model, ds, out_dir):
    tf.config.run_functions_eagerly(True)  # seconds instead of tens of seconds of tracing
    try:
        return train(model, "dmqn", ds, out_dir, TrainConfig(epochs=1, batch_size=BATCH), verbose=0)
    finally:
        tf.config.run_functions_eagerly(False)


def test_train_writes_health_json_history_and_tensorboard(tmp_path):
    features, ds = _dataset(n=16)
    model = _model(features)
    _train(model, ds, tmp_path)
    (report,) = json.loads((tmp_path / "codebook_health.json").read_text())
    assert report["epoch"] == 1
    history = json.loads((tmp_path / "model.json").read_text())["history"]
    for j in range(N):
        for stat in ("hit_ratio", "perplexity", "dead"):
            assert history[f"codebook{j}_{stat}"] == [pytest.approx(report["codebooks"][j][stat])]
    assert history["codebook_temperature"] == [pytest.approx(report["temperature"])]
    scalars = _event_scalars(tmp_path / "tensorboard" / "train")
    assert scalars["epoch_codebook0_hit_ratio"] == [pytest.approx(report["codebooks"][0]["hit_ratio"])]
    assert scalars["epoch_codebook1_perplexity"] == [pytest.approx(report["codebooks"][1]["perplexity"], rel=1e-6)]


def test_train_an_unbuilt_model(tmp_path):
    """The `tfrec train` path (pipelines/train.py): build_model returns an unbuilt model, train fits it."""
    features, ds = _dataset(n=8)
    tf.keras.utils.set_random_seed(0)
    _train(DMQN(SPEC, CONFIG), ds, tmp_path)
    assert len(json.loads((tmp_path / "codebook_health.json").read_text())) == 1
