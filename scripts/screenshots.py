"""Make the pictures in docs/img/ from the photos installed packages ship (no LFW or other faces): the web app's
Ask page with a photo asked, and a query's contact sheet, each rendered by headless Chromium and saved as a small
PNG. Run by scripts/screenshots.sh; `--out DIR` writes elsewhere (the docs test checks that it runs)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageEnhance

from lookalike.faces.samples import SAMPLES, sample_file

WIDTH = 1000


def sample_photos(root: Path) -> Path:
    """Each sample face three times (as shipped, mirrored, brighter and turned a little) and the coffee cup."""
    for s in SAMPLES:
        src = sample_file(s)
        if src is None or not src.exists():
            sys.exit(f"screenshots: {s.package} is not installed, so its sample photo is missing")
        img = Image.open(src).convert("RGB")
        if s.person is None:
            (root / "notes").mkdir(parents=True, exist_ok=True)
            img.save(root / "notes" / "coffee.jpg", quality=90)
            continue
        (root / s.person).mkdir(parents=True, exist_ok=True)
        brighter = ImageEnhance.Brightness(img.rotate(4)).enhance(1.2)
        variants = [img, img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), brighter]
        for n, v in enumerate(variants):
            v.save(root / s.person / f"{n}.jpg", quality=90)
    return root


def shoot(html: Path, png: Path, height: int) -> None:
    """Chromium's headless screenshot of a page, made small (a 128-colour palette)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        sys.exit("screenshots: no chromium on the PATH (apt-get install chromium)")
    raw = png.with_suffix(".raw.png")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={WIDTH},{height}", f"--screenshot={raw}", html.as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    raw.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from starlette.testclient import TestClient

    from lookalike.api import build_index
    from lookalike.render import write_contact_sheet
    from lookalike.serve.app import create_app
    from lookalike.serve.guard import CSRF_FIELD

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = sample_photos(work / "photos")
        ix = build_index(photos, out=work / "samples")
        asked = photos / "Grace_Hopper" / "0.jpg"
        answer = ix.query(asked, k=4, mode="faces")
        sheet = write_contact_sheet([answer.as_json()], work / "sheet.html", "lookalike query",
                                    {"index": "samples", "mode": "faces", "k": 4})  # fmt: skip
        shoot(sheet, args.out / "contact-sheet.png", 400)
        with TestClient(create_app({"samples": ix.root}), base_url="http://127.0.0.1:8765") as client:
            form = client.get("/").text
            token = form.split(f'name="{CSRF_FIELD}" value="', 1)[1].split('"', 1)[0]
            with open(photos / "Eileen_Collins" / "0.jpg", "rb") as fh:
                page = client.post("/ask", data={CSRF_FIELD: token, "k": "4", "mode": "faces"},
                                   files={"photo": ("astronaut.jpg", fh, "image/jpeg")})  # fmt: skip
            page.raise_for_status()
        (work / "ask.html").write_text(page.text)
        shoot(work / "ask.html", args.out / "ask.png", 760)
    for name in ("ask.png", "contact-sheet.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} kB")


if __name__ == "__main__":
    main()
