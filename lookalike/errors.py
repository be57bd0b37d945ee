"""Errors a user can act on: each carries a one-line message the CLI prints as is."""

from __future__ import annotations


class LookalikeError(Exception):
    """A failure with a clear one-line message for the user (the CLI exits non-zero with it)."""


class WeightsMissingError(LookalikeError):
    """A head's weights file is not in the weights directory."""


class WeightsMismatchError(LookalikeError):
    """A weights file exists but its sha256 is not the one the head expects."""


class HeadMismatchError(LookalikeError):
    """An index was built by one head and is being used with another."""


class IndexNotFoundError(LookalikeError):
    """No index at the name or path the user gave."""


class IndexCorruptError(LookalikeError):
    """An index folder is damaged (lost manifest, truncated or missing data file); `lookalike repair` fixes it."""


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message` of an unexpected exception, for a one-line error."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
