"""fastdup on a folder, for benchmarks/dedup.py: `python dedup_fastdup.py PHOTOS WORK OUT.json`, run by a Python that
has fastdup (an optional benchmark dependency only: it is free for non-commercial use alone) with its telemetry off
(`FASTDUP_PRODUCTION=1`, `SENTRY_OPT_OUT=1`, set by the caller) and, where `unshare -n` works, no network at all.
Writes its similar pairs `[[from, to, similarity], ...]` (each image's nearest neighbours above 0.8)."""

import json
import sys

import fastdup

fd = fastdup.create(work_dir=sys.argv[2], input_dir=sys.argv[1])
fd.run(overwrite=True, threshold=0.8, nearest_neighbors_k=4)
pairs = [[str(r.filename_from), str(r.filename_to), float(r.distance)] for r in fd.similarity().itertuples()]
with open(sys.argv[3], "w") as fh:
    json.dump({"version": fastdup.__version__, "pairs": pairs}, fh)
