"""MEM's Dagster layer: definitions, assets, checks, resources, jobs."""

import warnings

import dagster as dg

# BackfillPolicy is marked beta; single-run backfills are a deliberate choice (one dbt invocation per backfill).
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
