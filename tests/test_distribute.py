"""Distributed training on loopback: strategies from TF_CONFIG, the local launcher, user-sharded
input per worker, parameter-server sharding of the embedding tables, kill-and-resume, and the
runs' export (the same SavedModel contract as a single-process run)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from tfrec import cli
from tfrec.distribute import Task, configure
from tfrec.distribute.launch import LocalCluster, cluster_spec

ROOT = Path(__file__).resolve().parents[1]
FEW_STEPS = ["--epochs", "1", "--steps-per-epoch", "4", "--batch-size", "64", "--verbose", "2"]
DMGIN_SMALL = ["--set", "hstu_layers=1", "--set", "top_k_groups=8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic small, written in 4 user shards, with item groups."""
    data = tmp_path_factory.mktemp("dist") / "data"
    assert cli.main(["synthetic", "--size", "small", "--out", str(data)]) == 0
    assert cli.main(["write-tfrecords", "--data", str(data), "--num-shards", "4"]) == 0
    assert cli.main(["cluster", "--data", str(data), "--k", "8"]) == 0
    return data


def _kill_tasks(log_dir: Path) -> None:
    tasks = log_dir / "tasks.json"
    if tasks.exists():
        for task in json.loads(tasks.read_text())["tasks"].values():
            try:
                os.killpg(task["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _tfrec(args, timeout=240, log_dir=None, on_start=None):
    """Runs ``python -m tfrec.cli ARGS``; returns (exit code, output). Every task the launcher started
    is killed if the command times out."""
    proc = subprocess.Popen([sys.executable, "-m", "tfrec.cli", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        if on_start is not None:
            on_start(proc)
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        proc.send_signal(signal.SIGTERM)  # the launcher stops its tasks
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_dir is not None:
            _kill_tasks(Path(log_dir))
        raise
    return proc.returncode, out


def _info(run) -> dict:
    return json.loads((Path(run) / "model.json").read_text())


def _signature_specs(export_dir):
    loaded = tf.saved_model.load(str(export_dir))
    out = {}
    for name, fn in loaded.signatures.items():
        inputs = {k: (v.dtype.name, v.shape.as_list()) for k, v in fn.structured_input_signature[1].items()}
        outputs = {k: (v.dtype.name, v.shape.as_list()) for k, v in fn.structured_outputs.items()}
        out[name] = (inputs, outputs)
    return out


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """One-process DIN and DMGIN runs and their exports: the reference format."""
    base = tmp_path_factory.mktemp("single")
    exports = {}
    for model, extra in (("din", []), ("dmgin", DMGIN_SMALL)):
        run = base / model
        assert cli.main(["train", "--model", model, "--data", str(data), "--out", str(run), *FEW_STEPS, *extra]) == 0
        assert cli.main(["export", "--run", str(run), "--export-base", str(base / "saved")]) == 0
        exports[model] = _signature_specs(base / "saved" / model / "1")
    return exports


# -- TF_CONFIG and strategy choice -------------------------------------------------------------
def test_task_from_tf_config():
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"], "ps": ["127.0.0.1:3"], "chief": ["127.0.0.1:4"]}
    task = Task.from_env({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})})
    assert (task.type, task.index, task.n_workers, task.n_ps) == ("worker", 1, 2, 1)
    assert Task.from_env({}).type is None
    with pytest.raises(ValueError, match="not valid JSON"):
        Task.from_env({"TF_CONFIG": "{cluster"})
    with pytest.raises(ValueError, match="worker:2 is not in its cluster"):
        Task.from_env({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})})


def test_strategy_errors_say_what_to_set():
    with pytest.raises(ValueError, match="not one of default, mirrored"):
        configure("horovod", env={})
    with pytest.raises(ValueError, match="needs TF_CONFIG with cluster.worker"):
        configure("multi-worker", env={})
    two = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}})
    with pytest.raises(ValueError, match="use --strategy multi-worker or parameter-server"):
        configure("default", env={"TF_CONFIG": two})
    with pytest.raises(ValueError, match="cluster.chief .the coordinator., cluster.worker and cluster.ps"):
        configure("parameter-server", env={"TF_CONFIG": two})
    assert configure("default", env={}).is_chief


