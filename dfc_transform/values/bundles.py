"""Zip bundles: several outputs in one file.

``File({"data.csv": df, "plot.png": fig}, filename="report.zip")``.

Every member is converted as it would be alone, by its name's extension (a data frame named
``data.csv`` is written as CSV), and written into one zip that is streamed into the store as it
is made: never whole in memory, whatever its size (zip64 where a member or the archive may pass
4 GiB; data descriptors, since the stream cannot seek back). Text-like members are deflated (at
the fastest level); everything else (pictures, media, archives, unknown binary data, most often
compressed already) is stored as it is.

Member names are checked as file names are, per path segment (``tables/data.csv`` is fine):
``..``, absolute paths, backslashes, NUL and control characters are refused, naming the member,
so that no archive of ours extracts outside its folder.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from typing import IO, Any

from ..exc import FileServeError, UnsupportedValueError
from ..naming import check_filename, mime_type_for, safe_filename
from .converters import Written

__all__ = ["ZIP_TYPES", "is_bundle", "zip_bundle"]

#: Names and types that ask for a zip.
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})
#: Types worth deflating; the rest (PNG, JPEG, MP4, xlsx, parquet...) is compressed already.
_DEFLATE_PREFIXES = ("text/", "application/json", "application/xml", "image/svg")
#: The fastest deflate: the zip is made while it downloads, and text shrinks most at any level.
_LEVEL = 1
_PIECE = 1024 * 1024
#: A zip without zip64 holds members and an archive of less than 4 GiB.
_ZIP32_LIMIT = 0xFFFFFFFF


def is_bundle(value: Any, filename: str | None, mime_type: str | None) -> bool:
    """Whether ``value`` is a mapping of member names to values, asked for as a zip."""
    if not isinstance(value, Mapping) or not value:
        return False
    wants_zip = (filename or "").lower().endswith(".zip") or (mime_type or "").split(";")[0] in ZIP_TYPES
    return wants_zip


def zip_bundle(members: Mapping[Any, Any], to_source: Callable[..., Any], where: str) -> Written:
    """A zip of ``members`` (name -> value), written as it is read.

    ``to_source(value, filename=name)`` sorts each member as the store would alone. Members
    that must be made in the caller's thread (a matplotlib figure) are made now, into a spool.
    """
    names = [_member_name(name, where) for name in members]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UnsupportedValueError(
            f"the zip names {', '.join(map(repr, twice))} more than once", where=where
        )
    sources = []
    for name, value in zip(names, members.values(), strict=True):
        try:
            source = to_source(value, filename=name.rsplit("/", 1)[-1])
        except FileServeError as err:
            raise _about(err, name) from err.__cause__
        stream = source.stream
        if isinstance(stream, Written) and stream.spool:
            stream.read(0)  # made here, in the caller's thread, into its spool
        sources.append((name, source))

    def write(sink: IO[bytes]) -> None:
        with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
            for name, source in sources:
                try:
                    _write_member(archive, name, source)
                except FileServeError as err:
                    raise _about(err, name) from err.__cause__
                finally:
                    source.release()

    return Written(write, name="bundle.zip", what=f"a zip of {len(sources)} files")


def _write_member(archive: zipfile.ZipFile, name: str, source: Any) -> None:
    size = len(source.buffer) if source.buffer is not None else None
    if source.path is not None:
        size = source.path.stat().st_size
    mime = mime_type_for(name) or "application/octet-stream"
    deflate = mime.startswith(_DEFLATE_PREFIXES) or source.charset is not None
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    # The level of a member given as a ZipInfo: ``compress_level`` from Python 3.13, the
    # private slot it names before (a ZipInfo has slots: nothing else can be set).
    setattr(
        info, "compress_level" if hasattr(zipfile.ZipInfo, "compress_level") else "_compresslevel", _LEVEL
    )
    info.external_attr = 0o644 << 16
    # Unknown sizes may pass 4 GiB: zip64 from the start (it cannot be added afterwards).
    with archive.open(info, "w", force_zip64=size is None or size >= _ZIP32_LIMIT) as member:
        for piece in source.chunks(_PIECE):
            member.write(piece)


def _member_name(name: Any, where: str) -> str:
    """A member's name, checked: relative, ``/``-separated, each segment a safe file name."""
    if not isinstance(name, str):
        raise UnsupportedValueError(
            f"a zip's member names are strings, got {type(name).__name__} {name!r}", where=where
        )
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise UnsupportedValueError(
            f"zip member {name!r}: a member is named by a relative path with / between its parts",
            where=where,
        )
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise UnsupportedValueError(
                f"zip member {name!r}: empty, '.' and '..' parts are refused (it must stay in its folder)",
                where=where,
            )
        try:
            check_filename(segment)
        except ValueError as err:
            raise UnsupportedValueError(f"zip member {name!r}: {err}", where=where) from None
        if safe_filename(segment) != segment:
            raise UnsupportedValueError(
                f"zip member {name!r}: control characters, leading dots and over-long names are refused",
                where=where,
            )
    return name


def _about(err: FileServeError, name: str) -> FileServeError:
    """``err``, its message saying which member it is about."""
    err.message = f"zip member {name!r}: {err.message}"
    err.args = (f"{err.where}: {err.message}" if err.where else err.message,)
    return err
