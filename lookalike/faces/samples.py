"""Real photos the installed packages ship: scikit-image's astronaut (Eileen Collins) and cameraman, matplotlib's
Grace Hopper, and scikit-image's coffee (no face). `lookalike sample-photos` copies them out; the tests of every
room run on them, so a checkout without a data folder still has faces to look at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    name: str  # the folder `sample-photos` writes it to
    person: str | None  # who is in it (None: no face)
    package: str
    path: str  # inside the package


SAMPLES = (
    Sample("astronaut", "Eileen_Collins", "skimage", "data/astronaut.png"),
    Sample("cameraman", "Cameraman", "skimage", "data/camera.png"),
    Sample("grace_hopper", "Grace_Hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    Sample("coffee", None, "skimage", "data/coffee.png"),  # no face: shows up in rejects
)


def sample_file(sample: Sample) -> Path | None:
    """Where the installed package keeps the sample's file, or None when the package is not installed."""
    from lookalike.weights import package_file

    return package_file(sample.package, sample.path)
