"""One way to register things chosen by name (heads, detectors), as timm's `register_model` / `list_models`:
a `Registry` maps names to specs (declarations that say what a thing can do and how to build it), lists the names
for click choices and error messages, and keeps old names as deprecated aliases."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from lookalike.errors import LookalikeError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Specs by name. `registry[name]` takes registered names only; `lookup(name)` also takes an alias (with a
    DeprecationWarning) and says in one line which names are known when it finds none."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, spec: T, aliases: Iterable[str] = ()) -> T:
        """Add `spec` as `name` (unique); `aliases`: names earlier versions used for it."""
        if name in self._specs or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._specs[name] = spec
        for old in aliases:
            self._aliases[old] = name
        return spec

    def canonical(self, name: str) -> str | None:
        """The registered name `name` stands for (itself, or what its alias became), or None."""
        if name in self._specs:
            return name
        new = self._aliases.get(name)
        if new is not None:
            warnings.warn(f"{self.kind} name {name!r} is deprecated: use {new!r}", DeprecationWarning, stacklevel=3)
        return new

    def lookup(self, name: str, known: Iterable[str] | None = None) -> T:
        """The spec of `name` or of its alias; a one-line error naming the known ones otherwise."""
        found = self.canonical(name)
        if found is None:
            names = ", ".join(known if known is not None else self.names())
            raise LookalikeError(f"unknown {self.kind} {name!r}; known: {names}")
        return self._specs[found]

    def names(self) -> list[str]:
        """Registered names in registration order (for click choices and listings)."""
        return list(self._specs)

    def __getitem__(self, name: str) -> T:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
