"""`tfrec evaluate` / `tfrec predict` on a data set with a corrupt example file: a one-line error naming
the file and the record, or, with --skip-corrupt, the rest evaluated and the skipped file reported."""
import csv
import json

import pytest

from tests.data.test_tfrecord import append_garbage_record
from tfrec import cli

BAD_SHARD = "test-00001-of-00002.tfrecord"


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory):
    """(data dir, run dir, records of the bad shard): small synthetic data in 2 user shards, a din run
    trained one step on it, then a CRC-valid garbage record appended to the second test shard."""
    root = tmp_path_factory.mktemp("corrupt")
    data, run = root / "data", root / "run"
    assert cli.main(["synthetic", "--size", "small", "--out", str(data)]) == 0
    assert cli.main(["write-tfrecords", "--data", str(data), "--num-shards", "2"]) == 0
    assert cli.main(["train", "--model", "din", "--data", str(data), "--out", str(run), "--epochs", "1",
                     "--steps-per-epoch", "1", "--verbose", "0"]) == 0
    append_garbage_record(data / BAD_SHARD)
    n_bad = json.loads((data / "splits.json").read_text())["sharding"]["shard_counts"]["test"][1]
    return data, run, n_bad


@pytest.mark.parametrize("stage", ["evaluate", "predict"])
def test_corrupt_record_fails_naming_file_and_record(corrupt, stage, tmp_path, capsys):
    data, run, n_bad = corrupt
    argv = [stage, "--run", str(run), "--data", str(data)]
    argv += ["--out", str(tmp_path / "p.csv")] if stage == "predict" else []
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tfrec {stage}: error: TFRecord file {str(data / BAD_SHARD)!r} is corrupt after {n_bad} ")
    assert f"record {n_bad} (in records [1024, {n_bad + 1})) does not parse" in err
    assert "--skip-corrupt" in err and "utf-8" not in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_evaluate_skip_corrupt_reports_the_skipped_file(corrupt, tmp_path):
    data, run, n_bad = corrupt
    out = tmp_path / "eval.json"
    with pytest.warns(RuntimeWarning, match=BAD_SHARD):
        assert cli.main(["evaluate", "--run", str(run), "--data", str(data), "--out", str(out), "--skip-corrupt"]) == 0
    result = json.loads(out.read_text())
    assert result["n_examples"] == 3000 - n_bad
    skipped = result["skipped_corrupt"]
    assert (skipped["n_files"], skipped["n_readable_records"]) == (1, n_bad)
    assert skipped["files"][0]["path"] == str(data / BAD_SHARD) and f"record {n_bad}" in skipped["files"][0]["reason"]


def test_predict_skip_corrupt_reports_the_skipped_file(corrupt, tmp_path, capsys):
    data, run, n_bad = corrupt
    preds = tmp_path / "preds.csv"
    with pytest.warns(RuntimeWarning, match=BAD_SHARD):
        assert cli.main(["predict", "--run", str(run), "--data", str(data), "--out", str(preds), "--skip-corrupt"]) == 0
    with open(preds) as f:
        assert sum(1 for _ in csv.DictReader(f)) == 3000 - n_bad
    out = capsys.readouterr().out
    assert f"skipped 1 corrupt TFRecord file(s) and the {n_bad} readable records in them" in out
    assert str(data / BAD_SHARD) in out


def test_train_skip_corrupt_reports_the_skipped_file(corrupt, tmp_path, capsys):
    data, _, _ = corrupt
    bad = data / "train-00001-of-00002.tfrecord"
    append_garbage_record(bad)
    n_bad = json.loads((data / "splits.json").read_text())["sharding"]["shard_counts"]["train"][1]
    argv = ["train", "--model", "din", "--data", str(data), "--epochs", "1", "--steps-per-epoch", "1", "--verbose", "0"]
    assert cli.main([*argv, "--out", str(tmp_path / "refused")]) == 2
    assert f"TFRecord file {str(bad)!r} is corrupt after {n_bad} " in capsys.readouterr().err
    run = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="train-00001"):
        assert cli.main([*argv, "--out", str(run), "--skip-corrupt"]) == 0
    assert f"skipped 1 corrupt TFRecord file(s) and the {n_bad} readable records in them" in capsys.readouterr().out
    skipped = json.loads((run / "model.json").read_text())["skipped_corrupt"]
    assert skipped["n_files"] == 1 and skipped["files"][0]["path"] == str(bad)
