"""The tfrec CLI end to end on synthetic small data: every stage, files a user can check."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfrec import cli
from tfrec.metrics import ctr_metrics

CONFIGS = Path(__file__).resolve().parents[2] / "pipelines" / "configs"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("synthetic") / "data"
    assert cli.main(["synthetic", "--size", "small", "--out", str(data)]) == 0
    assert cli.main(["write-tfrecords", "--data", str(data)]) == 0
    assert cli.main(["cluster", "--data", str(data)]) == 0
    return data


@pytest.mark.parametrize("stage", sorted(cli.STAGES))
def test_every_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([stage, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tfrec " + stage in capsys.readouterr().out


def test_data_stages_write_the_documented_files(data_dir):
    for name in ("spec.json", "splits.json", "user_histories.tfrecord", "train.tfrecord", "test.tfrecord",
                 "groups.npz", "groups.balance.json"):
        assert (data_dir / name).exists(), name
    splits = json.loads((data_dir / "splits.json").read_text())
    assert splits["train"]["examples"] == 6000 and splits["test"]["true_prob"] is True
    groups = np.load(data_dir / "groups.npz")
    assert groups["table"].min() >= 1  # every known item got a real group; 0 stays reserved


def test_synthetic_report_and_version(tmp_path, capsys):
    assert cli.main(["synthetic", "--size", "small", "--report"]) == 0
    out = capsys.readouterr().out
    for row in ("oracle AUC", "| intensity |", "| misalignment |", "SIM hard", "DIN-Full"):
        assert row in out, row
    # v1 stays reproducible from the CLI, and has no report (its truth has no separate terms).
    assert cli.main(["synthetic", "--size", "small", "--version", "v1", "--out", str(tmp_path / "v1")]) == 0
    meta = json.loads((tmp_path / "v1" / "raw" / "dataset.json").read_text())
    assert meta["generator"] == "v1" and meta["name"] == "synthetic-small-v1"
    assert cli.main(["synthetic", "--size", "small", "--version", "v1", "--report"]) == 2
    assert "--version v2" in capsys.readouterr().err


def test_train_evaluate_predict_export(data_dir, tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "dmgin", "--data", str(data_dir), "--out", str(run), "--epochs", "1",
                     "--set", "hstu_layers=1", "--verbose", "0"]) == 0
    assert (run / "model.json").exists() and any((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert any((run / "checkpoints").iterdir())

    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir)]) == 0
    result = json.loads((run / "eval-test.json").read_text())
    for key in ("model", "dataset", "auc", "gauc", "logloss", "n_examples", "n_users"):
        assert key in result
    assert result["model"] == "dmgin" and result["dataset"] == "synthetic-small"
    assert result["n_examples"] == 3000 and result["n_users"] == 300
    assert result["oracle"]["auc"] > 0.75

    preds = tmp_path / "preds.csv"
    assert cli.main(["predict", "--run", str(run), "--data", str(data_dir), "--out", str(preds)]) == 0
    with open(preds) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3000 and set(rows[0]) == {"user_id", "label", "prediction"}
    recomputed = ctr_metrics([int(r["user_id"]) for r in rows], [int(float(r["label"])) for r in rows],
                             [float(r["prediction"]) for r in rows])
    assert recomputed["auc"] == pytest.approx(result["auc"], abs=1e-6)
    assert recomputed["gauc"] == pytest.approx(result["gauc"], abs=1e-6)

    base = tmp_path / "saved_models"
    assert cli.main(["export", "--run", str(run), "--export-base", str(base)]) == 0
    assert cli.main(["export", "--run", str(run), "--export-base", str(base)]) == 0
    assert sorted(p.name for p in (base / "dmgin").iterdir()) == ["1", "2"]
    loaded = tf.saved_model.load(str(base / "dmgin" / "2"))
    assert set(loaded.signatures) == {"user_tower", "score", "serving_default"}


def test_train_dmqn_writes_the_codebook_report(data_dir, tmp_path):
    run = tmp_path / "dmqn"
    assert cli.main(["train", "--model", "dmqn", "--data", str(data_dir), "--out", str(run), "--epochs", "1",
                     "--config", str(CONFIGS / "dmqn.yaml"), "--set", "codebook_size=8", "--set", "hstu_layers=1",
                     "--set", "health_batches=2", "--verbose", "0"]) == 0
    report = json.loads((run / "codebook_health.json").read_text())
    assert [r["epoch"] for r in report] == [1] and len(report[0]["codebooks"]) == 2
    for book in report[0]["codebooks"]:
        assert len(book["usage"]) == 8 and sum(book["usage"]) == report[0]["behaviors"] > 0
        assert 1.0 <= book["perplexity"] <= 8.0 and book["dead"] == 8 - sum(u > 0 for u in book["usage"])
    history = json.loads((run / "model.json").read_text())["history"]
    assert history["codebook0_hit_ratio"] == [report[0]["codebooks"][0]["hit_ratio"]]
    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir)]) == 0
    assert json.loads((run / "eval-test.json").read_text())["model"] == "dmqn"


def test_train_siren_reads_the_item_vectors_and_adapts_the_bucket_range(data_dir, tmp_path, capsys):
    # no semantic_ids.npz in this directory: a clear one-line error, then a soft-GSU SIREN without SemIDs
    assert cli.main(["train", "--model", "siren", "--data", str(data_dir), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "semantic-ids" in err and "Traceback" not in err
    run = tmp_path / "siren"
    assert cli.main(["train", "--model", "siren", "--data", str(data_dir), "--out", str(run), "--epochs", "1",
                     "--config", str(CONFIGS / "siren.yaml"), "--set", "semantic_id=false", "--set",
                     "history_length=64", "--set", "gsu_k=8", "--verbose", "0"]) == 0
    from tfrec.training import load_trained

    model, info = load_trained(run)
    assert info["config"]["content_dim"] > 0
    low, high = model.buckets.similarity_range.numpy()  # adapted to the data, restored from the weights
    assert low < high and not np.allclose([low, high], [-1.0, 1.0])
    assert cli.main(["evaluate", "--run", str(run), "--data", str(data_dir)]) == 0
    assert json.loads((run / "eval-test.json").read_text())["model"] == "siren"


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert cli.main(["train", "--model", "dmgin", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "spec.json not found" in err and "write-tfrecords" in err and "Traceback" not in err
    assert cli.main(["evaluate", "--run", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a trained run directory" in capsys.readouterr().err


def test_unknown_model_config_field_is_rejected(data_dir, tmp_path, capsys):
    code = cli.main(["train", "--model", "din", "--data", str(data_dir), "--out", str(tmp_path / "r"),
                     "--set", "hstu_depth=3"])
    assert code == 2
    assert "hstu_depth" in capsys.readouterr().err


def test_help_answers_without_importing_tensorflow():
    """`tfrec --help` and `tfrec STAGE --help` import neither TensorFlow nor other stages."""
    import subprocess
    import sys

    code = ("import sys\nfrom tfrec import cli\n"
            "for stage in [None] + sorted(cli.STAGES):\n"
            "    try:\n"
            "        cli.main(([stage] if stage else []) + ['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "    assert 'tensorflow' not in sys.modules, stage\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
    assert "cuda" not in out.stderr.lower()


def test_tf_log_noise_is_hidden_unless_asked(monkeypatch):
    import tfrec

    monkeypatch.setattr(tfrec, "TF_LOG_LEVEL_FROM_USER", False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with pytest.raises(SystemExit):
        cli.main(["--tf-log", "train", "--help"])
    assert __import__("os").environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert __import__("os").environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
