"""The benchmark tables from a hand-made cell store: learning-rate choice, stale twins, mean ± std, oracle,
the papers' numbers and the agreement sentence, and ``write_all``'s files. Pure JSON / numpy / matplotlib
(no TensorFlow, no training)."""
import json
import math

import pytest

from tfrec.benchmark import tables
from tfrec.benchmark.cells import CellStore
from tfrec.benchmark.protocol import Budget

BUDGET = Budget("grid", train_examples=1000, valid_fraction=0.1, test_examples=500, max_epochs=2, patience=1,
                learning_rates=(1e-3, 3e-3), seeds=(0, 1))
CODE = {"din": "new", "dien": "new", "dsin": "new", "dmgin": "new"}
SYN, ML = "synthetic-small", "ml-100k"
ORACLE = {"auc": 0.80, "gauc": 0.70, "gauc_unweighted": 0.69, "logloss": 0.40}
WINDOWS = {"train_start": 0, "valid_start": 90, "test_start": 100, "test_end": 150, "n_train": 900, "n_valid": 100,
           "n_test": 500}

# (dataset, row) -> ({lr: validation AUC on seed 0}, {seed: test AUC at the rate that should win})
PLAN = {
    (SYN, "din"): ({1e-3: 0.60, 3e-3: 0.65}, {0: 0.70, 1: 0.72}),  # 3e-3 wins
    (SYN, "dien"): ({1e-3: 0.66, 3e-3: 0.64}, {0: 0.74, 1: 0.76}),  # 1e-3 wins; best AUC on SYN
    (SYN, "dsin"): ({1e-3: 0.63, 3e-3: 0.63}, {0: 0.68, 1: 0.69}),  # tie: the smaller rate
    (ML, "din"): ({1e-3: 0.55, 3e-3: 0.50}, {0: 0.62, 1: 0.64}),
    (ML, "dien"): ({1e-3: 0.52, 3e-3: 0.58}, {0: 0.66}),  # seed 1 not run yet
    (ML, "dsin"): ({1e-3: 0.57}, {}),  # lr 3e-3 missing: tuning incomplete
}
NOT_CHOSEN_AUC = 0.99  # the test AUC of every cell that must not be used


def write_cell(root, dataset, row, seed, lr, test_auc, valid_auc=None, key="k", code="new",
               finished="2026-01-01T00:00:00Z"):
    model = "dmgin" if row.startswith("dmgin") else row
    metrics = {"auc": test_auc, "gauc": round(test_auc - 0.1, 6), "gauc_unweighted": round(test_auc - 0.11, 6),
               "logloss": round(1.1 - test_auc, 6), "n_examples": 500, "n_users": 50, "n_users_gauc": 40}
    cell = {"key": key, "row": row, "model": model, "dataset": dataset, "seed": seed, "learning_rate": lr,
            "budget": BUDGET.name, "test": metrics, "valid": {"auc": valid_auc if valid_auc is not None else 0.5},
            "best_epoch": 1 + seed, "epochs_run": 2, "stopped_early": False, "valid_by_epoch": [],
            "cost": {"train_seconds": 10.0, "train_examples": 1000, "train_examples_per_second": 100.0 * (1 + seed),
                     "peak_train_rss_mb": 500.0, "params": 12345, "state_bytes": 4096 if row == "din" else 8192,
                     "user_tower_ms": 1.5, "score_ms": 2.0 if row == "din" else 4.0, "score_candidates": 100,
                     "saved_model_bytes": 10 ** 6, "other_cpu_cores": 0.1},
            "windows": WINDOWS, "config": {}, "ingredients": {"code": code}, "wall_seconds": 20.0,
            "finished": finished}
    if dataset == SYN:
        cell["oracle"] = dict(ORACLE)
    path = CellStore(root).cell_dir(dataset, row, seed, lr, key)
    path.mkdir(parents=True, exist_ok=True)
    (path / "cell.json").write_text(json.dumps(cell))
    return path


