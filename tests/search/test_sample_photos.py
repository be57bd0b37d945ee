"""The search room on the package-shipped sample photos (no data folder): each photo's own person is first, in
faces and in identities mode, and a photo without a usable face is one line that names it."""

from __future__ import annotations

from pathlib import Path

from lookalike.search.query import Searcher


def test_each_sample_photo_finds_its_own_person_first(sample_index):
    ix, root = sample_index
    searcher = Searcher(ix)
    photos = sorted(p for p in root.glob("*/*.jpg") if p.parent.name != "notes")
    for answer in searcher.query_photos([str(p) for p in photos], k=3):
        person = Path(answer.query).parent.name
        assert answer.error is None and answer.results[0].identity == person, answer.query
        assert str(answer.query) not in [m.path for m in answer.results]  # the photo itself is left out
    # identities mode answers "who else": the query photo's own person (known by its bytes) is left out
    (who,) = searcher.query_photos([str(root / "Cameraman" / "1.jpg")], k=3, mode="identities")
    assert sorted(m.identity for m in who.results) == ["Eileen_Collins", "Grace_Hopper"]


def test_a_photo_without_its_face_is_one_line(sample_index):
    ix, root = sample_index
    searcher = Searcher(ix)
    coffee, hopper = searcher.query_photos([str(root / "notes" / "coffee.jpg"), str(root / "Grace_Hopper" / "0.jpg")],
                                           face=3)  # fmt: skip
    assert coffee.error == f"no face found in {root / 'notes' / 'coffee.jpg'}"
    assert hopper.error.startswith("--face 3: ") and "has 1 face(s), numbered 0..0" in hopper.error
