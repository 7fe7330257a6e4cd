"""What a callback may return: sorting values into buffer, stream, path or writer.

Like werkzeug's ``send_file``, every value is sorted once, at the top, into one
of four shapes; the store then has one straight flow for each. A value that is not
yet a file (a figure, an image, a data frame) goes through its converter first
(see :mod:`dfc_transform.values.converters`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..exc import FileServeError, MissingPathError, UnsupportedValueError
from ..options import FileOptions
from .bundles import is_bundle, zip_bundle
from .converters import Converter, Written, choose_format, find_converter, type_name
from .file import File, WithWriter
from .generated import IteratorReader, is_async_iterator, is_iterator

__all__ = ["ACCEPTED", "Source", "to_source"]

ACCEPTED = (
    "bytes, bytearray, memoryview, io.BytesIO, io.StringIO, a binary file object, "
    "a str or os.PathLike path to an existing file, a matplotlib or plotly Figure, a PIL Image, "
    "a pandas DataFrame or Series, a polars DataFrame, a numpy ndarray, a value of a type given "
    "to register_converter(), a generator or iterator of bytes (async too), a dict of any of these "
    "named as a zip (File({'a.csv': df}, filename='all.zip')), File(...), None or dash.no_update"
)

# A converter's result that needs converting again: allowed a few times (a polars frame
# handed on as pandas), not forever.
_MAX_CONVERSIONS = 4


@dataclass(frozen=True)
class Source:
    """A value sorted into one of four shapes.

    ``buffer``: bytes in memory; ``stream``: read from its position to EOF;
    ``path``: a regular file on this host; ``writer``: a converter's
    :class:`~dfc_transform.converters.Written` as ``stream``, read as its writer writes.
    """

    kind: Literal["buffer", "stream", "path", "writer"]
    buffer: memoryview | None = None
    stream: Any = None
    path: Path | None = None
    #: Name taken from a path or an open file's ``name``.
    name_hint: str | None = None
    #: ``utf-8`` for text that we encoded.
    charset: str | None = None
    #: How the converter that made it asks for it to be sandboxed, when the options do not say.
    sandbox: str | None = None
    #: Made while it is read (a generator): the store may serve it while it is being made
    #: (see :mod:`.generated`).
    generated: bool = False

    def chunks(self, size: int) -> Generator[bytes | memoryview, None, None]:
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

    def take(self, limit: int) -> tuple[bytes | None, Source]:
        """The whole content if it is at most ``limit`` bytes (else ``None``), and the source to
        store otherwise: the same content, what was read to find out put back in front."""
        if self.buffer is not None:
            return (bytes(self.buffer) if len(self.buffer) <= limit else None), self
        if self.path is not None:
            if self.path.stat().st_size > limit:
                return None, self
            content = self.path.read_bytes()
            return (content if len(content) <= limit else None), self
        pieces = self.chunks(limit + 1)
        head = bytes(next(pieces, b""))
        if len(head) <= limit:
            pieces.close()
            return head, self
        return None, replace(self, kind="stream", stream=_Resumed(head, pieces, self))

    def release(self) -> None:
        """Let go of the value once it is stored: a borrowed buffer is released (a BytesIO
        cannot grow while it is lent), a file object is closed (its content is in the store)."""
        if self.buffer is not None:
            self.buffer.release()
        if self.stream is not None:
            close = getattr(self.stream, "close", None)
            if callable(close):
                close()


class _Resumed:
    """A stream's content after ``head`` was read from it: ``head``, then the rest."""

    def __init__(self, head: bytes, rest: Iterator[bytes | memoryview], source: Source) -> None:
        self._pending = head
        self._rest = rest
        self._source = source

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            piece = next(self._rest, None)
            if piece is None:
                return b""
            self._pending = bytes(piece)
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        close = getattr(self._rest, "close", None)
        if callable(close):
            close()
        self._source.release()


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


def to_source(
    value: Any, *, where: str = "", filename: str | None = None, mime_type: str | None = None
) -> Source:
    """Sort ``value`` into a :class:`Source`, or raise a precise error.

    ``filename`` and ``mime_type`` are the file's options: they choose the format a
    converted value is written in. ``where`` names the callback and output for the
    error message.
    """
    return _sort(value, where, filename, mime_type, 0)


