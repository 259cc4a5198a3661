"""Model and training configs: small frozen dataclasses (YAML files in pipelines/configs load into them)."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple, Type, TypeVar

T = TypeVar("T")

# Bucket boundaries, in days, for the time since a behavior (before the request).
TIME_BUCKET_DAYS: Tuple[float, ...] = (
    1 / 24, 6 / 24, 1, 2, 4, 7, 14, 30, 60, 90, 180, 365, 730,
)


REGULARIZATIONS = ("l2", "mba")


@dataclasses.dataclass(frozen=True)
class DINConfig:
    """DIN (Zhou et al. 2018) on the most recent behaviors.

    The item representation is the paper's: the item id's embedding concatenated with the schema's
    item side features (``ItemEmbedding``); user and context features reach the head.

    Defaults chosen by measurement (``bench/side_features.py --dataset synthetic-medium --models din
    --variants schema``, 3 seeds, test AUC / GAUC): sigmoid unit + ReLU head 0.6180 / 0.6117
    (default); PReLU both 0.6152 / 0.6125; Dice both 0.6112 / 0.6118; + MBA λ = 0.01 0.6204 /
    0.6177, within noise (std 0.002-0.006). So the cheaper defaults stay; the paper's choices are
    ``pipelines/configs/din-paper.yaml``.

    Attributes:
      embedding_dim: size of item / behavior-type / profile embeddings.
      recent_length: number of most recent behaviors attended (50 = "DIN"; 200 = "DIN-Middle";
        None = the schema's whole history, "DIN-Full").
      attention_units: hidden units of the local activation unit.
      attention_activation: activation of the local activation unit's hidden layers: "sigmoid"
        (ours, the earlier default), "prelu" or "dice" (the paper's, sec. 5.3).
      mlp_units: hidden units of the prediction MLP.
      head_activation: activation of the prediction MLP: "relu", "prelu" or "dice" (the paper's).
      dropout: dropout rate in the prediction MLP.
      embedding_l2: λ of the embedding regularization (0 = none).
      regularization: "l2" (λ times the squared norm of every embedding table, the classic
        penalty the paper calls prohibitive at its scale) or "mba" (the paper's mini-batch aware
        regularization, eq. 5: λ Σ_j ||w_j||² / n_j over the item ids j present in the batch,
        n_j = item j's occurrences in the training data).
    """

    embedding_dim: int = 16
    recent_length: Optional[int] = 50
    attention_units: Tuple[int, ...] = (36,)
    attention_activation: str = "sigmoid"
    mlp_units: Tuple[int, ...] = (64, 32)
    head_activation: str = "relu"
    dropout: float = 0.0
    embedding_l2: float = 0.0
    regularization: str = "l2"

    def __post_init__(self):
        if self.regularization not in REGULARIZATIONS:
            raise ValueError(f"DINConfig.regularization must be one of {list(REGULARIZATIONS)}. "
                             f"Received: regularization={self.regularization!r}")
        if self.embedding_l2 < 0:
            raise ValueError(f"DINConfig.embedding_l2 must be >= 0. Received: embedding_l2={self.embedding_l2!r}")
        if self.recent_length is not None and self.recent_length < 1:
            raise ValueError("DINConfig.recent_length must be >= 1 (DIN is its recent-behavior branch). "
                             f"Received: recent_length={self.recent_length!r}")


GROUP_KEYS = ("cluster", "item_id")


@dataclasses.dataclass(frozen=True)
class DMGINConfig:
    """DMGIN (DMGIN paper, eqs. 1-10; DESIGN.md's reconstruction; choices: docs/models.md).

    Every paper ablation is a field: ``hstu_layers=0`` is DMGIN-simple and, on it, ``statistics`` /
    ``evolution`` off are Table 3's "-Interest Statistical" / "-Behavior Evolution"; ``hstu_layers``
    1 -> 6 is Table 4; ``group_key="item_id"`` is DGIN (groups by item id, no multimodal K-means:
    ``dmgin-dgin.yaml``). ``pipelines/configs/dmgin-paper.yaml`` is the paper as written (no
    match prior, the paper's Amazon short sequence of 10); the defaults are our measured best
    (docs/models.md, "DMGIN").

    Attributes:
      embedding_dim: d, the size of every embedding and group vector.
      top_k_groups: k, the number of most recent groups kept (eq. 6); 0 = sized from the training
        data (``DMGIN.config_from_data``: the smallest k keeping the target item's group for
        ``top_k_coverage`` of the examples that have it in their history, at most ``top_k_max``).
      top_k_coverage: the coverage ``top_k_groups=0`` is sized for.
      top_k_max: the largest k ``top_k_groups=0`` may choose.
      coverage_batches: training batches the sizing reads.
      max_per_group: m, behaviors per group fed to intra-group attention (most recent first).
      num_heads: heads of the intra-group multi-head self-attention (eqs. 2-3).
      hstu_layers: depth of the inter-group HSTU stack (eqs. 7-9; paper: 1 -> 6, monotone gains);
        0 = DMGIN-simple (the candidate attends to the top-k group vectors directly).
      hstu_heads: heads per HSTU layer.
      statistics: the interest statistics ``s_i`` (eq. 1) in the group representation (eq. 5).
      evolution: the intra-group behavior evolution ``e_i`` (eqs. 2-4) in the group representation.
      match_prior: add a learned bias on the candidate's own group to the candidate-aware attention
        (ours, not the paper's eq. 10; ``CandidateGroupAttention``).
      group_key: "cluster" (the multimodal K-means groups, ``tfrec cluster``) or "item_id" (DGIN:
        every item is its own group; needs no group table). The grouping then builds ``[B, n_items + 1]``
        tensors per step: fine to ~10^5 items (B = 256: 26M entries), not for a 10^7-item catalog.
      short_term_length: recent behaviors in the short-term DIN branch (0 = none).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
      time_bucket_days: boundaries (days) of the behavior-age buckets, E_time.
      input_grouping: group the history in the input pipeline, not in the train step (the grouping,
        the statistics and every gather over the L raw behaviors have no trainable parameter):
        ``tfrec train`` computes each request's grouped tensors once (``tfrec.data.request_states``)
        and trains on ``k x m`` tensors; ``prepare_training_data`` maps the same function over a
        notebook's batches. False = group in the train step (the serving ``user_tower`` always groups
        in-graph from the raw behaviors; both paths give identical tensors, tested).
    """

    embedding_dim: int = 16
    top_k_groups: int = 0
    top_k_coverage: float = 0.95
    top_k_max: int = 128
    coverage_batches: int = 20
    max_per_group: int = 16
    num_heads: int = 2
    hstu_layers: int = 2
    hstu_heads: int = 2
    statistics: bool = True
    evolution: bool = True
    match_prior: bool = True
    group_key: str = "cluster"
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    time_bucket_days: Tuple[float, ...] = TIME_BUCKET_DAYS
    input_grouping: bool = True

    def __post_init__(self):
        if self.group_key not in GROUP_KEYS:
            raise ValueError(f"DMGINConfig.group_key must be one of {list(GROUP_KEYS)}. "
                             f"Received: group_key={self.group_key!r}")
        for name in ("top_k_groups", "hstu_layers", "short_term_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"DMGINConfig.{name} must be >= 0 (top_k_groups 0 = sized from the data, "
                                 f"hstu_layers 0 = DMGIN-simple, short_term_length 0 = no short-term branch). "
                                 f"Received: {name}={getattr(self, name)!r}")
        _check_positive(self, "embedding_dim", "top_k_max", "coverage_batches", "max_per_group", "num_heads",
                        "hstu_heads")
        if self.top_k_max < 4:
            raise ValueError(f"DMGINConfig.top_k_max must be >= 4 (the smallest k the sizing picks). "
                             f"Received: top_k_max={self.top_k_max!r}")
        if not 0.0 < self.top_k_coverage <= 1.0:
            raise ValueError(f"DMGINConfig.top_k_coverage must lie in (0, 1]. "
                             f"Received: top_k_coverage={self.top_k_coverage!r}")


CODEWORD_ORDERS = ("recency", "codebook")


@dataclasses.dataclass(frozen=True)
class DMQNConfig:
    """DMQN (DMQN paper, eqs. 3-13; choices the paper leaves open: docs/models.md).

    Ablations are fields: ``use_icim=False`` is the paper's DMQN-simple (Table 3: no HSTU, the
    candidate attends to the pooled codewords directly); ``num_codebooks`` N and ``codebook_size``
    W; ``estimator="softmax"`` drops the Gumbel noise; ``codeword_order="codebook"`` feeds the
    HSTU the codewords in codebook index order instead of by recency.

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      num_codebooks: N, independent codebooks (eq. 3).
      codebook_size: W, codewords per codebook (N x W ~ "about a hundred" in the paper).
      estimator: "gumbel" (Gumbel-softmax straight-through, eq. 6) or "softmax" (no noise).
      temperature: tau of the relaxation at the first epoch (shapes the straight-through gradient).
      temperature_decay: tau is multiplied by this after every epoch (1 = constant) ...
      temperature_min: ... down to this floor.
      dead_code_reset: restart, before the next epoch, the codewords that won no training
        behavior of the epoch at argmax (``CodebookHealth``; ours, the collapse remedy; off by
        default, as the paper: turn it on when the codebook report shows dead codewords).
      health_batches: training batches the per-epoch served-usage report (argmax) looks at.
      behavior_age: add ``E_time(bucket(t_req - t_i))`` to each behavior token before quantizing
        (ours: the paper's ``e_i`` is unspecified; DMGIN's behaviors carry the same age buckets).
        Without it the long-term branch never sees the request time.
      codeword_count: add ``W_c log1p(|codeword|)`` to each pooled codeword (ours: the avg-pool
        of eq. 9 drops how many behaviors a codeword holds, i.e. the interest's intensity).
      use_icim: the Interest Clusters Interaction Module (HSTU over each codeword sequence).
      codeword_order: "recency" (by each codeword's newest member behavior, oldest -> newest, as
        DMGIN orders its groups) or "codebook" (fixed codebook index order).
      hstu_layers: depth of the HSTU stack (eqs. 11-13).
      hstu_heads: heads per HSTU layer.
      short_term_length: recent behaviors in the shared short-term DIN branch (ours, as every
        model's; 0 = none, the paper's single behavior sequence: ``dmqn-paper.yaml``).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
      time_bucket_days: boundaries (days) of the HSTU relative-time buckets.
    """

    embedding_dim: int = 16
    num_codebooks: int = 2
    codebook_size: int = 64
    estimator: str = "gumbel"
    temperature: float = 1.0
    temperature_decay: float = 1.0
    temperature_min: float = 0.1
    dead_code_reset: bool = False
    health_batches: int = 8
    behavior_age: bool = False
    codeword_count: bool = False
    use_icim: bool = True
    codeword_order: str = "recency"
    hstu_layers: int = 2
    hstu_heads: int = 2
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    time_bucket_days: Tuple[float, ...] = TIME_BUCKET_DAYS

    def __post_init__(self):
        if self.codeword_order not in CODEWORD_ORDERS:
            raise ValueError(f"DMQNConfig.codeword_order must be one of {list(CODEWORD_ORDERS)}. "
                             f"Received: codeword_order={self.codeword_order!r}")
        if self.estimator not in ("gumbel", "softmax"):
            raise ValueError("DMQNConfig.estimator must be one of ['gumbel', 'softmax']. "
                             f"Received: estimator={self.estimator!r}")
        if self.num_codebooks < 1 or self.codebook_size < 2:
            raise ValueError("DMQNConfig needs num_codebooks >= 1 and codebook_size >= 2. Received: "
                             f"num_codebooks={self.num_codebooks}, codebook_size={self.codebook_size}")
        if self.short_term_length < 0 or self.health_batches < 1:
            raise ValueError("DMQNConfig needs short_term_length >= 0 (0 = no short-term branch) and health_batches >= 1. "
                             f"Received: short_term_length={self.short_term_length}, "
                             f"health_batches={self.health_batches}")
        if not (self.temperature > 0 and self.temperature_min > 0 and 0 < self.temperature_decay <= 1):
            raise ValueError("DMQNConfig needs temperature > 0, temperature_min > 0 and 0 < temperature_decay <= 1. "
                             f"Received: temperature={self.temperature}, temperature_min={self.temperature_min}, "
                             f"temperature_decay={self.temperature_decay}")


GSU_MODES = ("soft", "hard")


def _check_positive(config, *names: str) -> None:
    """Raises naming the first of ``names`` whose value in ``config`` is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be >= 1. Received: {name}={getattr(config, name)}")


@dataclasses.dataclass(frozen=True)
class SIRENConfig:
    """SIREN (SIREN paper, secs. 4.1-4.3; choices the paper leaves open: docs/models.md).

    Ablations are fields (Table 2): ``semantic_id`` (prefix-encoded SemIDs in ``h_i``),
    ``similarity_buckets`` (``e^Sim`` in the attention inputs), ``target_interaction`` (TI, eq. 12);
    all three off = the "target attention (base)" row. ``gsu`` picks SIREN_sim-GSU ("soft", eq. 7)
    or SIREN_SemID-GSU ("hard", eq. 8).

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors the GSU searches (the user state holds them; a
        longer history is cut to its N most recent behaviors; ScaNN serves longer ones outside the
        SavedModel, ``tfrec.retrieval``).
      gsu: "soft" (top-K by content cosine, eq. 7) or "hard" (behaviors sharing the target's
        level-1 Semantic ID, the K most recent, eq. 8).
      gsu_k: K, behaviors the GSU passes to the ESU (50, as the paper).
      semantic_id: add the prefix-encoded Semantic ID ``e^sem`` to every item (eq. 9).
      prefix_depth: the deepest prefix (eq. 2); 0 = every level M of the codes.
      semantic_id_dim: the size of one prefix embedding (``e^sem`` has ``depth x`` this).
      similarity_buckets: concatenate the similarity bucket embedding to the attention inputs (eq. 11).
      num_buckets: B (eq. 5).
      bucket_dim: the size of a bucket embedding.
      similarity_quantiles: ``[s_min, s_max]`` = these quantiles of the similarities the ESU sees
        in the training data (the GSU-retrieved behaviors' cosines; ``SIREN.adapt``).
      adapt_batches: training batches ``adapt`` reads to estimate the range.
      target_interaction: TI, ``u ⊙ h_t`` (eq. 12) instead of ``u``.
      num_heads: heads of the ESU target attention (eq. 11).
      key_dim: query / key size per head.
      content_feature: "" = the content vectors of ``raw/items.npz``; else the name of a declared
        dense item feature of the item table.
      short_term_length: recent behaviors in the shared short-term DIN branch (ours, as every
        model's; 0 = none, the paper's: ``siren-paper.yaml``).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP ``g`` (eq. 13).
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu: str = "soft"
    gsu_k: int = 50
    semantic_id: bool = True
    prefix_depth: int = 0
    semantic_id_dim: int = 8
    similarity_buckets: bool = True
    num_buckets: int = 20
    bucket_dim: int = 8
    similarity_quantiles: Tuple[float, float] = (0.01, 0.99)
    adapt_batches: int = 20
    target_interaction: bool = True
    num_heads: int = 2
    key_dim: int = 16
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        if self.gsu not in GSU_MODES:
            raise ValueError(f"SIRENConfig.gsu must be one of {list(GSU_MODES)}. Received: gsu={self.gsu!r}")
        _check_positive(self, "embedding_dim", "history_length", "gsu_k", "semantic_id_dim", "num_buckets",
                        "bucket_dim", "adapt_batches", "num_heads", "key_dim")
        if self.prefix_depth < 0 or self.short_term_length < 0:
            raise ValueError("SIRENConfig needs prefix_depth >= 0 (0 = every level) and short_term_length >= 0. "
                             f"Received: prefix_depth={self.prefix_depth}, short_term_length={self.short_term_length}")
        lo, hi = self.similarity_quantiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError("SIRENConfig.similarity_quantiles must satisfy 0 <= low < high <= 1. "
                             f"Received: similarity_quantiles={self.similarity_quantiles}")


@dataclasses.dataclass(frozen=True)
class MUSEConfig:
    """MUSE (Wu et al. 2025, arXiv 2512.07216; public code alimama-tech/MUSE; choices: docs/models.md).

    GSU: the K behaviors of highest content cosine to the target. ESU: multi-head target attention
    over them with MUSE's semantic-aware target attention (SA-TA: the cosine mixed into every
    head's logit). SimTier: histograms of the target's cosines to the ``simtier_recent`` most recent
    behaviors and to the K retrieved ones. Head: ``[ESU output, SimTier features]`` next to the
    shared item / short-term / user inputs. Ablations are fields: ``simtier`` off (no histograms),
    ``semantic_aware_attention`` off (plain target attention).

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors the GSU searches (the user state holds them).
      gsu_k: K, behaviors the GSU passes to the ESU (50, as MUSE and SIREN's Table 1).
      simtier: add the SimTier histogram features to the head.
      simtier_bins: tiers of each histogram, even and >= 4 (22, MUSE's: tier width 0.1).
      simtier_recent: the most recent behaviors of the second histogram (50, MUSE's real-time
        sequence); 0 = only the histogram of the K retrieved behaviors.
      semantic_aware_attention: SA-TA in the ESU (``MultiHeadTargetAttention(semantic_aware=True)``);
        off = plain multi-head target attention.
      num_heads: heads of the ESU target attention (must divide the item representation's size).
      key_dim: query / key size per head.
      content_feature: "" = the content vectors of ``raw/items.npz``; else the name of a declared
        dense item feature of the item table.
      short_term_length: recent behaviors in the shared short-term DIN branch (MUSE's real-time
        attention reads 50; 0 = none).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu_k: int = 50
    simtier: bool = True
    simtier_bins: int = 22
    simtier_recent: int = 50
    semantic_aware_attention: bool = True
    num_heads: int = 2
    key_dim: int = 16
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        _check_positive(self, "embedding_dim", "history_length", "gsu_k", "num_heads", "key_dim")
        if self.simtier_bins < 4 or self.simtier_bins % 2:
            raise ValueError(f"MUSEConfig.simtier_bins must be even and >= 4. "
                             f"Received: simtier_bins={self.simtier_bins}")
        if self.simtier_recent < 0 or self.short_term_length < 0:
            raise ValueError("MUSEConfig needs simtier_recent >= 0 (0 = none) and short_term_length >= 0. Received: "
                             f"simtier_recent={self.simtier_recent}, short_term_length={self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MUSEConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")


@dataclasses.dataclass(frozen=True)
class MISSConfig:
    """MISS (Guo et al., CIKM 2025) as SIREN's Table 1 baseline: an ID GSU next to a multimodal GSU.

    Each GSU retrieves K behaviors per candidate and has its own ESU (multi-head target attention
    over its K behaviors); both outputs reach the head. The ID GSU (the paper's Co-GSU) scores
    ``(W_a e_t)·(W_b e_i)`` with its ESU's query / key projections (so they are trained through the
    ESU); the multimodal GSU (MM-GSU) ranks by content cosine. Choices the paper leaves open: the
    ``MISS`` class docstring. Ablations: ``id_gsu`` / ``mm_gsu`` off (one of them must stay on).

    Attributes:
      embedding_dim: d, the size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors both GSUs search (the user state holds them).
      id_gsu: the ID-based GSU (Co-GSU) and its ESU.
      mm_gsu: the multimodal GSU (MM-GSU, content cosine) and its ESU.
      gsu_k: K, behaviors each GSU passes to its ESU (50, as SIREN's Table 1).
      num_heads: heads of each ESU (must divide the item representation's size).
      key_dim: query / key size per head (also the ID GSU's relevance space, per head).
      content_feature: "" = the content vectors of ``raw/items.npz``; else the name of a declared
        dense item feature of the item table.
      short_term_length: recent behaviors in the shared short-term DIN branch (ours, as every
        model's; 0 = none).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    id_gsu: bool = True
    mm_gsu: bool = True
    gsu_k: int = 50
    num_heads: int = 2
    key_dim: int = 16
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        if not (self.id_gsu or self.mm_gsu):
            raise ValueError("MISSConfig needs at least one GSU. Received: id_gsu=False, mm_gsu=False")
        _check_positive(self, "embedding_dim", "history_length", "gsu_k", "num_heads", "key_dim")
        if self.short_term_length < 0:
            raise ValueError(f"MISSConfig.short_term_length must be >= 0. Received: "
                             f"short_term_length={self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MISSConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")


SIM_GSUS = ("hard", "soft")


@dataclasses.dataclass(frozen=True)
class SIMConfig:
    """SIM (Pi et al., CIKM 2020): a General Search Unit over the lifelong window, then an ESU.

    ``gsu="hard"``: behaviors whose ``category_feature`` equals the target's, the K most recent kept
    (non-differentiable). ``gsu="soft"``: relevance ``(W_a e_t)·(W_b h_i)`` with the GSU's own
    projections, top-K; the GSU is trained by SIM's auxiliary loss (the softmax(relevance)-weighted
    sum of the whole window's behaviors next to ``e_t`` through a small MLP, a CTR loss on the same
    label), ``gsu_loss_weight`` x L_gsu + L_esu, in ``compute_loss`` only (never in a serving graph).

    Attributes:
      embedding_dim, history_length (N), gsu_k (K = 50, as the papers), num_heads, key_dim,
      short_term_length, attention_units, mlp_units, dropout: as ``MISSConfig``.
      gsu: ``"hard"`` or ``"soft"``.
      category_feature: the declared categorical item feature the hard GSU matches on (multi_categorical:
        a behavior sharing any value with the target matches).
      gsu_loss_weight: alpha of the soft GSU's auxiliary loss (SIM: 1; 0 = no auxiliary loss).
      gsu_units: hidden units of the auxiliary loss's MLP.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu: str = "hard"
    gsu_k: int = 50
    category_feature: str = "category"
    num_heads: int = 2
    key_dim: int = 16
    gsu_loss_weight: float = 1.0
    gsu_units: Tuple[int, ...] = (32,)
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        if self.gsu not in SIM_GSUS:
            raise ValueError(f"SIMConfig.gsu must be one of {SIM_GSUS}. Received: gsu={self.gsu!r}")
        _check_positive(self, "embedding_dim", "history_length", "gsu_k", "num_heads", "key_dim")
        if self.short_term_length < 0:
            raise ValueError(f"SIMConfig.short_term_length must be >= 0. Received: {self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SIMConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")
        if not self.gsu_loss_weight >= 0:
            raise ValueError(f"SIMConfig.gsu_loss_weight must be >= 0. Received: {self.gsu_loss_weight}")


def _check_two_stage(config) -> None:
    """The checks every search-based config shares: d, N >= 1, S >= 0, dropout in [0, 1)."""
    _check_positive(config, "embedding_dim", "history_length")
    name = type(config).__name__
    if config.short_term_length < 0:
        raise ValueError(f"{name}.short_term_length must be >= 0. Received: {config.short_term_length}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{name}.dropout must lie in [0, 1). Received: dropout={config.dropout}")


@dataclasses.dataclass(frozen=True)
class ETAConfig:
    """ETA (Chen et al., 2021, "End-to-end user behavior retrieval in click-through rate prediction
    models"): SimHash signatures of the item representations, the K behaviors nearest to the target in
    Hamming distance, then an ESU (multi-head target attention), end to end.

    Attributes:
      embedding_dim, history_length (N), gsu_k (K = 50), num_heads, key_dim, short_term_length,
      attention_units, mlp_units, dropout: as ``SIMConfig``.
      hash_bits: signature length (bits, one random hyperplane each; public code: 32).
      hash_seed: seed of the fixed random projection (drawn once, stored as a non-trainable weight).
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu_k: int = 50
    hash_bits: int = 32
    hash_seed: int = 0
    num_heads: int = 2
    key_dim: int = 16
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        _check_two_stage(self)
        _check_positive(self, "gsu_k", "hash_bits", "num_heads", "key_dim")


@dataclasses.dataclass(frozen=True)
class SDIMConfig:
    """SDIM (Cao et al., 2022, "Sampling is all you need on modeling long-term user behaviors for CTR
    prediction"): ``num_hashes`` SimHash functions of ``hash_bits`` bits each put the target and every
    behavior into buckets; per hash, the behaviors sharing the target's bucket are summed (optionally
    L2-normalised), and the hashes are averaged: the long-term interest, with no attention at all.

    Attributes:
      embedding_dim, history_length (N), short_term_length, attention_units, mlp_units, dropout: as
        ``SIMConfig``.
      num_hashes: m, the hash functions (public grids: 16, 32, 48).
      hash_bits: tau, bits per hash function, 2^tau buckets (public grids: 4, 8).
      normalize: L2-normalise each hash's sum before the mean over hashes (SDIM eq. 7).
      hash_seed: seed of the fixed random projection.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    num_hashes: int = 48
    hash_bits: int = 4
    normalize: bool = True
    hash_seed: int = 0
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        _check_two_stage(self)
        _check_positive(self, "num_hashes", "hash_bits")
        if self.hash_bits > 16:
            raise ValueError(f"SDIMConfig.hash_bits is bits per hash (2^hash_bits buckets): pick <= 16. "
                             f"Received: hash_bits={self.hash_bits}")


@dataclasses.dataclass(frozen=True)
class TWINConfig:
    """TWIN (Chang et al., KDD 2023, "TWIN: TWo-stage Interest Network for lifelong user behavior
    modeling in CTR prediction at Kuaishou"): the consistency-preserved GSU (CP-GSU) retrieves, per
    head, the K behaviors the ESU's own attention scores highest; the ESU attends over them.

    Attributes:
      embedding_dim, history_length (N), gsu_k (K = 50), short_term_length, attention_units,
      mlp_units, dropout: as ``SIMConfig``.
      num_heads, key_dim: the shared scorer's heads and query / key size per head (TWIN: 4 heads).
      cross_bias: add the behavior-cross-feature term ``(K_c W_beta) beta`` (behavior type and the
        declared behavior features, one scalar per behavior) to the logits; False = the
        inherent-feature scores alone (an ablation).
      cross_in_retrieval: the cross term is part of the CP-GSU's ranking score (the paper: retrieval
        and attention share one relevance); False = it re-weights the retrieved behaviors only.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    gsu_k: int = 50
    num_heads: int = 4
    key_dim: int = 16
    cross_bias: bool = True
    cross_in_retrieval: bool = True
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        _check_two_stage(self)
        _check_positive(self, "gsu_k", "num_heads", "key_dim")


COMPRESSION_METHODS = ("chime", "learn")
COMPRESSIONS = ("rvq", "mean_pool")
HISTOGRAMS = ("frequency", "count")


@dataclasses.dataclass(frozen=True)
class CompressorConfig:
    """CHIME's compression model (or LEARN's, ``method="learn"``): ``tfrec.compression``.

    The paper's values where it gives them (Qwen2.5-0.5B, 24 layers, codebooks (32, 16, 16), rotation
    trick, tau 0.2 / 0.07, lr 7e-4 new / 7e-6 pretrained); sizes scaled to a 2-core CPU otherwise.

    Attributes:
      method: ``"chime"`` (holistic + immediate losses, residual-VQ histograms) or ``"learn"``
        (LEARN: frozen content vectors -> causal transformer, dense all-action in-batch softmax over
        the positive behaviors; the user vector is the last position's hidden state).
      max_length: T, the most recent behaviors (before a slice boundary) one forward pass reads.
      id_dim: the item id embedding size (and each declared item feature's, as ``ItemEmbedding``).
      action_dim: the behavior-type embedding size (user input only, as the paper's action label).
      content_dim: the GLU projection of the frozen content vector (``raw/items.npz``); 0 = unused.
      model_dim: the transformer width; 0 = the concatenated input width, else a linear map to it
        (the ``minilm`` backbone needs 384).
      backbone: ``"random"`` or ``"minilm"`` (all-MiniLM-L6-v2's layers under a causal mask).
      layers, heads, ffn_dim (0 = 4 x model_dim), dropout: the causal transformer.
      rope: rotary position embeddings in its attention (Qwen, the paper's backbone, has them);
        False = order from the causal mask alone (what MiniLM's layers were trained without).
      hidden_dim: size of z_t and p_t (the user and item GLU outputs).
      codebook_sizes: K_m of each residual-VQ level (CHIME: (32, 16, 16)).
      rotation_trick: the rotation trick instead of straight-through (CHIME uses it).
      commitment_beta: weight of the commitment loss.
      holistic_temperature, immediate_temperature: tau of the two losses (CHIME: 0.2, 0.07).
      immediate_loss: False = Table 3 "w/o IL".
      compression: ``"rvq"`` or ``"mean_pool"`` (Table 3 "w/o ICM": the mean over positions of the
        user GLU output, ``hidden_dim`` wide, is the user vector).
      adaptation: False = Table 3 "w/o IAM": the behavior input is the item id and action embeddings
        alone (no item features, no content vector, no GLU projector).
      histogram: ``"frequency"`` (each level's histogram sums to 1) or ``"count"``.
      positive_types: behavior types with label +1 (default click, favorite, cart, order; view and
        negative are -1).
      learn_window: LEARN only: a position's positives are the positive behaviors within this many
        steps ahead (0 = all later ones).
      learning_rate, pretrained_learning_rate: Adam rates of new and of pretrained weights, reached
        after ``warmup_steps`` of linear warm-up, then cosine-annealed to 0 over the run (CHIME: 50
        warm-up steps, cosine; without the warm-up the first large steps move the transformer's
        outputs away from their K-means codebooks and the codes collapse onto a few).
      batch_size: users per step; epochs; seed.
    """

    method: str = "chime"
    max_length: int = 256
    id_dim: int = 32
    action_dim: int = 16
    content_dim: int = 32
    model_dim: int = 0
    backbone: str = "random"
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 0
    dropout: float = 0.1
    rope: bool = False
    hidden_dim: int = 64
    codebook_sizes: Tuple[int, ...] = (32, 16, 16)
    rotation_trick: bool = True
    commitment_beta: float = 0.25
    holistic_temperature: float = 0.2
    immediate_temperature: float = 0.07
    immediate_loss: bool = True
    compression: str = "rvq"
    adaptation: bool = True
    histogram: str = "frequency"
    positive_types: Tuple[int, ...] = (1, 2, 3, 4)
    learn_window: int = 32
    learning_rate: float = 1e-3
    pretrained_learning_rate: float = 1e-5
    warmup_steps: int = 50
    batch_size: int = 16
    epochs: int = 3
    seed: int = 0

    def __post_init__(self):
        for name, allowed in (("method", COMPRESSION_METHODS), ("compression", COMPRESSIONS),
                              ("histogram", HISTOGRAMS), ("backbone", ("random", "minilm"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"CompressorConfig.{name} must be one of {allowed}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        _check_positive(self, "max_length", "id_dim", "layers", "heads", "hidden_dim", "batch_size", "epochs")
        for name in ("action_dim", "content_dim", "model_dim", "ffn_dim", "learn_window", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"CompressorConfig.{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if not self.codebook_sizes or min(self.codebook_sizes) < 1:
            raise ValueError("CompressorConfig.codebook_sizes must be a non-empty list of positive ints. "
                             f"Received: {self.codebook_sizes}")
        if not self.positive_types:
            raise ValueError("CompressorConfig.positive_types must name at least one behavior type")
        for name in ("holistic_temperature", "immediate_temperature", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CompressorConfig.{name} must be > 0. Received: {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class TWINV2Config:
    """TWIN-V2 (Si et al., CIKM 2024, arXiv 2407.16357): hierarchical clustering of the user's behaviors
    (per user, deterministic, in the user tower), then TWIN's shared GSU / ESU scorer over the cluster
    representatives with cluster-aware target attention (``+ ln n``). Choices: the ``TWINV2`` docstring.

    Attributes:
      embedding_dim, history_length (N, the window clustered), short_term_length, attention_units,
        mlp_units, dropout, content_feature: as ``MUSEConfig``.
      group_feature: the paper's first split (play-completion ratio): ``"behavior_type"`` (default),
        ``""`` (one group), ``"duration"`` or a declared numeric behavior feature (bucketed by
        ``group_boundaries``), or a declared categorical behavior feature with a vocabulary.
      group_boundaries: strictly increasing bucket boundaries of a numeric ``group_feature``.
      cluster_size: gamma, the largest cluster left unsplit (paper: 20).
      max_clusters: M, cluster slots of the user state (the largest clusters are kept).
      max_depth: k-means levels after the grouping (bounds the paper's recursion).
      kmeans_iterations: Lloyd steps per split.
      max_branching: the largest k of one split.
      branching_exponent: e of the adaptive ``k = floor(n^e)`` (paper: 0.3).
      gsu_k: K, clusters retrieved per head (the paper retrieves 100 of ~10^4 clusters).
      num_heads, key_dim: the shared scorer's heads and query / key size per head (TWIN: 4 heads).
      cluster_aware: add ``ln n`` (cluster size) to the attention logits (paper eq. 8); False = the
        paper's "w/o cluster-aware" ablation.
      size_in_retrieval: ``ln n`` also ranks the clusters for the GSU (the paper uses cluster-aware
        attention in both stages); False = added after retrieval only.
      cross_bias: TWIN's behavior-cross term ``w · c_j`` (behavior type + behavior features of the
        cluster) in the logits.
      cross_in_retrieval: the cross term is part of the GSU's ranking too (as ``TWINConfig``: TWIN-V2's
        ``alpha`` holds it and ranks the clusters); False = it re-weights the retrieved clusters only.
    """

    embedding_dim: int = 16
    history_length: int = 1024
    group_feature: str = "behavior_type"
    group_boundaries: Tuple[float, ...] = ()
    cluster_size: int = 20
    max_clusters: int = 128
    max_depth: int = 4
    kmeans_iterations: int = 5
    max_branching: int = 8
    branching_exponent: float = 0.3
    gsu_k: int = 50
    num_heads: int = 4
    key_dim: int = 16
    cluster_aware: bool = True
    size_in_retrieval: bool = True
    cross_bias: bool = True
    cross_in_retrieval: bool = True
    content_feature: str = ""
    short_term_length: int = 20
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        _check_positive(self, "embedding_dim", "history_length", "cluster_size", "max_clusters", "kmeans_iterations",
                        "gsu_k", "num_heads", "key_dim")
        if self.max_depth < 0 or self.short_term_length < 0:
            raise ValueError("TWINV2Config needs max_depth >= 0 (0 = groups only) and short_term_length >= 0. "
                             f"Received: max_depth={self.max_depth}, short_term_length={self.short_term_length}")
        if self.max_branching < 2:
            raise ValueError(f"TWINV2Config.max_branching must be >= 2. Received: max_branching={self.max_branching}")
        if not 0.0 < self.branching_exponent <= 1.0:
            raise ValueError("TWINV2Config.branching_exponent must lie in (0, 1] (paper: 0.3). "
                             f"Received: branching_exponent={self.branching_exponent}")
        bounds = list(self.group_boundaries)
        if (any(bounds[i] >= bounds[i + 1] for i in range(len(bounds) - 1))
                or not all(-float("inf") < b < float("inf") for b in bounds)):
            raise ValueError("TWINV2Config.group_boundaries must be finite and strictly increasing. "
                             f"Received: group_boundaries={self.group_boundaries}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TWINV2Config.dropout must lie in [0, 1). Received: dropout={self.dropout}")


# ---- DIENConfig (issue 15: the DIEN helper's spot) ----
DIEN_EVOLUTIONS = ("augru", "agru", "aigru")


@dataclasses.dataclass(frozen=True)
class DIENConfig:
    """DIEN (Zhou et al., AAAI 2019): interest extractor GRU + auxiliary loss, then the interest
    evolving AUGRU driven by target attention (choices the paper leaves open: docs/models.md).

    Ablations of the paper's tables are fields: ``evolution`` ("augru" = DIEN, "agru", "aigru") and
    ``aux_loss_weight=0`` (DIEN without the auxiliary loss).

    Attributes:
      embedding_dim: size of the item / behavior-type / profile embeddings.
      sequence_length: S, the most recent behaviors the two GRUs read (DIEN's behavior sequence).
      gru_units: d_h, the hidden size of both GRUs; None = the item representation's width
        (embedding_dim plus the declared item features' embeddings), so the auxiliary loss's
        ``h_t · e_{t+1}`` needs no projection.
      evolution: the interest evolving layer: "augru" (the paper's DIEN, ``ũ_t = a_t · u_t``),
        "agru" (attention replaces the update gate) or "aigru" (attention scales the GRU's input).
      aux_loss_weight: α of the auxiliary loss (paper eq. L = L_target + α L_aux; 0 = none, the
        "DIEN without auxiliary loss" ablation, and no negatives are drawn).
      negative_seed: seed of the auxiliary loss's negative behaviors (``tfrec.data.negatives``).
      short_term_length: recent behaviors in the shared short-term DIN branch (ours; 0 = none, the
        default: DIEN's own sequence already is the recent one).
      attention_units: hidden units of the short-term DIN local activation unit (unused at 0).
      mlp_units: hidden units of the prediction MLP.
      dropout: dropout rate in the prediction MLP.
    """

    embedding_dim: int = 16
    sequence_length: int = 50
    gru_units: int | None = None
    evolution: str = "augru"
    aux_loss_weight: float = 1.0
    negative_seed: int = 0
    short_term_length: int = 0
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        _check_positive(self, "embedding_dim", "sequence_length")
        if self.gru_units is not None and self.gru_units < 1:
            raise ValueError(f"DIENConfig.gru_units must be >= 1 or None (= the item representation's width). "
                             f"Received: gru_units={self.gru_units!r}")
        if self.evolution not in DIEN_EVOLUTIONS:
            raise ValueError(f"DIENConfig.evolution must be one of {list(DIEN_EVOLUTIONS)}. "
                             f"Received: evolution={self.evolution!r}")
        if not self.aux_loss_weight >= 0:
            raise ValueError(f"DIENConfig.aux_loss_weight must be >= 0. Received: aux_loss_weight={self.aux_loss_weight!r}")
        if self.short_term_length < 0:
            raise ValueError("DIENConfig.short_term_length must be >= 0 (0 = no short-term branch). "
                             f"Received: short_term_length={self.short_term_length!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DIENConfig.dropout must lie in [0, 1). Received: dropout={self.dropout!r}")


# ---- DSINConfig (issue 15: the DSIN helper's spot) ----
SESSION_ENCODINGS = ("bias", "sinusoidal", "none")


@dataclasses.dataclass(frozen=True)
class DSINConfig:
    """DSIN (Feng et al., IJCAI 2019, "Deep Session Interest Network for Click-Through Rate
    Prediction"; choices the paper leaves open: docs/models.md) and DSIN-Full.

    The history before the request is split into sessions at gaps > ``session_gap_seconds``; the
    ``max_sessions`` most recent sessions (``session_length`` most recent behaviors each) go through
    the session interest extractor (bias encoding + self-attention within each session + average,
    sec. 4.2) and the Bi-LSTM interacting layer (sec. 4.3); the target attends over both (sec. 4.4).
    Ablations are fields (the paper's Table 3): ``encoding="sinusoidal"`` is DSIN-PE,
    ``interacting=False`` is DSIN-BE-No-SIIL. DSIN-Full: ``history_length=0`` (the whole history)
    with more sessions (``pipelines/configs/dsin-full.yaml``).

    Attributes:
      embedding_dim: size of the item / behavior-type / profile embeddings.
      history_length: N, the most recent behaviors (before the request) that are split into
        sessions; 0 or None = the whole history (DSIN-Full; None as ``DINConfig.recent_length``).
      max_sessions: K, the most recent sessions kept (DSIN's code: 5).
      session_length: T, the most recent behaviors kept per session (DSIN's code: 10).
      session_gap_seconds: a gap strictly greater than this starts a new session (DSIN: 30 min).
      min_session_length: sessions with fewer behaviors are dropped (DSIN's code: 3; 1 = keep all).
      encoding: position encoding of the session tokens: "bias" (BE, eq. 2), "sinusoidal"
        (DSIN-PE) or "none".
      num_heads: heads of the self-attention within sessions.
      key_dim: query / key / value size per head of that self-attention.
      ffn_dim: hidden units of the self-attention block's FFN.
      layer_norm: a LayerNorm after each residual sum of that block (Vaswani et al.'s; DSIN's code
        has none, the default).
      interacting: the Bi-LSTM session interest interacting layer and the target attention over
        its outputs (False = DSIN-BE-No-SIIL).
      lstm_units: h, hidden units per direction of the Bi-LSTM (``H_k`` has 2h).
      target_heads: heads of the two target attentions (1 = the paper's bilinear eq. 10).
      target_key_dim: query / key size per head of the target attentions.
      short_term_length: recent behaviors in the shared short-term DIN branch (0 = none, the
        default: DSIN's sessions already cover recency).
      attention_units: hidden units of the short-term DIN local activation unit.
      mlp_units: hidden units of the prediction MLP (the paper's: 200 x 80).
      dropout: dropout rate in the prediction MLP and the self-attention block.
    """

    embedding_dim: int = 16
    history_length: Optional[int] = 200
    max_sessions: int = 5
    session_length: int = 10
    session_gap_seconds: int = 1800
    min_session_length: int = 1
    encoding: str = "bias"
    num_heads: int = 2
    key_dim: int = 8
    ffn_dim: int = 32
    layer_norm: bool = False
    interacting: bool = True
    lstm_units: int = 8
    target_heads: int = 1
    target_key_dim: int = 16
    short_term_length: int = 0
    attention_units: Tuple[int, ...] = (36,)
    mlp_units: Tuple[int, ...] = (64, 32)
    dropout: float = 0.0

    def __post_init__(self):
        _check_positive(self, "embedding_dim", "max_sessions", "session_length", "min_session_length", "num_heads",
                        "key_dim", "ffn_dim", "lstm_units", "target_heads", "target_key_dim")
        if self.history_length is not None and self.history_length < 0:
            raise ValueError("DSINConfig.history_length must be >= 0 (0 or None = the whole history, DSIN-Full). "
                             f"Received: history_length={self.history_length!r}")
        if self.session_gap_seconds < 0:
            raise ValueError(f"DSINConfig.session_gap_seconds must be >= 0. "
                             f"Received: session_gap_seconds={self.session_gap_seconds}")
        if self.encoding not in SESSION_ENCODINGS:
            raise ValueError(f"DSINConfig.encoding must be one of {list(SESSION_ENCODINGS)}. "
                             f"Received: encoding={self.encoding!r}")
        if self.short_term_length < 0:
            raise ValueError("DSINConfig.short_term_length must be >= 0 (0 = no short-term branch). "
                             f"Received: short_term_length={self.short_term_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DSINConfig.dropout must lie in [0, 1). Received: dropout={self.dropout}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training loop settings.

    Attributes:
      batch_size: examples per step.
      epochs: passes over the training data.
      learning_rate: Adam learning rate.
      seed: seed for weights and shuffling.
      steps_per_execution: train steps per call of the compiled train function (Keras
        ``steps_per_execution``): metrics are read, and under a distribution strategy reduced across
        the workers, once per call instead of every step.
    """

    batch_size: int = 256
    epochs: int = 3
    learning_rate: float = 2e-3
    seed: int = 0
    steps_per_execution: int = 1


def to_dict(config: Any) -> Dict[str, Any]:
    """Dataclass -> JSON-friendly dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def from_dict(cls: Type[T], d: Dict[str, Any]) -> T:
    """Dict -> dataclass, rejecting unknown keys with a clear message; lists become tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
