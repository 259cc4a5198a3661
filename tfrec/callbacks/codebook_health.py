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

    On the first ``batches`` batches of ``dataset`` (taken once, at the start of training) it
    quantizes every valid behavior at inference (argmax, no noise) at the end of each epoch and:

    * adds ``codebook<j>_hit_ratio``, ``codebook<j>_perplexity``, ``codebook<j>_dead`` and
      ``codebook_temperature`` to the epoch's logs, so the run's History (``model.json``) and
      TensorBoard callbacks after this one record them;
    * appends the full report (with each codebook's usage histogram) to ``json_path``;
    * with ``dead_code_reset``, restarts the dead codewords on observed behaviors
      (``MultiCodebookQuantizer.reset_dead_codewords``): the remedy when a codebook collapses;
    * at the start of each epoch sets tau = max(``temperature_min``, tau_0 x decay^epoch).

    The model needs a ``quantizer`` attribute (a MultiCodebookQuantizer) and
    ``quantizer_inputs(features) -> (inputs, _)``.
    """

    def __init__(self, dataset, batches: int = 8, json_path: Optional[str] = None, temperature_decay: float = 1.0,
                 temperature_min: float = 0.1, dead_code_reset: bool = False, sample_per_batch: int = 512,
                 seed: int = 0):
        super().__init__()
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
        self._tau0 = None

    def on_train_begin(self, logs=None):
        self._probe = [batch[0] if isinstance(batch, tuple) else batch for batch in self.dataset.take(self.batches)]
        # tau_0 is the configured one, so a resumed fit (initial_epoch > 0) continues the schedule
        self._tau0 = self.model.quantizer.initial_temperature
        if self.json_path and self.json_path.exists():
            self.json_path.unlink()

    def on_epoch_begin(self, epoch, logs=None):
        tau = max(self.temperature_min, self._tau0 * self.temperature_decay ** epoch)
        q = self.model.quantizer
        if self.temperature_decay != 1.0 and q.built:  # an unbuilt layer starts at tau_0 anyway
            q.temperature.assign(tau)

    def observe(self):
        """``(usage [N, W], projected: N arrays [M, D])`` over the probe batches."""
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
        tau = float(q.temperature.numpy())
        restarted = 0
        if self.dead_code_reset and any(s["dead"] for s in stats):
            restarted = q.reset_dead_codewords(usage == 0, projected, seed=self.seed + epoch)
        report = {"epoch": epoch + 1, "temperature": tau, "behaviors": int(usage[0].sum()),
                  "restarted": restarted, "codebooks": [{**s, "usage": usage[j].tolist()} for j, s in enumerate(stats)]}
        self.reports.append(report)
        if logs is not None:
            for j, s in enumerate(stats):
                logs.update({f"codebook{j}_{k}": v for k, v in s.items()})
            logs["codebook_temperature"] = tau
        if self.json_path:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.reports, indent=1))
