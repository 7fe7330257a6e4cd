"""What a callback may return: sorting values into buffer, stream or path.

Like werkzeug's ``send_file``, every value is sorted once, at the top, into one
of three shapes; the store then has one straight flow for each.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Unpack

from .exc import MissingPathError, UnsupportedValueError
from .options import FileOptions, OptionArgs, options_from

__all__ = ["ACCEPTED", "File", "FileOptions", "Source", "to_source"]

ACCEPTED = (
    "bytes, bytearray, memoryview, io.BytesIO, io.StringIO, a binary file object, "
    "a str or os.PathLike path to an existing file, File(...), None or dash.no_update"
)


@dataclass(frozen=True, init=False)
class File:
    """A returned value with options for this value only.

    ``return File(buf, filename="report.pdf", download=True)``
    """

    data: Any
    options: FileOptions

    def __init__(self, data: Any, **options: Unpack[OptionArgs]) -> None:
        if isinstance(data, File):
            raise UnsupportedValueError("File(...) cannot wrap another File(...)")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "options", options_from(dict(options), "File(...)"))


@dataclass(frozen=True)
class Source:
    """A value sorted into one of three shapes.

    ``buffer``: bytes in memory; ``stream``: read from its position to EOF;
    ``path``: a regular file on this host.
    """

    kind: Literal["buffer", "stream", "path"]
    buffer: memoryview | None = None
    stream: Any = None
    path: Path | None = None
    #: Name taken from a path or an open file's ``name``.
    name_hint: str | None = None
    #: ``utf-8`` for text that we encoded.
    charset: str | None = None

    def chunks(self, size: int) -> Iterator[bytes | memoryview]:
        """Yield the content in pieces of exactly ``size`` bytes (the last may be shorter)."""
        if self.buffer is not None:
            for start in range(0, len(self.buffer), size):
                yield self.buffer[start : start + size]
            return
        if self.path is not None:
            with open(self.path, "rb") as f:
                yield from _read_exact(f.read, size)
            return
        read = self.stream.read
        if isinstance(self.stream, io.TextIOBase):
            # Text streams hand out characters; encode them as they come.
            yield from _read_exact(lambda n: read(n).encode("utf-8"), size)
        else:
            yield from _read_exact(read, size)

    def release(self) -> None:
        """Let go of the value once it is stored: a borrowed buffer is released (a BytesIO
        cannot grow while it is lent), a file object is closed (its content is in the store)."""
        if self.buffer is not None:
            self.buffer.release()
        if self.stream is not None:
            close = getattr(self.stream, "close", None)
            if callable(close):
                close()


def _read_exact(read: Any, size: int) -> Iterator[bytes]:
    """Regroup the reads of a stream into pieces of exactly ``size`` bytes."""
    pending = bytearray()
    while True:
        data = read(size - len(pending) if pending else size)
        if not data:
            break
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UnsupportedValueError(
                f"the file object's read() returned {type(data).__name__}, not bytes; "
                "open files in binary mode ('rb') or return io.StringIO(text)"
            )
        if not pending and len(data) == size:
            yield bytes(data)
            continue
        pending += data
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def to_source(value: Any, *, where: str = "") -> Source:
    """Sort ``value`` into a :class:`Source`, or raise a precise error.

    ``where`` names the callback and output for the error message.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Source("buffer", buffer=memoryview(value).cast("B"))
    if isinstance(value, io.BytesIO):
        # The whole buffer whatever the position: savefig leaves it at the end.
        return Source("buffer", buffer=value.getbuffer())
    if isinstance(value, io.StringIO):
        return Source("buffer", buffer=memoryview(value.getvalue().encode("utf-8")), charset="utf-8")
    if isinstance(value, (str, os.PathLike)):
        return _path_source(value, where)
    if callable(getattr(value, "read", None)):
        name = getattr(value, "name", None)
        hint = os.path.basename(name) if isinstance(name, str) and name else None
        charset = "utf-8" if isinstance(value, io.TextIOBase) else None
        return Source("stream", stream=value, name_hint=hint, charset=charset)
    raise UnsupportedValueError(
        f"cannot serve a value of type {type(value).__module__}.{type(value).__qualname__} "
        f"({_short_repr(value)}); accepted: {ACCEPTED}",
        where=where,
    )


def _path_source(value: str | os.PathLike[str], where: str) -> Source:
    raw = os.fspath(value)
    if isinstance(raw, bytes):
        raw = os.fsdecode(raw)
    if "\x00" in raw:
        raise MissingPathError(f"path {raw!r} contains a NUL byte", where=where)
    path = Path(raw)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        hint = (
            "; a str is read as a path on the server: to serve text, return io.StringIO(text)"
            if isinstance(value, str)
            else ""
        )
        raise MissingPathError(f"path {raw!r} {what}{hint}", where=where)
    return Source("path", path=path.resolve(), name_hint=path.name)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