def write_row(root, dataset, row, valid, test):
    """The tuning-seed cells at every rate of ``valid``; the other seeds at the winning rate."""
    rate = min(valid, key=lambda lr: (-valid[lr], lr)) if len(valid) == len(BUDGET.learning_rates) else None
    for lr, v in valid.items():
        write_cell(root, dataset, row, 0, lr, test.get(0, NOT_CHOSEN_AUC) if lr == rate else NOT_CHOSEN_AUC, v)
    for seed, auc in test.items():
        if seed != 0:
            write_cell(root, dataset, row, seed, rate, auc)


@pytest.fixture()
def store(tmp_path):
    root = tmp_path / "cells"
    for (dataset, row), (valid, test) in PLAN.items():
        write_row(root, dataset, row, valid, test)
    # a stale twin of SYN / din seed 1: older code, finished later, a number that must not show
    write_cell(root, SYN, "din", 1, 3e-3, NOT_CHOSEN_AUC, key="old", code="old", finished="2026-02-01T00:00:00Z")
    # another budget's cell: ignored
    cell = json.loads((write_cell(root, ML, "dsin", 0, 3e-3, NOT_CHOSEN_AUC, key="smoke") / "cell.json").read_text())
    cell["budget"] = "smoke"
    (CellStore(root).cell_dir(ML, "dsin", 0, 3e-3, "smoke") / "cell.json").write_text(json.dumps(cell))
    # a failed cell of this budget
    failed = CellStore(root).cell_dir(ML, "dsin", 0, 3e-3, "f")
    failed.mkdir(parents=True)
    (failed / "failed.json").write_text(json.dumps({"error": "ValueError: boom"}))
    (failed / "spec.json").write_text(json.dumps({"budget": {"name": BUDGET.name}}))
    report = {"n_examples": 600, "ctr": 0.3, "oracle": {"auc": 0.81, "gauc": 0.71},
              "ablation": {}, "ceilings": {"last50": {"auc": 0.77, "gauc": 0.68, "gap": 0.04}}}
    (root / SYN / "dataset-grid.json").write_text(json.dumps({"name": SYN, "budget": "grid", "windows": WINDOWS,
                                                               "synthetic_report": report}))
    (root / ML / "dataset-grid.json").write_text(json.dumps({"name": ML, "budget": "grid", "windows": WINDOWS,
                                                              "synthetic_report": None}))
    (root / SYN / "compressors").mkdir()
    (root / SYN / "compressors" / "chime.json").write_text(json.dumps({
        "codebooks": {"positions": 10, "per_level": [{"level": 1, "used": 30, "hit_ratio": 0.9375, "perplexity": 20.5,
                                                      "codebook_size": 32}]},
        "users": 50, "behaviors_before_t1": 1234, "parameters": 999, "train_seconds": 12.0,
        "infer_ms_per_user_slice": 0.5, "vector_dim": 64}))
    return root


def test_cells_of_other_data_or_budget_settings_are_stale(store):
    """A cell recorded on another data fingerprint or with other budget settings never enters a mean."""
    info = json.loads((store / SYN / "dataset-grid.json").read_text())
    info["fingerprint"] = "now"
    (store / SYN / "dataset-grid.json").write_text(json.dumps(info))
    path = CellStore(store).cell_dir(SYN, "din", 1, 3e-3, "k") / "cell.json"
    cell = json.loads(path.read_text())
    cell["ingredients"]["data"] = "regenerated-since"
    path.write_text(json.dumps(cell))
    expected = {SYN: info}
    sel = tables.select(CellStore(store).cells(), BUDGET, current_code=CODE, expected=expected)
    assert "k" in {c["key"] for c in sel.stale if c["seed"] == 1}
    assert all(c["key"] != "k" for c in sel[(SYN, "din")] if c["seed"] == 1)  # (only the old twin is left)
    cell["ingredients"]["data"] = "now"
    cell["ingredients"]["budget"] = {"max_epochs": 99}
    path.write_text(json.dumps(cell))
    sel = tables.select(CellStore(store).cells(), BUDGET, current_code=CODE, expected=expected)
    assert all(c["key"] != "k" for c in sel[(SYN, "din")] if c["seed"] == 1)


@pytest.fixture()
def selected(store):
    return tables.select(CellStore(store).cells(), BUDGET, current_code=CODE)


