"""The chunked file store on top of any cachelib backend.

A file is kept under keys derived from its token: ``dfc:<token>:0``,
``dfc:<token>:1``, ... hold the content in chunks of ``chunk_size`` bytes and
``dfc:<token>:m`` holds a small metadata record, written last so that a reader
never sees a record whose chunks are still being written. Reading streams chunk
by chunk, so memory stays bounded by one chunk whatever the file size, and
memcached's item limit does not limit the file size.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from cachelib import FileSystemCache

from .exc import BackendUnavailableError, ContentMissingError, FileServeError, FileTooLargeError
from .expiry import DirectoryJournal, ExpiryJournal
from .values import Source

__all__ = ["CacheLike", "ChunkStore", "FileRecord", "default_backend", "default_cache_dir"]

#: Chunks outlive their record by this much, so that a transfer that started
#: just before the record expired can still finish.
CHUNK_GRACE = 60
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: memcached refuses items over 1 MB by default, key and pickling included.
MEMCACHED_CHUNK_SIZE = 512 * 1024
#: 16 random bytes: 128 bits, 22 URL-safe characters.
TOKEN_BYTES = 16
TOKEN_LENGTH = 22
_TOKEN_SHAPE = re.compile(f"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")

T = TypeVar("T")


class CacheLike(Protocol):
    """The part of ``cachelib.BaseCache`` (and ``flask_caching.Cache``) we use."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any, timeout: int | None = None) -> Any: ...
    def delete(self, key: str) -> Any: ...
    def has(self, key: str) -> Any: ...


