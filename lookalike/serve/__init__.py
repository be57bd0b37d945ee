"""The warm process: a local HTTP server that keeps heads and indexes loaded (`lookalike serve`), and the record
by which `lookalike query` finds it."""
