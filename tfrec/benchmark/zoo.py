"""The benchmark's rows: one row = one model type + one YAML config (pipelines/configs/) + overrides.

Every row of the overall table is one of the ~20 models of the zoo at its default config; the
paper-table rows are the papers' ablations of them (each a config switch). A row that reads a
per-user vector file (CHIME / LEARN, ``user_vectors``) names the compressor config
(pipelines/configs/compression/<name>.yaml) whose output it reads; the compressor trains once per
data set on the behaviors before the training window (CHIME sec. 5.1).

``None`` in ``overrides`` means "the data set's longest history" (DIN-Full's ``recent_length``).
``data_overrides`` are set on top for one data set only: where a config names a feature of the data's
schema (SIM hard's ``category_feature``: the synthetic ``category``, MovieLens's ``genres``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

CONFIG_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "configs"


@dataclass(frozen=True)
class Row:
    """One benchmark row.

    Attributes:
      label: the row's name in tables and cell keys.
      model: the model type (``tfrec.models.MODELS``).
      config: the YAML config stem under pipelines/configs/.
      overrides: config fields set on top of the YAML (``None`` = the data's longest history).
      user_vectors: the compressor config stem (pipelines/configs/compression/) whose per-user vectors
        the model reads, or None.
      tables: the tables it appears in (``overall``, ``dmgin``, ``dmqn``, ``siren``, ``chime``).
      title: the display name.
      data_overrides: data set name -> config fields set for that data set only (after ``overrides``).
      rate_from: a paper-table row's base (an overall row): the row runs every seed at the learning rate
        its base chose on the data set and has no tuning cells of its own (an ablation changes one
        switch, not the rate); "" = the row tunes its own rate.
    """

    label: str
    model: str
    config: str
    overrides: dict = field(default_factory=dict)
    user_vectors: Optional[str] = None
    tables: tuple = ("overall",)
    title: str = ""
    data_overrides: dict = field(default_factory=dict)
    rate_from: str = ""

    @property
    def name(self) -> str:
        return self.title or self.label


def _rows(*rows: Row) -> dict:
    return {r.label: r for r in rows}


# MovieLens items carry a genre list, no single category: SIM hard matches a shared genre
MOVIELENS_CATEGORY = {"ml-100k": {"category_feature": "genres"}, "ml-1m": {"category_feature": "genres"}}
ESU_ABLATION = {"semantic_id": False, "similarity_buckets": False, "target_interaction": False}

ROWS = _rows(
    # ---- the overall table: every model of the zoo at its default config
    Row("din", "din", "din", title="DIN", tables=("overall", "dmgin", "dmqn", "siren", "chime")),
    Row("din-middle", "din", "din-middle", title="DIN-Middle", tables=("overall", "dmgin", "dmqn")),
    Row("din-full", "din", "din-full", {"recent_length": None}, title="DIN-Full", tables=("overall", "dmgin", "dmqn")),
    Row("dien", "dien", "dien", title="DIEN", tables=("overall", "dmgin", "dmqn")),
    Row("dsin", "dsin", "dsin", title="DSIN", tables=("overall", "dmgin", "dmqn")),
    Row("dsin-full", "dsin", "dsin-full", title="DSIN-Full", tables=("overall", "dmgin")),
    Row("sim-hard", "sim", "sim", title="SIM (hard)", tables=("overall", "dmgin", "dmqn", "siren"),
        data_overrides=MOVIELENS_CATEGORY),
    Row("sim-soft", "sim", "sim-soft", title="SIM (soft)", tables=("overall", "siren", "chime")),
    Row("eta", "eta", "eta", title="ETA", tables=("overall", "dmgin", "chime")),
    Row("sdim", "sdim", "sdim", title="SDIM", tables=("overall", "dmgin", "dmqn", "chime")),
    Row("twin", "twin", "twin", title="TWIN", tables=("overall", "dmgin", "dmqn", "siren", "chime")),
    # TWIN-V2 clusters its window in the user tower at every training step (3.7 s per batch of 256 at
    # N = 1,024 on 2 cores): N = 256 keeps it inside the grid's budget (bench/PROTOCOL.md)
    Row("twinv2", "twinv2", "twinv2", {"history_length": 256}, title="TWIN-V2 (N=256)", tables=("overall", "dmgin", "dmqn")),
    Row("dgin", "dmgin", "dmgin-dgin", title="DGIN", tables=("overall", "dmgin")),
    Row("muse", "muse", "muse", title="MUSE", tables=("overall", "siren")),
    Row("miss", "miss", "miss", title="MISS", tables=("overall", "siren")),
    Row("siren", "siren", "siren", title="SIREN", tables=("overall", "siren")),
    Row("dmqn", "dmqn", "dmqn", title="DMQN", tables=("overall", "dmqn")),
    Row("dmgin", "dmgin", "dmgin", title="DMGIN", tables=("overall", "dmgin")),
    Row("chime", "din", "din", user_vectors="chime", title="DIN + CHIME", tables=("overall", "chime")),
    Row("learn", "din", "din", user_vectors="learn", title="DIN + LEARN", tables=("overall", "chime")),
    # ---- DMGIN Tables 2-4: the paper's exact config, Table 3 on DMGIN-simple, Table 4 HSTU depth
    Row("dmgin-paper", "dmgin", "dmgin-paper", title="DMGIN (paper-exact)", tables=("dmgin",), rate_from="dmgin"),
    Row("dmgin-no-match", "dmgin", "dmgin", {"match_prior": False}, title="DMGIN w/o match prior", tables=("dmgin",),
        rate_from="dmgin"),
    Row("dmgin-simple", "dmgin", "dmgin", {"hstu_layers": 0}, title="DMGIN-simple", tables=("dmgin",), rate_from="dmgin"),
    Row("dmgin-simple-no-stats", "dmgin", "dmgin", {"hstu_layers": 0, "statistics": False},
        title="DMGIN-simple w/o statistics", tables=("dmgin",), rate_from="dmgin"),
    Row("dmgin-simple-no-evolution", "dmgin", "dmgin", {"hstu_layers": 0, "evolution": False},
        title="DMGIN-simple w/o intra-group attention", tables=("dmgin",), rate_from="dmgin"),
    *[Row(f"dmgin-hstu{n}", "dmgin", "dmgin", {"hstu_layers": n}, title=f"DMGIN HSTU x{n}", tables=("dmgin",),
          rate_from="dmgin")
      for n in (1, 3, 4, 5, 6)],
    # ---- DMQN Table 3
    Row("dmqn-simple", "dmqn", "dmqn", {"use_icim": False}, title="DMQN-simple", tables=("dmqn",), rate_from="dmqn"),
    # ---- SIREN Tables 1-2: the SemID GSU and the ESU ablations (soft GSU)
    Row("siren-semid-gsu", "siren", "siren-semid-gsu", title="SIREN (SemID GSU)", tables=("siren",),
        rate_from="siren"),
    Row("ta-base", "siren", "siren", ESU_ABLATION, title="TA base", tables=("siren",), rate_from="siren"),
    Row("ta+semid", "siren", "siren", {**ESU_ABLATION, "semantic_id": True}, title="TA + SemID", tables=("siren",),
        rate_from="siren"),
    Row("ta+simbucket", "siren", "siren", {**ESU_ABLATION, "similarity_buckets": True}, title="TA + SimBucket",
        tables=("siren",), rate_from="siren"),
    Row("ta+simbucket+semid", "siren", "siren", {**ESU_ABLATION, "semantic_id": True, "similarity_buckets": True},
        title="TA + SimBucket + SemID", tables=("siren",), rate_from="siren"),
    # ---- CHIME Table 2 (the other rankers with LEARN / CHIME) and Table 3 (CHIME's ablations, on DIN)
    *[Row(f"{r}+{c}", m, stem, user_vectors=c, title=f"{t} + {c.upper()}", tables=("chime",),
          rate_from=r)
      for r, m, stem, t in (("sim-soft", "sim", "sim-soft", "SIM (soft)"), ("eta", "eta", "eta", "ETA"),
                            ("sdim", "sdim", "sdim", "SDIM"), ("twin", "twin", "twin", "TWIN"))
      for c in ("learn", "chime")],
    *[Row(f"chime-no-{part}", "din", "din", user_vectors=f"chime-no-{part}", title=f"DIN + CHIME w/o {part.upper()}",
          tables=("chime",), rate_from="chime") for part in ("il", "icm", "iam")],
)

OVERALL = [label for label, row in ROWS.items() if "overall" in row.tables]
PAPER_ROWS = [label for label in ROWS if label not in OVERALL]
assert all(r.rate_from in OVERALL for r in ROWS.values() if r.rate_from), "rate_from names an overall row"


def tuning_row(label: str) -> str:
    """The row whose tuning-seed cells choose ``label``'s learning rate: its ``rate_from`` or itself."""
    return (ROWS[label].rate_from or label) if label in ROWS else label


def with_bases(labels) -> list:
    """``labels`` then the ``rate_from`` bases they need that are not among them (tuning cells only)."""
    labels = list(labels)
    return labels + [b for b in dict.fromkeys(tuning_row(r) for r in labels) if b not in labels]


def resolve_config(row: Row, max_history_length: int, dataset: str = "") -> dict:
    """The row's full model config on data set ``dataset``: its YAML + overrides (``None`` -> the data's
    longest history) + the data set's ``data_overrides``."""
    from pipelines.common import load_yaml_config

    config = load_yaml_config(CONFIG_DIR / f"{row.config}.yaml")
    config.update({k: (max_history_length if v is None else v) for k, v in row.overrides.items()})
    config.update(row.data_overrides.get(dataset, {}))
    return config


def select_rows(names) -> list:
    """Row labels from names: a label, ``overall`` (the overall table's rows), ``papers`` (the rows only the
    paper tables have), ``all``, or ``<paper>-tables`` (``dmgin-tables``, ``dmqn-tables``, ``siren-tables``,
    ``chime-tables``: every row of that paper's tables)."""
    out = []
    tables = {t for r in ROWS.values() for t in r.tables}
    for name in names:
        if name == "all":
            picked = list(ROWS)
        elif name == "overall":
            picked = OVERALL
        elif name == "papers":
            picked = PAPER_ROWS
        elif name in ROWS:
            picked = [name]
        elif name.endswith("-tables") and name[:-len("-tables")] in tables - {"overall"}:
            picked = [label for label, r in ROWS.items() if name[:-len("-tables")] in r.tables]
        else:
            raise ValueError(f"--models: unknown row {name!r}; rows: {', '.join(ROWS)}; or one of all, overall, "
                             f"papers, {', '.join(sorted(t + '-tables' for t in tables - {'overall'}))}")
        out += [p for p in picked if p not in out]
    return out
