"""HTML contact sheets: each query face beside its matches, with scores, as one self-contained file."""

from __future__ import annotations

import base64
import html
import io
import os
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


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222}
.row{display:flex;gap:12px;align-items:flex-start;margin:18px 0;padding:12px;background:#fff;border-radius:8px;
box-shadow:0 1px 3px #0002;overflow-x:auto}
.card{width:136px;flex:none;text-align:center;font-size:12px}
.card img{width:128px;height:128px;object-fit:cover;border-radius:6px;background:#eee}
.query{border-right:2px solid #ddd;padding-right:12px}
.score{font-weight:600;font-size:14px}.path{color:#777;word-break:break-all}
"""


def _card(uri: str, title: str, lines: list[str], cls: str = "card") -> str:
    img = f'<img src="{uri}" alt="">' if uri else '<div style="width:128px;height:128px;background:#eee"></div>'
    body = "".join(f"<div>{line}</div>" for line in lines)
    return f'<div class="{cls}">{img}<div class="score">{html.escape(title)}</div>{body}</div>'


def _link(path: str, inner: str) -> str:
    """`inner` linking to the photo file (its absolute file:// address), when the path is a file."""
    try:
        uri = Path(os.path.abspath(path)).as_uri()  # the path as the index stores it (links kept, not resolved)
    except ValueError:
        return inner
    return f'<a href="{html.escape(uri)}">{inner}</a>'


def write_contact_sheet(
    answers: list[dict], out: Path, title: str = "lookalike query", context: dict | None = None
) -> Path:
    """Write the page for `QueryAnswer.as_json()` dicts; returns the path.

    context: what was asked (e.g. `{"index": ..., "mode": ..., "k": ...}`), shown under the title. Each face links
    to its photo; a match marked likely the same person says so.
    """
    rows = []
    same = next((a["same_person"] for a in answers if a.get("same_person")), None)
    for a in answers:
        q = _card(
            face_thumbnail(a["query"], a.get("face_box")),
            "query",
            [_link(a["query"], f'<span class="path">{html.escape(Path(a["query"]).name)}</span>')],
            "card query",
        )
        cards = [q]
        if a.get("error"):
            cards.append(f"<div>{html.escape(a['error'])}</div>")
        for m in a["results"]:
            ident = html.escape(m.get("identity") or "unlabelled")
            mark = " = same person?" if m.get("same_person") else ""
            cards.append(
                _card(
                    face_thumbnail(m["path"], m.get("box")),
                    f"#{m['rank']}  {m['score']:.3f}{mark}",
                    [ident, _link(m["path"], f'<span class="path">{html.escape(Path(m["path"]).name)}</span>')],
                )
            )
        rows.append(f'<div class="row">{"".join(cards)}</div>')
    head = html.escape(answers[0]["head"]) if answers else ""
    asked = "; ".join(f"{html.escape(str(k))}: <b>{html.escape(str(v))}</b>" for k, v in (context or {}).items())
    threshold = (
        f" A match marked <b>= same person?</b> scores at least {same['threshold']:.3f}, the cosine at which "
        f"{100 * same['fmr']:.2f}% of different-person pairs match ({html.escape(same['source'])})."
        if same
        else ""
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{asked + '; ' if asked else ''}head: <b>{head}</b>; score = cosine similarity of the face "
        f"embeddings.{threshold}</p>{''.join(rows)}</body></html>"
    )
    atomic_write_text(Path(out), page)
    return Path(out)
