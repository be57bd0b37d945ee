"""`lookalike serve` against a hostile web page and hostile bodies: every reproduction of the security audit is
refused, and what is refused changes nothing and tells nothing."""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import LOCAL_URL, csrf_of, index_with_copy

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def family(tmp_path_factory, sface, detector) -> tuple[Path, Path]:
    """An index of 3 people, one photo of which has an exact copy (a duplicate pair Review offers)."""
    people = {"Tony_Blair": 3, "Colin_Powell": 2, "George_W_Bush": 2}
    return index_with_copy(tmp_path_factory.mktemp("family"), sface, detector, people,
                           ("Tony_Blair_0002.jpg", "Tony_Blair_0002 copy.jpg"))  # fmt: skip


@pytest.fixture
def client(family):
    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app

    with TestClient(create_app({"family": family[0]}), base_url=LOCAL_URL) as c:
        yield c


def _faces(ix: Path) -> int:
    from lookalike.index.store import FaceStore

    return FaceStore.open(ix).faces(["path"]).num_rows


def _pair(root: Path) -> dict:
    return {"keep": str(root / "Tony_Blair" / "Tony_Blair_0002.jpg"),
            "drop": str(root / "Tony_Blair" / "Tony_Blair_0002 copy.jpg")}  # fmt: skip


def test_a_rebinding_host_reads_nothing(client, family) -> None:
    """A page that re-points its own name at 127.0.0.1 sends its name as Host: refused before any handler."""
    for path in ("/photo/1", "/faces/1", "/people", "/review", "/", "/health"):
        r = client.get(path, headers={"Host": "rebind.attacker.example", "Accept": "application/json"})
        assert r.status_code == 421, (path, r.status_code)
        assert str(family[1]) not in r.text and "Tony_Blair" not in r.text
    r = client.post("/query", json={"paths": ["/etc/passwd"]}, headers={"Host": "rebind.attacker.example:8765"})
    assert r.status_code == 421 and "passwd" not in r.text
    for host in ("localhost:8765", "127.0.0.1", "[::1]:8765"):
        assert client.get("/health", headers={"Host": host}).status_code == 200, host


