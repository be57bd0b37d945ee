"""README.md and docs/ as a reader meets them: every `bash` and `python` block runs (in a fresh folder, on the photos
installed packages ship), every `lookalike ...` line of a `text` block names a real verb and flags its `--help`
lists, the README's verb table is `lookalike --help`'s list, every link and picture resolves, and the pictures'
script runs.

A block that cannot run here says why in the comment before it: `<!-- not run: REASON -->`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from lookalike import config

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None  # why it does not run, from the comment before it

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    out: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        skip = SKIP.search(before)
        code = "\n".join(lines[start + 1 : j]) + "\n"
        out.append(Block(page, start + 1, lang, code, skip.group(1) if skip else None))
        i = j + 1
    return out


ALL = [b for p in PAGES for b in blocks(p)]
RUNNABLE = {"bash", "python"}


def test_every_code_block_is_run_or_says_why_not() -> None:
    assert ALL, "no code blocks found"
    for b in ALL:
        assert b.lang in RUNNABLE | {"text"}, f"{b}: a ```{b.lang} block: use bash, python or text"
        if b.skip is not None:
            assert b.lang in RUNNABLE and len(b.skip) > 15, f"{b}: say why it does not run"


def _sandbox(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(home),
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        LOOKALIKE_STATE=str(tmp / "state"),
        LOOKALIKE_INDEX_HOME=str(tmp / "indexes"),
        LOOKALIKE_WEIGHTS=str(config.weights_dir()),  # the models made once, not again per page
        PYTHONPATH="",
    )
    return env


PAGES_WITH_CODE = [p for p in PAGES if any(b.lang in RUNNABLE and b.skip is None for b in blocks(p))]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_CODE])
def test_the_page_s_code_runs(page: Path, tmp_path: Path) -> None:
    """A page's blocks, in order, in one fresh folder (a later block uses what an earlier one made), as a reader
    pastes them."""
    work = tmp_path / "work"
    work.mkdir()
    env = _sandbox(tmp_path)
    for b in blocks(page):
        if b.lang not in RUNNABLE or b.skip is not None:
            continue
        if b.lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", b.code]
        else:
            cmd = [sys.executable, "-c", b.code]
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        said = (r.stdout + r.stderr)[-3000:]
        assert r.returncode == 0, f"{b} exited {r.returncode}:\n{b.code}\n--- output ---\n{said}"
        assert "Traceback" not in r.stderr, f"{b}:\n{r.stderr[-3000:]}"


def _command(words: list[str]) -> list[click.Command]:
    """The click commands a usage line names (`people list|rename` names two); [] when the verb does not exist."""
    from lookalike.cli.app import cli

    found: list[click.Command] = [cli]
    for w in words:
        if not all(isinstance(c, click.Group) for c in found) or not re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", w):
            break
        nxt = [c.commands.get(alt) for c in found for alt in w.split("|")]
        if any(n is None for n in nxt):
            if found == [cli]:
                return []
            break
        found = nxt  # type: ignore[assignment]
    return found


def test_every_usage_line_names_a_verb_and_its_flags() -> None:
    from lookalike.cli.app import cli

    checked = 0
    for b in (b for b in ALL if b.lang == "text"):
        for n, line in enumerate(b.code.splitlines()):
            if not line.startswith("lookalike "):
                continue
            words = line.split()[1:]
            cmds = _command(words)
            assert cmds and cmds[0] is not cli, f"{b} line {n + 1}: no such verb in {line!r}"
            flags = {o for c in cmds for p in c.params for o in [*p.opts, *p.secondary_opts]}
            flags |= {"--help", "-h"}
            # a continuation line (indented) belongs to the line above: the flags of both
            rest = [line] + [x for x in b.code.splitlines()[n + 1 :] if x.startswith(" ")][:3]
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", " ".join(rest)):
                assert flag in flags, f"{b}: `{' '.join(words[:2])}` has no {flag} ({line!r})"
            checked += 1
    assert checked >= 20


def test_the_readme_verb_table_is_lookalike_help_s_list() -> None:
    from lookalike.cli.app import cli

    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Verbs") :].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z-]+)` \|", table, re.M)
    assert len(listed) == len(set(listed)), "a verb listed twice"
    assert sorted(listed) == sorted(cli.list_commands(click.Context(cli))), "README's verb table and --help differ"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    out = set()
    for h in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        out.add(re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-"))
    return out


def test_links_and_pictures_resolve() -> None:
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address: not followed here
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target} resolves to nothing"
            if anchor:
                where = path or page.name
                assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: no heading #{anchor} in {where}"
    readme = (ROOT / "README.md").read_text()
    assert len(readme.split()) < 1200, "README is a front page: the rest goes to docs/"
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        assert (ROOT / img).stat().st_size < 200_000, f"{img}: keep the pictures small"


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium here")
def test_the_pictures_script_runs(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env=_sandbox(tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image

    for name in ("ask.png", "contact-sheet.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size[0] == 1000 and im.size[1] >= 400
