"""The Dagster shell of calo_assets."""

import warnings

import dagster as dg

# The single-run backfill policy is a beta API that the daily assets rely on knowingly: without this
# filter, its notice is printed once per asset definition in every run's logs.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
