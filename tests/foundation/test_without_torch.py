"""`pip install lookalike` without torch: the default path works, and a verb that needs torch says so in one line.

torch is hidden from the child processes by a `sitecustomize` module that refuses its import (and its companions'),
as a venv without them would; scripts/check_install.sh makes such a venv for real with plain pip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_sample_photos

BLOCKER = """
import sys
BLOCKED = {"torch", "torchvision", "facenet_pytorch", "timm", "open_clip", "onnx2torch"}
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("notorch")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(BLOCKER)
    photos = write_sample_photos(root / "photos", per_person=3)
    env = {
        **os.environ,
        "PYTHONPATH": str(root / "site"),
        "LOOKALIKE_WEIGHTS": str(root / "weights"),  # empty: the first use converts FaceNet without torch
        "LOOKALIKE_STATE": str(root / "state"),
        "LOOKALIKE_INDEX_HOME": str(root / "indexes"),
        "LOOKALIKE_FACENET_ENGINE": "auto",
    }
    return {"root": root, "photos": photos, "env": env}


def _lookalike(world: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lookalike", *args], capture_output=True, text=True, timeout=timeout,
        env=world["env"], cwd=world["root"],
    )  # fmt: skip


def test_the_blocker_hides_torch(world: dict) -> None:
    code = "import lookalike.optional as o\ntry:\n    import torch\nexcept ImportError:\n    print(o.has('torch'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=world["env"], timeout=120)
    assert r.stdout.strip() == "False", r.stderr[-500:]


@pytest.fixture(scope="module")
def built(world: dict) -> Path:
    """The sample photos indexed with the default head by a torch-less process (weights made on first use)."""
    out = world["root"] / "ix"
    r = _lookalike(world, "index", str(world["photos"]), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr[-800:]
    return out


def test_index_and_query_with_the_default_head(world: dict, built: Path) -> None:
    weights = world["root"] / "weights"
    assert (weights / "facenet-casia-webface.onnx").exists()
    assert not (weights / "facenet-casia-webface.pt").exists()  # no torch to write it
    asked = _lookalike(world, "query", str(world["photos"] / "Grace_Hopper" / "1.jpg"), "--index", str(built),
                       "--no-server", "--json", "-k", "1")  # fmt: skip
    assert asked.returncode == 0, asked.stderr[-800:]
    top = json.loads(asked.stdout)["results"][0]
    assert top["identity"] == "Grace_Hopper" and top["same_person"], top


def test_the_torchless_graph_is_the_torch_installs_graph(world: dict, built: Path) -> None:
    """The same weights' identity and the same graph, to the byte, as a torch install builds: an index made by one
    install is queried by the other (indexes record the digest)."""
    from lookalike.heads import create_head, facenet

    rec = json.loads((world["root"] / "weights" / "facenet-casia-webface.onnx.json").read_text())
    assert rec["weights_sha256"] == facenet.CASIA_PT_SHA256
    assert json.loads((built / "manifest.json").read_text())["weights_sha256"] == facenet.CASIA_PT_SHA256
    head = create_head("facenet-casia", device="cpu")  # this process has torch: the .pt file
    assert head.weights_sha256 == facenet.CASIA_PT_SHA256
    torch_graph = facenet.onnx_graph(head._path, head.weights_sha256)
    assert torch_graph == (world["root"] / "weights" / "facenet-casia-webface.onnx").read_bytes()


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (["index", "PHOTOS", "--out", "mt", "--detector", "mtcnn"], "the mtcnn detector needs facenet_pytorch"),
        (["characterize", "PHOTOS/Grace_Hopper", "--out", "ch"], "needs torch"),
        (["query", "PHOTOS/Grace_Hopper/1.jpg", "--index", "ix", "--rerank", "metric", "--no-server"], "needs torch"),
        (["hybrid", "PHOTOS/Grace_Hopper", "PHOTOS/Eileen_Collins", "--out", "h.png"], "hybrid (a metric learnt"),
    ],
    ids=["mtcnn", "characterize", "rerank-metric", "hybrid"],
)
def test_a_verb_that_needs_torch_says_so_in_one_line(world: dict, built: Path, args: list[str], needs: str) -> None:
    args = [a.replace("PHOTOS", str(world["photos"])) for a in args]
    r = _lookalike(world, *args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-800:]
    assert lines[-1].startswith("lookalike: error: ") and needs in lines[-1], r.stderr[-800:]
    assert "pip install 'lookalike[torch]'" in lines[-1] and "Traceback" not in r.stderr
