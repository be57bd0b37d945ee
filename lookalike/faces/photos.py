"""Photo intake: read a photo file once, hash it, decode it upright to RGB (finding the files is
`lookalike.faces.scan`, their identity labels `lookalike.faces.labels`).

Every file is hostile. A file that cannot be used is never an exception to the caller: `load_photo` returns
a `Rejected` with a one-line reason, which the pipeline writes to `rejects.parquet`. Only regular files are
opened (a FIFO, a device or a socket is a reject, never a read), and never with more bytes than
`max_bytes`; any decoder error of any type is a reject; the decoded pixels a caller holds can be bounded by
a `PixelBudget` that `load_photo` draws from before it decodes (the header says the size).

Paths are *stored text* (`lookalike.paths`): a file name that is not valid UTF-8 round-trips escaped.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat as statmod
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lookalike.config import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from lookalike.paths import fs_path, to_text

try:  # HEIC/HEIF (phones) through pillow-heif; Pillow itself reads AVIF and JPEG 2000
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_READER = True
except ImportError:  # pragma: no cover - pillow-heif is a dependency, but a broken wheel must not stop intake
    HEIF_READER = False

#: File name endings taken as photos when walking a folder (case-insensitive).
PHOTO_SUFFIXES = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".pjpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
        ".ppm", ".pgm", ".pnm", ".pbm", ".heic", ".heif", ".hif", ".avif", ".jp2", ".j2k", ".jpf", ".jpx",
    }
)  # fmt: skip
#: Endings of photos this engine cannot decode: a walk makes them rejects (with this reason), not silent skips.
UNSUPPORTED_SUFFIXES = {
    **dict.fromkeys(
        (".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2", ".raf", ".pef", ".srw",
         ".x3f", ".3fr", ".kdc", ".mrw", ".erf", ".raw", ".rwl", ".iiq"),
        "camera raw file: export it as JPEG or TIFF",
    ),
    ".psd": "Photoshop file: export it as JPEG or PNG",
    ".svg": "vector drawing, not a photo",
    ".jxl": "JPEG XL is not supported: convert it to JPEG or PNG",
}  # fmt: skip

# Magic numbers of the formats above, for files whose name has no photo ending (`IMG_0001`, `photo.dat`).
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (0, b"\xff\x4f\xff\x51", "jpeg2000"),
)
_FTYP_BRANDS = {b"heic": "heic", b"heix": "heic", b"hevc": "heic", b"mif1": "heif", b"msf1": "heif", b"avif": "avif"}


def sniff_image(head: bytes) -> str | None:
    """The image format a file's first 32 bytes announce, or None."""
    for off, magic, name in _MAGIC:
        if head[off : off + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP_BRANDS:
        return _FTYP_BRANDS[head[8:12]]
    return None


@dataclass(frozen=True)
class FileStat:
    """What identifies one version of a file on disk (`path` is stored text)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Photo:
    """A decoded photo: `rgb` is `(H, W, 3) uint8`, EXIF orientation applied.

    scale: decoded pixels per pixel of the file (1.0, or 1/2, 1/4, 1/8 for a JPEG decoded reduced: `draft_side`);
    full_size: the upright photo's `(width, height)` in the file.
    """

    stat: FileStat
    sha256: str
    rgb: np.ndarray
    pixels_reserved: int = 0  # drawn from a PixelBudget; given back by whoever drops the photo
    scale: float = 1.0
    full_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """The upright photo's `(width, height)` in the file (not the decoded, possibly reduced, array)."""
        if self.full_size is not None:
            return self.full_size
        h, w = self.rgb.shape[:2]
        return w, h


@dataclass(frozen=True)
class Rejected:
    """A file that gave no usable photo, and why (one line)."""

    stat: FileStat
    sha256: str | None
    reason: str


@dataclass(frozen=True)
class Unchanged:
    """A file whose mtime changed but whose bytes are those already indexed (no decode, no embedding)."""

    stat: FileStat
    sha256: str


class PixelBudget:
    """Decoded pixels held at once, across threads: `acquire` waits until the pixels fit.

    One photo larger than the whole budget still gets it (alone), so nothing waits forever.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.used = 0
        self._cond = threading.Condition()
        #: called (outside the lock) once before an `acquire` would wait: a holder can hand pixels on first
        self.on_wait: Callable[[], None] | None = None

    def would_wait(self, n: int) -> bool:
        with self._cond:
            return self.used > 0 and self.used + min(n, self.limit) > self.limit

    def acquire(self, n: int) -> int:
        n = min(int(n), self.limit)
        if self.on_wait is not None and self.would_wait(n):
            self.on_wait()
        with self._cond:
            while self.used > 0 and self.used + n > self.limit:
                self._cond.wait()
            self.used += n
        return n

    def release(self, n: int) -> None:
        if n <= 0:
            return
        with self._cond:
            self.used = max(0, self.used - int(n))
            self._cond.notify_all()


def drop_pixels(photo: Photo, budget: PixelBudget | None) -> None:
    """Give a photo's decoded pixels back to `budget` and drop them (`Photo.size` still says its size)."""
    if photo.pixels_reserved and budget is not None:
        budget.release(photo.pixels_reserved)
    photo.pixels_reserved = 0
    photo.rgb = np.empty((0, 0, 3), np.uint8)


def stat_file(path: str | Path) -> FileStat:
    """Absolute path (stored text), size and mtime of a file (no read)."""
    p = os.path.abspath(fs_path(os.fspath(path)))
    st = os.stat(p)
    return FileStat(path=to_text(p), size=st.st_size, mtime_ns=st.st_mtime_ns)


# ------------------------------------------------------------------------------------------------ decoding
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _wide_grey_top(img: Image.Image) -> float:
    """The value that maps to 255 for 16-bit, 32-bit and float grey (from the extrema: no pixel copy)."""
    try:
        peak = float(img.getextrema()[1])
    except Exception:  # a mode without extrema support: assume the full 16-bit range
        peak = 65535.0
    top = 65535.0 if (img.mode.startswith("I;16") or peak > 255) else 255.0
    if img.mode == "F" and peak <= 1.0:
        top = 1.0
    return top


def _strip_to_rgb(img: Image.Image, top: float | None) -> np.ndarray:
    """One strip of rows in any Pillow mode to `(h, W, 3) uint8` RGB."""
    if top is not None:
        arr = np.asarray(img).astype(np.float32)
        grey = np.clip(arr * np.float32(255.0 / top) + np.float32(0.5), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode to `(H, W, 3) uint8` RGB: 16-bit and float scaled, alpha composited on white.

    Converted a strip of rows at a time into one preallocated array: converting a 100 MP photo whole took
    three copies of it at once (Pillow's image, its `tobytes` chunks and their join; about 1 GB).
    """
    w, h = img.size
    top = _wide_grey_top(img) if img.mode in _WIDE_GREY else None
    out = np.empty((h, w, 3), np.uint8)
    step = max(1, 2_000_000 // max(w, 1))
    for y in range(0, h, step):
        strip = img if (y == 0 and step >= h) else img.crop((0, y, w, min(h, y + step)))
        out[y : y + step] = _strip_to_rgb(strip, top)
    return out


def _open(data: bytes) -> Image.Image:
    """Pillow's lazy open (header only), any failure as ValueError with a one-line reason."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ValueError(f"too large: {e}") from None
    except Exception as e:  # any decoder, any error: hostile bytes must never escape as a traceback
        if data[:32] and sniff_image(data[:32]) in ("heic", "heif") and not HEIF_READER:
            raise ValueError("HEIC/HEIF photo, but pillow-heif is not installed") from None
        fmt = sniff_image(data[:32])
        if fmt:
            raise ValueError(f"truncated or corrupt image ({fmt} header cannot be read: {type(e).__name__})") from None
        raise ValueError("not an image (unrecognised format)") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


def decode_photo(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to upright `(H, W, 3) uint8` RGB, or raise ValueError with a one-line reason."""
    return _decode(data, max_pixels, None)[0]


#: EXIF orientations that swap width and height.
_TRANSPOSED = {5, 6, 7, 8}


def _decode(
    data: bytes, max_pixels: int, budget: PixelBudget | None, draft_side: int | None = None
) -> tuple[np.ndarray, int, float, tuple[int, int]]:
    """`decode_photo`, drawing the pixels from `budget` first: `(rgb, pixels drawn, scale, upright full size)`.

    draft_side: a JPEG whose long side is over twice this is decoded reduced (libjpeg's DCT scaling by 1/2, 1/4
    or 1/8), to the smallest size whose long side is still at least `draft_side`: the detector never looks at
    more than that, decoding gets 3-4x faster and pixels in flight 4-64x fewer.
    """
    if not data:
        raise ValueError("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Corrupt EXIF data", bomb warnings: the reject reason says it all
        img = _open(data)
        w, h = img.size
        if w <= 0 or h <= 0:
            raise ValueError("image has no pixels")
        if w * h > max_pixels:
            raise ValueError(f"too large: {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,}")
        if draft_side and img.format == "JPEG" and max(w, h) >= 2 * draft_side:
            f = draft_side / max(w, h)
            img.draft(img.mode, (math.ceil(w * f), math.ceil(h * f)))  # picks the scale; size >= the one asked
        dw, dh = img.size
        reserved = budget.acquire(dw * dh) if budget is not None else 0
        try:
            img.load()
            orientation = img.getexif().get(0x0112, 1)
            img = ImageOps.exif_transpose(img) if orientation != 1 else img  # no copy when upright
            rgb = np.ascontiguousarray(_to_rgb(img))
            full = (h, w) if orientation in _TRANSPOSED else (w, h)
        except MemoryError:
            if budget is not None:
                budget.release(reserved)
            raise ValueError(f"too large: out of memory while decoding {w}x{h}") from None
        except Exception as e:
            if budget is not None:
                budget.release(reserved)
            raise ValueError(f"truncated or corrupt image ({type(e).__name__}: {_one_line(e)})") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        if budget is not None:
            budget.release(reserved)
        raise ValueError(f"unusable image data (shape {rgb.shape})")
    return rgb, reserved, max(dw, dh) / max(w, h), full


def _read_regular(path: str, max_bytes: int) -> tuple[os.stat_result, bytes]:
    """A regular file's stat and bytes; ValueError (one line) for anything else. Never blocks on a FIFO."""
    st = os.stat(path)
    if not statmod.S_ISREG(st.st_mode):
        raise ValueError(f"not a regular file ({_file_kind(st.st_mode)})")
    if st.st_size > max_bytes:
        raise ValueError(f"too large: file of {st.st_size:,} bytes, above the limit of {max_bytes:,}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        fst = os.fstat(fh.fileno())
        if not statmod.S_ISREG(fst.st_mode):  # swapped for something else since the stat
            raise ValueError(f"not a regular file ({_file_kind(fst.st_mode)})")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"too large: file grew above the limit of {max_bytes:,} bytes while read")
    return fst, data


def _file_kind(mode: int) -> str:
    for test, name in (
        (statmod.S_ISDIR, "a folder"),
        (statmod.S_ISFIFO, "a FIFO"),
        (statmod.S_ISCHR, "a character device"),
        (statmod.S_ISBLK, "a block device"),
        (statmod.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def load_photo(
    path: str | Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    budget: PixelBudget | None = None,
    known_sha256: str | None = None,
    draft_side: int | None = None,
) -> Photo | Rejected | Unchanged:
    """Read a file once: sha256 of its bytes, then decode. Never raises for a bad file.

    known_sha256: the digest already indexed for this path; equal bytes give `Unchanged` without a decode.
    draft_side: decode a large JPEG reduced, its long side still >= this (see `Photo.scale`).
    """
    text = to_text(os.path.abspath(fs_path(os.fspath(path))))
    os_path = fs_path(text)
    try:
        st, data = _read_regular(os_path, max_bytes)
    except ValueError as e:
        try:
            lst = os.stat(os_path)
            fstat = FileStat(text, lst.st_size, lst.st_mtime_ns)
        except OSError:
            fstat = FileStat(text, -1, -1)
        return Rejected(fstat, None, str(e))
    except OSError as e:
        return Rejected(FileStat(text, -1, -1), None, f"unreadable: {e.strerror or e}")
    fstat = FileStat(text, st.st_size, st.st_mtime_ns)
    sha = hashlib.sha256(data).hexdigest()
    if known_sha256 is not None and sha == known_sha256:
        return Unchanged(fstat, sha)
    return _photo(fstat, sha, data, max_pixels, budget, draft_side)


def _photo(
    stat: FileStat, sha: str, data: bytes, max_pixels: int, budget: PixelBudget | None, draft_side: int | None
) -> Photo | Rejected:
    """Bytes read (a file's, an upload's) decoded into a `Photo`, or the reason they could not be."""
    try:
        rgb, reserved, scale, full = _decode(data, max_pixels, budget, draft_side)
    except ValueError as e:
        return Rejected(stat, sha, str(e))
    except MemoryError:
        return Rejected(stat, sha, "too large: out of memory while decoding")
    return Photo(stat, sha, rgb, reserved, scale, full)


def photo_from_bytes(
    data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS, draft_side: int | None = None
) -> Photo | Rejected:
    """A photo's bytes handed over in memory (an upload) decoded as `load_photo` decodes a file, named `name`; its
    sha256 is that of the bytes, as for a file, so an upload of an indexed photo is known as that photo."""
    return _photo(FileStat(name, len(data), -1), hashlib.sha256(data).hexdigest(), data, max_pixels, None, draft_side)


def photo_from_array(image: np.ndarray, name: str) -> Photo | Rejected:
    """A decoded image handed over in memory (a library caller's numpy array) as a `Photo` named `name`.

    image: `(H, W, 3)` RGB or `(H, W)` grey, uint8 (or float in [0, 1]); anything else is a `Rejected` with the
    reason. Its sha256 is that of the pixels.
    """
    stat = FileStat(name, -1, -1)
    a = np.asarray(image)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            return Rejected(stat, None, "array has NaN or infinite values")
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.dtype != np.uint8:
        return Rejected(stat, None, f"array of {a.dtype}: expected uint8 RGB (or float in [0, 1])")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        return Rejected(stat, None, f"array of shape {a.shape}: expected (H, W, 3) RGB or (H, W) grey")
    a = np.ascontiguousarray(a)
    return Photo(stat, hashlib.sha256(a.tobytes()).hexdigest(), a, 0, 1.0, (a.shape[1], a.shape[0]))
