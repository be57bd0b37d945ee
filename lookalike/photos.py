"""Photo intake: find photo files, read them once, hash them, decode them upright to RGB.

A file that cannot be used is never an exception to the caller: `load_photo` returns a `Rejected`
with a one-line reason, which the pipeline writes to `rejects.parquet`.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import LookalikeError

#: File name endings taken as photos when walking a folder (case-insensitive).
PHOTO_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
)
#: Default pixel limit (width x height) against decompression bombs; `--max-pixels` changes it.
DEFAULT_MAX_PIXELS = 120_000_000


@dataclass(frozen=True)
class FileStat:
    """What identifies one version of a file on disk."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Photo:
    """A decoded photo: `rgb` is `(H, W, 3) uint8`, EXIF orientation applied."""

    stat: FileStat
    sha256: str
    rgb: np.ndarray


@dataclass(frozen=True)
class Rejected:
    """A file that gave no usable photo, and why (one line)."""

    stat: FileStat
    sha256: str | None
    reason: str


def stat_file(path: str | Path) -> FileStat:
    """Absolute path, size and mtime of a file (no read)."""
    p = os.path.abspath(path)
    st = os.stat(p)
    return FileStat(path=p, size=st.st_size, mtime_ns=st.st_mtime_ns)


def iter_photo_files(source: str | Path) -> Iterator[Path]:
    """Photo files under a folder (recursive, sorted, hidden entries skipped), or listed in a text file.

    A list file holds one path per line (relative paths are taken from the list's folder); `#` starts a
    comment. Every listed path is yielded whatever its ending, so a bad one becomes a reject, not a skip.
    """
    src = Path(source)
    if src.is_dir():
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith(".") and Path(name).suffix.lower() in PHOTO_SUFFIXES:
                    yield Path(dirpath) / name
    elif src.is_file():
        base = src.parent
        for line in src.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line)
                yield p if p.is_absolute() else base / p
    else:
        raise LookalikeError(f"no such folder or list file: {src}")


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode to `(H, W, 3) uint8` RGB: 16-bit and float scaled, alpha composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if (img.mode.startswith("I;16") or arr.max() > 255) else 255.0
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def decode_photo(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to upright `(H, W, 3) uint8` RGB, or raise ValueError with a one-line reason."""
    if not data:
        raise ValueError("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ValueError("not an image (unrecognised format)") from None
        except Image.DecompressionBombError as e:
            raise ValueError(f"too large: {e}") from None
        w, h = img.size
        if w * h > max_pixels:
            raise ValueError(f"too large: {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,}")
        if w == 0 or h == 0:
            raise ValueError("image has no pixels")
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
        except (OSError, SyntaxError, ValueError) as e:
            raise ValueError(f"truncated or corrupt image ({type(e).__name__}: {e})") from None
        except Image.DecompressionBombError as e:
            raise ValueError(f"too large: {e}") from None
    return np.ascontiguousarray(_to_rgb(img))


def load_photo(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo | Rejected:
    """Read a file once: sha256 of its bytes, then decode. Never raises for a bad file."""
    try:
        stat = stat_file(path)
    except OSError as e:
        stat = FileStat(path=os.path.abspath(path), size=-1, mtime_ns=-1)
        return Rejected(stat, None, f"unreadable: {e.strerror or e}")
    try:
        with open(stat.path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        return Rejected(stat, None, f"unreadable: {e.strerror or e}")
    sha = hashlib.sha256(data).hexdigest()
    try:
        rgb = decode_photo(data, max_pixels)
    except ValueError as e:
        return Rejected(stat, sha, str(e))
    except MemoryError:
        return Rejected(stat, sha, "too large: out of memory while decoding")
    return Photo(stat, sha, rgb)


def read_labels(path: str | Path) -> dict[str, str]:
    """A labels file: CSV or TSV with columns `path,identity` (header optional) -> {absolute path: identity}."""
    p = Path(path)
    labels: dict[str, str] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        parts = [s.strip() for s in line.rsplit(sep, 1)]
        if len(parts) != 2 or not parts[1]:
            raise LookalikeError(f"{p}:{n}: expected 'path,identity', got {line!r}")
        if n == 1 and parts == ["path", "identity"]:
            continue
        fp = Path(parts[0])
        labels[os.path.abspath(fp if fp.is_absolute() else p.parent / fp)] = parts[1]
    return labels


def identity_from_folder(path: str, root: Path | None) -> str | None:
    """The photo's folder name when it sits in a sub-folder of the root, else None (unlabelled)."""
    if root is None:
        return None
    parent = Path(path).parent
    try:
        rel = parent.relative_to(root.resolve() if root.is_absolute() else Path(os.path.abspath(root)))
    except ValueError:
        return None
    return parent.name if rel.parts else None


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of at most `size` items."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