def test_learning_rate_chosen_on_the_tuning_seed(selected):
    assert selected.rates[(SYN, "din")] == 3e-3
    assert selected.rates[(SYN, "dien")] == 1e-3
    assert selected.rates[(SYN, "dsin")] == 1e-3  # a tie goes to the smaller rate
    assert selected.rates[(ML, "dien")] == 3e-3
    for cells in selected.values():
        assert all(c["test"]["auc"] != NOT_CHOSEN_AUC for c in cells)
        assert [c["seed"] for c in cells] == sorted(c["seed"] for c in cells)
    assert [c["test"]["auc"] for c in selected[(SYN, "dien")]] == [0.74, 0.76]


def test_tuning_incomplete_is_listed_as_missing(selected):
    assert (ML, "dsin") not in selected
    assert selected.incomplete == {(ML, "dsin"): [3e-3]}
    missing = tables.missing_cells(selected, [SYN, ML], ["din", "dien", "dsin"])
    assert missing == [
        {"dataset": ML, "row": "dien", "tuning": [], "seeds": [1], "learning_rate": 3e-3},
        {"dataset": ML, "row": "dsin", "tuning": [3e-3], "seeds": [1], "learning_rate": None}]
    text = tables.missing_markdown(selected, [SYN, ML], ["din", "dien", "dsin"])
    assert "3 of 18 cells" in text
    assert "seed 0 at lr 0.003 (tuning incomplete); seed 1 at the rate not chosen yet" in text


def test_a_paper_row_takes_its_base_rows_rate(store):
    """``dmgin-simple`` (rate_from ``dmgin``) has no tuning cells: every seed at DMGIN's chosen rate."""
    write_row(store, SYN, "dmgin", {1e-3: 0.60, 3e-3: 0.70}, {0: 0.75, 1: 0.76})  # DMGIN picks 3e-3
    write_cell(store, SYN, "dmgin-simple", 0, 3e-3, 0.71)
    write_cell(store, SYN, "dmgin-simple", 1, 1e-3, NOT_CHOSEN_AUC)  # not the base's rate: unused
    write_cell(store, ML, "dmgin-simple", 0, 1e-3, NOT_CHOSEN_AUC)  # DMGIN not tuned on ml-100k yet
    sel = tables.select(CellStore(store).cells(), BUDGET, current_code=CODE)
    assert sel.rates[(SYN, "dmgin-simple")] == 3e-3
    assert [c["test"]["auc"] for c in sel[(SYN, "dmgin-simple")]] == [0.71]
    assert (ML, "dmgin-simple") not in sel and sel.incomplete[(ML, "dmgin-simple")] == [1e-3, 3e-3]
    missing = tables.missing_cells(sel, [SYN, ML], ["dmgin-simple"])
    assert missing == [
        {"dataset": SYN, "row": "dmgin-simple", "tuning": [], "seeds": [1], "learning_rate": 3e-3},
        {"dataset": ML, "row": "dmgin-simple", "tuning": [], "seeds": [0, 1], "learning_rate": None},
        {"dataset": ML, "row": "dmgin", "tuning": [1e-3, 3e-3], "seeds": [], "learning_rate": None}]
    assert "5 of 8 cells" in tables.missing_markdown(sel, [SYN, ML], ["dmgin-simple"])  # 2 + DMGIN's 2 tuning, x 2
    # a paper row without any cell yet: every seed at its base's rate once the base chose one
    assert tables.missing_cells(sel, [SYN], ["dmgin-no-match"]) == [
        {"dataset": SYN, "row": "dmgin-no-match", "tuning": [], "seeds": [0, 1], "learning_rate": 3e-3}]


def test_missing_counts_the_tuning_cells_of_a_base_not_asked_for(selected):
    """Only ``dmgin-simple`` asked for, DMGIN not tuned on either data set: the grid runs DMGIN's 2 tuning
    cells per data set too, so missing.md counts them (and nothing of DMGIN's other seeds)."""
    missing = tables.missing_cells(selected, [SYN], ["dmgin-simple"])
    assert missing == [
        {"dataset": SYN, "row": "dmgin-simple", "tuning": [], "seeds": [0, 1], "learning_rate": None},
        {"dataset": SYN, "row": "dmgin", "tuning": [1e-3, 3e-3], "seeds": [], "learning_rate": None}]
    assert "8 of 8 cells" in tables.missing_markdown(selected, [SYN, ML], ["dmgin-simple"])


