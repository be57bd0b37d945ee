"""Weights files: where they are looked up, how they are verified, and what a missing one tells the user.

Nothing here touches the network except `fetch`, which only the `lookalike weights fetch` command calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lookalike import config
from lookalike.atomic import atomic_write_text
from lookalike.errors import WeightsMismatchError, WeightsMissingError


@dataclass(frozen=True)
class WeightsSpec:
    """A weights file a head needs.

    filename: name inside the weights directory (or the package file when `package` is set).
    sha256: expected digest; None when the file is produced locally (`import`), in which case the digest
        recorded beside it at import time (`<file>.json`) is checked instead.
    url: where `lookalike weights fetch` downloads it from, when it can be downloaded at all.
    how_to_get: one sentence for the error message.
    package: (module, relative path) when a pip package carries the file.
    """

    filename: str
    sha256: str | None = None
    url: str | None = None
    how_to_get: str = ""
    package: tuple[str, str] | None = None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def package_file(module: str, rel: str) -> Path | None:
    """A file shipped inside an installed package, or None when the package is absent."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / rel


def verified_digest(path: Path) -> str:
    """sha256 of `path`, cached in a sidecar keyed by size and mtime so a query does not rehash 100 MB."""
    st = path.stat()
    side = path.with_name(path.name + ".verified")
    key = f"{st.st_size}:{st.st_mtime_ns}"
    try:
        cached = json.loads(side.read_text())
        if cached.get("key") == key:
            return str(cached["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = sha256_file(path)
    try:
        atomic_write_text(side, json.dumps({"key": key, "sha256": digest}))
    except OSError:
        pass  # a read-only weights directory still works, it just rehashes
    return digest


def expected_digest(spec: WeightsSpec, path: Path) -> str | None:
    """The digest a file must have: the spec's, else the one recorded at import time."""
    if spec.sha256:
        return spec.sha256
    record = path.with_name(path.name + ".json")
    if record.exists():
        try:
            return str(json.loads(record.read_text())["sha256"])
        except (ValueError, KeyError):
            return None
    return None


def resolve(spec: WeightsSpec, head: str, weights_dir: Path | None = None) -> tuple[Path, str]:
    """Find and verify a head's weights file: `(path, sha256)`, or a one-line error saying what to do."""
    if spec.package:
        path = package_file(*spec.package)
        if path is None or not path.exists():
            raise WeightsMissingError(
                f"head {head!r} needs {spec.package[1]} from the {spec.package[0]!r} package: {spec.how_to_get}"
            )
    else:
        wdir = weights_dir or config.weights_dir()
        path = wdir / spec.filename
        if not path.exists():
            raise WeightsMissingError(
                f"head {head!r} needs weights file {spec.filename} in {wdir} (set ${config.WEIGHTS_ENV} "
                f"or --weights-dir): {spec.how_to_get}"
            )
    digest = verified_digest(path)
    want = expected_digest(spec, path)
    if want and digest != want:
        raise WeightsMismatchError(
            f"weights file {path} has sha256 {digest[:12]}..., expected {want[:12]}...: it is corrupt or "
            f"another file; {spec.how_to_get}"
        )
    return path, digest


def fetch(spec: WeightsSpec, head: str, weights_dir: Path | None = None) -> Path:
    """Download a head's weights (the one function here that uses the network) into a temporary file, with a
    progress bar on a terminal, verify sha256 and only then move it into place; without a network, or on an HTTP
    error, a one-line WeightsMissingError and nothing left behind."""
    import requests
    from tqdm import tqdm

    if not spec.url:
        raise WeightsMissingError(f"head {head!r} has no download address: {spec.how_to_get}")
    wdir = weights_dir or config.weights_dir()
    wdir.mkdir(parents=True, exist_ok=True)
    dest = wdir / spec.filename
    fd, tmp = tempfile.mkstemp(dir=wdir, prefix=f".{spec.filename}.", suffix=".part")
    os.close(fd)
    try:
        try:
            with requests.get(spec.url, stream=True, timeout=60) as r:
                r.raise_for_status()
                total = int(r.headers.get("Content-Length") or 0) or None
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=spec.filename, disable=not sys.stderr.isatty())
                with open(tmp, "wb") as fh, bar:
                    for chunk in r.iter_content(1 << 20):
                        fh.write(chunk)
                        bar.update(len(chunk))
        except requests.RequestException as e:
            why = "no network connection" if isinstance(e, requests.ConnectionError) else type(e).__name__
            raise WeightsMissingError(f"cannot download {spec.url} ({why}): {spec.how_to_get}") from None
        digest = sha256_file(Path(tmp))
        if spec.sha256 and digest != spec.sha256:
            raise WeightsMismatchError(
                f"downloaded {spec.url} has sha256 {digest}, expected {spec.sha256}; not installed"
            )
        os.replace(tmp, dest)
        if not spec.sha256:  # no published digest to pin: record what was downloaded, so a later change is caught
            atomic_write_text(dest.with_name(dest.name + ".json"), json.dumps({"sha256": digest, "url": spec.url}))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
