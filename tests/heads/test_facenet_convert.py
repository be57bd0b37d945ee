"""FaceNet graph converted to torch: the vectors of the conversion it replaced on real LFW faces, OpenCV's own
forward pass where OpenCV still reads TensorFlow graphs, and one-line errors when anything breaks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lookalike import config
from lookalike.errors import LookalikeError

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")
facenet_pytorch = pytest.importorskip("facenet_pytorch")

from lookalike.heads import facenet_convert  # noqa: E402

#: Two photos of one person first, then one photo each of seven other people.
PHOTOS = [
    "George_W_Bush/George_W_Bush_0001.jpg",
    "George_W_Bush/George_W_Bush_0002.jpg",
    "Colin_Powell/Colin_Powell_0001.jpg",
    "Tony_Blair/Tony_Blair_0001.jpg",
    "Serena_Williams/Serena_Williams_0001.jpg",
    "Hugo_Chavez/Hugo_Chavez_0001.jpg",
    "Jennifer_Capriati/Jennifer_Capriati_0001.jpg",
    "Gerhard_Schroeder/Gerhard_Schroeder_0001.jpg",
    "Angelina_Jolie/Angelina_Jolie_0001.jpg",
]


def _face_crop(path: Path) -> np.ndarray:
    """The central ~100x100 of a 150x150 LFW photo, resized to 160x160 RGB uint8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    h, w = bgr.shape[:2]
    side = round(min(h, w) * 2 / 3)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = cv2.resize(bgr[y0 : y0 + side, x0 : x0 + side], (160, 160), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    root = config.data_dir() / "lfw" / "images"
    if not root.is_dir():
        pytest.skip(f"no LFW photos at {root} (set $LOOKALIKE_DATA to the shared data folder)")
    missing = [p for p in PHOTOS if not (root / p).exists()]
    if missing:
        pytest.skip(f"LFW folder {root} lacks {missing[0]}")
    return np.stack([_face_crop(root / p) for p in PHOTOS])


@pytest.fixture(scope="module")
def graph_path() -> Path:
    try:
        return facenet_convert.default_graph_path()
    except LookalikeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def state(graph_path: Path) -> dict:
    return facenet_convert.convert_facenet_graph(graph_path)


@pytest.fixture(scope="module")
def torch_embeddings(state: dict, faces: np.ndarray) -> np.ndarray:
    net = facenet_pytorch.InceptionResnetV1(pretrained=None, classify=False)
    net.load_state_dict(state, strict=False)
    net.eval()
    with torch.no_grad():
        return net(facenet_convert.preprocess(faces)).numpy()


#: The same photos' vectors from the conversion through OpenCV 5.0's TensorFlow importer (tests/data/README.md).
REFERENCE = Path(__file__).parents[1] / "data" / "facenet_casia_lfw9.npy"


@pytest.fixture(scope="module")
def opencv_embeddings(graph_path: Path, faces: np.ndarray) -> np.ndarray:
    if not hasattr(cv2.dnn, "readNetFromTensorflow"):
        pytest.skip(f"OpenCV {cv2.__version__} has no TensorFlow importer (5.1 removed it)")
    return facenet_convert.opencv_embed(facenet_convert.load_opencv_net(graph_path), faces)


def test_state_dict_fits_the_network(state: dict) -> None:
    net = facenet_pytorch.InceptionResnetV1(pretrained=None, classify=False)
    result = net.load_state_dict(state, strict=False)
    assert [k for k in result.missing_keys if not k.startswith("logits.")] == []
    assert result.unexpected_keys == []
    assert not any(k.startswith("logits.") for k in state)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())


def test_the_torch_free_conversion_holds_the_same_weights(graph_path: Path, state: dict) -> None:
    """The arrays a torch-less install builds its onnxruntime graph from are the torch state dict's, key for key."""
    arrays = facenet_convert.convert_to_arrays(graph_path)
    assert list(arrays) == [k for k in state if not k.endswith("num_batches_tracked")]
    for key, value in arrays.items():
        assert value.dtype == np.float32 and np.array_equal(value, state[key].numpy()), key