def test_stale_twin_is_not_used(store, selected):
    assert [c["test"]["auc"] for c in selected[(SYN, "din")]] == [0.70, 0.72]
    assert [c["key"] for c in selected.stale] == ["old"]
    assert len(selected.ignored) == 0  # the smoke cell is another budget's: skipped, not "ignored"
    # without a current code version the newest twin wins
    newest = tables.select(CellStore(store).cells(), BUDGET, current_code={})
    assert [c["test"]["auc"] for c in newest[(SYN, "din")]] == [0.70, NOT_CHOSEN_AUC]


def test_format_mean_std():
    assert tables.format_mean_std([0.70, 0.72]) == "0.7100 ± 0.0141"
    assert tables.format_mean_std([0.66]) == "0.6600 (1 seed)"
    assert tables.format_mean_std([0.70, 0.72], expected=3, bold=True) == "**0.7100 ± 0.0141** (2 seeds)"
    assert tables.format_mean_std([]) == tables.DASH
    assert tables.format_mean_std([float("nan")]) == tables.DASH


def test_overall_table(store, selected):
    info = {SYN: json.loads((store / SYN / "dataset-grid.json").read_text()), ML: None}
    text = tables.overall_table(selected, [SYN, ML], ["din", "dien", "dsin", "dmgin"], "auc", info)
    lines = text.splitlines()
    assert lines[0] == f"| row | `{SYN}` | `{ML}` |"
    assert "| DIN | 0.7100 ± 0.0141 | 0.6300 ± 0.0141 |" in lines
    assert "| DIEN | **0.7500 ± 0.0141** | **0.6600** (1 seed) |" in lines  # one seed, still the best mean
    assert "| DSIN | 0.6850 ± 0.0071 | — |" in lines
    assert "| DMGIN | — | — |" in lines
    assert "| oracle (true probability, test window) | 0.8000 | — |" in lines
    assert "| generator's oracle (whole test split) | 0.8100 | — |" in lines
    assert "| ceiling `last50` (whole test split) | 0.7700 | — |" in lines
    logloss = tables.overall_table(selected, [SYN, ML], ["din", "dien", "dsin"], "logloss", info)
    assert "| DIEN | **0.3500 ± 0.0141** |" in logloss  # the lowest logloss is the best
    assert "ceiling" not in logloss


def test_cost_table_scales_time_to_the_reference_machine(store):
    """A machine session whose speed probes ran 4x slower than the reference machine's (median over its
    cells) has its cells' times divided by 4 and training rates multiplied by 4; a cell without a probe
    counts as measured; counts never scale."""
    from tfrec.benchmark.machine import MACHINE_FILE, REFERENCE_PROBE_MS
    ref = REFERENCE_PROBE_MS
    # the slow session's probes (median 4 x ref) on ML / DIN seed 0 and two other cells of the store
    for (row, seed, lr), probe in {("din", 0, 1e-3): 5 * ref, ("dien", 0, 3e-3): 4 * ref,
                                   ("dien", 0, 1e-3): 3 * ref}.items():
        path = CellStore(store).cell_dir(ML, row, seed, lr, "k") / MACHINE_FILE
        path.write_text(json.dumps({"probe_ms": probe, "boot_id": "slow"}))
    selected = tables.select(CellStore(store).cells(), BUDGET, current_code=CODE)
    text = tables.cost_table(selected, ML, ["din"])
    # ML / DIN seeds 0 and 1 at 1e-3: train ex/s 100 x 4 = 400 and 200 -> 300; user_tower (1.5 / 4 + 1.5) / 2
    # = 0.9375; score (2.0 / 4 + 2.0) / 2 = 1.25; parameters and bytes as recorded
    assert "| DIN | 0.001 | 0, 1 | 1.5 | 300 | 500 | 12,345 | 0.94 | 1.25 | 4,096 | 0.10 |" in text
    assert text.splitlines()[-1] == (f"Time columns (train ex/s, ms) are scaled to the reference machine (speed probe "
                                     f"{ref:g} ms/step): 1 cell from 1 machine session probing {4 * ref:.2f} "
                                     f"ms/step; 1 cell without a probe shown as measured.")


