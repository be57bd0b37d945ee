"""The clip head's plumbing with random weights (no download): open_clip's factory on a local file, the cca224
crop, text vectors in the image space, `query --text` on a CLIP index, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import build_index, csrf_of, require_data

pytest.importorskip("open_clip", reason="open_clip not installed: pip install 'lookalike[clip]'")


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):
    """A seeded random ViT-B-32 checkpoint saved as the head's weights file, the way the published one is."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from lookalike.heads.clip import CLIP_FILE, MODEL

    torch.manual_seed(0)
    net, _, _ = open_clip.create_model_and_transforms(MODEL)
    wdir = tmp_path_factory.mktemp("clip-weights")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(wdir / CLIP_FILE))
    return wdir


@pytest.fixture(scope="module")
def clip_head(clip_weights):
    from lookalike.heads import create_head

    return create_head("clip", device="cpu", weights_dir=clip_weights)


def test_clip_embeds_crops_and_text_in_one_space(clip_head):
    assert clip_head.crop == "cca224" and clip_head.dim == 512
    crops = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    v = clip_head.embed(crops)
    t = clip_head.embed_text(["a man with a grey beard", "a woman smiling"])
    assert v.shape == (3, 512) and t.shape == (2, 512) and v.dtype == t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([v, t]), axis=1), 1.0, atol=1e-4)
    assert not np.allclose(t[0], t[1]) and not np.allclose(v[0], v[1])


def test_query_text_on_a_clip_index(tmp_path, clip_head, clip_weights, detector, monkeypatch):
    """`query --text` answers with the faces whose vectors best match the text's, and refuses a face index."""
    from click.testing import CliRunner

    from lookalike.cli.app import cli
    from lookalike.index.store import FaceStore

    src = tmp_path / "few"
    for p in sorted(require_data("gallery", "lfw10").rglob("*.jpg"))[::20]:  # 5 people, one photo each
        (src / p.parent.name).mkdir(parents=True)
        (src / p.parent.name / p.name).symlink_to(p)
    ix = build_index(tmp_path, src, clip_head, detector)
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(clip_weights))
    r = CliRunner().invoke(cli, ["query", "--text", "a man in a suit", "--index", str(ix), "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.stdout.splitlines()[0])
    assert answer["query"] == "a man in a suit" and answer["head"] == "clip" and len(answer["results"]) == 3
    faces = FaceStore.open(ix).faces(["vector_id", "embedding"])
    vectors = np.stack(faces["embedding"].to_numpy(zero_copy_only=False))
    best = faces["vector_id"].to_numpy()[np.argmax(vectors @ clip_head.embed_text(["a man in a suit"])[0])]
    assert answer["results"][0]["vector_id"] == best

    page = tmp_path / "t.html"
    r = CliRunner().invoke(cli, ["query", "--text", "a man in a suit", "--index", str(ix), "--html", str(page)])
    assert r.exit_code == 0 and '"a man in a suit"' in page.read_text()


def test_text_needs_a_clip_index(lfw10_index):
    from click.testing import CliRunner

    from lookalike.cli.app import cli

    r = CliRunner().invoke(cli, ["query", "--text", "a face", "--index", str(lfw10_index)])
    assert r.exit_code != 0 and "--head clip" in str(r.exception) and "\n" not in str(r.exception)


def test_missing_and_wrong_weights_are_one_line(tmp_path):
    from lookalike.errors import WeightsMismatchError, WeightsMissingError
    from lookalike.heads import create_head
    from lookalike.heads.clip import CLIP_FILE

    with pytest.raises(WeightsMissingError, match=rf"{CLIP_FILE}.*lookalike weights fetch clip") as e:
        create_head("clip", weights_dir=tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / CLIP_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMismatchError, match="does not load into OpenCLIP ViT-B-32") as e:
        create_head("clip", weights_dir=tmp_path)
    assert "\n" not in str(e.value)


def test_the_server_answers_texts_on_a_clip_index(tmp_path, clip_head, clip_weights, detector, monkeypatch):
    """`lookalike serve` takes words too: the JSON API (`texts`) and the Ask page's description field."""
    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app

    src = tmp_path / "few"
    for p in sorted(require_data("gallery", "lfw10").rglob("*.jpg"))[::25]:
        (src / p.parent.name).mkdir(parents=True, exist_ok=True)
        (src / p.parent.name / p.name).symlink_to(p)
    ix = build_index(tmp_path, src, clip_head, detector)
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(clip_weights))
    with TestClient(base_url="http://127.0.0.1:8765", app=create_app({"few": ix})) as client:
        r = client.post("/query", json={"texts": ["a smiling woman"], "k": 2})
        assert r.status_code == 200, r.text
        [answer] = r.json()
        assert answer["query"] == "a smiling woman" and len(answer["results"]) == 2
        page = client.get("/")
        assert 'name="text"' in page.text
        token = csrf_of(page.text)
        shown = client.post("/ask", data={"text": "a smiling woman", "k": "2", "csrf": token})
        assert shown.status_code == 200 and '"a smiling woman"' in shown.text and "CLIP similarity" in shown.text
        nothing = client.post("/ask", data={"k": "2", "csrf": token})
        assert "or describe a face" in nothing.text
