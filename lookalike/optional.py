"""The optional dependencies: whether one is installed (without importing it), and the one line that says which
extra brings it when a verb needs it.

`pip install lookalike` gives the default path (YuNet + FaceNet in onnxruntime, SFace in OpenCV, FAISS, serve)
without torch; `[torch]` adds torch for MTCNN, training, the learned metric, characterization and the GPU paths.
"""

from __future__ import annotations

import importlib.util
import sys

from lookalike.errors import LookalikeError

#: An importable top-level module -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "torch": "torch",
    "torchvision": "torch",
    "facenet_pytorch": "torch",
    "timm": "dinov2",
    "open_clip": "clip",
    "dlib": "dlib",
    "face_recognition_models": "dlib",
    "ray": "ray",
    "onnx2torch": "gpu",
}


def has(module: str) -> bool:
    """Whether `module` can be imported here, found without importing it (`import torch` costs seconds)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_words(error: ImportError) -> str | None:
    """ "torch, which is not installed here: pip install 'lookalike[torch]'" for an ImportError of an optional
    module; None for any other (a broken install is not ours to word)."""
    name = (getattr(error, "name", None) or "").split(".", 1)[0]
    if name not in EXTRAS:
        return None
    return f"{name}, which is not installed here: pip install 'lookalike[{EXTRAS[name]}]'"


def require(module: str, what: str) -> None:
    """A one-line LookalikeError when `module` is missing: '`what` needs torch, which is not installed here: ...'."""
    if not has(module):
        extra = EXTRAS.get(module.split(".", 1)[0], module)
        raise LookalikeError(f"{what} needs {module}, which is not installed here: pip install 'lookalike[{extra}]'")
