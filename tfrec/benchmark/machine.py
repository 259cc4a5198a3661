"""Which machine ran a cell, and how fast it was: so cost columns from different machines can be compared.

The grid runs across sessions, and a session's 2-core box is not always equally fast: on 2026-12-03 the
same cells (same code, same data, the same AUC to 6 digits) took 1.5-2x the wall time they took on the
box of the session before, with nothing else running on either. A cost column that mixes cells from two
such boxes compares machines, not models.

So before every cell the grid times ``speed_probe``: a fixed, small training step in the shape of this
zoo's work (embedding gathers, target attention over 50 behaviors, an MLP, its gradient and an update;
batch 256), and keeps the figure with the machine's description in ``machine.json`` beside the cell's
``cell.json``. The tables scale every time-based cost of a cell by ``REFERENCE_PROBE_MS /`` the median
probe of its machine session (``with_session_speeds``, ``scale_cost``): the figure it would show on the
reference machine.
That is a first-order correction (a model whose time goes to other ops than the probe's scales
differently), and the tables say how far the cells' probes spread. Counts (parameters, bytes, RSS) are
not scaled.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

MACHINE_FILE = "machine.json"
# speed_probe's ms per step on the reference machine: the 2-core AMD EPYC box of 2026-12-03, the median
# of the probes before its 52 grid cells (2.07-6.14 ms/step; 16 probes with the box idle: median 2.97)
REFERENCE_PROBE_MS = 2.65
# cost fields measured in time: ms and seconds scale with the probe, rates against it
TIME_FIELDS = ("train_seconds", "user_tower_ms", "user_tower_ms_p90", "score_ms", "score_ms_p90")
RATE_FIELDS = ("train_examples_per_second", "train_examples_per_second_steady")


def machine_info() -> dict:
    """The CPU model, its count and clock, the kernel, and this boot's id (one id = one machine session)."""
    info = {"cpu_model": None, "cpus": os.cpu_count(), "mhz": None, "bogomips": None,
            "platform": platform.platform(), "boot_id": None}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and info["cpu_model"] is None:
                info["cpu_model"] = value
            elif key == "cpu MHz" and info["mhz"] is None:
                info["mhz"] = float(value)
            elif key == "bogomips" and info["bogomips"] is None:
                info["bogomips"] = float(value)
        info["boot_id"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError):
        pass  # not Linux: the probe alone still scales the costs
    return info


def speed_probe(steps: int = 100, repeats: int = 5) -> float:
    """ms per step of a fixed training step (the fastest of ``repeats`` timings of ``steps`` steps, after a
    warm-up that traces it); larger = slower machine. Deterministic inputs (seed 0); about 1-2 s."""
    import tensorflow as tf

    gen = tf.random.Generator.from_seed(0)
    table = tf.Variable(gen.normal([5000, 16]))
    w1, w2 = tf.Variable(gen.normal([48, 64]) * 0.1), tf.Variable(gen.normal([64, 1]) * 0.1)
    history = gen.uniform([256, 50], maxval=5000, dtype=tf.int32)
    candidate = gen.uniform([256], maxval=5000, dtype=tf.int32)
    labels = tf.cast(gen.uniform([256]) < 0.3, tf.float32)
    variables = (table, w1, w2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            h, q = tf.gather(table, history), tf.gather(table, candidate)  # [B, 50, 16], [B, 16]
            weights = tf.nn.softmax(tf.einsum("bld,bd->bl", h, q))
            pooled = tf.einsum("bl,bld->bd", weights, h)
            x = tf.concat([pooled, q, pooled * q], -1)
            logit = tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2)[:, 0]
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logit))
        for var, grad in zip(variables, tape.gradient(loss, variables)):
            var.assign_sub(0.01 * tf.convert_to_tensor(grad))
        return loss

    for _ in range(10):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        float(step())  # wait for the last step
        best = min(best, (time.perf_counter() - start) / (steps + 1))
    return best * 1e3


def measure() -> dict:
    """``machine_info()`` plus ``probe_ms`` (``speed_probe()``) and when it was taken."""
    return {**machine_info(), "probe_ms": round(speed_probe(), 4),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def with_session_speeds(cells: list) -> list:
    """``cells`` (``CellStore.cells()`` dicts) with ``machine["session_probe_ms"]`` added: the median probe
    of every cell measured in the same machine session (``boot_id``). One probe varies by about +-20% on
    a shared box (measured: 2.5-4.1 ms/step in 16 idle probes on one box); the session's median is what
    scales its cells. Returns new dicts for the cells with a machine, the others unchanged."""
    import statistics

    probes = {}
    for cell in cells:
        m = cell.get("machine") or {}
        if m.get("boot_id") and m.get("probe_ms"):
            probes.setdefault(m["boot_id"], []).append(float(m["probe_ms"]))
    medians = {boot: statistics.median(values) for boot, values in probes.items()}
    out = []
    for cell in cells:
        m = cell.get("machine") or {}
        if m.get("boot_id") in medians:
            cell = {**cell, "machine": {**m, "session_probe_ms": medians[m["boot_id"]],
                                        "session_cells": len(probes[m["boot_id"]])}}
        out.append(cell)
    return out


def speed_factor(machine) -> float | None:
    """``REFERENCE_PROBE_MS /`` the machine's speed: its session's median probe (``with_session_speeds``)
    or, without one, the cell's own probe; None without a probe."""
    machine = machine or {}
    probe = machine.get("session_probe_ms") or machine.get("probe_ms")
    return REFERENCE_PROBE_MS / probe if probe and probe > 0 else None


def scale_cost(name: str, value, machine):
    """A cell's cost field ``name`` as the reference machine would show it (``value`` unchanged for counts,
    and for cells without a probe)."""
    factor = speed_factor(machine)
    if factor is None or value is None:
        return value
    if name in TIME_FIELDS:
        return value * factor
    if name in RATE_FIELDS:
        return value / factor
    return value
