"""Benchmarks: one script per target, each printing the figure, its baseline or target, and the ratio."""

import os

# Benchmarks write synthetic exports of any dates: their runs need partitions through yesterday, not
# the end of the shipped sample (``CALO_LAST_DAY``, see calo_assets.defs.partitions).
os.environ.setdefault("CALO_LAST_DAY", "yesterday")
