"""lookalike: a face look-alike engine. Index a photo dump, then ask who looks like whom.

    import lookalike
    ix = lookalike.build_index("~/Pictures", name="photos")  # find, align and embed every face
    answer = ix.query("me.jpg", k=10)                        # who looks like this?
    for m in answer.results:
        print(m.rank, m.score, m.identity, m.path)
    lookalike.open_index("photos").verify("a.jpg", "b.jpg")  # the same person?

(`build_index`, not `index`: `lookalike.index` is the package that stores indexes.) The names below load on
first use (`lookalike.api`), so `import lookalike` and the CLI's start stay light: no torch, no model, until a
function needs one. Importing the package first turns off the dependencies' telemetry
(`lookalike.privacy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lookalike import privacy

privacy.apply()

__version__ = "0.2.0"

#: The public API: each name lives in `lookalike.api`.
__all__ = ["Index", "LookalikeError", "__version__", "build_index", "hybrid", "indexes", "open_index"]

if TYPE_CHECKING:
    from lookalike.api import Index, build_index, hybrid, indexes, open_index
    from lookalike.errors import LookalikeError


def __getattr__(name: str) -> Any:
    if name == "LookalikeError":
        from lookalike.errors import LookalikeError

        return LookalikeError
    if name in ("Index", "build_index", "hybrid", "indexes", "open_index"):
        from lookalike import api

        return getattr(api, name)
    raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
