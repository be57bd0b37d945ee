"""Distributed entry points: each runs the package's own runner (`lookalike.index.runner.run_index`) with a
distributor from `lookalike.ingest.distribute`; nothing here finds, embeds or writes faces itself."""