def test_cluster_spec_uses_distinct_loopback_ports():
    spec = cluster_spec(workers=2, ps=2)
    addresses = spec["worker"] + spec["ps"] + spec["chief"]
    assert len(set(addresses)) == 5 and all(a.startswith("127.0.0.1:") for a in addresses)
    with pytest.raises(ValueError, match="after --"):
        LocalCluster([], workers=2)


def test_input_files_per_worker(data, tmp_path):
    """A worker reads its shards of both the examples and the histories; without user shards it reads
    every file and every count-th record."""
    import shutil
    from types import SimpleNamespace

    from pipelines.distributed import input_files

    worker1 = SimpleNamespace(input_index=1, input_count=2)
    examples, histories, shard, line = input_files(data, "train", worker1)
    assert [Path(f).name for f in examples] == ["train-00001-of-00004.tfrecord", "train-00003-of-00004.tfrecord"]
    assert [Path(f).name for f in histories] == ["user_histories-00001-of-00004.tfrecord",
                                                 "user_histories-00003-of-00004.tfrecord"]
    assert shard is None and "user shards [1, 3] of 4" in line
    plain = tmp_path / "plain"
    shutil.copytree(data, plain)
    for f in plain.glob("*-of-*.tfrecord"):
        f.unlink()
    assert cli.main(["write-tfrecords", "--data", str(plain)]) == 0
    examples, histories, shard, line = input_files(plain, "train", worker1)
    assert Path(examples).name == "train.tfrecord" and Path(histories).name == "user_histories.tfrecord"
    assert shard == (2, 1) and "not sharded by user" in line
    with pytest.raises(ValueError, match="--num-shards"):
        input_files(data, "train", SimpleNamespace(input_index=0, input_count=8))


# -- strategies end to end (separate processes: each sets its devices / TF_CONFIG first) -------------
def test_mirrored_on_logical_cpus(data, tmp_path, single):
    run = tmp_path / "mirrored"
    code, out = _tfrec(["train", "--model", "din", "--data", data, "--out", run, "--strategy", "mirrored",
                        "--replicas", "2", *FEW_STEPS])
    assert code == 0, out
    assert "strategy: mirrored, 2 replicas in sync" in out
    info = _info(run)
    assert info["distribution"]["replicas"] == 2 and info["throughput"]["steps"] == 4
    assert cli.main(["export", "--run", str(run), "--export-base", str(tmp_path / "saved")]) == 0
    assert _signature_specs(tmp_path / "saved" / "din" / "1") == single["din"]


@pytest.mark.parametrize("model,extra", [("din", []), ("dmgin", DMGIN_SMALL)])
def test_multi_worker_reads_its_user_shards_and_exports(data, tmp_path, single, model, extra):
    run = tmp_path / "run"
    code, out = _tfrec(["launch", "--workers", "2", "--", "train", "--model", model, "--data", data, "--out", run,
                        *FEW_STEPS, *extra], log_dir=run / "launch")
    assert code == 0, out
    logs = {i: (run / "launch" / f"worker-{i}.log").read_text() for i in (0, 1)}
    assert "worker 0 of 2" in logs[0] and "user shards [0, 2] of 4" in logs[0]
    assert "worker 1 of 2" in logs[1] and "user shards [1, 3] of 4" in logs[1]
    info = _info(run)
    assert info["distribution"]["strategy"] == "multi-worker" and info["distribution"]["replicas"] == 2
    assert info["throughput"]["steps"] == 4 and not (run / "backup").exists()
    assert cli.main(["export", "--run", str(run), "--export-base", str(tmp_path / "saved")]) == 0
    assert _signature_specs(tmp_path / "saved" / model / "1") == single[model]


@pytest.mark.parametrize("model,extra", [("din", []), ("dmgin", DMGIN_SMALL)])
def test_parameter_server_shards_the_item_table_and_exports(data, tmp_path, single, model, extra):
    run = tmp_path / "run"
    code, out = _tfrec(["launch", "--workers", "2", "--ps", "1", "--", "train", "--model", model, "--data", data,
                        "--out", run, *FEW_STEPS, *extra], log_dir=run / "launch")
    assert code == 0, out
    assert "coordinator of 2 workers and 1 parameter servers" in out
    info = _info(run)
    assert info["distribution"]["strategy"] == "parameter-server"
    assert set(info["distribution"]["bytes_per_device"]) == {"/job:ps/replica:0/task:0/device:CPU:0"}
    assert info["throughput"]["steps"] == 4
    assert cli.main(["export", "--run", str(run), "--export-base", str(tmp_path / "saved")]) == 0
    assert _signature_specs(tmp_path / "saved" / model / "1") == single[model]


