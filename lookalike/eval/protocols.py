"""Protocol files: reading and writing the pair lists of verification benchmarks (LFW View 2, the published
DoppelVer/ViSE format and its `.splits` sidecar, the DoppelVer pair list). A protocol is a list of image pairs, each
labelled same/different and placed in a split (fold) 0..k-1 (`lookalike.curate.protocol.PairProtocol`); protocols
are made in `lookalike.eval.generate`.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np

from lookalike.atomic import atomic_write_text
from lookalike.curate.protocol import PairProtocol
from lookalike.errors import LookalikeError

__all__ = [
    "PairProtocol",
    "load_doppel_pair_list",
    "load_doppelver_pairs",
    "load_lfw_pairs",
    "load_protocol",
    "relative_to",
    "write_doppelver_pairs",
    "write_protocol",
]


def _rooted(rel: str, images_root: Path | None) -> str:
    return rel if images_root is None else str(Path(images_root) / rel)


# --------------------------------------------------------------------------------------------- LFW


def _lfw_image(name: str, number: str, lineno: int) -> str:
    if not number.isdigit() or int(number) < 1:
        raise LookalikeError(f"LFW pairs line {lineno}: bad image number {number!r}")
    return f"{name}/{name}_{int(number):04d}.jpg"


def load_lfw_pairs(pairs_txt: Path, images_root: Path | None = None) -> PairProtocol:
    """Read LFW's View 2 ``pairs.txt``.

    Format: a first line ``<folds> <per_fold>`` (``10 300``), then per fold ``per_fold`` same-person lines
    ``name n1 n2`` followed by ``per_fold`` different-person lines ``name1 n1 name2 n2`` (tab or space
    separated). Image paths are ``<Name>/<Name>_<NNNN>.jpg``, joined to ``images_root`` when given; the
    fold index (0-based) becomes the split.
    """
    pairs_txt = Path(pairs_txt)
    try:
        lines = pairs_txt.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LookalikeError(f"cannot read LFW pairs file {pairs_txt}: {exc.strerror or exc}") from exc
    if not lines:
        raise LookalikeError(f"LFW pairs file {pairs_txt} is empty")
    head = lines[0].split()
    if len(head) != 2 or not all(h.isdigit() for h in head):
        raise LookalikeError(f"LFW pairs line 1: expected '<folds> <pairs per fold>', got {lines[0]!r}")
    n_folds, per_fold = int(head[0]), int(head[1])
    body = [(i + 2, ln) for i, ln in enumerate(lines[1:]) if ln.strip()]
    if len(body) != 2 * n_folds * per_fold:
        raise LookalikeError(
            f"LFW pairs file {pairs_txt}: header promises {2 * n_folds * per_fold} pairs, found {len(body)}"
        )
    rel_a: list[str] = []
    rel_b: list[str] = []
    ida: list[str] = []
    idb: list[str] = []
    same: list[bool] = []
    split: list[int] = []
    for k, (lineno, line) in enumerate(body):
        fold, within = divmod(k, 2 * per_fold)
        want_same = within < per_fold
        f = line.split()
        if want_same and len(f) == 3:
            n1, n2 = f[0], f[0]
            p1, p2 = _lfw_image(f[0], f[1], lineno), _lfw_image(f[0], f[2], lineno)
        elif not want_same and len(f) == 4:
            n1, n2 = f[0], f[2]
            p1, p2 = _lfw_image(f[0], f[1], lineno), _lfw_image(f[2], f[3], lineno)
        else:
            kind = "same-person 'name n1 n2'" if want_same else "different-person 'name1 n1 name2 n2'"
            raise LookalikeError(f"LFW pairs line {lineno}: expected a {kind} line, got {line.strip()!r}")
        rel_a.append(p1)
        rel_b.append(p2)
        ida.append(n1)
        idb.append(n2)
        same.append(want_same)
        split.append(fold)
    return PairProtocol(
        a=[_rooted(p, images_root) for p in rel_a],
        b=[_rooted(p, images_root) for p in rel_b],
        same=np.array(same, dtype=bool),
        split=np.array(split, dtype=np.int64),
        name="lfw",
        identity_a=ida,
        identity_b=idb,
        source_a=rel_a,
        source_b=rel_b,
    )


# ---------------------------------------------------------------------------------------- DoppelVer


def _split_paths(rest: str) -> tuple[str, str] | None:
    """Split ``'pathA pathB'`` where paths may hold spaces.

    The published files give both paths under one top folder (``DoppelVer_All_112x112/...``), so pathB
    starts at the only occurrence of ``' <top>/'``; ``<top>`` is read from pathA itself. Paths without a
    space (e.g. written from another gallery) fall back to a plain two-field split.
    """
    top, sep, _ = rest.partition("/")
    if sep and top and " " not in top:
        marker = f" {top}/"
        first = rest.find(marker)
        if first > 0 and rest.find(marker, first + 1) == -1:
            pa, pb = rest[:first], rest[first + 1 :]
            if pa.strip() == pa and pb.strip() == pb:
                return pa, pb
    fields = rest.split(" ")
    if len(fields) == 2 and all(fields):
        return fields[0], fields[1]
    return None


def _doppelver_identity(path: str) -> str:
    """The identity of a protocol path.

    Published form ``<top>/<Identity> <file>.jpg`` (the identity folder and file joined by a space):
    the text between the top folder and the first space. Otherwise (``.../<Identity>/<file>.jpg``): the
    parent folder's name.
    """
    parent, _, base = path.rpartition("/")
    if " " in base:
        return base.split(" ", 1)[0]
    return parent.rpartition("/")[2]


def load_doppelver_pairs(path: Path, images_root: Path | None = None, folds: int = 10) -> PairProtocol:
    """Read a DoppelVer protocol file as published (doppelganger or ViSE).

    Each line is ``label pathA pathB`` with label 0 (different) or 1 (same), and paths that may contain
    spaces, e.g. ``1 DoppelVer_All_112x112/Elle_Fanning 058354_0.jpg DoppelVer_All_112x112/Elle_Fanning
    12_0.jpg``. The identity is the folder name under the top folder (``Elle_Fanning``). The file holds
    ``folds`` consecutive blocks of equal size: block k is split k. With ``images_root``, each path is
    joined to it (``images_root / pathA``: the root is the folder holding ``DoppelVer_All_112x112``).

    Raises:
        LookalikeError: unreadable file, a malformed line (naming its line number), or a pair count not
            divisible by ``folds``.
    """
    path = Path(path)
    if folds < 1:
        raise LookalikeError(f"folds must be at least 1, got {folds}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LookalikeError(f"cannot read DoppelVer protocol {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise LookalikeError(f"DoppelVer protocol {path} is not UTF-8 text") from exc
    src_a: list[str] = []
    src_b: list[str] = []
    ida: list[str] = []
    idb: list[str] = []
    same: list[bool] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        label, sep, rest = line.partition(" ")
        if label not in ("0", "1") or not sep:
            raise LookalikeError(f"{path.name} line {lineno}: expected 'label pathA pathB' with label 0 or 1")
        parts = _split_paths(rest)
        if parts is None:
            raise LookalikeError(f"{path.name} line {lineno}: cannot tell where the second image path begins")
        id_pair = _doppelver_identity(parts[0]), _doppelver_identity(parts[1])
        if not all(id_pair):
            raise LookalikeError(f"{path.name} line {lineno}: cannot read an identity from the image paths")
        src_a.append(parts[0])
        src_b.append(parts[1])
        ida.append(id_pair[0])
        idb.append(id_pair[1])
        same.append(label == "1")
    n = len(same)
    if n == 0:
        raise LookalikeError(f"DoppelVer protocol {path} holds no pairs")
    if n % folds:
        raise LookalikeError(f"DoppelVer protocol {path}: {n} pairs do not divide into {folds} equal folds")
    name = path.stem.split("_")[0].lower() or "doppelver"
    return PairProtocol(
        a=[_rooted(p, images_root) for p in src_a],
        b=[_rooted(p, images_root) for p in src_b],
        same=np.array(same, dtype=bool),
        split=np.arange(n, dtype=np.int64) // (n // folds),
        name=name,
        identity_a=ida,
        identity_b=idb,
        source_a=src_a,
        source_b=src_b,
    )


def write_doppelver_pairs(protocol: PairProtocol, path: Path) -> None:
    """Write ``protocol`` in the published DoppelVer format: ``label pathA pathB`` per line, ``\\n`` ends.

    Pairs are written in their current order (split blocks stay consecutive when the protocol was read or
    generated here); the paths written are ``source_a`` / ``source_b`` (unrooted). The write is atomic:
    a temp file beside ``path``, then ``os.replace``. Reading a published file and writing it back gives
    the identical bytes.
    """
    assert protocol.source_a is not None and protocol.source_b is not None
    for i, (pa, pb) in enumerate(zip(protocol.source_a, protocol.source_b, strict=True)):
        if "\n" in pa or "\n" in pb or "\r" in pa or "\r" in pb:
            raise LookalikeError(f"pair {i + 1}: an image path holds a line break")
    text = "".join(
        f"{int(s)} {pa} {pb}\n" for s, pa, pb in zip(protocol.same, protocol.source_a, protocol.source_b, strict=True)
    )
    atomic_write_text(Path(path), text)


def load_doppel_pair_list(csv_path: Path) -> list[tuple[str, str]]:
    """Read a list of doppelganger identity pairs, names normalised to LFW's underscore form.

    Accepts DoppelVer's ``doppelganger_pairs.csv`` (header ``Pair 1,Pair 2``, names with spaces such as
    ``Katy Perry``) and the derived ``identity_a,identity_b,...`` files; only the first two columns are
    read. Runs of whitespace become one underscore (``Katy Perry`` -> ``Katy_Perry``).
    """
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise LookalikeError(f"cannot read doppelganger pair list {csv_path}: {exc.strerror or exc}") from exc
    if not rows:
        raise LookalikeError(f"doppelganger pair list {csv_path} is empty")
    header = [h.strip().lower() for h in rows[0][:2]]
    if header not in (["pair 1", "pair 2"], ["identity_a", "identity_b"]):
        raise LookalikeError(f"{csv_path.name} line 1: expected header 'Pair 1,Pair 2' or 'identity_a,identity_b'")
    pairs: list[tuple[str, str]] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise LookalikeError(f"{csv_path.name} line {lineno}: expected two identity names")
        pairs.append((_normalise_name(row[0]), _normalise_name(row[1])))
    return pairs


def _normalise_name(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip())


#: Sidecar beside a protocol file whose splits are not equal consecutive blocks: one split id per line.
SPLITS_SUFFIX = ".splits"


def write_protocol(proto: PairProtocol, out: Path) -> None:
    """Write `proto` in the published format; when its splits are not equal consecutive blocks (a small gallery
    kept whole), also write `OUT.splits` (one split id per pair) so `load_protocol` reads the true splits."""
    out = Path(out)
    write_doppelver_pairs(proto, out)
    n, k = len(proto), int(proto.split.max()) + 1 if len(proto) else 1
    side = out.with_name(out.name + SPLITS_SUFFIX)
    equal = n % k == 0 and np.array_equal(proto.split, np.arange(n) // (n // k))
    if equal:
        side.unlink(missing_ok=True)
    else:
        atomic_write_text(side, "".join(f"{int(x)}\n" for x in proto.split))


def load_protocol(path: Path, images_root: Path | None = None) -> PairProtocol:
    """A protocol file in the published format, with its `.splits` sidecar when there is one."""
    path = Path(path)
    side = path.with_name(path.name + SPLITS_SUFFIX)
    if not side.exists():
        return load_doppelver_pairs(path, images_root)
    proto = load_doppelver_pairs(path, images_root, folds=1)
    split = np.array([int(x) for x in side.read_text().split()], dtype=np.int64)
    if split.size != len(proto):
        raise LookalikeError(f"{side} holds {split.size} split ids for {len(proto)} pairs")
    proto.split = split
    return proto


def relative_to(proto: PairProtocol, root: Path) -> PairProtocol:
    """The same protocol with `source_a/b` (what gets written) relative to the images root."""
    root = os.path.abspath(root)

    def rel(p: str) -> str:
        r = os.path.relpath(os.path.abspath(p), root)
        if r.startswith(".."):
            raise LookalikeError(f"{p} is not under the images root {root}")
        return r.replace(os.sep, "/")

    proto.source_a = [rel(p) for p in proto.a]
    proto.source_b = [rel(p) for p in proto.b]
    return proto