def test_agreement_pair_count():
    ours = {"a": 0.70, "b": 0.72, "c": 0.71, "d": 0.69, "e": None}
    paper = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 1.0, "e": 5.0}
    got = tables.agreement(ours, paper)
    assert got["rows"] == ["a", "b", "c", "d"]
    assert (got["pairs"], got["concordant"], got["discordant"], got["tied"]) == (6, 4, 1, 1)
    assert got["tau"] == pytest.approx(3 / math.sqrt(6 * 5))
    assert (got["best_ours"], got["best_paper"]) == ("b", "c")
    sentence = tables.agreement_sentence("x", ours, paper)
    assert "over the 4 rows in both, 4 of 5 row pairs (80%)" in sentence
    assert "(1 of 6 pairs tied in one of them, not counted)" in sentence
    assert "τ-b = +0.55" in sentence
    assert "too few" in tables.agreement_sentence("x", {"a": 0.7}, paper)


def test_paper_table_quotes_the_paper(selected):
    spec = next(s for s in tables.PAPER_TABLES if s.title.startswith("DMGIN Table 2"))
    text = tables.paper_table(selected, [SYN, ML], spec)
    # ours on both data sets, then the paper's four columns
    assert "| DIN | 0.7100 ± 0.0141 | 0.6100 ± 0.0141 | 0.6300 ± 0.0141 | 0.5300 ± 0.0141 | 0.7011 | 0.6391 | " \
           "0.7245 | 0.6753 |" in text
    assert "| DMGIN (paper-exact) | — | — | — | — | 0.7161 | 0.6458 | 0.7747 | 0.7022 |" in text
    assert "| DMGIN | — | — | — | — | — | — | — | — |" in text
    # SYN: ours DIEN > DIN > DSIN; the paper's Industry AUC DIEN > DSIN > DIN: 2 of 3 pairs alike
    assert (f"`{SYN}`: over the 3 rows in both, 2 of 3 row pairs (67%) are ordered by our mean AUC as by the "
            "paper's Industry AUC; Kendall τ-b = +0.33; best: ours DIEN, the paper's DIEN (the same).") in text
    assert f"`{ML}`: over the 2 rows in both, 1 of 1 row pairs (100%)" in text
    chime = next(s for s in tables.PAPER_TABLES if s.title.startswith("CHIME Table 3"))
    assert "No cells of these rows yet" in tables.paper_table(selected, [SYN, ML], chime)