def test_parameter_server_splits_a_table_larger_than_a_shard(data, tmp_path):
    """With two parameter servers and a 16 KiB minimum shard, the 601 x 16 item table (38 KB) is
    split row-wise across both; the log and model.json show the shards; the single-process model
    restores the sharded checkpoint."""
    run = tmp_path / "run"
    code, out = _tfrec(["launch", "--workers", "1", "--ps", "2", "--", "train", "--model", "din", "--data", data,
                        "--out", run, *FEW_STEPS, "--ps-min-shard-bytes", "16384"], log_dir=run / "launch")
    assert code == 0, out
    table = [line for line in out.splitlines() if "item_embedding/id/embeddings" in line]
    assert table and "[601, 16]" in table[0] and "in 2 shard(s): ps:0 301 rows" in table[0] and "ps:1 300 rows" in table[0]
    per_ps = _info(run)["distribution"]["bytes_per_device"]
    assert len(per_ps) == 2 and all(v > 16384 for v in per_ps.values())
    from tfrec.training import load_trained

    model, _ = load_trained(run)
    assert model.item_embedding.id_embedding.embeddings.shape == (601, 16)


def test_killed_worker_restarts_and_the_job_resumes(data, tmp_path):
    """Multi-worker DIN, 3 epochs with a backup every 5 steps: worker 1 is killed once a backup
    exists; the launcher restarts the job, which resumes from the backup (not from step 0) and ends
    with metrics close to an uninterrupted run's."""
    args = ["--model", "din", "--data", data, "--epochs", "3", "--batch-size", "64", "--steps-per-epoch", "30",
            "--verbose", "2", "--backup-every", "5"]
    clean = tmp_path / "clean"
    code, out = _tfrec(["launch", "--workers", "2", "--", "train", *args, "--out", clean], log_dir=clean / "launch")
    assert code == 0, out

    run = tmp_path / "killed"
    killed = {}

    def kill_worker_1_after_a_backup(proc):
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            if list((run / "backup").glob("chief/ckpt-*.index")) and (run / "launch" / "tasks.json").exists():
                tasks = json.loads((run / "launch" / "tasks.json").read_text())["tasks"]
                os.kill(tasks["worker-1"]["pid"], signal.SIGKILL)
                killed["at"] = time.time()
                return
            time.sleep(0.05)

    code, out = _tfrec(["launch", "--workers", "2", "--max-restarts", "1", "--", "train", *args, "--out", run],
                       log_dir=run / "launch", on_start=kill_worker_1_after_a_backup)
    assert code == 0, out
    assert killed, "the job ended before a backup was written"
    assert "restarting the whole job" in out and "resuming the interrupted training from its backup" in out
    assert 0 < _info(run)["throughput"]["steps"] < 90  # the restarted fit ran only the steps left after the backup
    a, b = _info(clean)["history"], _info(run)["history"]
    assert abs(a["auc"][-1] - b["auc"][-1]) < 0.05 and abs(a["loss"][-1] - b["loss"][-1]) < 0.02


def test_a_worker_without_a_full_batch_is_refused_up_front(data):
    """Every worker checks every worker's share from splits.json, so all of them stop with the same
    clear error instead of one ending its data while the others wait in the all-reduce."""
    from types import SimpleNamespace

    from pipelines.common import data_sharding
    from pipelines.distributed import check_worker_examples

    two = SimpleNamespace(input_index=0, input_count=2, replicas=2)
    check_worker_examples(data, two, data_sharding(data), None, 256)  # 6,000 examples: fine
    with pytest.raises(ValueError, match=r"fewer training examples .* than one per-replica batch \(4000"):
        check_worker_examples(data, two, data_sharding(data), None, 8000)
    with pytest.raises(ValueError, match="than one per-replica batch"):
        check_worker_examples(data, two, None, (2, 0), 8000)


def _complete_backup(backup: Path) -> bool:
    """Whether ``backup`` holds a whole checkpoint, as the restore sees it (``tf.train.latest_checkpoint``:
    the ``checkpoint`` state file, written last, names one whose index exists). A kill between the index
    and the state file leaves nothing to restore (the run starts over), not what the test below kills for."""
    return any(tf.train.latest_checkpoint(str(state.parent)) for state in backup.rglob("checkpoint"))


