"""Print a `.pth` line exposing this environment's torch and torchvision (and what they need) to another virtualenv.

`scripts/check_install.sh` makes a fresh virtualenv that already has torch, as a user's would, without copying
gigabytes: it links the top-level entries of torch's installed distributions (their packages, modules and
.dist-info folders, found through importlib.metadata) into DEST and prints DEST for a `.pth` file. pip in the
new virtualenv then sees torch as installed and resolves everything else itself.

Usage: python scripts/torch_site.py DEST
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions `names` need, themselves included (extras and unmet markers left out)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional need this environment does without
        seen[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def main() -> None:
    dest = Path(sys.argv[1]).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for dist in closure(["torch", "torchvision"]).values():
        root = Path(str(dist.locate_file("")))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            src = root / top
            if top.endswith(".pth") or top in ("..", "__pycache__") or not src.exists():
                continue
            link = dest / top
            if not link.exists():
                link.symlink_to(src)
    print(dest)


if __name__ == "__main__":
    main()
