"""``tfrec bench``: the benchmark grid (every model x every data set x seeds) under one protocol.

* ``protocol``: the budgets (examples, epochs, early stopping, the learning-rate grid, seeds) and the
  time windows (train / validation / test, no overlap in time);
* ``zoo``: the rows (model + config + overrides) and which tables each belongs to;
* ``datasets``: the data sets, prepared once through the pipeline stages;
* ``cells``: the cell key (config, data, seed, learning rate, protocol, code version) and the store;
* ``cell``: one cell in its own process (train with early stopping -> evaluate -> predict -> export ->
  measure);
* ``grid``: the resumable grid over cells, the learning-rate choice;
* ``tables`` / ``plots``: Markdown and PNG regenerated from the cached cells;
* ``papers``: the papers' own numbers quoted beside ours.

bench/PROTOCOL.md is the protocol in words and the grid's measured wall time.
"""
