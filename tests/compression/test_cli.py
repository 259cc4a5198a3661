"""`tfrec chime-compress` then `tfrec train --user-vectors` and `tfrec evaluate`, as a user runs them."""
import json

import numpy as np

from tests.compression.conftest import T1, TINY
from tfrec import cli
from tfrec.data.user_vectors import UserVectors


def _sets(config):
    return [a for k, v in config.items() for a in ("--set", f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}")]


def test_chime_compress_train_evaluate(planted, tmp_path, capsys):
    out = tmp_path / "learn"
    later = T1 + 86400 + 1
    argv = ["chime-compress", "--data", str(planted.path), "--out", str(out), "--config",
            "pipelines/configs/compression/learn.yaml", "--t1", str(T1), "--boundaries", f"{T1},{later}",
            "--verbose", "0",
            *_sets({**TINY, "epochs": 1, "model_dim": 16})]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "learn: 240 users x 2 slice(s) -> 16-d vectors" in printed
    uv = UserVectors.load(out / "user_vectors.npz")
    assert uv.name == "learn" and list(uv.boundaries) == [T1, later] and uv.vectors.shape == (240, 2, 16)
    # the later slice adds only views, which LEARN (positive behaviors only) never reads
    np.testing.assert_allclose(uv.vectors[:, 0], uv.vectors[:, 1], atol=1e-6)
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "din", "--data", str(planted.path), "--out", str(run), "--epochs", "1",
                     "--user-vectors", str(out / "user_vectors.npz")]) == 0
    metrics = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "--run", str(run), "--data", str(planted.path), "--out", str(metrics)]) == 0
    assert 0.0 <= json.loads(metrics.read_text())["auc"] <= 1.0


def test_chime_compress_rejects_bad_config_keys(planted, tmp_path, capsys):
    assert cli.main(["chime-compress", "--data", str(planted.path), "--out", str(tmp_path), "--set", "layerz=2"]) == 2
    assert "layerz" in capsys.readouterr().err
    assert cli.main(["chime-compress", "--data", str(planted.path), "--out", str(tmp_path), "--set", "layers"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
