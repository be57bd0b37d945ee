"""The HTML pages (query contact sheet, duplicates, characterisation): Jinja2 templates in `lookalike/templates/`
(one stylesheet, escaping on), every image embedded as a data: URI so a page stands alone when moved or mailed,
every face linked to its original photo."""

from __future__ import annotations

import base64
import io
import os
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.atomic import atomic_write_text
from lookalike.faces.photos import Photo, load_photo


def face_thumbnail(path: str, box: list[float] | None, size: int = 128, margin: float = 0.25) -> str:
    """A data: URI of the face (box plus margin) from a photo, or of the whole photo without a box."""
    item = load_photo(path)
    if not isinstance(item, Photo):
        return ""
    img = item.rgb
    if box is not None:
        h, w = img.shape[:2]
        x1, y1, x2, y2 = box
        mw, mh = (x2 - x1) * margin, (y2 - y1) * margin
        x1, y1 = int(max(x1 - mw, 0)), int(max(y1 - mh, 0))
        x2, y2 = int(min(x2 + mw, w)), int(min(y2 + mh, h))
        if x2 > x1 and y2 > y1:
            img = img[y1:y2, x1:x2]
    return image_data_uri(img, size)


def image_data_uri(rgb: np.ndarray, size: int = 128) -> str:
    """`(H, W, 3) uint8` -> a JPEG data: URI whose longer side is `size`."""
    pil = Image.fromarray(rgb)
    pil.thumbnail((size, size))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


@cache
def _env():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("lookalike", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["basename"] = lambda p: Path(str(p)).name
    return env


def render_html(template: str, **values) -> str:
    """`lookalike/templates/<template>` rendered with `values`."""
    return _env().get_template(template).render(**values)


def render_page(template: str, out: Path, **values) -> Path:
    """Render `lookalike/templates/<template>` with `values` and write it atomically to `out`."""
    atomic_write_text(Path(out), render_html(template, **values))
    return Path(out)


def file_link(path: str) -> str | None:
    """The file:// address of a photo (its absolute path as the index stores it: links kept, not resolved)."""
    try:
        return Path(os.path.abspath(path)).as_uri()
    except ValueError:
        return None


def file_data_uri(path: Path, mime: str = "image/png") -> str:
    """A file's bytes as a data: URI (an image written beside a page, embedded in it instead of linked)."""
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def write_contact_sheet(
    answers: list[dict], out: Path, title: str = "lookalike query", context: dict | None = None
) -> Path:
    """Write the page for `QueryAnswer.as_json()` dicts; returns the path.

    context: what was asked (e.g. `{"index": ..., "mode": ..., "k": ...}`), shown under the title. Each face links
    to its photo; a match marked likely the same person says so.
    """
    same = next((a["same_person"] for a in answers if a.get("same_person")), None)
    shown = []
    for a in answers:
        results = [{**m, "thumb": face_thumbnail(m["path"], m.get("box")), "link": file_link(m["path"])}
                   for m in a["results"]]  # fmt: skip
        if a.get("face_index") is None and not a.get("error"):  # a --text query: the words, no photo
            shown.append({**a, "results": results, "thumb": "", "link": "", "text": a["query"]})
            continue
        shown.append({**a, "results": results, "thumb": face_thumbnail(a["query"], a.get("face_box")),
                      "link": file_link(a["query"])})  # fmt: skip
    head = answers[0]["head"] if answers else ""
    return render_page("query.html", out, title=title, answers=shown, head=head, same=same, context=context or {})