def test_preprocess_scales_and_transposes() -> None:
    faces = np.zeros((2, 160, 160, 3), np.uint8)
    faces[1, 5, 7] = (255, 128, 0)
    x = facenet_convert.preprocess(faces)
    assert x.shape == (2, 3, 160, 160) and x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() == pytest.approx(-127.5 / 128)
    assert x[1, :, 5, 7].tolist() == pytest.approx([127.5 / 128, 0.5 / 128, -127.5 / 128])


def test_opencv_embeddings_are_unit_length(opencv_embeddings: np.ndarray) -> None:
    assert opencv_embeddings.shape == (len(PHOTOS), 512) and opencv_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(opencv_embeddings, axis=1), 1.0, atol=1e-5)


def test_torch_matches_opencv(torch_embeddings: np.ndarray, opencv_embeddings: np.ndarray) -> None:
    cosines = (torch_embeddings * opencv_embeddings).sum(axis=1) / (
        np.linalg.norm(torch_embeddings, axis=1) * np.linalg.norm(opencv_embeddings, axis=1)
    )
    assert cosines.min() > 0.999, f"cosines torch vs OpenCV: {np.round(cosines, 5).tolist()}"


def test_same_vectors_as_the_opencv_conversion(torch_embeddings: np.ndarray) -> None:
    ref = np.load(REFERENCE)
    cosines = (torch_embeddings * ref).sum(axis=1)
    assert cosines.min() >= 0.99999, f"cosines to the reference vectors: {np.round(cosines, 6).tolist()}"


def test_converted_head_embeds_like_the_reference(state: dict, faces: np.ndarray) -> None:
    """The head's own network (batch norms folded, as `lookalike index` runs it) keeps the vectors."""
    from lookalike.heads.facenet import build_backbone

    with torch.no_grad():
        vectors = build_backbone(state)(facenet_convert.preprocess(faces)).numpy()
    assert (vectors * np.load(REFERENCE)).sum(axis=1).min() >= 0.99999


def test_same_person_closer_than_different_people(torch_embeddings: np.ndarray) -> None:
    sims = torch_embeddings @ torch_embeddings.T
    same = sims[0, 1]
    n = len(PHOTOS)
    different = max(sims[i, j] for i in range(n) for j in range(i + 1, n) if (i, j) != (0, 1))
    assert same > different, f"same person {same:.3f}, most similar different people {different:.3f}"


def test_missing_layer_is_named(graph_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = facenet_convert._layer_map

    def with_bogus_layer():
        return [*real(), ("Repeat/block35_99/Conv2d_1x1", "repeat_1.0.conv2d", "conv")]

    monkeypatch.setattr(facenet_convert, "_layer_map", with_bogus_layer)
    with pytest.raises(LookalikeError, match="block35_99"):
        facenet_convert.convert_facenet_graph(graph_path)


def test_not_a_graph_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "graph_final.pb"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0fgarbage" * 50)
    with pytest.raises(LookalikeError, match=r"not a TensorFlow graph|no TensorFlow graph nodes|no node"):
        facenet_convert.convert_facenet_graph(bad)


BROKEN_CONVERTER = """
import sys
from lookalike.heads import facenet_convert
def broken(path):
    raise AttributeError("module 'cv2.dnn' has no attribute 'readNetFromTensorflow'")
facenet_convert.convert_facenet_graph = broken
from lookalike.cli.app import main
sys.argv = ["lookalike", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    "args",
    [["weights", "import", "facenet-casia", "--force"], ["verify", "A", "B"]],
    ids=["weights-import", "first-use"],
)
def test_a_broken_converter_is_one_error_line(graph_path: Path, tmp_path: Path, args: list[str]) -> None:
    """Whatever breaks inside the conversion (here the error OpenCV 5.1 gave) reaches the user as one line."""
    env = {"LOOKALIKE_WEIGHTS": str(tmp_path / "weights"), "LOOKALIKE_STATE": str(tmp_path / "state"),
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}  # fmt: skip
    for name in ("A", "B"):
        (tmp_path / name).write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN_CONVERTER, *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("converting ")]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: "), proc.stderr
    assert "readNetFromTensorflow" in lines[0] and "Traceback" not in proc.stderr