@dataclass(frozen=True)
class FileRecord:
    """The metadata of one registered file. Contents never change under a token."""

    token: str
    size: int
    chunk_size: int
    mime_type: str
    filename: str
    download: bool
    one_time: bool
    sandbox: bool
    created: float
    #: Unix time after which the file is gone; ``None``: kept until evicted.
    expires: float | None
    #: Set for path values: served from this file where it is visible and unchanged.
    path: str | None = None
    path_host: str | None = None
    path_mtime_ns: int | None = None
    #: ``False`` for paths served by reference only: no chunks in the backend.
    chunked: bool = True
    #: A one-time file after its transfer: answered with 410 until it expires.
    consumed: bool = False

    @property
    def chunk_count(self) -> int:
        return -(-self.size // self.chunk_size)


_RECORD_FIELDS = tuple(f.name for f in fields(FileRecord))


def default_cache_dir() -> Path:
    """Where the default store keeps files.

    ``$DFC_TRANSFORM_DIR`` if set, else ``<tempdir>/dfc_transform-<user>``: every
    process of the app on one host (gunicorn workers, background-callback
    processes) computes the same directory without talking to the others.
    """
    env = os.environ.get("DFC_TRANSFORM_DIR")
    if env:
        return Path(env)
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"dfc_transform-{user}"


def default_backend(
    directory: str | os.PathLike[str] | None = None,
) -> tuple[FileSystemCache, DirectoryJournal]:
    """The default backend and its expiry journal, in :func:`default_cache_dir`.

    A ``FileSystemCache`` in ``<dir>/files`` with ``threshold=0``, which turns off
    cachelib's count-based pruning (it could drop single chunks of a file); files
    leave by their time-to-live instead, swept through the journal in ``<dir>/expiry``.
    """
    path = Path(directory) if directory is not None else default_cache_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hasattr(os, "getuid"):
        # In a shared temp dir another user could have made the directory first.
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise FileServeError(
                f"the store directory {str(path)!r} is not a directory owned by this user; "
                "set DFC_TRANSFORM_DIR or pass a backend"
            )
    backend = FileSystemCache(str(path / "files"), threshold=0, default_timeout=0, mode=0o600)
    return backend, DirectoryJournal(path / "expiry", grace=CHUNK_GRACE)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(text: str) -> bool:
    """Tell whether ``text`` has the shape of a token (cheap, before any backend call)."""
    return _TOKEN_SHAPE.fullmatch(text) is not None


class ChunkStore:
    """Files in chunks in a cache backend.

    :param backend: any ``cachelib.BaseCache`` or ``flask_caching.Cache``.
    :param chunk_size: bytes per chunk.
    :param timeout: time-to-live of a file in seconds; 0 keeps files until evicted.
    """

    def __init__(
        self, backend: CacheLike, *, chunk_size: int, timeout: int, journal: ExpiryJournal | None = None
    ) -> None:
        if chunk_size < 1024:
            raise ValueError(f"chunk_size must be at least 1024 bytes, got {chunk_size}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
        self.backend = backend
        self.chunk_size = chunk_size
        self.timeout = timeout
        #: Removes expired files from backends that keep them (see :mod:`dfc_transform.expiry`).
        self.journal = journal

    @property
    def backend_name(self) -> str:
        return type(self.backend).__name__

    # -- writing ----------------------------------------------------------------

    def put(
        self,
        source: Source,
        *,
        filename: str,
        mime_type: str,
        download: bool,
        one_time: bool,
        sandbox: bool,
        copy_path: bool,
        max_size: int | None,
        where: str = "",
    ) -> FileRecord:
        """Store ``source`` under a new token and return its record.

        On any error, chunks already written are deleted: nothing half-written stays.
        """
        token = new_token()
        now = time.time()
        expires = now + self.timeout if self.timeout else None
        # The record is made once, when its size is known: dataclasses.replace() showed up in
        # profiles of small registrations (a plot of 10-100 KiB), next to asdict().
        known: dict[str, Any] = {
            "token": token,
            "chunk_size": self.chunk_size,
            "mime_type": mime_type,
            "filename": filename,
            "download": download,
            "one_time": one_time,
            "sandbox": sandbox,
            "created": now,
            "expires": expires,
        }
        if self.journal is not None and expires is not None:
            # Noted before the first chunk: an interrupted write is swept too.
            self.journal.note(token, expires)
            self.journal.sweep_due(self.purge)
        path_size: int | None = None
        if source.path is not None:
            info = source.path.stat()
            _check_size(info.st_size, max_size, where)
            path_size = info.st_size
            known.update(
                path=str(source.path),
                path_host=socket.gethostname(),
                path_mtime_ns=info.st_mtime_ns,
                chunked=copy_path,
            )
            if not copy_path:
                record = FileRecord(size=path_size, **known)
                self._set(self._meta_key(token), _dump_record(record), self.timeout, where)
                return record
        written = 0
        size = 0
        try:
            for piece in source.chunks(self.chunk_size):
                size += len(piece)
                _check_size(size, max_size, where)
                self._set(self._chunk_key(token, written), bytes(piece), self._chunk_timeout, where)
                written += 1
            if path_size is not None and size != path_size:
                raise FileServeError(
                    f"file {known['path']!r} changed size while it was read ({path_size} -> {size} bytes)",
                    where=where,
                )
            if written > 1 and not self._call(self.backend.has, self._chunk_key(token, 0), where=where):
                # A count threshold or maxmemory evicted the file's start while its end was written.
                raise BackendUnavailableError(
                    f"the {self.backend_name} evicted the first chunks of this {size}-byte file while it "
                    "was being written: it holds too little (raise its threshold or memory limit)",
                    where=where,
                )
            record = FileRecord(size=size, **known)
            self._set(self._meta_key(token), _dump_record(record), self.timeout, where)
        except BaseException:
            self._forget_chunks(token, written)
            raise
        finally:
            source.release()
        return record

    # -- reading ----------------------------------------------------------------

    def get(self, token: str) -> FileRecord | None:
        """The record of ``token``, or ``None`` if unknown or expired."""
        data = self._call(self.backend.get, self._meta_key(token))
        try:
            record = FileRecord(**json.loads(data))
        except (TypeError, ValueError):
            return None  # missing, or written by an incompatible version: treat as unknown
        if record.expires is not None and record.expires < time.time():
            return None
        return record

    def open_path(self, record: FileRecord) -> IO[bytes] | None:
        """The registered file opened from disk, or ``None`` if it is not this very file.

        It must be on this host and unchanged (same size and mtime), so that new
        contents are never served under the old token and ETag.
        """
        if record.path is None or record.path_host != socket.gethostname():
            return None
        try:
            f = open(record.path, "rb")  # noqa: SIM115 - handed to the response, which closes it
        except OSError:
            return None
        info = os.fstat(f.fileno())
        if info.st_size != record.size or info.st_mtime_ns != record.path_mtime_ns:
            f.close()
            return None
        return f

    def iter_chunks(self, record: FileRecord, start: int, stop: int) -> Iterator[bytes]:
        """Yield bytes ``[start, stop)`` of the file, reading only the chunks needed.

        The first chunk is fetched before this returns, so that a file whose
        content is gone fails before any header is sent. A chunk that goes
        missing later raises :class:`ContentMissingError` mid-stream: the server
        then drops the connection and the client sees a failed transfer, never a
        short or wrong one.
        """
        if stop <= start:
            return iter(())
        cs = record.chunk_size
        first, last = start // cs, (stop - 1) // cs
        head = self._chunk(record, first)
        return self._iter_from(record, head, first, last, start, stop)

    def _iter_from(
        self, record: FileRecord, head: bytes, first: int, last: int, start: int, stop: int
    ) -> Iterator[bytes]:
        cs = record.chunk_size
        for index in range(first, last + 1):
            data = head if index == first else self._chunk(record, index)
            lo = start - index * cs if index == first else 0
            hi = stop - index * cs if index == last else len(data)
            yield data if (lo, hi) == (0, len(data)) else data[lo:hi]

    def _chunk(self, record: FileRecord, index: int) -> bytes:
        data = self._call(self.backend.get, self._chunk_key(record.token, index))
        expected = min(record.chunk_size, record.size - index * record.chunk_size)
        if not isinstance(data, bytes) or len(data) != expected:
            raise ContentMissingError(
                f"chunk {index} of {record.chunk_count} of file {record.token} "
                f"({record.filename!r}) is missing from the {self.backend_name}"
            )
        return data

    # -- removing ---------------------------------------------------------------

    def consume(self, record: FileRecord) -> None:
        """Remove a one-time file's content, leaving a tombstone so that later GETs get 410."""
        remaining = self.timeout and max(1, int((record.expires or 0) - time.time()))
        self._set(self._meta_key(record.token), _dump_record(replace(record, consumed=True)), remaining)
        if record.chunked:
            self._forget_chunks(record.token, record.chunk_count)

    def purge(self, token: str) -> None:
        """Delete everything stored under ``token``, even a file whose writing never finished."""
        self._call(self.backend.delete, self._meta_key(token))
        index = 0
        # Chunks are written in order, so the ones present are a prefix. Bounded, should a
        # backend answer has() wrongly: 2**20 chunks are a TiB at the default chunk size.
        while index < 2**20 and self._call(self.backend.has, self._chunk_key(token, index)):
            self._call(self.backend.delete, self._chunk_key(token, index))
            index += 1

    # -- helpers ----------------------------------------------------------------

    @property
    def _chunk_timeout(self) -> int:
        return self.timeout + CHUNK_GRACE if self.timeout else 0

    @staticmethod
    def _meta_key(token: str) -> str:
        return f"dfc:{token}:m"

    @staticmethod
    def _chunk_key(token: str, index: int) -> str:
        return f"dfc:{token}:{index}"

    def _forget_chunks(self, token: str, count: int) -> None:
        for index in range(count):
            try:
                self.backend.delete(self._chunk_key(token, index))
            except Exception:  # best effort: the time-to-live removes the rest
                break

    def _set(self, key: str, value: Any, timeout: int, where: str = "") -> None:
        if not self._call(self.backend.set, key, value, timeout, where=where):
            raise BackendUnavailableError(
                f"the {self.backend_name} refused to store {key!r} (disk full, item too large "
                "or server out of memory?)",
                where=where,
            )

    def _call(self, method: Callable[..., T], *args: Any, where: str = "") -> T:
        try:
            return method(*args)
        except Exception as err:
            raise BackendUnavailableError(
                f"the {self.backend_name} backend failed: {type(err).__name__}: {err}", where=where
            ) from err


def _dump_record(record: FileRecord) -> bytes:
    # JSON bytes rather than a dict: every backend keeps bytes as they are (chunks rely on it),
    # whereas a dict depends on the client's serialiser: pymemcache without a serde stores
    # str(dict) and hands back bytes, and every file would then be a 404.
    # The flat dict asdict() would make, without its deep copies (half of a small registration).
    flat = {name: getattr(record, name) for name in _RECORD_FIELDS}
    return json.dumps(flat, separators=(",", ":")).encode()


def _check_size(size: int, max_size: int | None, where: str) -> None:
    if max_size is not None and size > max_size:
        raise FileTooLargeError(
            f"the file is over the size cap of {max_size} bytes (read {size} bytes so far); "
            "raise max_size or serve a smaller file",
            where=where,
        )
