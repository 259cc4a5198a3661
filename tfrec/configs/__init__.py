"""Model and training configs: small frozen dataclasses (YAML files in pipelines/configs load into them).

One module per model (``tfrec.configs.din``, ...), imported by its model alone, so that a change to
one model's config re-runs only that model's benchmark cells (``tfrec.benchmark.cells`` follows the
imports; this package stands for ``tfrec.configs.base`` there); the package re-exports them all."""
from tfrec.configs.base import TIME_BUCKET_DAYS, TrainConfig, to_dict, from_dict, check_positive, check_two_stage  # noqa: F401
from tfrec.configs.din import REGULARIZATIONS, DINConfig  # noqa: F401
from tfrec.configs.dmgin import GROUP_KEYS, DMGINConfig  # noqa: F401
from tfrec.configs.dmqn import CODEWORD_ORDERS, DMQNConfig  # noqa: F401
from tfrec.configs.siren import GSU_MODES, SIRENConfig  # noqa: F401
from tfrec.configs.muse import MUSEConfig  # noqa: F401
from tfrec.configs.miss import MISSConfig  # noqa: F401
from tfrec.configs.sim import SIM_GSUS, SIMConfig  # noqa: F401
from tfrec.configs.eta import ETAConfig  # noqa: F401
from tfrec.configs.sdim import SDIMConfig  # noqa: F401
from tfrec.configs.twin import TWINConfig  # noqa: F401
from tfrec.configs.compressor import COMPRESSION_METHODS, COMPRESSIONS, HISTOGRAMS, CompressorConfig  # noqa: F401
from tfrec.configs.twin_v2 import TWINV2Config  # noqa: F401
from tfrec.configs.dien import DIEN_EVOLUTIONS, DIENConfig  # noqa: F401
from tfrec.configs.dsin import SESSION_ENCODINGS, DSINConfig  # noqa: F401
