"""Which ``tf.distribute`` strategy a process trains under: ``tfrec train --strategy`` + ``TF_CONFIG``.

Four strategies, one code path for every model (``tfrec.training.train`` builds, compiles and fits
inside ``strategy.scope()``; the input pipeline is a per-worker function, ``tfrec.distribute.data``):

* ``default``: one process, one device (today's behaviour; no ``TF_CONFIG`` needed).
* ``mirrored``: ``MirroredStrategy`` over this machine's GPUs, or, without any, over ``replicas``
  logical CPU devices (the CPU split with ``tf.config.set_logical_device_configuration``: the code
  path a GPU machine runs, tested on CPU).
* ``multi-worker``: ``MultiWorkerMirroredStrategy`` (synchronous data parallelism, ring all-reduce
  over gRPC). ``TF_CONFIG`` lists ``cluster.worker``; worker 0 is the chief (it writes the run). Each
  worker reads its own shards of user-sharded data (``tfrec write-tfrecords --num-shards``): its
  users' examples and only their histories.
* ``parameter-server``: ``ParameterServerStrategy`` (asynchronous; the coordinator -- task ``chief``
  -- runs ``model.fit`` and dispatches steps to the ``worker`` tasks; variables live on the ``ps``
  tasks, every variable of at least ``ps_min_shard_bytes`` -- the item / feature embedding tables --
  split row-wise across them by ``MinSizePartitioner``). ``worker`` and ``ps`` tasks only run a
  ``tf.distribute.Server`` (``Distribution.serve``) until the launcher stops them.

``TF_CONFIG`` is TensorFlow's standard JSON (``{"cluster": {"chief": [...], "worker": [...], "ps":
[...]}, "task": {"type": "worker", "index": 0}}``); ``tfrec launch`` writes one per local process,
a real cluster sets one per host (docs/distributed.md).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional

STRATEGIES = ("default", "mirrored", "multi-worker", "parameter-server")
MWMS_BYTES_PER_PACK = 32 << 20  # gradients all-reduced together in packs of up to 32 MiB (0: one collective each)
PS_MIN_SHARD_BYTES = 256 << 10  # TensorFlow's tutorial value: smaller variables stay whole on one PS


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in ``TF_CONFIG`` (type None when there is none)."""

    type: Optional[str]
    index: int
    cluster: Dict[str, List[str]]

    @classmethod
    def from_env(cls, env=None) -> "Task":
        raw = (os.environ if env is None else env).get("TF_CONFIG", "")
        if not raw.strip():
            return cls(None, 0, {})
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"TF_CONFIG is not valid JSON ({err}); expected e.g. "
                             '{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", '
                             '"index": 0}}') from None
        cluster = config.get("cluster") or {}
        task = config.get("task") or {}
        if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
            raise ValueError(f"TF_CONFIG 'cluster' must map job names to lists of host:port. Received: {cluster!r}")
        kind, index = task.get("type"), int(task.get("index", 0))
        if kind is not None and not 0 <= index < len(cluster.get(kind, [])):
            raise ValueError(f"TF_CONFIG task {kind}:{index} is not in its cluster {cluster}: set task.type to one "
                             f"of {sorted(cluster)} and task.index within its list")
        return cls(kind, index, {k: list(v) for k, v in cluster.items()})

    @property
    def n_workers(self) -> int:
        return len(self.cluster.get("worker", []))

    @property
    def n_ps(self) -> int:
        return len(self.cluster.get("ps", []))


