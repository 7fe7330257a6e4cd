"""The chunked file store on top of any cachelib backend.

A file is kept under keys derived from its token: ``dfc:<token>:0``,
``dfc:<token>:1``, ... hold the content in chunks of ``chunk_size`` bytes and
``dfc:<token>:m`` holds a small metadata record, written last so that a reader
never sees a record whose chunks are still being written. Reading streams chunk
by chunk, so memory stays bounded by one chunk whatever the file size, and
memcached's item limit does not limit the file size. With a namespace, keys are
``dfc:<namespace>:<token>:...``: apps sharing one backend never see each other's files.

Backends that expire keys on their own (Redis, memcached) are given the
time-to-live with every key. Backends that would only hide an expired key
(cachelib's ``FileSystemCache`` and ``SimpleCache`` keep it until a prune) get
keys without a time-to-live and an expiry journal instead: the record carries
the expiry, and the sweep deletes every key of the file, so that nothing is left
behind whatever the backend would report for an expired key.
"""

from __future__ import annotations

import contextlib
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
from cachelib.serializers import FileSystemSerializer

from .exc import BackendUnavailableError, ContentMissingError, FileServeError, FileTooLargeError
from .expiry import GRACE, DirectoryJournal, ExpiryJournal
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
    #: For a private file: the hash of the session id that may open it (see :mod:`.session`).
    owner: str | None = None

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
    cachelib's count-based pruning (it could drop single chunks of a file), and with a
    serializer that writes our bytes as they are: nothing read back is ever unpickled,
    so whoever can write to the directory cannot run code in the app. Files leave by
    their time-to-live, swept through the journal in ``<dir>/expiry``.
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
    backend = BytesFileSystemCache(str(path / "files"), threshold=0, default_timeout=0, mode=0o600)
    journal = DirectoryJournal(
        path / "expiry", grace=GRACE, temp_dir=path / "files", temp_suffix=_TEMP_SUFFIX
    )
    return backend, journal


class _BytesSerializer(FileSystemSerializer):
    """Writes bytes as they are and reads them back as bytes: no pickle either way."""

    def dump(self, value: Any, f: IO[bytes], protocol: int = 0) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"the default store keeps bytes only, not {type(value).__name__}")
        f.write(value)

    def load(self, f: Any) -> bytes:
        return bytes(f.read())


class BytesFileSystemCache(FileSystemCache):
    """The default store: a ``FileSystemCache`` for bytes only, never unpickling what it reads."""

    serializer = _BytesSerializer()


