"""The benchmark's tables, regenerated from the cached cells (``tfrec bench --tables-only``).

Everything here reads JSON and writes text: no TensorFlow, no training. The choices:

* **Which cells.** ``select`` keeps the cells of one budget. A row's learning rate on a data set is the
  rate with the best validation AUC among its tuning-seed cells (the budget's first seed), once there is
  one for every rate of the budget's grid (ties go to the smaller rate, as in ``Grid.chosen_rate``); until
  then the row is *tuning incomplete* and shows nowhere but in ``missing.md``. The row's cells are then its
  cells at that rate, one per seed. A paper-table row with a ``rate_from`` base (``zoo.Row``) takes its
  base's rate on the data set and has no tuning cells of its own. Two cells for the same (data set, row, seed, rate) differ in their key
  (the code or the data changed): the one run with the current code wins (``code_version`` of the
  model's module, computed only when such a duplicate exists), else the newest; the other is *stale* and
  only counted. A cell whose code is outdated but which has no newer twin is used.
* **Which numbers.** The test window's metrics, mean ± sample standard deviation (``ddof = 1``) over
  the seeds; a single seed shows its value and "(1 seed)", fewer seeds than the budget's shows the count.
  Nothing is imputed: a missing row or value is "—". Bold = the best mean of a column (the lowest for
  logloss), among the model rows.
* **Oracle and ceilings.** On synthetic data a cell also scores the true click probability on the same
  test window (``oracle``); its row is the mean over the data set's cells (they share the window, so
  the values agree). The generator's shortcut ceilings (``dataset-<budget>.json``) are computed on the
  data set's whole test split, not the test window: they are listed beside the generator's own oracle on
  that split, so compare gaps, not levels.
* **Papers.** The papers' numbers (``papers.py``) are on other data (Industry, Amazon, Taobao, Taobao-MM,
  MicroVideo): each paper table is followed, per data set, by how far our ordering of the rows agrees with
  the paper's (row pairs ordered alike, Kendall's tau-b) and which row is best in each. No number is
  derived from the papers beyond their ordering.

``write_all`` writes ``overall.md``, ``papers.md``, ``missing.md``, ``summary.json`` and the plots
(``tfrec.benchmark.plots``). The tables cover every data set with cells of the budget (plus those asked
for); ``missing.md`` covers the rows and data sets asked for.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from tfrec.benchmark import papers, zoo
from tfrec.benchmark.cells import CELL_FILE, FAILED_FILE, lr_tag
from tfrec.benchmark.machine import REFERENCE_PROBE_MS, scale_cost, speed_factor, with_session_speeds
from tfrec.benchmark.protocol import BUDGETS, Budget, budget_ingredients, choose_learning_rate

DASH = "—"
READING_FILE = "reading.md"  # the hand-written reading beside the generated tables (write_all links it)
METRICS = ("auc", "gauc", "gauc_unweighted", "logloss")
METRIC_NAMES = {"auc": "AUC", "gauc": "GAUC (impression-weighted)", "gauc_unweighted": "GAUC (unweighted: mean over users)",
                "logloss": "logloss"}
LOWER_IS_BETTER = {"logloss"}
# mean over seeds of these ``cost`` fields (``score_ms_per_100`` = score ms scaled to 100 candidates)
COST_FIELDS = ("train_examples_per_second", "train_seconds", "peak_train_rss_mb", "params", "user_tower_ms",
               "score_ms_per_100", "state_bytes", "saved_model_bytes", "other_cpu_cores")
STD_NOTE = ("mean ± sample standard deviation (ddof = 1) over the seeds; a single seed shows its value and "
            "\"(1 seed)\", fewer seeds than the budget's show their count; — = no cell")


# ------------------------------------------------------------------------------------------- selection
class Selection(dict):
    """``(dataset, row) -> [cell, ...]``: the cells a table uses (one per seed, the budget's seed order).

    Attributes:
      budget: the ``Budget`` selected for.
      rates: ``(dataset, row) -> learning rate`` chosen on the tuning seed.
      tuning: ``(dataset, row) -> {learning rate: validation AUC}`` of the tuning-seed cells present.
      incomplete: ``(dataset, row) -> [learning rates]`` missing on the tuning seed (no rate chosen yet;
        for a ``rate_from`` row with cells: its base's missing rates).
      stale: cells superseded by a twin (same data set, row, seed and rate, another key), not used.
      ignored: cells of the budget at a rate or seed outside its grid, not used.
      pending: ``(dataset, row) -> [cells]`` of the rows with no rate chosen yet (``incomplete``): not shown,
        but the next run re-runs those of them that are out of date (``outdated_cells``).
    """

    def __init__(self, budget: Budget):
        super().__init__()
        self.budget = budget
        self.rates: dict[tuple[str, str], float] = {}
        self.tuning: dict[tuple[str, str], dict[float, float]] = {}
        self.incomplete: dict[tuple[str, str], list[float]] = {}
        self.stale: list[dict] = []
        self.ignored: list[dict] = []
        self.pending: dict[tuple[str, str], list[dict]] = {}


class _CurrentCode:
    """Whether a cell ran the current code: ``current_code[model]`` if given, else ``code_version`` of the
    model's module (imported on first use: the model registry imports TensorFlow)."""

    def __init__(self, current_code: dict[str, str] | None):
        self.given = current_code
        self.cache: dict[str, str | None] = {}

    def version(self, model: str) -> str | None:
        if self.given is not None:
            return self.given.get(model)
        if model not in self.cache:
            try:
                from tfrec.benchmark.cells import code_version, model_module

                self.cache[model] = code_version(model_module(model))
            except Exception:  # noqa: BLE001 (a model no longer registered: no current version)
                self.cache[model] = None
        return self.cache[model]

    def is_current(self, cell: dict) -> bool:
        version = self.version(cell.get("model", ""))
        return version is not None and (cell.get("ingredients") or {}).get("code") == version


def _differs(recorded, current) -> bool:
    """Both known and unequal (an older record without the field is not held against the cell)."""
    return recorded is not None and current is not None and recorded != current


def _valid_auc(cell: dict) -> float:
    value = (cell.get("valid") or {}).get("auc")
    return float(value) if _finite(value) else float("-inf")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def select(cells: Iterable[dict], budget: Budget, current_code: dict[str, str] | None = None,
           expected: dict[str, dict] | None = None) -> Selection:
    """The cells each (data set, row) shows under ``budget`` (see the module doc).

    Args:
      cells: cell dicts (``CellStore.cells()``); other budgets' cells are skipped.
      budget: the budget (its name, learning-rate grid and seeds; the first seed tunes the rate).
      current_code: ``{model type: code version}`` deciding between twins of one (data set, row, seed,
        rate); a model absent from it has no current version (``{}``: the newest twin wins). None: the
        current source tree's ``code_version`` (imports the model registry, only when twins exist).
      expected: ``{dataset: {"data": fingerprint, "windows": {...}}}`` (its ``dataset-<budget>.json``):
        a cell of another data fingerprint, other windows, or other budget settings than ``budget``'s is
        stale (left out), so a table never averages cells of two protocols.

    Returns:
      A ``Selection``: ``(dataset, row) -> [cells at the chosen rate, in seed order]`` for every tuned row.
    """
    code = _CurrentCode(current_code)
    cells = with_session_speeds(list(cells))
    rates = {lr_tag(lr): lr for lr in budget.learning_rates}
    slots = defaultdict(list)
    out = Selection(budget)
    settings = budget_ingredients(budget)
    for cell in cells:
        if cell.get("budget") != budget.name:
            continue
        ingredients = cell.get("ingredients") or {}
        now = (expected or {}).get(cell.get("dataset"))
        if "budget" in ingredients and ingredients["budget"] != settings or now is not None and (
                _differs(ingredients.get("data"), now.get("fingerprint"))
                or _differs(cell.get("windows"), now.get("windows"))):
            out.stale.append(cell)
            continue
        tag = lr_tag(float(cell["learning_rate"]))
        if tag not in rates or int(cell["seed"]) not in budget.seeds:
            out.ignored.append(cell)
            continue
        slots[(cell["dataset"], cell["row"], int(cell["seed"]), rates[tag])].append(cell)
    chosen = {}
    for slot, twins in slots.items():
        if len(twins) > 1:
            twins = sorted(twins, key=lambda c: (code.is_current(c), c.get("finished") or ""), reverse=True)
            out.stale += twins[1:]
        chosen[slot] = twins[0]
    tuning_seed = budget.seeds[0]
    pairs = sorted({slot[:2] for slot in chosen})
    by_pair = defaultdict(list)
    for slot, cell in sorted(chosen.items(), key=lambda kv: kv[0][2:]):
        by_pair[slot[:2]].append(cell)
    for dataset, row in pairs:
        if zoo.tuning_row(row) != row:
            continue
        tuned = {lr: chosen.get((dataset, row, tuning_seed, lr)) for lr in budget.learning_rates}
        out.tuning[(dataset, row)] = {lr: _valid_auc(c) for lr, c in tuned.items() if c is not None}
        missing = [lr for lr, c in tuned.items() if c is None]
        if missing:
            out.incomplete[(dataset, row)] = missing
            out.pending[(dataset, row)] = by_pair[(dataset, row)]
            continue
        rate = choose_learning_rate({lr: _valid_auc(tuned[lr]) for lr in budget.learning_rates})
        out.rates[(dataset, row)] = rate
        out[(dataset, row)] = [chosen[(dataset, row, s, rate)] for s in budget.seeds if (dataset, row, s, rate) in chosen]
    for dataset, row in pairs:  # the rows that take their base's rate (the bases are done above)
        base = zoo.tuning_row(row)
        if base == row:
            continue
        rate = out.rates.get((dataset, base))
        if rate is None:
            out.incomplete[(dataset, row)] = [lr for lr in budget.learning_rates
                                              if (dataset, base, tuning_seed, lr) not in chosen]
            out.pending[(dataset, row)] = by_pair[(dataset, row)]
            continue
        out.rates[(dataset, row)] = rate
        out[(dataset, row)] = [chosen[(dataset, row, s, rate)] for s in budget.seeds if (dataset, row, s, rate) in chosen]
        if not out[(dataset, row)]:
            del out[(dataset, row)]
    return out


# ------------------------------------------------------------------------------------------- numbers
def _values(cells: Sequence[dict], metric: str, section: str = "test") -> list[float]:
    return [float(v) for v in ((c.get(section) or {}).get(metric) for c in cells) if _finite(v)]


def _cost_values(cells: Sequence[dict], name: str) -> list[float]:
    """The cells' cost field ``name``; time-based ones scaled to the reference machine where the cell
    has a speed probe (``machine.scale_cost``)."""
    out = []
    for c in cells:
        cost = c.get("cost") or {}
        if name == "score_ms_per_100":
            value = cost.get("score_ms")
            value = value * 100.0 / (cost.get("score_candidates") or 100) if _finite(value) else None
            value = scale_cost("score_ms", value, c.get("machine"))
        else:
            value = scale_cost(name, cost.get(name), c.get("machine"))
        if _finite(value):
            out.append(float(value))
    return out


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    """``(mean, sample std with ddof = 1 or None for one value, n)``; ``(None, None, 0)`` when empty."""
    values = [float(v) for v in values if _finite(v)]
    if not values:
        return None, None, 0
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std, len(values)


def format_mean_std(values: Sequence[float], digits: int = 4, expected: int | None = None,
                    bold: bool = False) -> str:
    """``"0.7100 ± 0.0141"``; one value: ``"0.7100 (1 seed)"``; fewer than ``expected``: ``"... (2 seeds)"``;
    none: ``"—"``. ``bold`` bolds the numbers (not the seed count)."""
    mean, std, n = mean_std(values)
    if n == 0:
        return DASH
    core = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")
    if bold:
        core = f"**{core}**"
    if n == 1:
        return f"{core} (1 seed)"
    return core + (f" ({n} seeds)" if expected is not None and n < expected else "")


def _expected(selected) -> int | None:
    budget = getattr(selected, "budget", None)
    return len(budget.seeds) if budget is not None else None


def _best(means: dict[str, float | None], lower: bool = False) -> float | None:
    got = [m for m in means.values() if m is not None]
    if not got:
        return None
    return min(got) if lower else max(got)


def _title(row: str) -> str:
    return zoo.ROWS[row].name if row in zoo.ROWS else row


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def summarize(selected: Selection, datasets: Sequence[str] | None = None) -> dict:
    """``{dataset: {row: stats}}`` of the selected cells, JSON-able (``summary.json``, the plots).

    ``stats``: ``title``, ``learning_rate``, ``seeds``, ``test`` / ``oracle`` (``{metric: {mean, std, n}}``;
    ``oracle`` only on synthetic data), ``best_epoch`` (mean), ``cost`` (``{field: mean}``, ``COST_FIELDS``).
    """
    out: dict = {}
    for (dataset, row), cells in selected.items():
        if not cells or (datasets is not None and dataset not in datasets):
            continue
        stats = {"title": _title(row), "learning_rate": getattr(selected, "rates", {}).get((dataset, row)),
                 "seeds": [c["seed"] for c in cells]}
        for section in ("test", "oracle"):
            got = {}
            for metric in METRICS:
                mean, std, n = mean_std(_values(cells, metric, section))
                if n:
                    got[metric] = {"mean": mean, "std": std, "n": n}
            if got:
                stats[section] = got
        stats["best_epoch"] = mean_std([c.get("best_epoch") for c in cells])[0]
        stats["cost"] = {name: mean_std(_cost_values(cells, name))[0] for name in COST_FIELDS}
        out.setdefault(dataset, {})[row] = stats
    return out


# ------------------------------------------------------------------------------------------- overall
def overall_table(selected: Selection, datasets: Sequence[str], rows: Sequence[str], metric: str,
                  dataset_info: dict[str, dict | None] | None = None) -> str:
    """Markdown: ``rows`` (labels, in order) x ``datasets``, the test ``metric`` as mean ± std over seeds.

    Bold marks each column's best mean (lowest for logloss). Below the model rows: the oracle (the true
    probability on the same test window, mean over the data set's cells) when any data set has one and,
    for AUC / GAUC, the synthetic generator's oracle and shortcut ceilings on the whole test split
    (``dataset_info[dataset]["synthetic_report"]``, from ``dataset-<budget>.json``).
    """
    if metric not in METRICS:
        raise ValueError(f"overall_table: metric must be one of {', '.join(METRICS)}. Received: {metric!r}")
    expected = _expected(selected)
    means = {d: {r: mean_std(_values(selected.get((d, r), []), metric))[0] for r in rows} for d in datasets}
    best = {d: _best(means[d], metric in LOWER_IS_BETTER) for d in datasets}
    body = []
    for r in rows:
        body.append([_title(r)] + [
            format_mean_std(_values(selected.get((d, r), []), metric), expected=expected,
                            bold=means[d][r] is not None and means[d][r] == best[d]) for d in datasets])
    oracle = {d: mean_std([v for (ds, _), cells in selected.items() if ds == d
                           for v in _values(cells, metric, "oracle")])[0] for d in datasets}
    if any(v is not None for v in oracle.values()):
        body.append(["oracle (true probability, test window)"] + [_num(oracle[d]) for d in datasets])
    reports = {d: (dataset_info or {}).get(d) or {} for d in datasets}
    reports = {d: info.get("synthetic_report") or {} for d, info in reports.items()}
    if metric in ("auc", "gauc") and any(reports.values()):
        body.append(["generator's oracle (whole test split)"] +
                     [_num((reports[d].get("oracle") or {}).get(metric)) for d in datasets])
        names = [n for d in datasets for n in (reports[d].get("ceilings") or {})]
        for name in dict.fromkeys(names):
            body.append([f"ceiling `{name}` (whole test split)"] +
                        [_num(((reports[d].get("ceilings") or {}).get(name) or {}).get(metric)) for d in datasets])
    return "\n".join(_table(["row"] + [f"`{d}`" for d in datasets], body))


def _num(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if _finite(value) else DASH


def _fmt(value, spec: str) -> str:
    return format(value, spec) if _finite(value) else DASH


def cost_table(selected: Selection, dataset: str, rows: Sequence[str]) -> str:
    """Markdown: the costs of ``rows`` (those with cells) on ``dataset``, means over the seeds.

    Columns: chosen learning rate, seeds, mean best epoch, training examples / s, peak training RSS (MB),
    parameters, ``user_tower`` ms for one user, ``score`` ms per 100 candidates, user-state bytes, the
    1-minute load average while timing. Empty string when no row has cells.
    """
    body = []
    for r in rows:
        cells = selected.get((dataset, r))
        if not cells:
            continue
        cost = {name: mean_std(_cost_values(cells, name))[0] for name in COST_FIELDS}
        lr = getattr(selected, "rates", {}).get((dataset, r))
        body.append([_title(r), _fmt(lr, "g"), ", ".join(str(c["seed"]) for c in cells),
                     _fmt(mean_std([c.get("best_epoch") for c in cells])[0], ".1f"),
                     _fmt(cost["train_examples_per_second"], ",.0f"), _fmt(cost["peak_train_rss_mb"], ",.0f"),
                     _fmt(cost["params"], ",.0f"), _fmt(cost["user_tower_ms"], ".2f"),
                     _fmt(cost["score_ms_per_100"], ".2f"), _fmt(cost["state_bytes"], ",.0f"),
                     _fmt(cost["other_cpu_cores"], ".2f")])
    if not body:
        return ""
    table = "\n".join(_table(["row", "LR", "seeds", "best epoch", "train ex/s", "peak train RSS MB", "params",
                              "user_tower ms/user", "score ms/100 cand.", "state bytes/user", "other CPU (cores)"],
                             body))
    return table + "\n\n" + machine_note([c for r in rows for c in selected.get((dataset, r)) or ()])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def machine_note(cells: Sequence[dict]) -> str:
    """One sentence: how the time columns of ``cells`` were scaled (``tfrec/benchmark/machine.py``)."""
    sessions, scaled = {}, 0
    for i, c in enumerate(cells):
        m = c.get("machine") or {}
        factor = speed_factor(m)
        if factor is not None:  # a probe without a boot id is its own session
            scaled += 1
            sessions.setdefault(m.get("boot_id") or f"cell {i}", REFERENCE_PROBE_MS / factor)
    raw = len(cells) - scaled
    text = (f"Time columns (train ex/s, ms) are scaled to the reference machine (speed probe "
            f"{REFERENCE_PROBE_MS:g} ms/step): ")
    if sessions:
        speeds = sorted(sessions.values())
        spread = f"{speeds[0]:.2f}-{speeds[-1]:.2f}" if len(speeds) > 1 else f"{speeds[0]:.2f}"
        text += f"{_count(scaled, 'cell')} from {_count(len(sessions), 'machine session')} probing {spread} ms/step"
        text += f"; {_count(raw, 'cell')} without a probe shown as measured." if raw else "."
    else:
        text += f"no cell here has a probe ({_count(raw, 'cell')} shown as measured)."
    return text


# ------------------------------------------------------------------------------------------- papers
@dataclass(frozen=True)
class PaperTable:
    """One of the papers' tables: its rows (our labels, the paper's order) and quoted numbers.

    Attributes:
      paper: the paper (``DMGIN`` ...) = the zoo's table tag, lower-cased.
      title: the section title.
      rows: our row labels, in the paper's order (then ours without a paper number).
      quoted: ``label -> tuple`` of the paper's numbers (``columns``).
      columns: the paper's column names.
      metric: our metric ordered against the paper's first column (``auc`` or ``gauc``).
      digits: decimals of the paper's numbers.
    """

    paper: str
    title: str
    rows: tuple
    quoted: dict
    columns: tuple
    metric: str = "auc"
    digits: int = 4


def _as_tuples(quoted: dict) -> dict:
    return {k: (v if isinstance(v, tuple) else (v,)) for k, v in quoted.items()}


def _dmgin_extras() -> tuple:
    """DMGIN-tagged rows in none of its tables (DGIN, DMGIN w/o match prior), shown under Table 2."""
    covered = set(papers.DMGIN_T2) | set(papers.DMGIN_T3) | set(papers.DMGIN_T4_DEPTHS.values())
    return tuple(r for r, row in zoo.ROWS.items() if "dmgin" in row.tables and r not in covered)


CHIME_COLUMNS = ("MicroVideo AUC (%)", "GAUC (%)", "LogLoss (%)")
PAPER_TABLES = (
    PaperTable("dmgin", "DMGIN Table 2: overall", tuple(papers.DMGIN_T2) + ("dmgin",) + _dmgin_extras(),
               papers.DMGIN_T2, papers.DMGIN_T2_COLUMNS),
    PaperTable("dmgin", "DMGIN Table 3: the intra-group module, on DMGIN-simple (no HSTU)", tuple(papers.DMGIN_T3),
               papers.DMGIN_T3, papers.DMGIN_T2_COLUMNS),
    PaperTable("dmqn", "DMQN Table 2: overall", tuple(papers.DMQN_T2), papers.DMQN_T2, papers.DMQN_T2_COLUMNS),
    PaperTable("dmqn", "DMQN Table 3: ablation", tuple(papers.DMQN_T3), papers.DMQN_T3, papers.DMQN_T3_COLUMNS),
    PaperTable("siren", "SIREN Table 1: overall", tuple(papers.SIREN_T1), _as_tuples(papers.SIREN_T1),
               ("Taobao-MM GAUC",), metric="gauc"),
    PaperTable("siren", "SIREN Table 2: ESU ablation (soft GSU)", tuple(papers.SIREN_T2), _as_tuples(papers.SIREN_T2),
               ("Taobao-MM GAUC",), metric="gauc"),
    PaperTable("chime", "CHIME Table 2: rankers without / with LEARN / with CHIME", tuple(papers.CHIME_T2),
               papers.CHIME_T2, CHIME_COLUMNS, digits=2),
    PaperTable("chime", "CHIME Table 3: CHIME's ablations (on DIN)", tuple(papers.CHIME_T3), papers.CHIME_T3,
               CHIME_COLUMNS, digits=2),
)


def agreement(ours: dict[str, float | None], paper: dict[str, float | None]) -> dict:
    """How far two orderings of the same rows agree (higher = better in both).

    Over the rows with a finite value in both: ``pairs`` (all row pairs), ``concordant`` / ``discordant``
    (ordered alike / oppositely), ``tied`` (tied in ours or the paper: neither), ``share`` = concordant /
    (concordant + discordant) (None without an untied pair), ``tau`` = Kendall's tau-b (None when
    undefined), ``best_ours`` / ``best_paper`` (the first of equal bests, in ``ours``' order).
    """
    rows = [r for r in ours if _finite(ours[r]) and _finite(paper.get(r))]
    concordant = discordant = tied_ours = tied_paper = tied = 0
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            x, y = np.sign(ours[a] - ours[b]), np.sign(paper[a] - paper[b])
            tied_ours += x == 0
            tied_paper += y == 0
            if x == 0 or y == 0:
                tied += 1
            elif x == y:
                concordant += 1
            else:
                discordant += 1
    pairs = len(rows) * (len(rows) - 1) // 2
    denom = math.sqrt((pairs - tied_ours) * (pairs - tied_paper))
    untied = concordant + discordant
    return {"rows": rows, "pairs": pairs, "concordant": concordant, "discordant": discordant, "tied": tied,
            "share": concordant / untied if untied else None,
            "tau": (concordant - discordant) / denom if denom else None,
            "best_ours": max(rows, key=lambda r: ours[r]) if rows else None,
            "best_paper": max(rows, key=lambda r: paper[r]) if rows else None}


def agreement_sentence(dataset: str, ours: dict[str, float | None], paper: dict[str, float | None],
                       metric: str = "auc", column: str = "first column") -> str:
    """One sentence: our ordering of the rows on ``dataset`` (``ours``: row -> our mean ``metric``) vs the
    paper's (``paper``: row -> its number in ``column``), from ``agreement``."""
    a = agreement(ours, paper)
    n = len(a["rows"])
    if n < 2:
        return (f"`{dataset}`: {n} row{'' if n == 1 else 's'} with both our {METRIC_NAMES[metric]} and the paper's "
                f"{column}: too few to compare orderings.")
    untied = a["concordant"] + a["discordant"]
    if untied:
        text = (f"`{dataset}`: over the {n} rows in both, {a['concordant']} of {untied} row pairs "
                f"({a['share']:.0%}) are ordered by our mean {METRIC_NAMES[metric]} as by the paper's {column}")
    else:
        text = f"`{dataset}`: over the {n} rows in both, no row pair is untied in both orderings"
    if a["tied"]:
        text += f" ({a['tied']} of {a['pairs']} pairs tied in one of them, not counted)"
    text += f"; Kendall τ-b = {a['tau']:+.2f}" if a["tau"] is not None else "; Kendall τ-b undefined"
    same = " (the same)" if a["best_ours"] == a["best_paper"] else ""
    return f"{text}; best: ours {_title(a['best_ours'])}, the paper's {_title(a['best_paper'])}{same}."


def _datasets_with(selected: Selection, datasets: Sequence[str], rows: Iterable[str]) -> list[str]:
    rows = set(rows)
    return [d for d in datasets if any(selected.get((d, r)) for r in rows)]


def paper_table(selected: Selection, datasets: Sequence[str], spec: PaperTable) -> str:
    """Markdown: one paper table (our AUC / GAUC per data set with cells, then the paper's numbers) and
    an agreement sentence per data set (``agreement_sentence`` on ``spec.metric`` vs the first column)."""
    shown = _datasets_with(selected, datasets, spec.rows)
    lines = [f"## {spec.title}", ""]
    if not shown:
        return "\n".join(lines + [f"No cells of these rows yet (`tfrec bench --models {spec.paper}-tables`)."])
    expected = _expected(selected)
    columns = [(d, m) for d in shown for m in ("auc", "gauc")]
    means = {(d, m): {r: mean_std(_values(selected.get((d, r), []), m))[0] for r in spec.rows} for d, m in columns}
    best = {k: _best(v) for k, v in means.items()}
    body = []
    for r in spec.rows:
        quoted = spec.quoted.get(r)
        paper_cells = [f"{v:.{spec.digits}f}" for v in quoted] if quoted else [DASH] * len(spec.columns)
        body.append([_title(r)] + [
            format_mean_std(_values(selected.get((d, r), []), m), expected=expected,
                            bold=means[(d, m)][r] is not None and means[(d, m)][r] == best[(d, m)])
            for d, m in columns] + paper_cells)
    header = ["row"] + [f"`{d}` {'AUC' if m == 'auc' else 'GAUC'}" for d, m in columns] + [
        f"paper {c}" for c in spec.columns]
    lines += _table(header, body) + [""]
    paper_first = {r: v[0] for r, v in spec.quoted.items()}
    for d in shown:
        lines.append("* " + agreement_sentence(d, means[(d, spec.metric)], paper_first, spec.metric,
                                               f"{spec.columns[0]}"))
    return "\n".join(lines)


def depth_table(selected: Selection, datasets: Sequence[str]) -> str:
    """Markdown: DMGIN Table 4, AUC / GAUC against the HSTU depth (1..6; 2 = ``dmgin``), and per data set
    the depth steps where our AUC rises (the paper reports monotone gains; its values are not in its text)."""
    depths = papers.DMGIN_T4_DEPTHS
    lines = ["## DMGIN Table 4: HSTU depth", ""]
    shown = _datasets_with(selected, datasets, depths.values())
    if not shown:
        return "\n".join(lines + ["No cells of these rows yet (`tfrec bench --models dmgin-tables`)."])
    expected = _expected(selected)
    body = [[str(k), _title(r)] + [format_mean_std(_values(selected.get((d, r), []), m), expected=expected)
                                   for d in shown for m in ("auc", "gauc")] for k, r in depths.items()]
    lines += _table(["depth", "row"] + [f"`{d}` {'AUC' if m == 'auc' else 'GAUC'}" for d in shown
                                        for m in ("auc", "gauc")], body) + [""]
    for d in shown:
        auc = {k: mean_std(_values(selected.get((d, r), []), "auc"))[0] for k, r in depths.items()}
        present = [k for k in depths if auc[k] is not None]
        if len(present) < 2:
            lines.append(f"* `{d}`: {len(present)} depth{'' if len(present) == 1 else 's'} run: too few for a curve.")
            continue
        steps = list(pairwise(present))
        rises = sum(auc[b] > auc[a] for a, b in steps)
        best = max(present, key=lambda k: auc[k])
        lines.append(f"* `{d}`: our mean AUC rises at {rises} of the {len(steps)} steps between the depths run "
                     f"({', '.join(map(str, present))}); best depth {best}. The paper reports gains at every step.")
    return "\n".join(lines)


def codebook_table(datasets: Sequence[str], compressors: dict[str, dict[str, dict]]) -> str:
    """Markdown: CHIME Table 5 (codebook hit ratio and perplexity of ``chime``'s compressor per data set,
    beside the paper's) and the compression stage's cost (every compressor summary).

    Args:
      compressors: ``{dataset: {stem: compressor.json contents}}`` (``<store>/<dataset>/compressors/``).
    """
    lines = ["## CHIME Table 5: codebooks of CHIME's compressor", ""]
    body = []
    for d in datasets:
        levels = (((compressors.get(d) or {}).get("chime") or {}).get("codebooks") or {}).get("per_level") or []
        for i, level in enumerate(levels):
            quoted = papers.CHIME_T5[i] if i < len(papers.CHIME_T5) else (DASH, DASH)
            body.append([f"`{d}`", str(level.get("level", i + 1)), _fmt(level.get("hit_ratio"), ".2%"),
                         f"{_fmt(level.get('perplexity'), '.2f')} / {level.get('codebook_size', DASH)}", *quoted])
    if body:
        lines += _table(["data set", "codebook", "hit ratio", "perplexity / size", "paper hit ratio",
                         "paper perplexity / size"], body)
    else:
        lines.append("No CHIME compressor summary yet (`tfrec bench --models chime`).")
    cost = []
    for d in datasets:
        for stem, c in sorted((compressors.get(d) or {}).items()):
            cost.append([f"`{d}`", stem, _fmt(c.get("users"), ",.0f"), _fmt(c.get("behaviors_before_t1"), ",.0f"),
                         _fmt(c.get("parameters"), ",.0f"), _fmt(c.get("train_seconds"), ",.0f"),
                         _fmt(c.get("infer_ms_per_user_slice"), ".2f"), _fmt(c.get("vector_dim"), "d")])
    if cost:
        lines += ["", "The compression stage (once per data set, on the behaviors before t1):", ""]
        lines += _table(["data set", "compressor", "users", "behaviors before t1", "parameters", "train s",
                         "inference ms/user", "vector floats"], cost)
    return "\n".join(lines)


def papers_markdown(selected: Selection, datasets: Sequence[str], compressors: dict[str, dict[str, dict]]) -> str:
    """``papers.md``: every paper table (``PAPER_TABLES``, DMGIN Table 4, CHIME Table 5)."""
    parts = ["# The papers' tables on our data", "",
             (f"Ours: the test window at each row's chosen learning rate, {STD_NOTE}; bold = our best mean per "
             "column. The papers' numbers are copied from their tables (tfrec/benchmark/papers.py) and measured on "
             "other data (Industry, Amazon, Taobao, Taobao-MM, MicroVideo; CHIME's in %): compare orderings, not "
             "values. Rows without a paper number are ours. Under each table, per data set: the row pairs our mean "
             "orders as the paper's first column does, Kendall's τ-b, and the best row in each."), ""]
    order = ("dmgin", "dmqn", "siren", "chime")
    for paper in order:
        for spec in (s for s in PAPER_TABLES if s.paper == paper):
            parts += [paper_table(selected, datasets, spec), ""]
            if spec.title.startswith("DMGIN Table 3"):
                parts += [depth_table(selected, datasets), ""]
    parts += [codebook_table(datasets, compressors), ""]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- missing
def missing_cells(selected: Selection, datasets: Sequence[str], rows: Sequence[str],
                  budget: Budget | None = None) -> list[dict]:
    """The cells of ``rows`` x ``datasets`` under ``budget`` (default: the selection's) with no result.

    One dict per (data set, row) with something missing: ``dataset``, ``row``, ``tuning`` (the learning
    rates missing on the tuning seed), ``seeds`` (the other seeds missing at the chosen rate, or every
    other seed while the rate is not chosen) and ``learning_rate`` (the chosen rate or None). A
    ``rate_from`` row tunes nothing of its own: every seed is in its ``seeds``, at its base's rate; a base
    not among ``rows`` is listed for its tuning cells only (the grid runs them).
    """
    budget = budget or selected.budget
    out = []
    for d in datasets:
        for r in zoo.with_bases(rows):
            own = zoo.tuning_row(r) == r
            done = selected.tuning.get((d, r), {})
            tuning = [lr for lr in budget.learning_rates if lr not in done] if own else []
            rate = selected.rates.get((d, zoo.tuning_row(r)))
            have = {c["seed"] for c in selected.get((d, r), [])}
            seeds = [s for s in (budget.seeds[1:] if own else budget.seeds) if s not in have] if r in rows else []
            if tuning or seeds:
                out.append({"dataset": d, "row": r, "tuning": tuning, "seeds": seeds, "learning_rate": rate})
    return out


def _failed_cells(store_root: Path, budget: Budget) -> list[dict]:
    """Cell directories of ``budget`` with ``failed.json`` and no ``cell.json`` (the grid retries them)."""
    out = []
    for path in sorted(Path(store_root).glob(f"*/*/*/{FAILED_FILE}")):
        if (path.parent / CELL_FILE).exists():
            continue
        try:
            spec = json.loads((path.parent / "spec.json").read_text())
            if (spec.get("budget") or {}).get("name") != budget.name:
                continue
            error = json.loads(path.read_text()).get("error", "")
        except (OSError, ValueError):
            continue
        out.append({"dataset": path.parts[-4], "row": path.parts[-3], "cell": path.parent.name, "error": error})
    return out


def outdated_cells(selected: Selection, current_code: dict[str, str] | None = None,
                   locked: dict[str, str] | None = None) -> list[dict]:
    """The cells that the next ``tfrec bench`` re-runs, per (data set, row): ``code`` (ran another code
    version of its model than the current one) and ``data`` (ran on another data fingerprint than the data
    lock's, ``locked``: ``{dataset: fingerprint}``; a cell is counted once, as ``data`` first); ``shown``:
    how many cells the tables show for the row. Among them the shown cells (they stay in the tables until
    their re-run replaces them) and those of rows whose tuning is incomplete (``Selection.pending``: not
    shown, but counted, or ``missing.md`` would undercount what is left to run)."""
    code = _CurrentCode(current_code)
    out = []
    for (dataset, row), cells in sorted({**selected, **selected.pending}.items()):
        data = code_changed = 0
        for cell in cells:
            ingredients = cell.get("ingredients") or {}
            if _differs(ingredients.get("data"), (locked or {}).get(dataset)):
                data += 1
            elif _differs(ingredients.get("code"), code.version(cell.get("model", ""))):
                code_changed += 1
        if data or code_changed:
            out.append({"dataset": dataset, "row": row, "data": data, "code": code_changed,
                        "shown": len(selected.get((dataset, row), []))})
    return out


def locked_fingerprints(lock_root: Path | None) -> dict[str, str]:
    """``{dataset: fingerprint}`` of the data locks (``tfrec.benchmark.datasets``) under ``lock_root``
    (None: no lock)."""
    from tfrec.benchmark.datasets import LOCK_FILE

    if lock_root is None:
        return {}
    return {p.parent.name: lock["fingerprint"] for p in sorted(Path(lock_root).glob(f"*/{LOCK_FILE}"))
            if (lock := _read_json(p)) is not None and "fingerprint" in lock}


def missing_markdown(selected: Selection, datasets: Sequence[str], rows: Sequence[str],
                     failed: Sequence[dict] = (), outdated: Sequence[dict] = ()) -> str:
    """``missing.md``: the missing cells, tuning-incomplete rows, failed, out-of-date and stale cells."""
    budget = selected.budget
    missing = missing_cells(selected, datasets, rows)
    per_row = len(budget.learning_rates) + len(budget.seeds) - 1
    n_cells = (sum(per_row if zoo.tuning_row(r) == r else len(budget.seeds) for r in rows)
               + len(budget.learning_rates) * (len(zoo.with_bases(rows)) - len(rows))) * len(datasets)
    n_missing = sum(len(m["tuning"]) + len(m["seeds"]) for m in missing)
    n_outdated = sum(o["data"] + o["code"] for o in outdated)
    lines = ["# Missing cells", "", f"{budget.describe()}.", "",
             (f"{n_missing} of {n_cells} cells of the {len(rows)} rows x "
             f"{len(datasets)} data sets asked for have no result"
             + (f", and {n_outdated} more are out of date (below): the next run re-runs them" if n_outdated else "")
             + ". A row shows in the tables once every learning "
             f"rate has run on seed {budget.seeds[0]} (*tuning incomplete* until then; a paper-table row takes "
             "its base row's rate). Run the same `tfrec bench` command to go on (finished cells are kept)."), ""]
    if missing:
        body = []
        for m in missing:
            what = []
            if m["tuning"]:
                what.append(f"seed {budget.seeds[0]} at lr {', '.join(f'{lr:g}' for lr in m['tuning'])} "
                            "(tuning incomplete)")
            if m["seeds"]:
                rate = f"lr {m['learning_rate']:g}" if m["learning_rate"] is not None else "the rate not chosen yet"
                what.append(f"seed{'s' if len(m['seeds']) > 1 else ''} {', '.join(map(str, m['seeds']))} at {rate}")
            body.append([f"`{m['dataset']}`", f"`{m['row']}` ({_title(m['row'])})", "; ".join(what)])
        lines += _table(["data set", "row", "missing"], body)
    else:
        lines.append("Nothing is missing.")
    if failed:
        lines += ["", f"## Failed ({len(failed)}: retried on the next run; the error is in the cell's failed.json)", ""]
        lines += _table(["data set", "row", "cell", "error"],
                        [[f"`{f['dataset']}`", f"`{f['row']}`", f["cell"], f["error"].replace("|", "\\|")[:200]]
                         for f in failed])
    if outdated:
        n_data, n_code = sum(o["data"] for o in outdated), sum(o["code"] for o in outdated)
        lines += ["", (f"## Out of date ({n_data + n_code}: the next run re-runs them; the tables show those of "
                       "tuned rows until then, `shown`)"), "",
                  (f"{n_data} ran on data other than the data lock's (bench/PROTOCOL.md, \"Data sets are locked\"), "
                   f"{n_code} ran another code version of their model than the current one (a CHIME / LEARN "
                   "row's compressor is not compared here)."), ""]
        lines += _table(["data set", "row", "shown", "other data", "other code"],
                        [[f"`{o['dataset']}`", f"`{o['row']}`", str(o["shown"]), str(o["data"]), str(o["code"])]
                         for o in outdated])
    if selected.stale:
        lines += ["", (f"## Stale ({len(selected.stale)}: superseded by a cell of the same data set, row, seed and "
                  "rate run with the current code or later; not used)"), ""]
        lines += [f"* {c.get('dir', c.get('key'))}" for c in selected.stale]
    if selected.ignored:
        lines += ["", (f"{len(selected.ignored)} cell(s) of budget `{budget.name}` at a seed or learning rate outside "
                  "its grid are not used.")]
    return "\n".join(lines) + "\n"


def time_spent_markdown(cells: Iterable[dict], selected: Selection, datasets: Sequence[str],
                        rows: Sequence[str], outdated: Sequence[dict] = ()) -> str:
    """The wall time of the budget's finished cells per data set (each cell's own ``wall_seconds``: train,
    evaluate, predict, export, time; a compressor's run and the data's preparation are not in it), as run
    and scaled to the reference machine by each cell's machine session (``machine.speed_factor``; a cell
    without a probe counts as run), and an estimate for the missing cells: each missing cell at its row's
    mean on that data set (reference machine), else its base row's (``rate_from``), else the data set's
    mean; labelled an estimate. The ``outdated`` cells (``outdated_cells``, of the rows asked for) count
    as missing: the next run re-runs them."""
    budget = selected.budget
    missing: dict[tuple[str, str], int] = defaultdict(int)
    for m in missing_cells(selected, datasets, rows):
        missing[(m["dataset"], m["row"])] += len(m["tuning"]) + len(m["seeds"])
    for o in outdated:
        missing[(o["dataset"], o["row"])] += o["data"] + o["code"]
    raw, ref = defaultdict(list), defaultdict(list)
    for cell in with_session_speeds([c for c in cells if c.get("budget") == budget.name]):
        if not _finite(cell.get("wall_seconds")):
            continue
        seconds = float(cell["wall_seconds"])
        raw[cell["dataset"]].append(seconds)
        ref[(cell["dataset"], cell.get("row"))].append(seconds * (speed_factor(cell.get("machine")) or 1.0))
    names = set(raw) | {d for d, _ in missing}
    body, done_raw, done_ref, left_total, unknown = [], 0.0, 0.0, 0.0, 0
    for d in sorted(names, key=lambda d: (list(datasets).index(d) if d in datasets else 99, d)):
        scaled = [s for (dd, _), v in ref.items() if dd == d for s in v]
        mean = float(np.mean(scaled)) if scaled else None
        left, estimate = 0, 0.0
        for (dd, r), n in missing.items():
            if dd != d:
                continue
            left += n
            own = ref.get((d, r)) or ref.get((d, zoo.tuning_row(r)))  # a paper row: its base's cells
            per_cell = float(np.mean(own)) if own else mean
            if per_cell is None:
                unknown += n
            else:
                estimate += n * per_cell
        known = mean is not None or left == 0
        done_raw += sum(raw.get(d, []))
        done_ref += sum(scaled)
        left_total += estimate
        body.append([f"`{d}`", f"{len(raw.get(d, []))}", f"{sum(raw.get(d, [])) / 3600:.2f}",
                     f"{sum(scaled) / 3600:.2f}", _fmt(mean, ".0f"), f"{left}",
                     f"{estimate / 3600:.2f}" if known else DASH])
    if not body:
        return ""
    return "\n".join(["## Time", "", (
        "Measured: the finished cells' own wall time (train, evaluate, predict, export, time the signatures), as "
        "run and on the reference machine (each cell scaled by its machine session's speed probe, as the cost "
        f"columns are: {REFERENCE_PROBE_MS:g} ms/step; a cell without a probe counts as run); not in it: preparing "
        "the data sets, the CHIME / LEARN compressors. Estimated, on the reference machine: each missing or "
        "out-of-date cell at its row's mean on that data set so far, or the data set's mean where the row has "
        "no cell yet."), ""]
        + _table(["data set", "cells finished", "measured h (as run)", "measured h (reference machine)",
                  "mean s/cell (reference machine)", "cells to run", "estimated h to finish"], body)
        + ["", (f"Total: {done_raw / 3600:.2f} h measured as run ({done_ref / 3600:.2f} h on the reference "
                f"machine), about {left_total / 3600:.1f} h to go on the reference machine"
                + (f" for the cells that can be estimated ({unknown} cells of data sets with no finished cell "
                   "yet are not)" if unknown else "") + ".")]) + "\n"


# ------------------------------------------------------------------------------------------- write_all
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def regenerate_command(budget: Budget, out_dir: Path) -> str:
    """The one-line command that rewrites these files from the cached cells."""
    from tfrec.benchmark.cells import ROOT

    cmd = f"tfrec bench --budget {budget.name} --tables-only"
    if budget.name in BUDGETS and tuple(budget.seeds) != tuple(BUDGETS[budget.name].seeds):
        cmd += " --seeds " + " ".join(map(str, budget.seeds))
    out_dir = Path(out_dir).resolve()
    if out_dir != ROOT / "bench" / "results" / f"bench-{budget.name}":
        try:
            cmd += f" --results {out_dir.relative_to(ROOT)}"
        except ValueError:
            cmd += f" --results {out_dir}"
    return cmd


def _table_datasets(selected: Selection, datasets: Sequence[str]) -> list[str]:
    """The data sets asked for, then any other with cells of the budget (``DATASETS`` order, then by name)."""
    from tfrec.benchmark.datasets import DATASETS

    present = {d for d, _ in list(selected) + list(selected.incomplete)}
    rank = {d: i for i, d in enumerate(DATASETS)}
    extra = sorted(present - set(datasets), key=lambda d: (rank.get(d, len(rank)), d))
    return list(datasets) + extra


def overall_markdown(selected: Selection, datasets: Sequence[str], info: dict[str, dict | None],
                     command: str, plots: Sequence[str] = (), reading: str | None = None) -> str:
    """``overall.md``: the four metric tables of the overall rows, oracle / ceilings, the cost tables and
    links to ``plots`` (file names) and, if given, to ``reading`` (the hand-written reading's file name,
    which no command regenerates)."""
    budget = selected.budget
    lines = [f"# The benchmark: budget `{budget.name}`", "", f"Regenerate: `{command}`", "",
             (f"{budget.describe()}. Each row's learning rate is chosen per data set on the validation AUC of seed "
             f"{budget.seeds[0]}; the tables show the test window, {STD_NOTE}. Bold = the best mean of the column "
             "(the lowest for logloss). Missing cells: missing.md; the papers' tables: papers.md."
             + (f" A reading of these results against the papers (by hand, dated; not regenerated): {reading}."
                if reading else "")), ""]
    for d in datasets:
        w = (info.get(d) or {}).get("windows")
        if w:
            lines.append(f"* `{d}`: training window {w['n_train']:,}, validation {w['n_valid']:,}, test "
                         f"{w['n_test']:,} examples.")
    sections = {"auc": "AUC", "gauc": "GAUC, impression-weighted (each user's AUC weighted by their impressions)",
                "gauc_unweighted": "GAUC, unweighted (the plain mean of the users' AUCs)", "logloss": "Logloss"}
    for metric, title in sections.items():
        lines += ["", f"## {title}", "", overall_table(selected, datasets, zoo.OVERALL, metric, info)]
    if any(((info.get(d) or {}).get("synthetic_report")) for d in datasets):
        lines += ["", ("Oracle = the true click probability scored on the same test window. The generator's oracle and "
                  "ceilings (the truth restricted to what a model family reads, tfrec/data/synthetic/report.py "
                  "`SHORTCUTS`) are computed on the whole test split: compare a model's gap to the oracle with the "
                  "ceilings' gaps, not the levels.")]
    lines += ["", "## Cost", "", ("Means over the seeds. Training throughput and memory come from the cell's own process; "
              "`user_tower` (one user) and `score` (per 100 candidates) are the exported SavedModel's signatures "
              "(median of the timed calls); state bytes = one user's cached state. Times are indicative: other jobs "
              "may have shared the cores (load column).")]
    for d in datasets:
        table = cost_table(selected, d, zoo.OVERALL)
        if table:
            lines += ["", f"### `{d}`", "", table]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def write_all(store_root, out_dir, budget: Budget, datasets: Sequence[str], rows: Sequence[str],
              current_code: dict[str, str] | None = None, lock_root: Path | None = None) -> list[Path]:
    """Writes the tables and plots of ``budget``'s cells under ``store_root`` into ``out_dir``.

    Args:
      store_root: the cell store's root (``<results>/cells``).
      out_dir: where ``overall.md``, ``papers.md``, ``missing.md``, ``summary.json`` and the PNGs go.
      budget: the budget whose cells are shown.
      datasets: the data sets asked for (tables also cover any other data set with cells of the budget).
      rows: the row labels asked for (``missing.md``; the tables show every overall / paper row).
      current_code: as ``select``'s.
      lock_root: the data locks (``tfrec.benchmark.datasets.LOCK_ROOT`` for ``tfrec bench``; None: none):
        a shown cell of another data fingerprint than its lock's is listed as out of date in ``missing.md``.

    Returns:
      The paths written (a plot without data is skipped).
    """
    from tfrec.benchmark import plots
    from tfrec.benchmark.cells import CellStore

    store_root, out_dir = Path(store_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = CellStore(store_root).cells()
    expected = {d: i for d in {c.get("dataset") for c in cells}
                if (i := _read_json(store_root / d / f"dataset-{budget.name}.json")) is not None}
    selected = select(cells, budget, current_code, expected)
    shown = _table_datasets(selected, datasets)
    info = {d: _read_json(store_root / d / f"dataset-{budget.name}.json") for d in shown}
    compressors = {d: {p.stem: c for p in sorted((store_root / d / "compressors").glob("*.json"))
                       if (c := _read_json(p)) is not None} for d in shown}
    command = regenerate_command(budget, out_dir)
    stats = summarize(selected, shown)
    failed = _failed_cells(store_root, budget)
    outdated = outdated_cells(selected, current_code, locked_fingerprints(lock_root))
    written = []

    def write(name: str, text: str) -> None:
        path = out_dir / name
        path.write_text(text)
        written.append(path)

    written += plots.write_plots(stats, shown, out_dir)
    reading = READING_FILE if (out_dir / READING_FILE).exists() else None
    write("overall.md", overall_markdown(selected, shown, info, command, [p.name for p in written], reading))
    write("papers.md", papers_markdown(selected, shown, compressors))
    asked = set(zoo.with_bases(rows))
    to_rerun = [o for o in outdated if o["dataset"] in datasets and o["row"] in asked]
    write("missing.md", missing_markdown(selected, datasets, rows, failed, to_rerun) + "\n"
          + time_spent_markdown(cells, selected, datasets, rows, to_rerun))
    summary = {"budget": dataclasses.asdict(budget), "regenerate": command, "datasets": {
        d: {"windows": (info.get(d) or {}).get("windows"), "rows": stats.get(d, {})} for d in shown},
        "tuning_incomplete": [{"dataset": d, "row": r, "missing_learning_rates": lrs,
                               **({"rate_from": zoo.tuning_row(r)} if zoo.tuning_row(r) != r else {})}
                              for (d, r), lrs in sorted(selected.incomplete.items())],
        "missing": missing_cells(selected, datasets, rows), "failed": failed,
        "outdated": outdated, "stale": [c.get("dir", c.get("key")) for c in selected.stale]}
    write("summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return sorted(written, key=lambda p: p.suffix == ".png")  # the tables first
