"""Ingestion: finding faces in files (`find`), and who runs it where (`distribute`)."""
