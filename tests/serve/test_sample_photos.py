"""The web app on the package-shipped sample photos (no data folder): an uploaded photo is answered with its
person first, and another site can neither read nor change anything."""

from __future__ import annotations

from starlette.testclient import TestClient

from lookalike.serve.app import create_app
from tests.conftest import LOCAL_URL, csrf_of


def test_an_uploaded_sample_is_answered_and_other_sites_are_refused(sample_index):
    ix, root = sample_index
    photo = (root / "Grace_Hopper" / "1.jpg").read_bytes()
    with TestClient(create_app({"samples": ix}), base_url=LOCAL_URL) as client:
        answer = client.post("/query", files={"photo": ("hopper.jpg", photo, "image/jpeg")}).json()[0]
        assert answer["query"] == "hopper.jpg" and answer["results"][0]["identity"] == "Grace_Hopper"
        token = csrf_of(client.get("/").text)
        page = client.post("/ask", data={"csrf": token, "k": "3"}, files={"photo": ("h.jpg", photo, "image/jpeg")})
        assert page.status_code == 200 and "Grace_Hopper" in page.text
        evil = client.post("/ask", data={"csrf": token}, files={"photo": ("h.jpg", photo, "image/jpeg")},
                           headers={"Origin": "http://evil.example"})  # fmt: skip
        assert evil.status_code == 403
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 421