@dataclasses.dataclass
class Distribution:
    """The strategy of this process and what its role implies.

    Attributes:
      name: one of ``STRATEGIES``.
      strategy: the ``tf.distribute.Strategy`` (None on a parameter-server ``worker`` / ``ps`` task,
        which only serves).
      task: this process's ``TF_CONFIG`` task.
      input_index, input_count: this process's input pipeline among all of them (multi-worker: its
        worker index among the workers; else 0 of 1): the user shards it reads.
    """

    name: str
    strategy: object
    task: Task
    input_index: int = 0
    input_count: int = 1

    @property
    def serves(self) -> bool:
        """A parameter-server ``worker`` / ``ps`` task: runs ``serve()`` instead of training."""
        return self.strategy is None

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run (model.json, final weights, TensorBoard logs)."""
        if self.name == "multi-worker":  # the chief task, or worker 0 when there is none (input pipeline 0)
            return self.input_index == 0
        return not self.serves

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    def scope(self):
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def serve(self) -> None:
        """Runs this ``worker`` / ``ps`` task's gRPC server until the process is stopped."""
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                      task_index=resolver.task_id, protocol=resolver.rpc_layer or "grpc", start=True)
        print(f"{resolver.task_type}:{resolver.task_id} serving on {self.task.cluster[resolver.task_type][resolver.task_id]}",
              flush=True)
        server.join()

    def describe(self) -> str:
        if self.name == "default":
            return "strategy: default (one process, one device)"
        if self.serves:
            return f"strategy: parameter-server, task {self.task.type}:{self.task.index} (serving)"
        extra = ""
        if self.name == "multi-worker":
            extra = f", worker {self.input_index} of {self.input_count}"
        elif self.name == "parameter-server":
            extra = f", coordinator of {self.task.n_workers} workers and {self.task.n_ps} parameter servers"
        return f"strategy: {self.name}, {self.replicas} replicas in sync{extra}"


def _logical_cpus(n: int) -> List[str]:
    """Splits the (first) CPU into ``n`` logical devices; must run before TensorFlow's runtime starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != n:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError as err:
            raise RuntimeError(f"--strategy mirrored --replicas {n}: TensorFlow's runtime already started with "
                               f"{len(current or [cpu])} CPU device(s); choose the strategy before running any op "
                               f"({err})") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")][:n]


def configure(name: str = "default", replicas: int = 0, ps_min_shard_bytes: int = PS_MIN_SHARD_BYTES,
              env=None) -> Distribution:
    """The ``Distribution`` of this process for ``--strategy name`` and ``TF_CONFIG``.

    Args:
      name: one of ``STRATEGIES``.
      replicas: ``mirrored`` only: the number of devices (0 = every GPU, or 2 logical CPUs without GPU).
      ps_min_shard_bytes: ``parameter-server`` only: variables at least this large are split across
        the parameter servers (``MinSizePartitioner``), at most one shard per server.
      env: the environment to read ``TF_CONFIG`` from (default ``os.environ``).

    Raises:
      ValueError: an unknown strategy, or a ``TF_CONFIG`` that does not fit it (the message says
        what to set).
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy {name!r} is not one of {', '.join(STRATEGIES)}")
    task = Task.from_env(env)
    if name in ("default", "mirrored") and task.type is not None and (task.n_workers > 1 or task.n_ps):
        raise ValueError(f"--strategy {name} trains in one process, but TF_CONFIG describes a cluster "
                         f"{task.cluster}: use --strategy multi-worker or parameter-server, or unset TF_CONFIG")
    import tensorflow as tf

    if name == "default":
        return Distribution(name, tf.distribute.get_strategy(), task)
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            devices = [f"/gpu:{i}" for i in range(len(gpus))][: replicas or None]
        else:
            devices = _logical_cpus(replicas or 2)
        return Distribution(name, tf.distribute.MirroredStrategy(devices), task)
    if name == "multi-worker":
        if task.type is None:
            raise ValueError("--strategy multi-worker needs TF_CONFIG with cluster.worker and this task "
                             "(`tfrec launch --workers N -- train ...` sets it on one machine; docs/distributed.md)")
        if task.type not in ("worker", "chief"):
            raise ValueError(f"--strategy multi-worker: TF_CONFIG task type {task.type!r} must be worker (or chief)")
        # the ring all-reduce on CPU; NCCL is chosen by AUTO on GPUs
        options = tf.distribute.experimental.CommunicationOptions(
            bytes_per_pack=MWMS_BYTES_PER_PACK,
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        has_chief = "chief" in task.cluster  # (then the chief is input pipeline 0, the workers 1..)
        index = 0 if task.type == "chief" else task.index + int(has_chief)
        count = int(has_chief) + task.n_workers
        return Distribution(name, strategy, task, input_index=index, input_count=count)
    # parameter-server
    if task.type is None or not task.n_ps or not task.n_workers or "chief" not in task.cluster:
        raise ValueError("--strategy parameter-server needs TF_CONFIG with cluster.chief (the coordinator), "
                         "cluster.worker and cluster.ps (`tfrec launch --workers N --ps M -- train ...` sets it on "
                         f"one machine; docs/distributed.md). Received cluster: {task.cluster}")
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")  # a lost worker fails its steps fast (they are retried)
    if task.type in ("worker", "ps"):
        return Distribution(name, None, task)
    if task.type != "chief":
        raise ValueError(f"--strategy parameter-server: TF_CONFIG task type {task.type!r} must be chief, worker or ps")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=int(ps_min_shard_bytes), max_shards=task.n_ps)
    strategy = tf.distribute.experimental.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
    return Distribution(name, strategy, task)