# cachelib's FileSystemCache writes each item to a temp file with this suffix, then renames it.
_TEMP_SUFFIX = FileSystemCache._fs_transaction_suffix


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
    :param journal: for backends that keep expired keys: keys are then stored without a
        time-to-live and the journal's sweep removes them (see :mod:`dfc_transform.expiry`).
    :param claims_dir: a directory of this host where one-time files are claimed with
        ``O_EXCL``; ``None`` claims through the backend's atomic ``add``.
    """

    def __init__(
        self,
        backend: CacheLike,
        *,
        chunk_size: int,
        timeout: int,
        journal: ExpiryJournal | None = None,
        claims_dir: Path | None = None,
    ) -> None:
        if chunk_size < 1024:
            raise ValueError(f"chunk_size must be at least 1024 bytes, got {chunk_size}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
        self.backend = backend
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.journal = journal
        self.claims_dir = claims_dir
        if claims_dir is not None:
            claims_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        #: Prefix of every key: files of other namespaces are invisible.
        self.namespace = ""

    @property
    def backend_name(self) -> str:
        return type(self.backend).__name__

    # -- writing ----------------------------------------------------------------

    def put(self, source: Source, record: FileRecord, *, copy_path: bool, max_size: int | None) -> FileRecord:
        """Store ``source`` under ``record.token`` and return the record with its size.

        ``record`` is complete but for the size (and, for paths, the file's identity).
        On any error, what was written is deleted: nothing half-written stays.
        """
        try:
            if self.journal is not None and record.expires is not None:
                # Noted before the first chunk: an interrupted write is swept too.
                self.journal.note(self._journal_name(record.token), record.expires)
            if source.path is not None:
                record = _with_path(record, source.path, max_size)
                if not copy_path:
                    return self._write_record(replace(record, chunked=False))
            size = self._write_chunks(source, record.token, max_size)
            if record.path is not None and size != record.size:
                raise FileServeError(
                    f"file {record.path!r} changed size while it was read ({record.size} -> {size} bytes)"
                )
            return self._write_record(replace(record, size=size))
        except BaseException:
            self.purge(record.token)
            raise
        finally:
            source.release()

    def _write_chunks(self, source: Source, token: str, max_size: int | None) -> int:
        """Write the content chunk by chunk; return its size."""
        written = size = 0
        for piece in source.chunks(self.chunk_size):
            size += len(piece)
            _check_size(size, max_size)
            self._set(self._chunk_key(token, written), bytes(piece), self._chunk_timeout)
            written += 1
        if written > 1 and not self._call(self.backend.has, self._chunk_key(token, 0)):
            # A count threshold or maxmemory evicted the file's start while its end was written.
            raise BackendUnavailableError(
                f"the {self.backend_name} evicted the first chunks of this {size}-byte file while it "
                "was being written: it holds too little (raise its threshold or memory limit)"
            )
        return size

    def _write_record(self, record: FileRecord) -> FileRecord:
        self._set(self._meta_key(record.token), _dump_record(record), self._record_timeout)
        return record

    # -- reading ----------------------------------------------------------------

    def get(self, token: str) -> FileRecord | None:
        """The record of ``token``, or ``None`` if unknown or expired."""
        record = self._record(token)
        if record is None or (record.expires is not None and record.expires < time.time()):
            return None
        return record

    def _record(self, token: str) -> FileRecord | None:
        return _load_record(self._call(self.backend.get, self._meta_key(token)))

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

    # -- one-time files -----------------------------------------------------------

    def claim(self, record: FileRecord) -> bool:
        """Claim a one-time file for the transfer about to complete; ``False`` if another did.

        Atomic across processes (and hosts, for a shared backend): ``O_EXCL`` in the
        claims directory, else the backend's ``add`` (Redis ``SET NX``, memcached ``add``).
        """
        if self.claims_dir is not None:
            try:
                os.close(os.open(self._claim_path(record.token), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                return False
            return True
        add = getattr(self.backend, "add", None)
        key = f"{self._prefix}{record.token}:c"
        if add is None:  # no atomic add: the best we can do
            if self._call(self.backend.has, key):
                return False
            self._set(key, b"1", self._record_timeout)
            return True
        return bool(self._call(add, key, b"1", self._record_timeout))

    def is_claimed(self, record: FileRecord) -> bool:
        """Tell whether a transfer of this one-time file has claimed it already."""
        if self.claims_dir is not None:
            return self._claim_path(record.token).exists()
        return bool(self._call(self.backend.has, f"{self._prefix}{record.token}:c"))

    def consume(self, record: FileRecord) -> None:
        """Remove a one-time file's content, leaving a tombstone so that later GETs get 410."""
        self._set(
            self._meta_key(record.token), _dump_record(replace(record, consumed=True)), self._record_timeout
        )
        if record.chunked:
            self._forget_chunks(record.token, record.chunk_count)

    # -- removing ---------------------------------------------------------------

    def purge(self, token: str) -> None:
        """Delete everything stored under ``token``, even a file whose writing never finished."""
        self._purge(self.namespace, token)

    def sweep(self, *, force: bool = False, now: float | None = None, grace: float | None = None) -> int:
        """Purge the files whose time is over (those the journal knows of); return how many.

        Files of every namespace sharing the journal are swept: an app that is gone for
        good leaves nothing behind either.
        """
        if self.journal is None:
            return 0
        return self.journal.sweep_due(
            lambda name: self._purge(*_split_name(name)), now=now, force=force, grace=grace
        )

    def _purge(self, namespace: str, token: str) -> None:
        prefix = _prefix(namespace)
        record = _load_record(self._call(self.backend.get, f"{prefix}{token}:m"))
        self._call(self.backend.delete, f"{prefix}{token}:m")
        self._call(self.backend.delete, f"{prefix}{token}:c")
        if self.claims_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.claims_dir / f"{namespace or '-'}.{token}").unlink()
        known = record.chunk_count if record is not None and record.chunked else 0
        for index in range(known):
            self._call(self.backend.delete, f"{prefix}{token}:{index}")
        # Chunks are written in order, so those of an interrupted write are a prefix. Keys
        # have no time-to-live where a journal sweeps them, so has() tells the truth here.
        # Bounded, should a backend answer has() wrongly: 2**20 chunks are a TiB.
        index = known
        while index < 2**20 and self._call(self.backend.has, f"{prefix}{token}:{index}"):
            self._call(self.backend.delete, f"{prefix}{token}:{index}")
            index += 1

    # -- helpers ----------------------------------------------------------------

    @property
    def _prefix(self) -> str:
        return _prefix(self.namespace)

    @property
    def _chunk_timeout(self) -> int:
        if self.journal is not None:
            return 0  # the journal removes them; a time-to-live would only hide them from purge
        return self.timeout + CHUNK_GRACE if self.timeout else 0

    @property
    def _record_timeout(self) -> int:
        return 0 if self.journal is not None else self.timeout

    def _journal_name(self, token: str) -> str:
        return f"{self.namespace}/{token}"

    def _claim_path(self, token: str) -> Path:
        assert self.claims_dir is not None
        return self.claims_dir / f"{self.namespace or '-'}.{token}"

    def _meta_key(self, token: str) -> str:
        return f"{self._prefix}{token}:m"

    def _chunk_key(self, token: str, index: int) -> str:
        return f"{self._prefix}{token}:{index}"

    def _forget_chunks(self, token: str, count: int) -> None:
        for index in range(count):
            try:
                self.backend.delete(self._chunk_key(token, index))
            except Exception:  # best effort: the time-to-live or the sweep removes the rest
                break

    def _set(self, key: str, value: Any, timeout: int) -> None:
        if not self._call(self.backend.set, key, value, timeout):
            raise BackendUnavailableError(
                f"the {self.backend_name} refused to store {key!r} (disk full, item too large "
                "or server out of memory?)"
            )

    def _call(self, method: Callable[..., T], *args: Any) -> T:
        try:
            return method(*args)
        except Exception as err:
            raise BackendUnavailableError(
                f"the {self.backend_name} backend failed: {type(err).__name__}: {err}"
            ) from err


