"""Ingest: ``raw_bars`` (daily partitions over the source's calendar) and its job."""

import dagster as dg

from assets.defs.ingest.assets import raw_bars

ingest_job = dg.define_asset_job("ingest", selection=dg.AssetSelection.assets(raw_bars))

defs = dg.Definitions(assets=[raw_bars], jobs=[ingest_job])
