"""A hybrid written out: the PNG, and a page showing the two portraits, their PCAMs, which part came from whom
and the result (every image embedded, so the page stands alone)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.atomic import atomic_write_bytes
from lookalike.similarity.characterize import heatmap_overlay
from lookalike.similarity.hybrid import Hybrid
from lookalike.similarity.segments import SEGMENTS

#: the two people's colours on the provenance map (blue, orange: told apart by colour-blind readers too)
COLOURS = (np.array([31, 119, 180]), np.array([255, 127, 14]))


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def write_png(h: Hybrid, out: Path) -> Path:
    """The hybrid as a PNG at `out` (written atomically)."""
    atomic_write_bytes(Path(out), png_bytes(h.image))
    return Path(out)


def provenance_picture(h: Hybrid) -> np.ndarray:
    """The hybrid tinted by whose pixels each one is (person A blue, person B orange)."""
    tint = np.where(h.provenance[..., None] == 0, COLOURS[0], COLOURS[1])
    return (0.55 * h.image + 0.45 * tint).astype(np.uint8)


def page_values(h: Hybrid) -> dict:
    """What `hybrid.html` shows (also the web app's Hybrid page)."""
    from lookalike.render import file_link, image_data_uri

    lo = float(min(np.percentile(p.pcam, 1) for p in h.people))
    hi = float(max(np.percentile(p.pcam, 99) for p in h.people))
    people = [{"name": p.name, "path": p.path, "link": file_link(p.path), "portrait": image_data_uri(p.image, 320),
               "pcam": image_data_uri(heatmap_overlay(p.image, p.pcam, lo, hi), 320), "n": len(p.portraits.paths)}
              for p in h.people]  # fmt: skip
    rows = [{"segment": k, "sums": [h.people[0].sums[k], h.people[1].sums[k]], "from": h.people[h.source[k]].name,
             "side": h.source[k]} for k in SEGMENTS]  # fmt: skip
    return {
        "people": people,
        "rows": rows,
        "result": image_data_uri(h.image, 320),
        "provenance": image_data_uri(provenance_picture(h), 320),
        "rule": h.rule,
    }


def write_page(h: Hybrid, out: Path, title: str) -> Path:
    from lookalike.render import render_page

    return render_page("hybrid.html", Path(out), title=title, hy=page_values(h))
