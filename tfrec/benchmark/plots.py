"""The benchmark's plots (PNG), drawn from ``tables.summarize``'s per-row means (``summary.json``'s rows).

* ``quality-vs-cost.png``: test GAUC against the serving cost, ``score`` ms per 100 candidates (top)
  and one user's state bytes (bottom), log-x, one column per data set;
* ``quality-vs-throughput.png``: test GAUC against training examples / s, log-x;
* ``bars.png``: test AUC per row with the standard deviation over the seeds as error bars, per data set;
* ``hstu-depth.png``: DMGIN's test AUC against its HSTU depth 1..6 (2 = ``dmgin``), per data set.

The scatter plots and bars show the overall table's rows (the zoo's models at their default configs);
each point is labeled with the row's title. Figures are ``matplotlib.figure.Figure`` objects saved with
the Agg canvas, so no pyplot state or interactive backend is touched. A plot (or a data set's panel)
without data is skipped; ``write_plots`` returns the files it wrote.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from tfrec.benchmark import papers, zoo

DPI = 120


def _figure(n_rows: int, n_cols: int, width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_cols, height * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, axes


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _metric(stats: dict, metric: str, part: str = "mean") -> float | None:
    value = ((stats.get("test") or {}).get(metric) or {}).get(part)
    return float(value) if _finite(value) else None


def _cost(stats: dict, name: str) -> float | None:
    value = (stats.get("cost") or {}).get(name)
    return float(value) if _finite(value) and value > 0 else None


def _points(summary: dict[str, dict], dataset: str, rows: Sequence[str], x_cost: str, metric: str = "gauc") -> list:
    """``[(x, y, title)]`` of the rows with both a positive ``x_cost`` and the metric's mean."""
    out = []
    for r in rows:
        stats = summary.get(dataset, {}).get(r)
        if not stats:
            continue
        x, y = _cost(stats, x_cost), _metric(stats, metric)
        if x is not None and y is not None:
            out.append((x, y, stats.get("title") or r))
    return out


def _scatter(ax, points: list, xlabel: str, title: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.scatter([p[0] for p in points], [p[1] for p in points], s=18, color="tab:blue")
    for x, y, label in points:
        ax.annotate(label, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.2g}")  # 20,000 rather than 2 x 10^4
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 1, 2, 5 per decade: no overlap
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.15, y=0.1)  # room for the labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test GAUC (mean over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)


def quality_vs_cost(summary: dict[str, dict], datasets: Sequence[str], path,
                    rows: Sequence[str] = tuple(zoo.OVERALL)) -> Path | None:
    """GAUC vs ``score`` ms per 100 candidates (top) and vs state bytes per user (bottom); None if no data."""
    panels = [(d, _points(summary, d, rows, "score_ms_per_100"), _points(summary, d, rows, "state_bytes"))
              for d in datasets]
    panels = [p for p in panels if p[1] or p[2]]
    if not panels:
        return None
    fig, axes = _figure(2, len(panels), 5.5, 4.2)
    for j, (d, by_score, by_state) in enumerate(panels):
        for i, (points, xlabel) in enumerate(((by_score, "score ms per 100 candidates, reference machine (log)"),
                                              (by_state, "user state bytes (log)"))):
            if points:
                _scatter(axes[i][j], points, xlabel, d)
            else:
                axes[i][j].set_axis_off()
    fig.suptitle("Quality vs serving cost")
    return _save(fig, path)


def quality_vs_throughput(summary: dict[str, dict], datasets: Sequence[str], path,
                          rows: Sequence[str] = tuple(zoo.OVERALL)) -> Path | None:
    """GAUC vs training examples / s (log-x), one panel per data set; None if no data."""
    panels = [(d, _points(summary, d, rows, "train_examples_per_second")) for d in datasets]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig, axes = _figure(1, len(panels), 5.5, 4.2)
    for j, (d, points) in enumerate(panels):
        _scatter(axes[0][j], points, "training examples / s, reference machine (log)", d)
    fig.suptitle("Quality vs training throughput")
    return _save(fig, path)


