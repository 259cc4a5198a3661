"""CodebookHealth: per-epoch codebook usage report, temperature schedule and dead-codeword restart."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf


def codebook_stats(usage: np.ndarray) -> List[Dict[str, float]]:
    """Per codebook, from ``usage`` ``[N, W]`` (behaviors assigned to each codeword).

    * ``hit_ratio``: the fraction of the W codewords used at least once;
    * ``perplexity``: ``exp(H(p))`` of the usage distribution p (W = all used equally, 1 = collapse);
    * ``dead``: codewords never used.
    """
    out = []
    for row in np.asarray(usage, np.float64):
        total = row.sum()
        p = row[row > 0] / total if total > 0 else np.zeros(0)
        out.append({"hit_ratio": float((row > 0).mean()), "perplexity": float(np.exp(-(p * np.log(p)).sum())),
                    "dead": int((row == 0).sum())})
    return out


class CodebookHealth(tf.keras.callbacks.Callback):
    """Watches a model's ``MultiCodebookQuantizer`` during ``fit`` (DMQN).

    At the end of every epoch:

    * **served usage**: the first ``batches`` batches of ``dataset`` (taken once, when training
      starts) are quantized as serving does (argmax, no noise); their per-codebook hit ratio,
      perplexity and dead codewords (``codebook_stats``) go into the epoch's logs as
      ``codebook<j>_hit_ratio`` / ``_perplexity`` / ``_dead`` (so the run's History, i.e.
      ``model.json``, and the TensorBoard callback after this one record them);
    * **training usage**: the quantizer's ``training_usage`` counter: for every behavior of the
      epoch's training steps, the codeword serving would choose (argmax, no noise); codewords
      that won none are ``codebook<j>_train_dead``. (The Gumbel samples themselves spread over
      every codeword, which hides a collapse: measured on ml-100k, 0 dead among the noisy
      training assignments while 41 of 64 codewords were dead at argmax.)
    * the full report (usage histograms included) is appended to ``json_path``.

    With ``dead_code_reset``, the codewords dead in the *training* usage of the epoch (no
    behavior of the whole epoch would be served by them, not just a miss in the probe sample)
    are restarted on observed projected behaviors
    (``MultiCodebookQuantizer.reset_dead_codewords``) at the start of the next epoch, so
    validation, checkpoints and the final weights always see trained codewords; the
    optimizer's slot rows of a restarted codeword (e.g. Adam's moments) are zeroed. No restart
    follows the last epoch. At the start of each epoch tau = max(``temperature_min``,
    tau_0 x decay^epoch), tau_0 being the quantizer's configured temperature.

    A resumed fit (``initial_epoch`` > 0) keeps the reports of earlier epochs from ``json_path``.

    The model needs a ``quantizer`` attribute (a MultiCodebookQuantizer) and
    ``quantizer_inputs(features) -> (inputs, _)``.
    """

    def __init__(self, dataset, batches: int = 8, json_path: Optional[str] = None, temperature_decay: float = 1.0,
                 temperature_min: float = 0.1, dead_code_reset: bool = False, sample_per_batch: int = 512,
                 seed: int = 0):
        super().__init__()
        # its batch hook reads no logs: Keras need not copy them to numpy every step
        self._supports_tf_logs = True
        if batches < 1:
            raise ValueError(f"CodebookHealth needs batches >= 1. Received: batches={batches}")
        self.dataset = dataset
        self.batches = int(batches)
        self.json_path = Path(json_path) if json_path else None
        self.temperature_decay = float(temperature_decay)
        self.temperature_min = float(temperature_min)
        self.dead_code_reset = bool(dead_code_reset)
        self.sample_per_batch = int(sample_per_batch)
        self.seed = int(seed)
        self.reports: List[dict] = []
        self._probe = None
        self._pending = None  # (dead [N, W], projected) to restart at the next epoch's start
        self._tau = None  # the scheduled tau not yet set (the layer was not built)

    # -- the schedule and the restart -------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._probe = [batch[0] if isinstance(batch, tuple) else batch for batch in self.dataset.take(self.batches)]
        self._pending = None
        self.reports = []
        if self.json_path and self.json_path.exists():
            self.reports = json.loads(self.json_path.read_text())

    def on_epoch_begin(self, epoch, logs=None):
        q = self.model.quantizer
        if self.reports and self.reports[-1]["epoch"] > epoch:  # a resumed fit: drop what it redoes
            self.reports = [r for r in self.reports if r["epoch"] <= epoch]
        if self._pending is not None:
            dead, projected = self._pending
            self._pending = None
            restarted = q.reset_dead_codewords(dead, projected, seed=self.seed + epoch)
            self._zero_optimizer_slots(dead)
            if self.reports:
                self.reports[-1]["restarted"] = restarted
                self._write()
        if self.temperature_decay != 1.0:
            self._tau = max(self.temperature_min, q.initial_temperature * self.temperature_decay ** epoch)
        self._set_temperature()
        if q.built:
            q.training_usage.assign(tf.zeros_like(q.training_usage))

    def on_train_batch_begin(self, batch, logs=None):
        if self._tau is not None:  # a schedule the unbuilt layer could not take yet
            self._set_temperature()

    def _set_temperature(self):
        q = self.model.quantizer
        if self._tau is not None and q.built:
            q.temperature.assign(self._tau)
            self._tau = None

    def _zero_optimizer_slots(self, dead):
        """Zeroes the optimizer's slot rows (``<Optimizer>/<slot>/<codebooks>``) of restarted codewords."""
        optimizer = getattr(self.model, "optimizer", None)
        book = self.model.quantizer.codebooks
        name = book.name.split(":")[0]
        keep = tf.constant(~np.asarray(dead, bool)[..., None], book.dtype)
        for v in (optimizer.variables() if optimizer is not None else []):
            if v.shape == book.shape and v.name.split(":")[0].endswith("/" + name):
                v.assign(v * keep)

    # -- the report ---------------------------------------------------------------------------
    def observe(self):
        """``(usage [N, W], projected: N arrays [M, D])`` of serving's assignments on the probe."""
        q = self.model.quantizer
        rng = np.random.default_rng(self.seed + len(self.reports))
        usage = np.zeros([q.num_codebooks, q.codebook_size], np.int64)
        projected = [[] for _ in range(q.num_codebooks)]
        for features in self._probe:
            inputs, _ = self.model.quantizer_inputs(features)
            codes = q(inputs, training=False)["codes"].numpy()  # [B, N, L]
            for j in range(q.num_codebooks):
                c = codes[:, j]
                usage[j] += np.bincount(c[c >= 0], minlength=q.codebook_size)
            valid = np.flatnonzero(np.asarray(inputs["mask"]).reshape(-1))
            if len(valid):
                pick = rng.choice(valid, size=min(len(valid), self.sample_per_batch), replace=False)
                flat = tf.reshape(inputs["behaviors"], [-1, inputs["behaviors"].shape[-1]])
                h = q.project(tf.gather(flat, pick)[None]).numpy()[0]  # [N, M, D]
                for j in range(q.num_codebooks):
                    projected[j].append(h[j])
        projected = [np.concatenate(p) if p else np.zeros([0, q.codebooks.shape[-1]], np.float32) for p in projected]
        return usage, projected

    def on_epoch_end(self, epoch, logs=None):
        q = self.model.quantizer
        usage, projected = self.observe()
        stats = codebook_stats(usage)
        trained = np.round(q.training_usage.numpy()).astype(np.int64)
        train_dead = (trained == 0).sum(axis=1)
        report = {"epoch": epoch + 1, "temperature": float(q.temperature.numpy()), "behaviors": int(usage[0].sum()),
                  "training_behaviors": int(trained[0].sum()), "restarted": 0,
                  "codebooks": [{**s, "usage": usage[j].tolist(), "train_dead": int(train_dead[j]),
                                 "training_usage": trained[j].tolist()} for j, s in enumerate(stats)]}
        self.reports.append(report)
        last = epoch + 1 >= self.params.get("epochs", epoch + 1)
        if self.dead_code_reset and train_dead.any() and trained.sum() > 0 and not last:
            self._pending = (trained == 0, projected)
        if logs is not None:
            for j, s in enumerate(stats):
                logs.update({f"codebook{j}_{k}": v for k, v in s.items()})
                logs[f"codebook{j}_train_dead"] = int(train_dead[j])
            logs["codebook_temperature"] = report["temperature"]
        self._write()

    def _write(self):
        if self.json_path:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.reports, indent=1))
