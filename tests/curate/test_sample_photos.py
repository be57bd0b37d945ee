"""The curate room on the package-shipped sample photos (no data folder): an exact copy and an edited one are found
as such, and the people are grouped as the folders say."""

from __future__ import annotations

from lookalike.curate.cluster import cluster_index
from lookalike.curate.dedup import COPY, EXACT, find_duplicates


def test_an_exact_copy_among_the_samples_is_found(sample_index):
    ix, root = sample_index
    dups = find_duplicates(ix)
    pair = (str(root / "Eileen_Collins" / "0 copy.jpg"), str(root / "Eileen_Collins" / "0.jpg"))
    assert tuple(sorted(pair)) in {tuple(sorted((p.a, p.b))) for p in dups.of(EXACT)}
    group = next(g for g in dups.groups if g.keep == pair[1])  # the older file is kept
    kinds = dict(group.copies)
    assert kinds[pair[0]] == EXACT
    assert kinds[str(root / "Eileen_Collins" / "2.jpg")] == COPY  # the brighter, rotated variant: the photo edited


def test_the_samples_cluster_into_their_three_people(sample_index, tmp_path):
    import shutil

    ix = tmp_path / "ix"
    shutil.copytree(sample_index[0], ix)  # cluster writes people.parquet into the index
    summary = cluster_index(ix, use_labels=False)
    from lookalike.index.people import read_people

    people = read_people(ix).to_pylist()
    groups: dict[str, set[str]] = {}
    for row in people:
        groups.setdefault(row["person"], set()).add(row["face_id"].rsplit("/", 2)[1])  # face id: path#n
    assert sorted(map(sorted, groups.values())) == [["Cameraman"], ["Eileen_Collins"], ["Grace_Hopper"]], summary
