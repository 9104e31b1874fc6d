"""Benchmarks: one script per target, each printing the figure, its baseline or target, and the ratio."""
