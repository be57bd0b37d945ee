"""Ray Data job: `lookalike index` scaled out. Workers run the very same batch function as the CLI
(`lookalike.index.build.process_files`: read, detect/align, embed); the driver is the single writer (ids, parts,
finalize), so the index folder, its crash safety and its incremental re-runs are those of the CLI.

    python -m lookalike.index.ray_job PHOTOS_DIR_OR_LIST --out indexes/NAME [--head H] [--workers N] [--address auto]

On a cluster, PHOTOS must be readable at the same paths on every node (a shared file system).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pyarrow as pa


class EmbedWorker:
    """A Ray actor holding the detector and head; called on batches of `{"path": [...]}`."""

    def __init__(
        self, head: str, detector: str, min_prob: float | None, max_pixels: int, root: str | None, labels: dict | None
    ) -> None:
        from lookalike.faces.detect import create_detector
        from lookalike.heads import create_head

        omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # OpenMP allows a list: "4,2"
        threads = int(omp) if omp.isdigit() else 0
        if threads > 0:  # Ray gives an actor its CPUs as OMP_NUM_THREADS (torch reads it); OpenCV and yunet's
            import cv2  # onnxruntime engine take OpenCV's count, which would otherwise be every core of the node

            cv2.setNumThreads(threads)
        self.head = create_head(head)
        self.detector = create_detector(detector, min_prob)
        self.max_pixels = max_pixels
        self.root = Path(root) if root else None
        self.labels = labels

    def identity_of(self, path: str) -> str | None:
        from lookalike.faces.photos import identity_from_folder

        if self.labels is not None:
            return self.labels.get(path)
        return identity_from_folder(path, self.root)

    def __call__(self, batch: dict) -> dict:
        from lookalike.index.build import process_files

        faces, rejects = process_files(list(batch["path"]), self.detector, self.head, self.identity_of, self.max_pixels)
        return {"faces": [_to_ipc(faces)], "rejects": [_to_ipc(rejects)], "files": [len(batch["path"])]}


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def run(
    source: str | Path,
    out: str | Path,
    head: str,
    workers: int = 1,
    batch_size: int = 32,
    commit_every: int = 256,
    min_prob: float | None = None,
    labels: dict | None = None,
    detector: str | None = None,
    prune: bool = False,
) -> dict:
    """Index `source` into `out` with Ray workers; returns the counts (same report keys as the CLI)."""
    import ray

    from lookalike.faces.detect import DEFAULT_DETECTOR, describe_detector, detector_spec
    from lookalike.faces.photos import DEFAULT_MAX_PIXELS
    from lookalike.heads import get_head_spec
    from lookalike.index.build import IndexOptions, plan, reject_rows
    from lookalike.index.store import FaceStore
    from lookalike.index.writer import IndexWriter
    from lookalike.weights import resolve

    t0 = time.perf_counter()
    spec = get_head_spec(head)
    _, sha = resolve(spec.weights, head)
    detector = detector_spec(detector or DEFAULT_DETECTOR).name
    params = IndexOptions().params(describe_detector(detector, min_prob), spec.crop, spec.preprocess_version)
    with FaceStore.writer(out, head, spec.dim, sha, params) as store:
        pl = plan(source, store)
        todo, vanished = pl.todo, pl.vanished
        root = pl.scan.root if pl.scan.kind == "folder" else None
        labels = labels if labels is not None else pl.scan.labels
        writer = IndexWriter(store, spec.dim, commit_every)  # the CLI's writer: ids, parts, restamps, finalize
        writer.add(None, reject_rows(pl.unsupported) if pl.unsupported else None)
        if todo:
            ds = ray.data.from_items([{"path": p} for p in todo]).map_batches(
                EmbedWorker,
                fn_constructor_kwargs={
                    "head": head,
                    "detector": detector,
                    "min_prob": min_prob,
                    "max_pixels": DEFAULT_MAX_PIXELS,
                    "root": root,
                    "labels": labels,
                },
                batch_size=batch_size,
                concurrency=workers,
            )
            for row in ds.iter_rows():
                writer.add(_from_ipc(row["faces"]), _from_ipc(row["rejects"]), files=int(row["files"]))
        counts = writer.finish(set(vanished) if prune else set())
    return {
        "index": str(out),
        "head": head,
        "files_processed": len(todo),
        "faces_added": writer.faces_added,
        "counts": counts,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="lookalike index on Ray Data")
    ap.add_argument("source")
    ap.add_argument("--out", required=True)
    ap.add_argument("--head", default=None)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    ap.add_argument("--prune", action="store_true")
    ap.add_argument("--detector", default=None, choices=["mtcnn", "yunet"])
    args = ap.parse_args()
    import json

    import ray

    from lookalike.heads import DEFAULT_HEAD

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    head = args.head or DEFAULT_HEAD
    print(json.dumps(run(args.source, args.out, head, args.workers, prune=args.prune, detector=args.detector)))


if __name__ == "__main__":
    main()