def test_a_cross_site_form_changes_nothing(client, family) -> None:
    ix, root = family
    before = _faces(ix)
    token = csrf_of(client.get("/review").text)
    for origin in (
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Referer": f"{EVIL}/page.html"},
        {"Origin": "http://127.0.0.1:9999"},
    ):  # fmt: skip  (another port is another site)
        r = client.post("/review/remove", data={**_pair(root), "csrf": token}, headers=origin, follow_redirects=False)
        assert r.status_code == 403, (origin, r.status_code, r.text)
        r = client.post("/review/restore", data={"csrf": token}, headers=origin, follow_redirects=False)
        assert r.status_code == 403
    # a form without this server's token (a page elsewhere cannot read it), even with no Origin at all
    r = client.post("/review/remove", data=_pair(root), follow_redirects=False)
    assert r.status_code == 400 and "did not come from this server's page" in r.text
    # the token, but a pair the duplicate finder does not hold
    bogus = {"keep": "/nothing", "drop": _pair(root)["drop"], "csrf": token}
    r = client.post("/review/remove", data=bogus, headers={"Origin": LOCAL_URL}, follow_redirects=False)
    assert r.status_code == 400 and "not among the copies found" in r.text
    assert _faces(ix) == before and not (ix / "removed.parquet").exists()
    # the page itself still works: same origin, its token, a found pair
    r = client.post("/review/remove", data={**_pair(root), "csrf": token}, headers={"Origin": LOCAL_URL},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and "removed%201%20photo" in r.headers["location"]
    assert _faces(ix) == before - 1
    r = client.post("/review/restore", data={"csrf": token}, headers={"Referer": f"{LOCAL_URL}/review"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and _faces(ix) == before


def test_the_json_api_takes_json_only(client) -> None:
    """A cross-site page can send text/plain without asking; the API does not read it."""
    body = '{"paths": ["/etc/passwd"]}'
    r = client.post("/query", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "passwd" not in r.text
    r = client.post("/query", data={"paths": "/etc/passwd"}, files={"photo": ("x.jpg", b"\xff\xd8", "image/jpeg")})
    assert r.status_code == 400 and "JSON body" in r.json()["error"]


def test_bodies_are_bounded_before_they_are_read(client) -> None:
    from lookalike.serve.guard import MAX_JSON

    big = b'{"paths": ["' + b"a" * (MAX_JSON + 10) + b'"]}'
    r = client.post("/query", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: the limit is found while the body streams
        for _ in range(40):
            yield b" " * 65536

    r = client.post("/query", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    many = {f"photo{i}": (f"{i}.jpg", b"x", "image/jpeg") for i in range(5)}
    r = client.post("/query", files=many)
    assert r.status_code == 400, r.text  # more files than a request takes
    assert client.get("/health").status_code == 200


def test_uploads_only_server_changes_nothing_and_shows_no_folders(family) -> None:
    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app

    ix, root = family
    app = create_app({"family": ix}, allow_paths=False)
    with TestClient(app, base_url=LOCAL_URL, client=("192.0.2.7", 50000)) as c:
        review = c.get("/review").text
        assert str(root) not in review and "/review/remove" not in review  # no folders, nothing to press
        token = csrf_of(c.get("/").text)
        r = c.post("/review/remove", data={**_pair(root), "csrf": token}, follow_redirects=False)
        assert r.status_code == 400 and "changes nothing" in r.text
        face = c.get("/faces/0").json()
        assert "/" not in face["path"] and face["path"].endswith(".jpg")
        with open(root / "Tony_Blair" / "Tony_Blair_0001.jpg", "rb") as fh:
            answer = c.post("/query", files={"photo": ("me.jpg", fh, "image/jpeg")}).json()[0]
        assert all("/" not in m["path"] for m in answer["results"]), answer
    assert not (ix / "removed.parquet").exists()


def test_a_large_upload_decodes_off_the_event_loop(family, tmp_path) -> None:
    """While a 49 MP photo decodes, the server still answers /health (before the upload's answer comes)."""
    from PIL import Image

    from lookalike.eval.server import start_server

    proc, url = start_server(family[0], tmp_path / "state")
    try:
        buf = io.BytesIO()
        Image.linear_gradient("L").resize((7000, 7000)).convert("RGB").save(buf, format="PNG", compress_level=1)
        done: dict = {}

        def upload() -> None:
            r = requests.post(f"{url}/query", files={"photo": ("big.png", buf.getvalue(), "image/png")}, timeout=300)
            done["upload"] = (time.monotonic(), r.status_code)

        t = threading.Thread(target=upload)
        t.start()
        time.sleep(0.3)  # the upload is sent and decoding
        health = requests.get(f"{url}/health", timeout=60)
        done["health"] = time.monotonic()
        t.join(timeout=300)
        assert health.status_code == 200
        assert done["upload"][1] in (200, 422), done  # a gradient has no face: 422
        assert done["health"] < done["upload"][0], "health waited for the upload to decode"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_huge_upload_is_refused_without_holding_it(family, tmp_path) -> None:
    """300 MB streamed to a real server: refused at the limit, the server's peak memory grows by < 100 MB."""
    from lookalike.eval.server import start_server

    proc, url = start_server(family[0], tmp_path / "state")
    try:

        def peak() -> int:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:"))) * 1024

        before = peak()

        def body():
            head = b'--b\r\nContent-Disposition: form-data; name="photo"; filename="x.jpg"\r\n\r\n'
            yield head
            for _ in range(300 * 16):
                yield b"\0" * 65536

        try:
            r = requests.post(f"{url}/query", data=body(), timeout=120,
                              headers={"Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip
            assert r.status_code == 413, r.status_code
        except requests.ConnectionError:
            pass  # the server closed the connection while the body was still coming: refused all the same
        grown = peak() - before
        assert grown < 100 * 2**20, f"peak RSS grew by {grown / 2**20:.0f} MB"
        assert requests.get(f"{url}/health", timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_serve_refuses_other_hosts(family, tmp_path) -> None:
    """The CLI's server (not only the app object) has the front door."""
    from lookalike.eval.server import start_server

    proc, url = start_server(family[0], tmp_path / "state")
    try:
        port = url.rsplit(":", 1)[1]
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: rebind.example"]
        out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/people"], capture_output=True, text=True, timeout=30)
        assert out.stdout == "421"
        ok = requests.get(f"{url}/health", timeout=30)
        assert ok.status_code == 200 and ok.json()["pid"] == proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_upload_is_known_as_the_photo_it_is(client, family) -> None:
    """An upload of an indexed photo leaves that photo out of its answer, as a query by its path does; two uploads
    to verify are named by their file names."""
    root = family[1]
    indexed = root / "Tony_Blair" / "Tony_Blair_0001.jpg"
    answer = client.post("/query", files={"photo": ("mine.jpg", indexed.read_bytes(), "image/jpeg")}).json()[0]
    assert answer["query"] == "mine.jpg"
    assert str(indexed) not in [m["path"] for m in answer["results"]], answer["results"][:2]
    assert answer["results"][0]["identity"] == "Tony_Blair" and answer["results"][0]["score"] < 0.9999
    other = root / "Tony_Blair" / "Tony_Blair_0003.jpg"
    files = {"a": ("first.jpg", indexed.read_bytes(), "image/jpeg"), "b": ("../../second.jpg", other.read_bytes(),
                                                                             "image/jpeg")}  # fmt: skip
    verdict = client.post("/verify", files=files).json()
    assert (verdict["a"], verdict["b"]) == ("first.jpg", "second.jpg"), verdict


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"k": -1}, "k must be"), ({"k": 1e9}, "k must be"), ({"k": True}, "k must be"), ({"k": 2.5}, "k must be"),
        ({"fmr": 0.5}, "fmr must be"), ({"fmr": "nan"}, "fmr must be"), ({"fmr": -1}, "fmr must be"),
        ({"mode": "everyone"}, "mode must be"), ({"face": -2}, "face must be"),
    ],
)  # fmt: skip
def test_the_api_checks_what_it_is_asked(client, family, body: dict, said: str) -> None:
    photo = str(family[1] / "Tony_Blair" / "Tony_Blair_0001.jpg")
    r = client.post("/query", json={"paths": [photo], **body})
    assert r.status_code == 400 and r.json()["error"].startswith(said), r.text


def test_the_api_refuses_a_string_of_paths_and_a_nan_threshold(client, family) -> None:
    photo = str(family[1] / "Tony_Blair" / "Tony_Blair_0001.jpg")
    r = client.post("/query", json={"paths": photo})  # once per character before
    assert r.status_code == 400 and "list of photo paths" in r.json()["error"]
    r = client.post("/verify", json={"a": photo, "b": photo, "threshold": "nan"})
    assert r.status_code == 400 and "threshold must be a cosine" in r.json()["error"]
    r = client.post("/ask", data={"k": "100000", "csrf": csrf_of(client.get("/").text)})
    assert r.status_code == 400 and "k must be" in r.text


def test_review_removes_a_copy_whose_name_holds_a_newline(tmp_path, sface, detector) -> None:
    """A browser sends a form value's newline as CR LF; Review's form carries paths as JSON, which has none."""
    import html
    import re

    from starlette.testclient import TestClient

    from lookalike.serve.app import create_app

    ix, _ = index_with_copy(
        tmp_path, sface, detector, {"Tony_Blair": 2}, ("Tony_Blair_0001.jpg", "Tony_Blair_0001\ncopy.jpg")
    )
    with TestClient(create_app({"ix": ix}), base_url=LOCAL_URL) as c:
        page = c.get("/review").text
        form = re.search(r'action="/review/remove">(.*?)</form>', page, re.S).group(1)
        fields = {k: html.unescape(v) for k, v in re.findall(r"name=\"(\w+)\" value='([^']*)'", form)}
        sent = {k: v.replace("\n", "\r\n") for k, v in fields.items()}  # as a browser normalises form values
        sent["csrf"] = csrf_of(page)
        r = c.post("/review/remove", data=sent, headers={"Origin": LOCAL_URL}, follow_redirects=False)
        assert r.status_code == 303 and "removed%201%20photo" in r.headers["location"], r.text


def test_half_sent_requests_are_closed_and_whole_ones_answered(family, tmp_path) -> None:
    """300 connections that never finish their request head are closed after the head deadline; the server
    answers others meanwhile, and a kept-alive connection that finishes its heads in time is not cut."""
    import socket

    from lookalike.eval.server import start_server
    from lookalike.serve.protocol import HEAD_TIMEOUT

    proc, url = start_server(family[0], tmp_path / "state")
    port = int(url.rsplit(":", 1)[1])
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        assert requests.get(f"{url}/health", timeout=30).status_code == 200
        with requests.Session() as keep:  # heads that come in time, one after another on one connection
            for _ in range(3):
                assert keep.get(f"{url}/health", timeout=30).status_code == 200
                time.sleep(1)
        time.sleep(HEAD_TIMEOUT + 2)
        import select

        readable, _, _ = select.select(socks, [], [], 5)  # a closed connection reads as end of file at once
        closed = 0
        for s in readable:
            try:
                closed += s.recv(1) == b""
            except ConnectionResetError:
                closed += 1
        assert closed == len(socks), f"{len(socks) - closed} half-sent connections still open"
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_a_face_moved_on_the_page_and_refused_from_elsewhere(client, family) -> None:
    """The person page's Move form: refused from another origin and without the token, done from the page."""
    import re

    from lookalike.index import people_edits

    ix = family[0]
    try:
        page = client.get("/people/Colin_Powell").text
        vid = re.search(r'action="/faces/(\d+)/move"', page).group(1)
        data = {"to": "Someone Else", "csrf": csrf_of(page)}
        r = client.post(f"/faces/{vid}/move", data=data, headers={"Origin": EVIL}, follow_redirects=False)
        assert r.status_code == 403
        r = client.post(f"/faces/{vid}/move", data={"to": "Someone Else"}, follow_redirects=False)
        assert r.status_code == 400 and not (ix / people_edits.EDITS).exists()
        r = client.post(f"/faces/{vid}/move", data=data, headers={"Origin": LOCAL_URL}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/people/Someone%20Else")
        shown = [n for n in people_edits.people_view(ix)[1] if n is not None]
        assert shown.count("Someone Else") == 1 and shown.count("Colin_Powell") == 1
    finally:
        (ix / people_edits.EDITS).unlink(missing_ok=True)


def test_an_edit_that_cannot_be_written_is_one_line(client, family, monkeypatch) -> None:
    import errno

    from lookalike.index import people_edits

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(people_edits, "atomic_write_text", full)
    page = client.get("/people/Colin_Powell").text
    r = client.post("/people/Colin_Powell/rename", data={"to": "X", "csrf": csrf_of(page)},
                    headers={"Origin": LOCAL_URL}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 400 and r.text.startswith("lookalike: error: the server could not write: No space")
    assert not (family[0] / people_edits.EDITS).exists()