def _prefix(namespace: str) -> str:
    return f"dfc:{namespace}:" if namespace else "dfc:"


def _split_name(name: str) -> tuple[str, str]:
    """A journal entry ``<namespace>/<token>`` (or a bare token, as the first round wrote)."""
    namespace, _, token = name.rpartition("/")
    return namespace, token


def _load_record(data: Any) -> FileRecord | None:
    try:
        return FileRecord(**json.loads(data))
    except (TypeError, ValueError):
        return None  # missing, or written by an incompatible version: treat as unknown


def _with_path(record: FileRecord, path: Path, max_size: int | None) -> FileRecord:
    """The record of a path value: its size and identity, checked against the cap."""
    info = path.stat()
    _check_size(info.st_size, max_size)
    return replace(
        record,
        size=info.st_size,
        path=str(path),
        path_host=socket.gethostname(),
        path_mtime_ns=info.st_mtime_ns,
    )


def _dump_record(record: FileRecord) -> bytes:
    # JSON bytes rather than a dict: every backend keeps bytes as they are (chunks rely on it),
    # whereas a dict depends on the client's serialiser: pymemcache without a serde stores
    # str(dict) and hands back bytes, and every file would then be a 404.
    # The flat dict asdict() would make, without its deep copies (half of a small registration).
    flat = {name: getattr(record, name) for name in _RECORD_FIELDS}
    return json.dumps(flat, separators=(",", ":")).encode()


def _check_size(size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise FileTooLargeError(
            f"the file is over the size cap of {max_size} bytes (read {size} bytes so far); "
            "raise max_size or serve a smaller file"
        )
