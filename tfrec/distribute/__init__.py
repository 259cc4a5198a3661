"""Scale-out on ``tf.distribute``: strategies from ``--strategy`` + ``TF_CONFIG`` (``cluster``), a
local launcher for N workers and parameter servers on 127.0.0.1 (``launch``). See docs/distributed.md."""
from tfrec.distribute.cluster import (PS_MIN_SHARD_BYTES, STRATEGIES, Distribution, Task, configure, placement_lines,
                                      variable_placement)

__all__ = ["PS_MIN_SHARD_BYTES", "STRATEGIES", "Distribution", "Task", "configure", "placement_lines",
           "variable_placement"]