def _sort(value: Any, where: str, filename: str | None, mime_type: str | None, depth: int) -> Source:
    if isinstance(value, WithWriter):
        converter = find_converter(value.value)
        if converter is None:
            raise UnsupportedValueError(
                f"writer options ({', '.join(sorted(value.writer))}) are for values that a converter "
                f"writes (a figure, an image, a data frame), not for a {type_name(value.value)}; "
                "drop writer=...",
                where=where,
            )
        return _converted(value.value, converter, value.writer, where, filename, mime_type, depth)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Source("buffer", buffer=memoryview(value).cast("B"))
    if isinstance(value, io.BytesIO):
        # The whole buffer whatever the position: savefig leaves it at the end.
        return Source("buffer", buffer=value.getbuffer())
    if isinstance(value, io.StringIO):
        return Source("buffer", buffer=memoryview(value.getvalue().encode("utf-8")), charset="utf-8")
    if isinstance(value, (str, os.PathLike)):
        return _path_source(value, where)
    converter = find_converter(value)
    if converter is not None:
        return _converted(value, converter, {}, where, filename, mime_type, depth)
    if callable(getattr(value, "read", None)):
        name = getattr(value, "name", None)
        hint = os.path.basename(name) if isinstance(name, str) and name else None
        charset = "utf-8" if isinstance(value, io.TextIOBase) else None
        return Source("stream", stream=value, name_hint=hint, charset=charset)
    if is_bundle(value, filename, mime_type):

        def member(item: Any, filename: str) -> Source:
            return _sort(item, where, filename, None, depth + 1)

        # Written as it is read: served while it is made, as a generator is (see .generated).
        return Source(
            "writer", stream=zip_bundle(value, member, where), name_hint="bundle.zip", generated=True
        )
    if is_iterator(value) or is_async_iterator(value):
        what = f"the {type_name(value)} returned"
        return Source("stream", stream=IteratorReader(value, what), generated=True)
    hint = ""
    if isinstance(value, dict) and "data" in value:
        hint = "; a dict is not taken for a plotly figure: return plotly.graph_objects.Figure(value)"
    elif isinstance(value, Mapping):
        hint = (
            "; to bundle several files, name the output or the File as a zip: File({...}, filename='all.zip')"
        )
    raise UnsupportedValueError(
        f"cannot serve a value of type {type_name(value)} ({_short_repr(value)}); accepted: {ACCEPTED}{hint}",
        where=where,
    )


def _converted(
    value: Any,
    converter: Converter,
    writer: Mapping[str, Any],
    where: str,
    filename: str | None,
    mime_type: str | None,
    depth: int,
) -> Source:
    """The source of what ``converter`` makes of ``value`` in the format the options ask for."""
    fmt = choose_format(filename, mime_type)
    try:
        result = converter(value, fmt)
    except FileServeError:
        raise
    except Exception as err:
        raise FileServeError(
            f"the converter of {type_name(value)} ({_name_of(converter)}) failed for format "
            f"{fmt!r}: {type(err).__name__}: {err}"
        ) from err
    if isinstance(result, Written):
        result.configure(writer)
        return Source(
            "writer", stream=result, name_hint=result.name, charset=result.charset, sandbox=result.sandbox
        )
    if writer:
        raise UnsupportedValueError(
            f"writer options ({', '.join(sorted(writer))}) were given, but the converter of "
            f"{type_name(value)} returned a {type_name(result)}, which no writer of ours writes: "
            "only the built-in converters take writer options",
            where=where,
        )
    name_hint = None
    if isinstance(result, File):
        # Its name may say the format (figure.svg); its serving options are the callback's to set.
        if replace(result.options, filename=None) != FileOptions():
            raise UnsupportedValueError(
                f"the converter of {type_name(value)} returned a File(...) with serving options; a "
                "converter may only name the file: set the other options on the File the callback returns",
                where=where,
            )
        name_hint, result = result.options.filename, result.data
    if depth >= _MAX_CONVERSIONS or type(result) is type(value) or result is None:
        raise UnsupportedValueError(
            f"the converter of {type_name(value)} ({_name_of(converter)}) returned "
            f"{_short_repr(result)}: it must return something a FileOutput takes ({ACCEPTED})",
            where=where,
        )
    source = _sort(result, where, filename, mime_type, depth + 1)
    return replace(source, name_hint=name_hint) if name_hint else source


def _name_of(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


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
