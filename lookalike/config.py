"""Where things live (the weights directory, the shared data folder, the home of named indexes) and the defaults
the verbs share, each defined here once (this module imports nothing heavy, so the CLI can show them in `--help`).

Every location is a setting with a documented environment variable, so tests and scripts can point
the engine elsewhere without code changes.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the weights directory.
WEIGHTS_ENV = "LOOKALIKE_WEIGHTS"
#: Environment variable naming the folder of real face data (LFW, galleries, DoppelVer lists).
DATA_ENV = "LOOKALIKE_DATA"
#: Environment variable naming the folder where `--name`d indexes live.
INDEX_HOME_ENV = "LOOKALIKE_INDEX_HOME"

_REPO_ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------- defaults
#: Pixel limit (width x height) against decompression bombs; `--max-pixels` changes it.
DEFAULT_MAX_PIXELS = 120_000_000
#: Limit on a file's size: nothing larger is read into memory; `--max-file-mb` changes it.
DEFAULT_MAX_BYTES = 512 * 2**20
#: Bound on decoded pixels held at once by an indexing run (about 450 MB of RGB; one 120 MP photo at a time:
#: measured in benchmarks/hostile_input.md).
DEFAULT_PIXELS_IN_FLIGHT = 150_000_000
#: The detector a new index uses; faces are looked for from `DEFAULT_MIN_FACE` pixels, on a copy of the photo no
#: larger than `DEFAULT_MAX_SIDE` on its long side.
DEFAULT_DETECTOR = "yunet"
DEFAULT_MIN_FACE = 20
DEFAULT_MAX_SIDE = 1600
#: `--index-type auto`: exact search up to this many vectors, then an IVF index (`index.vector_index`).
EXACT_SEARCH_UP_TO = 200_000
#: Photos per detector batch (and files per group a finder hands back).
DEFAULT_BATCH_FILES = 32
#: Files written to the index between commits (a crash loses at most this many files' work).
DEFAULT_COMMIT_EVERY = 256
#: `dedup`: near duplicates are main faces above this cosine (exact copies: same bytes, or cosine >= 0.9999).
DEDUP_COSINE = 0.92
#: ViSE mining (seed 003): pairs of different identities above this cosine (0.80 in the seed, with DINOv2).
VISE_COSINE = 0.80
#: `cluster`: faces join at the same-person threshold of this false match rate, looking at this many neighbours.
CLUSTER_FMR = 1e-4
CLUSTER_K = 20


def weights_dir() -> Path:
    """The weights directory: $LOOKALIKE_WEIGHTS, else ~/.cache/lookalike/weights."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lookalike" / "weights"


def data_dir() -> Path:
    """The shared real-photo folder: $LOOKALIKE_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return _REPO_ROOT.parent / "shared" / "data"


#: Environment variable for the engine's own state folder (named indexes, the record of where they live).
STATE_ENV = "LOOKALIKE_STATE"


def state_dir() -> Path:
    """$LOOKALIKE_STATE, else the per-user data folder (platformdirs: `~/.local/share/lookalike` on Linux,
    `~/Library/Application Support/lookalike` on macOS, `%LOCALAPPDATA%\\lookalike` on Windows)."""
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_data_path("lookalike")


def index_home() -> Path:
    """Where `--name NAME` indexes live: $LOOKALIKE_INDEX_HOME, else `indexes/` in the per-user data folder, so a
    name means the same index from any folder."""
    env = os.environ.get(INDEX_HOME_ENV)
    if env:
        return Path(env).expanduser()
    return state_dir() / "indexes"


def legacy_index_home() -> Path:
    """Where named indexes lived before (`./indexes` of the current folder): still read, with a notice."""
    return Path.cwd() / "indexes"


#: Environment variable choosing the torch heads' precision: auto (bf16 where the device computes it
#: natively), fp32 or bf16.
PRECISION_ENV = "LOOKALIKE_PRECISION"


def precision() -> str:
    """The torch heads' precision: $LOOKALIKE_PRECISION, else auto."""
    return os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"


#: Environment variable choosing the yunet detector's CPU engine: onnxruntime (the default where installed) or
#: opencv (`cv2.FaceDetectorYN`); both give the same faces.
YUNET_ENGINE_ENV = "LOOKALIKE_YUNET_ENGINE"


def yunet_engine() -> str | None:
    """The yunet detector's CPU engine asked for in $LOOKALIKE_YUNET_ENGINE (None: the default)."""
    from lookalike.errors import LookalikeError

    value = os.environ.get(YUNET_ENGINE_ENV, "").strip().lower()
    if value and value not in ("onnxruntime", "opencv"):
        raise LookalikeError(f"{YUNET_ENGINE_ENV}={value!r}: use onnxruntime or opencv")
    return value or None


def check_device(device: str | None) -> None:
    """A one-line error for a CUDA device this machine does not have (`--device cuda` without a GPU), instead of
    torch's traceback when a model moves there. Other devices, and None (each model's own default), pass."""
    if not device or not str(device).startswith("cuda"):
        return
    import torch

    from lookalike.errors import LookalikeError

    if not torch.cuda.is_available():
        raise LookalikeError(f"device {device!r}: torch sees no CUDA device on this machine (use --device cpu)")


def cpu_threads() -> int:
    """Threads for CPU work (a network, dedup's pixel comparisons): $OMP_NUM_THREADS's outer count when set (Ray
    actors, worker pools), else the CPUs this process may run on."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",", 1)[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
