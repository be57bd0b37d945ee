"""`lookalike index` on a Ray cluster: Ray Data actors find and embed the faces (`lookalike.ingest.distribute.RayData`,
one detector and head per actor, on a GPU where `--gpus-per-actor` gives one); this driver is the single writer
(ids, parts, finalize), so the index folder, its crash safety, its incremental re-runs and an existing index's
own head, detector and thresholds are those of the CLI (`lookalike.index.settings.resolve`).

    python pipelines/ray_index.py PHOTOS_DIR_OR_LIST --out indexes/NAME [--head H] [--actors N] [--address auto]

The photos must be readable at the same paths on every node (a shared file system). See pipelines/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lookalike import config


def build(
    source: str | Path,
    out: str | Path,
    head: str | None = None,
    detector: str | None = None,
    min_prob: float | None = None,
    actors: int = 1,
    batch_size: int = config.DEFAULT_BATCH_FILES,
    gpus_per_actor: float = 0,
    prune: bool = False,
    labels: dict[str, str] | None = None,
) -> dict:
    """Index `source` into `out` with Ray actors (Ray must be started: `ray.init`); the run's report as a dict."""
    from lookalike.index.runner import IndexOptions, run_index
    from lookalike.index.settings import resolve
    from lookalike.ingest.distribute import RayData

    settings = resolve(source, out=out, head=head, detector=detector, min_prob=min_prob)
    head_model, detector_model = settings.load("cpu")  # the driver embeds nothing: the actors do
    opts = IndexOptions(batch_files=batch_size, prune=prune, labels=labels)
    distributor = RayData(actors, batch_size, gpus_per_actor)
    return run_index(source, settings.out, head_model, detector_model, opts, distributor=distributor).as_dict()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="lookalike index on Ray Data")
    ap.add_argument("source")
    ap.add_argument("--out", required=True, help="index folder")
    ap.add_argument("--head", default=None, help="embedding head [the index's own, else the default]")
    ap.add_argument("--detector", default=None, help="face detector [the index's own, else the default]")
    ap.add_argument("--min-prob", type=float, default=None)
    ap.add_argument("--actors", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="Ray actors finding faces")
    ap.add_argument("--batch-size", type=int, default=config.DEFAULT_BATCH_FILES, help="files per actor call")
    ap.add_argument("--gpus-per-actor", type=float, default=0)
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    ap.add_argument("--prune", action="store_true", help="drop faces of files that vanished from SOURCE")
    args = ap.parse_args(argv)

    import ray

    from lookalike.errors import LookalikeError

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    try:
        report = build(
            args.source, args.out, args.head, args.detector, args.min_prob, args.actors, args.batch_size,
            args.gpus_per_actor, args.prune,
        )  # fmt: skip
    except LookalikeError as e:
        sys.exit(f"lookalike: error: {e}")
    except ray.exceptions.RayError as e:  # an actor's error arrives wrapped in Ray's report: its last line says it
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        sys.exit(f"lookalike: error: a Ray actor failed: {lines[-1] if lines else type(e).__name__}")
    finally:
        ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