def variable_placement(model) -> dict:
    """Where the model's variables live: per variable its shape, bytes and shards (device, rows,
    bytes), and the bytes per device. The shards of a variable split by the partitioner
    (``<name>/part_<i>``) are one entry."""
    import re

    import numpy as np

    grouped, per_device = {}, {}
    for var in model.variables:
        name = var.name
        match = re.search(r"/part_(\d+)(:\d+)?$", name)
        base = name[: match.start()] if match else re.sub(r":\d+$", "", name)
        nbytes = int(np.prod(var.shape.as_list() or [1])) * var.dtype.size
        device = var.device or "(local)"
        shard = {"index": int(match.group(1)) if match else 0, "device": device,
                 "rows": int(var.shape[0]) if var.shape.rank else 1, "bytes": nbytes}
        grouped.setdefault(base, []).append((shard, var.shape.as_list()))
        per_device[device] = per_device.get(device, 0) + nbytes
    variables = []
    for base, parts in grouped.items():
        parts.sort(key=lambda p: p[0]["index"])
        shape = list(parts[0][1])
        if shape:
            shape[0] = sum(p[0]["rows"] for p in parts)
        variables.append({"name": base, "shape": shape, "bytes": sum(p[0]["bytes"] for p in parts),
                          "shards": [p[0] for p in parts]})
    return {"variables": variables, "bytes_per_device": per_device}


def placement_lines(placement: dict, top: int = 5) -> List[str]:
    """The log lines of ``variable_placement``: the largest variables with their shards, then the
    bytes on each device."""
    mb = lambda n: f"{n / 2**20:.2f} MB"  # noqa: E731
    lines = []
    for var in sorted(placement["variables"], key=lambda v: -v["bytes"])[:top]:
        shards = ", ".join(f"{_short(s['device'])} {s['rows']} rows {mb(s['bytes'])}" for s in var["shards"])
        lines.append(f"  {var['name']} {var['shape']} {mb(var['bytes'])} in {len(var['shards'])} shard(s): {shards}")
    per = ", ".join(f"{_short(d)} {mb(b)}" for d, b in sorted(placement["bytes_per_device"].items()))
    lines.append(f"  bytes per device: {per}")
    return lines


def _short(device: str) -> str:
    """``/job:ps/replica:0/task:1/device:CPU:0`` -> ``ps:1``."""
    if "/job:" not in device:
        return device
    fields = dict(part.split(":", 1) for part in device.strip("/").split("/") if ":" in part)
    return f"{fields.get('job')}:{fields.get('task')}"


__all__ = ["STRATEGIES", "PS_MIN_SHARD_BYTES", "Task", "Distribution", "configure", "variable_placement",
           "placement_lines"]
