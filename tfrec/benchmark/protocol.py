"""The benchmark protocol: budgets and the time windows every model trains, stops and is tested on.

One protocol for every model (bench/PROTOCOL.md says it in words):

* **Time split.** The data set's own split is global in time (every test request at or after every
  training request). The training examples nearest the test window are the *training window*: at
  most ``train_examples`` of them (the most recent), of which the latest ``valid_fraction`` (by request
  time) are the *validation window*. The test window is the first ``test_examples`` test requests.
  Windows are half-open intervals of request time, ``[start, end)``: a request time shared by several
  examples never straddles two windows (ties go to the later window, so the validation window may hold
  a few more than its share and the training window a few fewer; the training window's first second
  is kept whole, so that window may exceed its cap by a few), and a training example at the test
  window's first second is dropped. So: train < validation < test in time, with no overlap.
* **Early stopping.** Up to ``max_epochs`` epochs; after each, the exact AUC on the validation window;
  training stops after ``patience`` epochs without a better one and the best epoch's weights are kept.
* **Learning rate.** Every row runs the same grid ``learning_rates`` on seed 0; the rate with the best
  validation AUC is the row's rate on that data set, for every seed. A paper-table row (``rate_from``
  in ``zoo``) takes its base row's rate instead and runs no tuning cells.
* **Seeds** ``seeds``; batch ``batch_size``; each model at its own config (the same embedding size,
  16, for all unless a paper's setting is the point).

``grid`` is the budget sized for the whole grid on a 2-core box (bench/PROTOCOL.md has the measured
wall time); ``full`` is the same protocol without example caps and with more epochs, what a team with
real hardware runs; ``smoke`` is a minutes-long check (tests, ``synthetic-small``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Budget:
    """How much data and training every cell gets (the same for every row).

    Attributes:
      name: ``smoke`` | ``grid`` | ``full``.
      train_examples: the training window's size cap (training + validation examples; None = all).
      valid_fraction: the share of the training window (its latest requests) held out for validation.
      test_examples: the test window's size cap (the earliest test requests; None = all).
      max_epochs: the most epochs a cell trains.
      patience: epochs without a better validation AUC before stopping.
      learning_rates: the learning-rate grid, run on seed 0 of every row that tunes its own rate.
      seeds: the model seeds.
      batch_size: the training batch.
      timing_calls: calls per signature when timing the exported SavedModel.
    """

    name: str
    train_examples: Optional[int]
    valid_fraction: float
    test_examples: Optional[int]
    max_epochs: int
    patience: int
    learning_rates: tuple
    seeds: tuple
    batch_size: int = 256
    timing_calls: int = 50

    def describe(self) -> str:
        cap = lambda n: "all" if n is None else f"{n:,}"  # noqa: E731
        return (f"budget {self.name}: training window {cap(self.train_examples)} examples (latest "
                f"{self.valid_fraction:.0%} = validation), test window {cap(self.test_examples)}, up to "
                f"{self.max_epochs} epoch(s), patience {self.patience}, learning rates "
                f"{', '.join(f'{lr:g}' for lr in self.learning_rates)} (chosen on seed 0), seeds "
                f"{', '.join(map(str, self.seeds))}, batch {self.batch_size}")


BUDGETS = {
    "smoke": Budget("smoke", train_examples=3_000, valid_fraction=0.2, test_examples=1_000, max_epochs=1, patience=1,
                    learning_rates=(2e-3,), seeds=(0,), timing_calls=10),
    "grid": Budget("grid", train_examples=30_000, valid_fraction=0.1, test_examples=10_000, max_epochs=2, patience=1,
                   # 1e-2 since 2026-12-04: 73 of 80 rows (4 data sets) chose 3e-3, the grid's top, and with 1e-2
                   # added 17 of synthetic-small's 20 rows chose it (bench/PROTOCOL.md, item 4)
                   learning_rates=(1e-3, 3e-3, 1e-2), seeds=(0, 1, 2)),
    "full": Budget("full", train_examples=None, valid_fraction=0.1, test_examples=None, max_epochs=10, patience=2,
                   learning_rates=(3e-4, 1e-3, 3e-3), seeds=(0, 1, 2), timing_calls=200),
}


def budget(name: str, **changes) -> Budget:
    """Budget ``name`` with ``changes`` (e.g. ``seeds``); refuses an unknown name and repeated seeds."""
    if name not in BUDGETS:
        raise ValueError(f"--budget: unknown budget {name!r}; budgets: {', '.join(BUDGETS)}")
    seeds = tuple(changes.get("seeds", BUDGETS[name].seeds))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated or not seeds:
        raise ValueError(f"--seeds: give each seed once (repeated: {repeated})" if repeated else "--seeds: none given")
    return dataclasses.replace(BUDGETS[name], **changes)


def budget_ingredients(plan: Budget) -> dict:
    """The budget's fields a cell's result depends on (not its name, seed list or learning-rate grid)."""
    return {k: v for k, v in dataclasses.asdict(plan).items() if k not in ("name", "seeds", "learning_rates")}


def choose_learning_rate(valid_auc: dict) -> float:
    """The protocol's rate: the best validation AUC on the tuning seed (``{rate: auc}``; a missing or NaN
    AUC counts as the worst); ties go to the smaller rate."""
    def score(lr):
        auc = valid_auc[lr]
        return -(auc if isinstance(auc, (int, float)) and auc == auc else float("-inf")), lr

    return min(valid_auc, key=score)


@dataclass(frozen=True)
class Windows:
    """Request-time windows, each ``[start, end)`` (None = unbounded), and their example counts."""

    train_start: Optional[int]
    valid_start: int
    test_start: int
    test_end: Optional[int]
    n_train: int
    n_valid: int
    n_test: int

    def train(self) -> dict:
        return {"min_request_timestamp": self.train_start, "max_request_timestamp": self.valid_start}

    def valid(self) -> dict:
        return {"min_request_timestamp": self.valid_start, "max_request_timestamp": self.test_start}

    def test(self) -> dict:
        return {"min_request_timestamp": None, "max_request_timestamp": self.test_end}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def time_windows(train_times, test_times, plan: Budget) -> Windows:
    """The training / validation / test windows of one data set under ``plan`` (see the module doc).

    Args:
      train_times: request times of the data set's training split.
      test_times: request times of its test split.

    Raises:
      ValueError: when a window would be empty.
    """
    train = np.sort(np.asarray(train_times, np.int64))
    test = np.sort(np.asarray(test_times, np.int64))
    if train.size == 0 or test.size == 0:
        raise ValueError(f"time_windows: the training split has {train.size} and the test split {test.size} "
                         "examples; both must have some")
    test_start = int(test[0])
    train = train[train < test_start]  # a training request at or after the first test second is dropped
    if plan.train_examples is not None and train.size > plan.train_examples:
        train = train[train >= train[train.size - plan.train_examples]]  # (the first second's ties all stay)
    n_valid = max(1, int(round(plan.valid_fraction * train.size)))
    valid_start = int(train[train.size - n_valid])
    train_start = int(train[0]) if plan.train_examples is not None else None
    n_train = int(np.sum(train < valid_start))
    n_valid = int(train.size - n_train)
    test_end = None
    if plan.test_examples is not None and test.size > plan.test_examples:
        test_end = int(test[plan.test_examples])
        if test_end == test_start:  # one second holds the whole cap: keep that second
            test_end = int(test[test > test_start][0]) if np.any(test > test_start) else None
    n_test = int(test.size if test_end is None else np.sum(test < test_end))
    if n_train == 0:
        raise ValueError(f"time_windows: no training example before the validation window (every one of the "
                         f"{n_valid} latest training requests shares its second); raise the training window")
    return Windows(train_start, valid_start, test_start, test_end, n_train, n_valid, n_test)
