"""README promises nothing leaves the machine: held here for whole runs of the installed CLI.

- A HOME in a temporary folder: `index` + `query` + `serve` (answering a query over HTTP) write no telemetry store
  of any dependency (onnxruntime's device id and event queue under `.cache/Microsoft`, anything else) there.
- strace over the same verbs: no socket is connected anywhere but loopback.
- `unshare -n` (a network namespace with no interface at all): index and query still work.
- Each dependency's own switch, read the way it reads it: Ray's usage stats and the hub client are off.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_data

LK = [sys.executable, "-m", "lookalike"]
PEOPLE = ("Tony_Blair", "Colin_Powell")
#: What a run may leave in HOME: nothing at all is expected; these are the caches that are not telemetry.
ALLOWED_IN_HOME = (".cache/matplotlib/", ".config/matplotlib/")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A photo folder, a query photo and an environment whose HOME, weights, state and indexes are all temporary
    (the weights folder shared with the suite's, so FaceNet is not converted again)."""
    lfw10 = require_data("gallery", "lfw10")
    root = tmp_path_factory.mktemp("offline")
    for person in PEOPLE:
        (root / "photos" / person).mkdir(parents=True)
        for photo in sorted((lfw10 / person).glob("*.jpg"))[1:6]:
            shutil.copy(photo, root / "photos" / person / photo.name)
    shutil.copy(lfw10 / "Tony_Blair" / "Tony_Blair_0001.jpg", root / "me.jpg")
    from lookalike import config

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / "home"),
        "LOOKALIKE_WEIGHTS": str(config.weights_dir()),
        "LOOKALIKE_STATE": str(root / "state"),
        "LOOKALIKE_INDEX_HOME": str(root / "indexes"),
        "LOOKALIKE_DATA": str(config.data_dir()),
        "OMP_NUM_THREADS": "2",
    }
    (root / "home").mkdir()
    return {"root": root, "env": env}


def _run(cmd: list[str], env: dict, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd[:6])}: {proc.stderr[-2000:]}"
    return proc


def _serve_and_ask(prefix: list[str], env: dict, cwd: Path) -> dict:
    """Start `serve` (under `prefix`, e.g. strace), ask it one query over HTTP, stop it; its answer."""
    proc = subprocess.Popen(
        [*prefix, *LK, "serve", "--index", "people", "--port", "0"],
        env=env,
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip  (its own process group: under strace, stopping strace alone would leave the server running)
    try:
        url, t0 = None, time.monotonic()
        while url is None and time.monotonic() - t0 < 300:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise AssertionError(f"serve stopped: {proc.returncode}")
            m = re.search(r"at (http://\S+)", line)
            url = m.group(1) if m else None
        assert url, "serve never said where it listens"
        body = json.dumps({"index": "people", "paths": [str(cwd / "me.jpg")], "k": 2}).encode()
        req = urllib.request.Request(f"{url}/query", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _verbs(prefix: list[str], world: dict) -> None:
    env, root = world["env"], world["root"]
    _run([*prefix, *LK, "index", "photos", "--name", "people", "-q", "--workers", "0"], env, root)
    out = _run([*prefix, *LK, "query", "me.jpg", "--index", "people", "-k", "2", "--json", "--no-server"], env, root)
    assert json.loads(out.stdout)["results"][0]["identity"] == "Tony_Blair"
    answer = _serve_and_ask(prefix, env, root)
    assert answer["results"][0]["identity"] == "Tony_Blair", answer


def test_no_telemetry_store_in_home(world: dict) -> None:
    _verbs([], world)
    home = Path(world["env"]["HOME"])
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert not (home / ".cache" / "Microsoft").exists(), left
    assert [p for p in left if not p.startswith(ALLOWED_IN_HOME)] == [], left


def test_no_connection_but_loopback(world: dict, tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    log = tmp_path / "strace"
    # -ff: one log per process (workers, onnxruntime's and torch's threads included); connect and sendto only
    prefix = ["strace", "-f", "-ff", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(log)]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
    _verbs(prefix, world)
    calls = [ln for f in tmp_path.glob("strace*") for ln in f.read_text(errors="replace").splitlines()]
    inet = [c for c in calls if "AF_INET" in c]
    outside = [c for c in inet if not re.search(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"|"::ffff:127\.', c)]
    assert outside == [], outside[:5]
    assert calls, "strace saw no call at all: the check would pass vacuously"


def test_works_without_any_network(world: dict) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (util-linux)")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()[:200]}")
    env, root = world["env"], world["root"]
    _run(["unshare", "-n", *LK, "index", "photos", "--out", str(root / "cut-off"), "-q", "--workers", "0"], env, root)
    q = ["unshare", "-n", *LK, "query", "me.jpg", "--index", str(root / "cut-off"), "-k", "1", "--json"]
    assert json.loads(_run(q, env, root).stdout)["results"][0]["identity"] == "Tony_Blair"


def test_each_dependency_reads_its_switch_as_off(world: dict) -> None:
    """Read the way each dependency reads it, in a process that imported lookalike first."""
    code = """
import lookalike, json, importlib.util
out = {}
if importlib.util.find_spec("ray"):
    from ray._common.usage import usage_lib
    out["ray_usage_stats"] = usage_lib.usage_stats_enabled()
if importlib.util.find_spec("huggingface_hub"):
    from huggingface_hub import constants
    out["hf_offline"] = constants.HF_HUB_OFFLINE
    out["hf_telemetry_off"] = constants.HF_HUB_DISABLE_TELEMETRY
print(json.dumps(out))
"""
    proc = _run([sys.executable, "-c", code], world["env"], world["root"], timeout=300)
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen.get("ray_usage_stats", False) is False, seen
    assert seen.get("hf_offline", True) is True and seen.get("hf_telemetry_off", True) is True, seen


def test_a_cold_query_imports_neither_torch_nor_onnx(tmp_path):
    """A query in a fresh process loads what it uses: the default head on onnxruntime (where bf16 is not native)
    and YuNet's cached graph; torch (4.7 s cold on some machines) and onnx (1.2-1.8 s) stay out."""
    import os
    import subprocess
    import sys

    from lookalike.heads.base import fast_bf16
    from tests.conftest import write_sample_photos

    if fast_bf16("cpu"):
        pytest.skip("this CPU computes bf16 natively: the default head runs in torch here")
    root = write_sample_photos(tmp_path / "photos", per_person=2)
    env = {**os.environ, "LOOKALIKE_INDEX_HOME": str(tmp_path / "indexes"), "LOOKALIKE_STATE": str(tmp_path / "st")}
    built = subprocess.run([sys.executable, "-m", "lookalike", "index", str(root), "--out", str(tmp_path / "ix"), "-q"],
                           capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert built.returncode == 0, built.stderr[-800:]
    code = (
        "import sys\n"
        "from lookalike.cli.app import main\n"
        f"sys.argv = ['lookalike', 'query', {str(root / 'Grace_Hopper' / '1.jpg')!r}, '--index', "
        f"{str(tmp_path / 'ix')!r}, '--no-server', '--json', '-k', '1']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('torch' in sys.modules, 'onnx' in sys.modules, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-800:]
    assert '"Grace_Hopper"' in r.stdout
    assert r.stderr.strip().splitlines()[-1] == "False False", r.stderr[-800:]