def test_write_all(store, tmp_path):
    # two HSTU depths for the depth curve
    for row, aucs in (("dmgin-hstu1", (0.70, 0.71)), ("dmgin", (0.73, 0.75))):
        write_row(store, SYN, row, {1e-3: 0.6, 3e-3: 0.5}, dict(enumerate(aucs)))
    out = tmp_path / "out"
    paths = tables.write_all(store, out, BUDGET, [SYN, ML], ["din", "dien", "dsin"], current_code=CODE)
    names = {p.name for p in paths}
    assert names == {"overall.md", "papers.md", "missing.md", "summary.json", "quality-vs-cost.png",
                     "quality-vs-throughput.png", "bars.png", "hstu-depth.png"}
    for p in paths:
        assert p.exists() and p.stat().st_size > 0
    for name in names:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    overall = (out / "overall.md").read_text()
    assert "Regenerate: `tfrec bench --budget grid --tables-only --seeds 0 1 --results " in overall
    assert "| DIN | 0.7100 ± 0.0141 | 0.6300 ± 0.0141 |" in overall
    assert "| DIN | 0.003 | 0, 1 | 1.5 | 150 | 500 | 12,345 | 1.50 | 2.00 | 4,096 | 0.10 |" in overall
    papers_md = (out / "papers.md").read_text()
    assert "| 1 | DMGIN HSTU x1 | 0.7050 ± 0.0071 |" in papers_md
    assert f"`{SYN}`: our mean AUC rises at 1 of the 1 steps between the depths run (1, 2); best depth 2." in papers_md
    assert f"| `{SYN}` | 1 | 93.75% | 20.50 / 32 | 91.45% | 18.04 / 32 |" in papers_md
    missing = (out / "missing.md").read_text()
    assert "ValueError: boom" in missing and "## Stale (1:" in missing
    summary = json.loads((out / "summary.json").read_text())
    din = summary["datasets"][SYN]["rows"]["din"]
    assert din["learning_rate"] == 3e-3 and din["seeds"] == [0, 1]
    assert din["test"]["auc"]["mean"] == pytest.approx(0.71)
    assert din["test"]["auc"]["std"] == pytest.approx(0.0141421, abs=1e-6)
    assert din["oracle"]["auc"]["mean"] == pytest.approx(0.80)
    assert summary["tuning_incomplete"] == [{"dataset": ML, "row": "dsin", "missing_learning_rates": [3e-3]}]
    assert "reading.md" not in overall
    # a hand-written reading beside the tables: linked from overall.md, never overwritten
    (out / "reading.md").write_text("# by hand\n")
    tables.write_all(store, out, BUDGET, [SYN, ML], ["din", "dien", "dsin"], current_code=CODE)
    assert "not regenerated): reading.md." in (out / "overall.md").read_text()
    assert (out / "reading.md").read_text() == "# by hand\n"
    # no depth curve any more: the old PNG goes
    for row in ("dmgin-hstu1", "dmgin"):
        for path in (store / SYN / row).glob("*/cell.json"):
            path.unlink()
    paths = tables.write_all(store, out, BUDGET, [SYN, ML], ["din"], current_code=CODE)
    assert not (out / "hstu-depth.png").exists() and "hstu-depth.png" not in {p.name for p in paths}


def test_time_spent_sums_the_cells_and_estimates_the_rest(tmp_path):
    """Hand-computed: SYN / DIN's two cells ran 720 s each in a session probing 2x the reference (360 s each
    on the reference machine); SYN / DIEN's one cell ran 3600 s without a probe (counts as run). Missing:
    DIN seed 1 at DIN's mean (360), DIEN's lr 3e-3 and seed 1 at DIEN's (2 x 3600), DSIN's 3 cells at the
    data set's mean ((360 + 360 + 3600) / 3 = 1440): 11,880 s = 3.30 h. ml-100k has no cell: not estimated."""
    from tfrec.benchmark.machine import MACHINE_FILE, REFERENCE_PROBE_MS
    root = tmp_path / "cells"
    for row, lr, valid, wall, probe in (("din", 1e-3, 0.60, 720.0, 2 * REFERENCE_PROBE_MS),
                                        ("din", 3e-3, 0.65, 720.0, 2 * REFERENCE_PROBE_MS),
                                        ("dien", 1e-3, 0.66, 3600.0, None)):
        path = write_cell(root, SYN, row, 0, lr, 0.7, valid)
        cell = json.loads((path / "cell.json").read_text())
        cell["wall_seconds"] = wall
        (path / "cell.json").write_text(json.dumps(cell))
        if probe:
            (path / MACHINE_FILE).write_text(json.dumps({"probe_ms": probe, "boot_id": "slow"}))
    cells = CellStore(root).cells()
    selected = tables.select(cells, BUDGET, current_code=CODE)
    text = tables.time_spent_markdown(cells, selected, [SYN, ML], ["din", "dien", "dsin"])
    assert f"| `{SYN}` | 3 | 1.40 | 1.20 | 1440 | 6 | 3.30 |" in text
    assert f"| `{ML}` | 0 | 0.00 | 0.00 | — | 9 | — |" in text
    assert text.rstrip().splitlines()[-1] == (
        "Total: 1.40 h measured as run (1.20 h on the reference machine), about 3.3 h to go on the reference "
        "machine for the cells that can be estimated (9 cells of data sets with no finished cell yet are not).")