def test_one_process_run_killed_mid_epoch_resumes_from_its_backup(data, tmp_path):
    """kill -9 of a one-process `tfrec train --backup-every 5`, then the same command again: it resumes
    from the backup (fewer steps than the whole run), finishes with metrics close to an uninterrupted
    run's (the tolerance of the multi-worker test above), and the backup is gone afterwards."""
    run = tmp_path / "run"
    common = ["--model", "din", "--data", data, "--epochs", "3", "--batch-size", "64", "--steps-per-epoch", "40",
              "--verbose", "2", "--backup-every", "5"]
    args = ["train", *common, "--out", run]
    code, out = _tfrec(["train", *common, "--out", tmp_path / "clean"])
    assert code == 0, out

    def kill_after_a_backup(proc):
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if _complete_backup(run / "backup"):
                proc.kill()
                return
            time.sleep(0.05)

    code, out = _tfrec(args, on_start=kill_after_a_backup)
    assert code == -signal.SIGKILL, out
    code, out = _tfrec(args)
    assert code == 0, out
    assert "resuming the interrupted training from its backup" in out
    assert 0 < _info(run)["throughput"]["steps"] < 120
    assert not (run / "backup").exists() and not (run / "backup.json").exists()
    a, b = _info(tmp_path / "clean")["history"], _info(run)["history"]
    print(f"uninterrupted auc {a['auc'][-1]:.4f} loss {a['loss'][-1]:.4f}; "
          f"killed and resumed auc {b['auc'][-1]:.4f} loss {b['loss'][-1]:.4f}")
    assert abs(a["auc"][-1] - b["auc"][-1]) < 0.05 and abs(a["loss"][-1] - b["loss"][-1]) < 0.02


def test_tasks_die_with_a_killed_launcher(data, tmp_path):
    """SIGKILL of the launcher (no cleanup runs) still ends every task: each set PR_SET_PDEATHSIG."""
    run = tmp_path / "run"
    log_dir = run / "launch"
    proc = subprocess.Popen([sys.executable, "-m", "tfrec.cli", "launch", "--workers", "1", "--ps", "1", "--", "train",
                             "--model", "din", "--data", str(data), "--out", str(run), "--epochs", "50",
                             "--verbose", "2"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline, pids = time.time() + 120, []
        while time.time() < deadline:
            tasks = log_dir / "tasks.json"
            chief = log_dir / "chief-0.log"
            if tasks.exists() and chief.exists() and "Epoch 1/50" in chief.read_text(errors="replace"):
                pids = [t["pid"] for t in json.loads(tasks.read_text())["tasks"].values()]
                break
            time.sleep(0.2)
        assert len(pids) == 3, "the job did not start training in time"
        proc.kill()
        proc.wait()

        def alive(pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            with open(f"/proc/{pid}/stat") as f:  # an exited child not yet reaped is a zombie: dead
                return f.read().split(")")[-1].split()[0] != "Z"

        deadline = time.time() + 20
        while time.time() < deadline and any(alive(p) for p in pids):
            time.sleep(0.2)
        assert not any(alive(p) for p in pids)
    finally:
        proc.kill()
        _kill_tasks(log_dir)


def test_resume_message_says_whether_the_backup_holds_a_whole_checkpoint(tmp_path, capsys):
    """The same training's backup: "resuming" only when its ``checkpoint`` state file names a checkpoint
    whose index exists; a run killed before its first whole checkpoint starts over, and says so."""
    from pipelines.distributed import check_backup
    from tfrec.training import BACKUP

    chief = tmp_path / BACKUP / "chief"
    chief.mkdir(parents=True)
    (tmp_path / f"{BACKUP}.json").write_text("same")
    (chief / "ckpt-1.data-00000-of-00001").write_bytes(b"partial")  # killed before the index and state file
    check_backup(tmp_path, "same", is_chief=True)
    assert "left no whole checkpoint" in capsys.readouterr().out
    tf.train.Checkpoint(step=tf.Variable(3)).write(str(chief / "ckpt-1"))
    (chief / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    check_backup(tmp_path, "same", is_chief=True)
    assert "resuming the interrupted training from its backup" in capsys.readouterr().out
    (chief / "ckpt-1.index").unlink()  # the state file names a checkpoint that is not there
    check_backup(tmp_path, "same", is_chief=True)
    assert "left no whole checkpoint" in capsys.readouterr().out
