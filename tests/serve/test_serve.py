"""`lookalike serve` as a user runs it: started on a free localhost port, it answers what the CLI answers, takes
uploads, refuses bad ones in one line and stays up, and `lookalike query` goes through it while it runs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from lookalike.cli.app import cli
from tests.conftest import require_data


@pytest.fixture(scope="module")
def server(lfw10_index, tmp_path_factory):
    from lookalike.eval.server import start_server

    state = tmp_path_factory.mktemp("serve-state")
    proc, url = start_server(lfw10_index, state)
    assert url.startswith("http://127.0.0.1:")
    yield url, state
    proc.terminate()
    proc.wait(timeout=30)
    assert not (state / "server.json").exists(), "a stopped server leaves no record"


def _blair():
    return require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")


def test_query_goes_through_the_server_and_answers_alike(server, lfw10_index, monkeypatch):
    url, state = server
    monkeypatch.setenv("LOOKALIKE_STATE", str(state))
    before = requests.get(f"{url}/health", timeout=5).json()["answered"]
    args = ["query", str(_blair()), "--index", str(lfw10_index), "--json", "-k", "5"]
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):  # a proxy in the environment: the photo paths must still
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # go straight to the local server, never through it
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    warm = CliRunner().invoke(cli, args)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name)
    local = CliRunner().invoke(cli, [*args, "--no-server"])
    assert warm.exit_code == local.exit_code == 0, warm.output
    assert json.loads(warm.stdout) == json.loads(local.stdout)
    assert json.loads(warm.stdout)["results"][0]["identity"] == "Tony_Blair"
    assert requests.get(f"{url}/health", timeout=5).json()["answered"] == before + 1  # it was the server


def test_upload_verify_face_and_bad_input(server, lfw10_index):
    url, _ = server
    with open(_blair(), "rb") as fh:
        r = requests.post(f"{url}/query", files={"photo": ("me.jpg", fh, "image/jpeg")}, data={"k": "3"}, timeout=120)
    assert r.status_code == 200, r.text
    answer = r.json()[0]
    assert answer["query"] == "me.jpg" and answer["results"][0]["identity"] == "Tony_Blair"
    assert str(_blair()) not in [m["path"] for m in answer["results"]]  # the upload is that photo: left out
    face = requests.get(f"{url}/faces/{answer['results'][0]['vector_id']}", timeout=5).json()
    assert face["identity"] == "Tony_Blair" and face["path"] == answer["results"][0]["path"]
    # verify over the API equals the CLI's verdict with the same index
    a, b = _blair(), require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0001.jpg")
    api = requests.post(f"{url}/verify", json={"a": str(a), "b": str(b)}, timeout=120).json()
    cli_v = CliRunner().invoke(cli, ["verify", str(a), str(b), "--index", str(lfw10_index), "--json"])
    assert json.loads(cli_v.stdout) == api and api["same_person"] is True
    # bad uploads: 4xx with one line, and the server stays up
    bad = requests.post(f"{url}/query", files={"photo": ("x.jpg", b"not a photo", "image/jpeg")}, timeout=30)
    assert bad.status_code == 400 and "not a readable photo" in bad.json()["error"] and "\n" not in bad.json()["error"]
    faceless = requests.post(f"{url}/query", json={"paths": [str(Path(__file__))]}, timeout=30)
    assert faceless.status_code == 200 and faceless.json()[0]["error"].startswith("cannot use ")
    assert requests.post(f"{url}/query", data=b"{", timeout=30).status_code == 415  # not said to be JSON
    half = requests.post(f"{url}/query", data=b"{", headers={"Content-Type": "application/json"}, timeout=30)
    assert half.status_code == 400 and "not JSON" in half.json()["error"]
    assert requests.get(f"{url}/faces/99999999", timeout=5).status_code == 404
    people = requests.get(f"{url}/people", headers={"Accept": "application/json"}, timeout=30).json()
    assert "Tony_Blair" in {p["person"] for p in people["people"]}
    assert sum(p["faces"] for p in people["people"]) >= 100
    assert requests.get(f"{url}/health", timeout=5).status_code == 200


def test_concurrent_queries_are_all_answered(server):
    url, _ = server
    q = {"paths": [str(_blair())], "k": 3}

    def ask(_):
        return requests.post(f"{url}/query", json=q, timeout=300)

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(ask, range(24)))
    assert all(r.status_code == 200 for r in replies)
    assert len({json.dumps(r.json()) for r in replies}) == 1  # the same answer every time


def test_a_server_reachable_from_elsewhere_takes_uploads_only(lfw10_index):
    """Built as `--host 0.0.0.0` builds it: a path on this machine is refused, an upload is answered."""
    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app

    with TestClient(
        base_url="http://127.0.0.1:8765", app=create_app({"lfw10": lfw10_index}, allow_paths=False)
    ) as client:
        refused = client.post("/query", json={"paths": [str(_blair())]})
        assert refused.status_code == 400 and "uploads only" in refused.json()["error"]
        with open(_blair(), "rb") as fh:
            ok = client.post("/query", files={"photo": ("me.jpg", fh, "image/jpeg")})
        assert ok.status_code == 200 and ok.json()[0]["results"][0]["identity"] == "Tony_Blair"


def test_uploads_too_large_or_without_a_face_are_4xx(lfw10_index):
    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app

    cup = require_data("lfw", "images", "Tony_Blair", "Tony_Blair_0001.jpg").read_bytes()
    with TestClient(
        base_url="http://127.0.0.1:8765", app=create_app({"lfw10": lfw10_index}, max_upload=len(cup) - 1)
    ) as client:
        big = client.post("/query", files={"photo": ("big.jpg", cup, "image/jpeg")})
        assert big.status_code == 400 and "upload limit" in big.json()["error"]
    import io

    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 180, 160)).save(blank, format="JPEG")
    with TestClient(base_url="http://127.0.0.1:8765", app=create_app({"lfw10": lfw10_index})) as client:
        faceless = client.post("/query", files={"photo": ("wall.jpg", blank.getvalue(), "image/jpeg")})
        assert faceless.status_code == 422 and faceless.json()["error"].startswith("no face found")
        assert client.get("/health").status_code == 200


def test_review_lists_lookalike_pairs_of_different_people(lfw10_index, monkeypatch):
    import re

    from starlette.testclient import TestClient

    import lookalike.serve.pages as pages
    from lookalike.serve.app import create_app

    monkeypatch.setattr(pages, "VISE_COSINE", 0.3)  # lfw10's ten people rarely pass 0.80 with this head
    with TestClient(base_url="http://127.0.0.1:8765", app=create_app({"lfw10": lfw10_index})) as client:
        page = client.get("/review").text
    rows = re.findall(r'<div class="row lookalike">(.*?)</div>\s*</div>\s*</div>', page, re.S)
    assert rows, "no look-alike pairs listed"
    for row in rows:
        who = re.findall(r'class="who">([^<]+)<', row)
        assert len(who) == 2 and who[0] != who[1]
    scores = [float(x) for x in re.findall(r"cosine (0\.\d+)</div></div>\s*<div class=\"card\">", page)]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0.3


def test_review_never_offers_to_remove_one_of_two_different_photos(tmp_path, default_head):
    """lfw10's Ariel_Sharon 0003/0007: two photos of one scene whose faces score 0.93 (default head and detector),
    once offered as "Remove the copy"; now a similar shot, with no remove button, and a forged removal is refused."""
    import re

    from starlette.testclient import TestClient

    from lookalike.faces.detect import create_detector
    from lookalike.serve.app import create_app
    from tests.conftest import LOCAL_URL, build_index, csrf_of, require_data

    lfw10_index = build_index(tmp_path, require_data("gallery", "lfw10"), default_head, create_detector("yunet"))

    with TestClient(base_url=LOCAL_URL, app=create_app({"lfw10": lfw10_index})) as client:
        page = client.get("/review").text
        rows = page.split('<div class="row ')[1:]  # each row up to the next (the last one up to the page's end)
        similar = [r for r in rows if r.startswith('similar"')]
        names = [set(re.findall(r'class="path">([^<]+)<', row)) for row in similar]
        assert {"Ariel_Sharon_0003.jpg", "Ariel_Sharon_0007.jpg"} in names, names
        assert all("Remove the copy" not in row for row in similar)
        pairs = [r for r in rows if r.startswith('pair"')]
        assert not any("Ariel_Sharon_0003" in row and "Ariel_Sharon_0007" in row for row in pairs)
        import json

        from lookalike.index.store import FaceStore

        paths = FaceStore.open(lfw10_index).faces(["path"])["path"].to_pylist()
        a = next(p for p in paths if p.endswith("Ariel_Sharon_0003.jpg"))
        b = next(p for p in paths if p.endswith("Ariel_Sharon_0007.jpg"))
        r = client.post("/review/remove", data={"keep": json.dumps(a), "drop": json.dumps(b), "csrf": csrf_of(page)},
                        headers={"Origin": LOCAL_URL}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 400 and "not among the copies" in r.text
    assert b in FaceStore.open(lfw10_index).faces(["path"])["path"].to_pylist()


def test_a_bad_request_to_a_page_or_the_api_is_one_line(lfw10_index):
    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app

    with TestClient(base_url="http://127.0.0.1:8765", app=create_app({"lfw10": lfw10_index})) as client:
        page = client.get("/people?index=nope")
        assert page.status_code == 400 and page.text.startswith("lookalike: error: index 'nope' is not served")
        assert "\n" not in page.text.strip()
        api = client.post("/query", json={"paths": [str(_blair())], "k": "ten"})
        assert api.status_code == 400 and api.json()["error"].startswith("k must be a whole number")
        assert client.post("/review/remove", data={}).status_code == 400
        assert client.get("/health").status_code == 200


def test_the_hybrid_page_composes_two_people_of_the_index(lfw10_index):
    """The Hybrid page lists the index's people, refuses a form another site made, and composes two of them from
    their indexed faces (each segment named with the person it came from)."""
    import re

    pytest.importorskip("dlib", reason="dlib is not installed (pip install -e '.[dlib]')")
    pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")
    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app
    from tests.conftest import csrf_of

    with TestClient(base_url="http://127.0.0.1:8765", app=create_app({"lfw10": lfw10_index})) as client:
        form = client.get("/hybrid").text
        listed = re.findall(r"<option(?: selected)?>([^<]+)</option>", form)
        assert "Tony_Blair" in listed and "Vladimir_Putin" in listed and len(listed) == 2 * 10
        ask = {"a": "Tony_Blair", "b": "Vladimir_Putin", "index": "lfw10"}
        forged = client.post("/hybrid", data=ask)
        assert forged.status_code == 400 and "did not come from this server's page" in forged.text
        made = client.post("/hybrid", data={**ask, "csrf": csrf_of(form)})
        assert made.status_code == 200 and 'id="hybrid"' in made.text, made.text[-500:]
        froms = re.findall(r"<td><b>([^<]+)</b></td>", made.text)
        assert len(froms) == 6 and set(froms) <= {"Tony_Blair", "Vladimir_Putin"}
        same = client.post("/hybrid", data={**ask, "b": "Tony_Blair", "csrf": csrf_of(form)})
        assert 'id="error"' in same.text and "two different people" in same.text