def test_time_estimate_of_a_paper_row_uses_its_base_rows_cells(tmp_path):
    """``dmgin-simple`` has no cell: its 2 missing cells are estimated at DMGIN's mean (100 s), not the data
    set's (DIN's 3600 s pulls that to 1850): DMGIN's 2 missing + 2 = 4 x 100 s = 0.11 h."""
    root = tmp_path / "cells"
    for row, wall in (("dmgin", 100.0), ("din", 3600.0)):
        path = write_cell(root, SYN, row, 0, 1e-3, 0.7, 0.6)
        cell = json.loads((path / "cell.json").read_text())
        cell["wall_seconds"] = wall
        (path / "cell.json").write_text(json.dumps(cell))
    cells = CellStore(root).cells()
    selected = tables.select(cells, BUDGET, current_code=CODE)
    text = tables.time_spent_markdown(cells, selected, [SYN], ["dmgin", "dmgin-simple"])
    assert f"| `{SYN}` | 2 | 1.03 | 1.03 | 1850 | 4 | 0.11 |" in text


def test_out_of_date_cells_are_listed_until_their_rerun(store, tmp_path):
    """A shown cell the next run re-runs: one of another data fingerprint than the data lock's, or of
    another code version of its model; listed per (data set, row) in missing.md while the tables still
    show it."""
    for path in (store / SYN / "din").glob("*/cell.json"):  # DIN on SYN ran on pre-lock data
        cell = json.loads(path.read_text())
        path.write_text(json.dumps({**cell, "ingredients": {**cell["ingredients"], "data": "pre-lock"}}))
    write_row(store, ML, "din", {1e-3: 0.55, 3e-3: 0.50}, {0: 0.62, 1: 0.64})
    locks = tmp_path / "locks"
    (locks / SYN).mkdir(parents=True)
    (locks / SYN / "lock.json").write_text(json.dumps({"fingerprint": "locked"}))
    assert tables.locked_fingerprints(locks) == {SYN: "locked"}
    code = dict(CODE, dien="newer")  # DIEN's code changed since its cells ran
    out = tmp_path / "out"
    tables.write_all(store, out, BUDGET, [SYN, ML], ["din", "dien", "dsin"], current_code=code, lock_root=locks)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outdated"] == [
        {"dataset": ML, "row": "dien", "data": 0, "code": 1, "shown": 1},
        {"dataset": SYN, "row": "dien", "data": 0, "code": 2, "shown": 2},
        {"dataset": SYN, "row": "din", "data": 2, "code": 0, "shown": 2}]
    missing = (out / "missing.md").read_text()
    assert "## Out of date (5: the next run re-runs them" in missing
    assert "and 5 more are out of date (below)" in missing
    assert f"| `{SYN}` | `din` | 2 | 2 | 0 |" in missing
    assert "| DIN | 0.7100 ± 0.0141 |" in (out / "overall.md").read_text()  # still shown until re-run


def test_out_of_date_cells_of_a_row_still_tuning_are_counted(store, tmp_path):
    """A row with no rate chosen yet shows nowhere, yet its cells of pre-lock data are re-run too: they are
    listed as out of date (0 shown) and counted in the cells to run, not taken as done."""
    for path in (store / ML / "dsin").glob("*/cell.json"):  # DSIN on ML: 1 tuning cell of 2, pre-lock data
        cell = json.loads(path.read_text())
        path.write_text(json.dumps({**cell, "ingredients": {**cell["ingredients"], "data": "pre-lock"}}))
    locks = tmp_path / "locks"
    (locks / ML).mkdir(parents=True)
    (locks / ML / "lock.json").write_text(json.dumps({"fingerprint": "locked"}))
    out = tmp_path / "out"
    tables.write_all(store, out, BUDGET, [SYN, ML], ["din", "dien", "dsin"], current_code=CODE, lock_root=locks)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outdated"] == [{"dataset": ML, "row": "dsin", "data": 1, "code": 0, "shown": 0}]
    missing = (out / "missing.md").read_text()
    assert "and 1 more are out of date (below)" in missing
    assert f"| `{ML}` | `dsin` | 0 | 1 | 0 |" in missing
    # ML: dien seed 1, dsin lr 3e-3 and seed 1 missing (3) + dsin's out-of-date cell (1) = 4 to run
    assert f"| `{ML}` | 6 | " in missing and "| 4 | " in missing.split(f"| `{ML}` | 6 | ")[1].splitlines()[0]