def bars(summary: dict[str, dict], datasets: Sequence[str], path,
         rows: Sequence[str] = tuple(zoo.OVERALL)) -> Path | None:
    """Horizontal bars of the test AUC per row (error bars: std over the seeds), one panel per data set.

    The AUC axis spans the rows' range (not from 0), so small differences stay visible."""
    panels = []
    for d in datasets:
        got = [(summary[d][r].get("title") or r, _metric(summary[d][r], "auc"), _metric(summary[d][r], "auc", "std"))
               for r in rows if r in summary.get(d, {})]
        got = [g for g in got if g[1] is not None]
        if got:
            panels.append((d, got))
    if not panels:
        return None
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    height = max(2.5, 0.28 * max(len(g) for _, g in panels) + 1.2)
    fig, axes = _figure(n_rows, n_cols, 5.5, height)
    for k, (d, got) in enumerate(panels):
        ax = axes[k // n_cols][k % n_cols]
        y = list(range(len(got)))[::-1]  # the first row on top
        means = [g[1] for g in got]
        errs = [g[2] or 0.0 for g in got]
        ax.barh(y, means, xerr=errs, color="tab:blue", alpha=0.8, error_kw={"elinewidth": 1, "capsize": 2})
        ax.set_yticks(y)
        ax.set_yticklabels([g[0] for g in got], fontsize=8)
        lo = min(m - e for m, e in zip(means, errs))
        hi = max(m + e for m, e in zip(means, errs))
        pad = max(0.005, 0.1 * (hi - lo))
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel("test AUC (axis not from 0)")
        ax.set_title(d, fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    for k in range(len(panels), n_rows * n_cols):
        axes[k // n_cols][k % n_cols].set_axis_off()
    fig.suptitle("Test AUC, mean ± std over seeds")
    return _save(fig, path)


def hstu_depth(summary: dict[str, dict], datasets: Sequence[str], path) -> Path | None:
    """DMGIN's test AUC (± std over seeds) vs HSTU depth 1..6 (``papers.DMGIN_T4_DEPTHS``); None if no
    data set has two depths."""
    panels = []
    for d in datasets:
        got = [(k, _metric(summary.get(d, {}).get(r, {}), "auc"), _metric(summary.get(d, {}).get(r, {}), "auc", "std"))
               for k, r in papers.DMGIN_T4_DEPTHS.items()]
        got = [g for g in got if g[1] is not None]
        if len(got) >= 2:
            panels.append((d, got))
    if not panels:
        return None
    fig, axes = _figure(1, len(panels), 4.5, 3.6)
    for j, (d, got) in enumerate(panels):
        ax = axes[0][j]
        ax.errorbar([g[0] for g in got], [g[1] for g in got], yerr=[g[2] or 0.0 for g in got], marker="o", capsize=3)
        ax.set_xticks(list(papers.DMGIN_T4_DEPTHS))
        ax.set_xlabel("HSTU layers")
        ax.set_ylabel("test AUC")
        ax.set_title(d, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.suptitle("DMGIN: HSTU depth (Table 4)")
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def write_plots(summary: dict[str, dict], datasets: Sequence[str], out_dir) -> list[Path]:
    """Every plot into ``out_dir`` (file names in the module doc); returns the files written. A plot
    without data removes its file from an earlier run, so no outdated PNG stays beside the tables."""
    out_dir = Path(out_dir)
    plots = {"quality-vs-cost.png": quality_vs_cost, "quality-vs-throughput.png": quality_vs_throughput,
             "bars.png": bars, "hstu-depth.png": hstu_depth}
    written = []
    for name, plot in plots.items():
        path = plot(summary, datasets, out_dir / name)
        if path is None:
            (out_dir / name).unlink(missing_ok=True)
        else:
            written.append(path)
    return written
