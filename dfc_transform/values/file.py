"""``File(...)``: a returned value with options of its own, and arguments for its writer.

A ``FileOutput`` sets the options of every file it serves; a callback that wants other ones
for one value wraps it: ``return File(buf, filename="report.pdf", download=True)``. The
options are checked here, when the ``File`` is made, so that a wrong one fails in the
callback's own line; the value is sorted later, with the others (see :mod:`.sources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Unpack

from ..exc import UnsupportedValueError
from ..options import FileOptions, OptionArgs, options_from

__all__ = ["File", "WithWriter"]


@dataclass(frozen=True, init=False)
class File:
    """A returned value with options for this value only.

    ``return File(buf, filename="report.pdf", download=True)``

    ``writer`` holds keyword arguments for the writer of a converted value (not a
    serving option): ``File(df, filename="x.xlsx", writer={"index": False,
    "sheet_name": "Data"})`` calls ``df.to_excel(sink, index=False, sheet_name="Data")``.
    """

    #: The value; with ``writer`` options, the value bound to them (a :class:`WithWriter`),
    #: so that they travel with it to the converter.
    data: Any
    options: FileOptions
    #: Keyword arguments for the converter's writer (``to_csv``, ``savefig``, ``save``...).
    writer: Mapping[str, Any] | None

    def __init__(
        self, data: Any, *, writer: Mapping[str, Any] | None = None, **options: Unpack[OptionArgs]
    ) -> None:
        if isinstance(data, File):
            raise UnsupportedValueError("File(...) cannot wrap another File(...)")
        if writer is not None and not (
            isinstance(writer, Mapping) and all(isinstance(k, str) for k in writer)
        ):
            raise UnsupportedValueError(
                f"File(writer=...) takes a dict of keyword arguments for the writer, got {writer!r}"
            )
        writer = dict(writer) if writer else None
        object.__setattr__(self, "data", WithWriter(data, writer) if writer else data)
        object.__setattr__(self, "options", options_from(dict(options), "File(...)"))
        object.__setattr__(self, "writer", writer)


@dataclass(frozen=True)
class WithWriter:
    """A value with the keyword arguments its converter's writer is to get."""

    value: Any
    writer: Mapping[str, Any]
