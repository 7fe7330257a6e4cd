"""The chunked file store on top of any cachelib backend.

A file's content is kept in chunks of ``chunk_size`` bytes under keys derived
from a random storage key, ``dfc:<storage>:0``, ``dfc:<storage>:1``, ...; its
metadata record is kept under its public token, ``dfc:<token>:m``, written last
so that a reader never sees a record whose chunks are still being written.
Keeping the two apart lets the token be derived from the content (a keyed hash):
the same content with the same options gets the same URL and is stored once.
Reading streams chunk by chunk, so memory stays bounded by one chunk whatever
the file size. With a namespace, every key is ``dfc:<namespace>:...``.

Backends that expire keys on their own (Redis, memcached) are given the
time-to-live with every key. Backends that would only hide an expired key
(cachelib's ``FileSystemCache`` and ``SimpleCache`` keep it until a prune) get
keys without a time-to-live and an expiry journal: the record carries the expiry,
and the sweep deletes every key of the file, whatever the backend would report.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, TypeVar

from ..events import Events
from ..exc import BackendUnavailableError, ContentMissingError, FileServeError, FileTooLargeError
from ..values import Source
from .backends import CacheLike, Profile
from .ledger import Ledger
from .records import FileRecord, content_token, dump_record, load_record, new_token

__all__ = ["CacheLike", "ChunkStore"]

#: On backends with their own expiry, chunks outlive their record by this much, so that
#: a transfer that started just before the record expired can still finish.
CHUNK_GRACE = 60
#: Files up to this size are kept in their record: one key to write and one to read.
INLINE_MAX = 128 * 1024
#: A stream's bytes are reserved in the ledger this many chunks at a time.
_RESERVE_CHUNKS = 8

T = TypeVar("T")


class ChunkStore:
    """Files in chunks in a cache backend, as its :class:`~dfc_transform.backends.Profile` says.

    :param backend: any ``cachelib.BaseCache`` or ``flask_caching.Cache``.
    :param profile: what the backend is (chunk size, expiry, where to claim and lock).
    :param timeout: time-to-live of a file in seconds; 0 keeps files until evicted.
    :param namespace: prefix of every key: files of other namespaces are invisible.
    :param max_total_size: the byte budget of the whole store; ``None`` for none.
    """

    def __init__(
        self,
        backend: CacheLike,
        profile: Profile,
        *,
        timeout: int,
        namespace: str = "",
        max_total_size: int | None = None,
        events: Events | None = None,
    ) -> None:
        if profile.chunk_size < 1024:
            raise ValueError(f"chunk_size must be at least 1024 bytes, got {profile.chunk_size}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
        self.backend = backend
        self.profile = profile
        self.timeout = timeout
        self.namespace = namespace
        self.events = events or Events()
        self._prefix = f"dfc:{namespace}:" if namespace else "dfc:"
        self.ledger = Ledger(
            backend,
            self._prefix + "ledger",
            lock_dir=profile.lock_dir,
            in_process=profile.per_process,
            budget=max_total_size,
        )
        if profile.claims_dir is not None:
            profile.claims_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._hmac_key: bytes | None = None

    @property
    def chunk_size(self) -> int:
        return self.profile.chunk_size

    @property
    def journal(self) -> Any:
        return self.profile.journal

    @property
    def backend_name(self) -> str:
        return self.profile.name

    # -- writing ----------------------------------------------------------------

    def put(self, source: Source, record: FileRecord, *, copy_path: bool, max_size: int | None) -> FileRecord:
        """Store ``source`` as ``record`` says and return the stored record.

        ``record`` is complete but for the token (unless one-time), the storage key and
        the size. The token is derived from the content; content already stored under it
        is renewed, not stored again. On any error, what was written is deleted.
        """
        storage = new_token()
        record = replace(record, storage=storage, chunk_size=self.chunk_size)
        try:
            if source.path is not None:
                record = _with_path(record, source.path, max_size)
                if not copy_path:
                    token = record.token or self._token(_path_identity(record), record)
                    record = replace(record, token=token, chunked=False)
                    return self.renew(token, record) or self._finish(record, storage, backref=False)
            if source.buffer is not None and not record.token:
                # The content is in memory: its token is known before anything is written.
                token = self._token(hashlib.sha256(source.buffer).digest(), record)
                found = self.renew(token, record)
                if found is not None:
                    return found
                record = replace(record, token=token)
            if source.buffer is not None and len(source.buffer) <= self._inline_max:
                _check_size(len(source.buffer), max_size)
                content = bytes(source.buffer)
                return self._finish(
                    replace(record, size=len(content), inline=content), storage, backref=False
                )
            noted = record.token  # known now for one-time files and buffers: the journal names it
            self._note_expiry(storage, record.expires, noted)
            size, digest = self._write_chunks(source, storage, max_size, record.size if record.path else None)
            if record.path is not None and size != record.size:
                raise FileServeError(
                    f"file {record.path!r} changed size while it was read ({record.size} -> {size} bytes)"
                )
            record = replace(record, size=size)
            if not record.token:
                token = self._token(digest, record)
                found = self.renew(token, record)
                if found is not None:
                    # The same content was there: ours is a second copy, and goes.
                    self._purge_keys(storage, None)
                    self.ledger.release(storage)
                    return found
                record = replace(record, token=token)
            return self._finish(record, storage, backref=not noted)
        except BaseException:
            self._purge_keys(storage, None)
            with contextlib.suppress(Exception):
                self.ledger.release(storage)
            raise
        finally:
            source.release()

    def _write_chunks(
        self, source: Source, storage: str, max_size: int | None, known: int | None
    ) -> tuple[int, bytes]:
        """Write the content chunk by chunk; return its size and SHA-256."""
        digest = hashlib.sha256()
        written = size = reserved = 0
        evict = self._evict
        if self.ledger.budget is None:
            reserved = 2**63  # nothing to hold back without a budget
        elif known is not None or source.buffer is not None:
            reserved = known if known is not None else len(source.buffer or b"")
            _check_size(reserved, max_size)
            self.ledger.reserve(storage, reserved, evict)
        for piece in source.chunks(self.chunk_size):
            size += len(piece)
            _check_size(size, max_size)
            if size > reserved:
                more = max(size - reserved, _RESERVE_CHUNKS * self.chunk_size)
                self.ledger.reserve(storage, more, evict)
                reserved += more
            digest.update(piece)
            self._set(self._key(storage, written), bytes(piece), self._chunk_timeout)
            written += 1
        if written > 1 and not self._call(self.backend.has, self._key(storage, 0)):
            # A count threshold or maxmemory evicted the file's start while its end was written.
            raise BackendUnavailableError(
                f"the {self.backend_name} evicted the first chunks of this {size}-byte file while it "
                "was being written: it holds too little (raise its threshold or memory limit)"
            )
        return size, digest.digest()

    def _finish(self, record: FileRecord, storage: str, *, backref: bool) -> FileRecord:
        """Write the record and enter the file in the ledger.

        ``backref``: the journal noted the chunks before their token was known, so the
        sweep needs to be told which file they are.
        """
        if not record.chunked or record.inline is not None:
            self._note_expiry(storage, record.expires, record.token)
        elif backref:
            self._set(self._key(storage, "t"), record.token.encode("ascii"), self._record_timeout)
        if record.inline is not None and self.ledger.budget is not None:
            self.ledger.reserve(storage, record.size, self._evict)
        self._set(self._key(record.token, "m"), dump_record(record), self._record_timeout)
        self.ledger.commit(storage, record.token, record.size, record.created, record.expires, self._evict)
        self.events.emit("registered", token=record.token, filename=record.filename, size=record.size)
        return record

    # -- writing in parts (uploads) ------------------------------------------------

    def begin_parts(self, storage: str, chunk_count: int, expires: float | None) -> None:
        """Start a file of ``chunk_count`` chunks written in parts under ``storage``.

        The sweep removes it if it is never completed (noted for ``expires``); its chunks
        may arrive in any order, so their count is kept for removing them.
        """
        self._note_expiry(storage, expires)
        self._set(self._key(storage, "n"), str(chunk_count).encode("ascii"), self._chunk_timeout)

    def write_chunk(self, storage: str, index: int, data: bytes) -> None:
        """Write chunk ``index`` of a file written in parts, counted against the byte budget.

        Every chunk but the last must be exactly ``chunk_size`` bytes; chunks may come in
        any order, from any process, and writing one again replaces it.
        """
        if len(data) > self.chunk_size:
            raise ValueError(f"a chunk holds at most {self.chunk_size} bytes, got {len(data)}")
        if self.ledger.budget is not None:
            self.ledger.reserve(storage, len(data), self._evict)
        self._set(self._key(storage, index), data, self._chunk_timeout)

    def has_chunk(self, storage: str, index: int) -> bool:
        """Whether chunk ``index`` of ``storage`` is stored."""
        return bool(self._call(self.backend.has, self._key(storage, index)))

    def complete_parts(self, record: FileRecord) -> FileRecord:
        """Make the file whose chunks are all under ``record.storage`` a stored file like any other.

        ``record`` is complete: its token (a fresh one: the content was never seen whole),
        storage, size and chunk size.
        """
        for index in range(record.chunk_count):
            if not self.has_chunk(record.storage, index):
                raise ContentMissingError(f"chunk {index} of {record.chunk_count} was never written")
        # Noted again for the file's own expiry: the entry of begin_parts was for the upload's deadline.
        self._note_expiry(record.storage, record.expires, record.token)
        return self._finish(record, record.storage, backref=True)

    def abort_parts(self, storage: str) -> None:
        """Remove what was written of an unfinished file."""
        self._purge_keys(storage, None)
        self.ledger.release(storage)

    def renew(self, token: str, wanted: FileRecord) -> FileRecord | None:
        """If ``token`` is stored and intact, push back its expiry and return it; else ``None``."""
        if wanted.one_time:
            return None
        found = self._record(token)
        if found is None or found.consumed or (found.chunked and not self._has_first_chunk(found)):
            return None
        renewed = replace(found, expires=wanted.expires)
        if self.profile.expiry == "native" and found.chunked:
            # The backend forgets keys by their own time-to-live: give the chunks a new one.
            for index in range(found.chunk_count):
                data = self._call(self.backend.get, self._key(found.chunks_key, index))
                if not isinstance(data, bytes):
                    return None
                self._set(self._key(found.chunks_key, index), data, self._chunk_timeout)
        self._note_expiry(found.chunks_key, wanted.expires)
        self._set(self._key(token, "m"), dump_record(renewed), self._record_timeout)
        self.ledger.renew(token, found.created, wanted.expires)
        self.events.emit("registered", token=token, filename=found.filename, size=found.size)
        self.events.emit("deduplicated", token=token, filename=found.filename, size=found.size)
        return renewed

    def _has_first_chunk(self, record: FileRecord) -> bool:
        return (
            record.size == 0
            or record.inline is not None
            or bool(self._call(self.backend.has, self._key(record.chunks_key, 0)))
        )

    def _token(self, digest: bytes, record: FileRecord) -> str:
        return content_token(self._key_for_tokens(), digest, record)

    def _key_for_tokens(self) -> bytes:
        """The HMAC key of content tokens, shared by every process through the backend."""
        if self._hmac_key is None:
            key = self._prefix + "hmac-key"
            self._call(_add_or_set(self.backend), key, secrets.token_bytes(32), 0)
            stored = self._call(self.backend.get, key)
            if not isinstance(stored, bytes) or len(stored) != 32:
                raise BackendUnavailableError(f"the {self.backend_name} did not keep the token key")
            self._hmac_key = stored
        return self._hmac_key

    def _note_expiry(self, storage: str, expires: float | None, token: str = "") -> None:
        if self.journal is not None and expires is not None:
            # Noted before the first chunk: an interrupted write is swept too.
            self.journal.note(
                f"{self.namespace}/{storage}/{token}" if token else f"{self.namespace}/{storage}", expires
            )

    @property
    def _inline_max(self) -> int:
        """Files up to this size are kept in their record (one key, as a data URI is one value)."""
        return min(INLINE_MAX, self.chunk_size)

    # -- reading ----------------------------------------------------------------

    def get(self, token: str) -> FileRecord | None:
        """The record of ``token``, or ``None`` if unknown or expired."""
        record = self._record(token)
        if record is None or (record.expires is not None and record.expires < time.time()):
            return None
        return record

    def lookup(self, token: str) -> FileRecord | None:
        """The record of ``token`` even if expired (the route tells expired from missing)."""
        return self._record(token)

    def _record(self, token: str) -> FileRecord | None:
        return load_record(self._call(self.backend.get, self._key(token, "m")))

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

        The first chunk is fetched before this returns, so that a file whose content
        is gone fails before any header is sent. A chunk that goes missing later
        raises :class:`ContentMissingError` mid-stream: the server then drops the
        connection and the client sees a failed transfer, never a short or wrong one.
        """
        if stop <= start:
            return iter(())
        if record.inline is not None:
            return iter((record.inline[start:stop],))
        cs = record.chunk_size
        first, last = start // cs, (stop - 1) // cs
        head = self._chunk(record, first)
        return self._iter_from(record, head, first, last, start, stop)

    def _iter_from(
        self, record: FileRecord, head: bytes, first: int, last: int, start: int, stop: int
    ) -> Iterator[bytes]:
        # One chunk per round trip: fetching the next ones ahead with get_many measured no
        # faster on Redis (hiredis parses 1 MiB values at about a GB/s either way).
        cs = record.chunk_size
        for index in range(first, last + 1):
            data = head if index == first else self._chunk(record, index)
            lo = start - index * cs if index == first else 0
            hi = stop - index * cs if index == last else len(data)
            yield data if (lo, hi) == (0, len(data)) else data[lo:hi]

    def _chunk(self, record: FileRecord, index: int) -> bytes:
        data = self._call(self.backend.get, self._key(record.chunks_key, index))
        return self._check_chunk(record, index, data)

    def _check_chunk(self, record: FileRecord, index: int, data: Any) -> bytes:
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
        if self.profile.claims_dir is not None:
            try:
                fd = os.open(self._claim_path(record.token), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return False
            os.close(fd)
            return True
        key = self._key(record.token, "c")
        return bool(self._call(_add_or_set(self.backend), key, b"1", self._record_timeout))

    def is_claimed(self, record: FileRecord) -> bool:
        """Tell whether a transfer of this one-time file has claimed it already."""
        if self.profile.claims_dir is not None:
            return self._claim_path(record.token).exists()
        return bool(self._call(self.backend.has, self._key(record.token, "c")))

    def consume(self, record: FileRecord) -> None:
        """Remove a one-time file's content, leaving a tombstone so that later GETs get 410."""
        tombstone = dump_record(replace(record, consumed=True, inline=None))
        self._set(self._key(record.token, "m"), tombstone, self._record_timeout)
        if record.chunked:
            self._purge_keys(record.chunks_key, record.chunk_count)
        self.ledger.drop(record.token, record.created, record.size)
        self.events.emit("removed", token=record.token, filename=record.filename, detail="delivered once")

    # -- removing ---------------------------------------------------------------

    def remove(self, token: str) -> bool:
        """Remove the file ``token`` now; ``True`` if it was there."""
        record = self._record(token)
        if record is None:
            return False
        self._purge(token, record.chunks_key)
        self._call(self.backend.delete, self._key(record.chunks_key, "t"))
        self.ledger.drop(token, record.created, record.size)
        self.events.emit("removed", token=token, filename=record.filename, size=record.size)
        return True

    def sweep(
        self,
        *,
        force: bool = False,
        now: float | None = None,
        grace: float | None = None,
        only_mine: bool = False,
    ) -> int:
        """Purge the files whose time is over (those the journal knows of); return how many.

        Expired entries of every namespace sharing the journal are swept: an app that is gone
        for good leaves nothing behind either. ``only_mine`` keeps other namespaces' entries
        (for :meth:`FileService.clear`, which removes files before their time).
        """
        if self.journal is None:
            return 0

        def purge(name: str, expires: float) -> bool | None:
            if only_mine and _split_namespace(name) != self.namespace:
                return None
            return self._purge_entry(name, expires)

        return int(self.journal.sweep_due(purge, now=now, force=force, grace=grace))

    def _purge_entry(self, name: str, expires: float) -> bool:
        """Purge a journal entry that expired at ``expires``.

        An entry is ``<namespace>/<storage>/<token>``, or ``<namespace>/<storage>`` when the
        token was not known before writing: then ``<storage>:t`` names it, unless the write
        never finished. A file renewed since is left alone: it was noted again for later.
        An entry of the first round is a bare ``[<namespace>/]<token>``, its chunks under it.
        """
        parts = name.split("/")
        namespace = parts[0] if len(parts) > 1 else ""
        storage = parts[1] if len(parts) > 1 else parts[0]
        store = self if namespace == self.namespace else self._other(namespace)
        if len(parts) > 2 and parts[2]:
            token = parts[2]
        else:
            back = store._call(store.backend.get, store._key(storage, "t"))
            token = back.decode("ascii", "replace") if isinstance(back, bytes) else storage
        record = store._record(token)
        if record is not None and record.chunks_key == storage and not _due(record, expires):
            return False
        if record is None or record.chunks_key == storage:
            store._purge(token, storage)
            if record is not None and not record.consumed:  # a consumed file left the ledger then
                store.ledger.drop(token, record.created, record.size)
            if namespace == self.namespace and record is not None:
                self.events.emit("removed", token=token, filename=record.filename, detail="expired")
        else:
            store._purge_keys(storage, None)  # a copy that lost to the same content
        if record is None:
            store.ledger.release(storage)  # an unfinished write's reservation
        store._call(store.backend.delete, store._key(storage, "t"))
        return True

    def _other(self, namespace: str) -> ChunkStore:
        return ChunkStore(self.backend, self.profile, timeout=self.timeout, namespace=namespace)

    def _purge(self, token: str, storage: str) -> None:
        """Delete the record, claim and chunks of a file, even one whose writing never finished."""
        self._call(self.backend.delete, self._key(token, "m"))
        self._call(self.backend.delete, self._key(token, "c"))
        if self.profile.claims_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                self._claim_path(token).unlink()
        self._purge_keys(storage, None)

    def _purge_keys(self, storage: str, count: int | None) -> None:
        """Delete the chunks of ``storage``: ``count`` of them, or as many as there are.

        Chunks are written in order, so those of an interrupted write are a prefix; a file
        written in parts, in any order, has its count stored. Keys have no time-to-live where
        a journal sweeps them, so has() tells the truth there. Bounded, should a backend answer
        has() wrongly: 2**20 chunks are a TiB.
        """
        if count is None:
            stored = self._call(self.backend.get, self._key(storage, "n"))
            if isinstance(stored, bytes) and stored.isdigit():
                count = int(stored)
                self._call(self.backend.delete, self._key(storage, "n"))
        index = 0
        while index < 2**20 and (
            (count is not None and index < count)
            or (count is None and self._call(self.backend.has, self._key(storage, index)))
        ):
            self._call(self.backend.delete, self._key(storage, index))
            index += 1

    def _evict(self, token: str, reason: str) -> None:
        record = self._record(token)
        self._purge(token, record.chunks_key if record is not None else token)
        if reason == "budget":
            self.events.emit(
                "evicted",
                token=token,
                filename=record.filename if record else None,
                size=record.size if record else None,
                detail="the store's byte budget",
            )

    # -- helpers ----------------------------------------------------------------

    @property
    def _chunk_timeout(self) -> int:
        if self.profile.expiry == "journal":
            return 0  # the journal removes them; a time-to-live would only hide them from the sweep
        return self.timeout + CHUNK_GRACE if self.timeout else 0

    @property
    def _record_timeout(self) -> int:
        return 0 if self.profile.expiry == "journal" else self.timeout

    def _claim_path(self, token: str) -> Path:
        assert self.profile.claims_dir is not None
        return self.profile.claims_dir / f"{self.namespace or '-'}.{token}"

    def _key(self, name: str, part: int | str) -> str:
        return f"{self._prefix}{name}:{part}"

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


def _add_or_set(backend: Any) -> Callable[..., Any]:
    """The backend's atomic ``add``; a backend without one gets a check-then-set."""
    add = getattr(backend, "add", None)
    if callable(add):
        return add

    def check_then_set(key: str, value: Any, timeout: int) -> bool:
        return not backend.has(key) and bool(backend.set(key, value, timeout))

    return check_then_set


def _split_namespace(name: str) -> str:
    """The namespace of a journal entry (see :meth:`ChunkStore._purge_entry`)."""
    return name.split("/", 1)[0] if "/" in name else ""


def _due(record: FileRecord, noted: float) -> bool:
    """Whether ``record`` expires when its journal entry said (not renewed since)."""
    return record.expires is not None and record.expires <= noted + 0.001  # noted to the millisecond


def _path_identity(record: FileRecord) -> bytes:
    """What a file served by reference is known by: the same file, unchanged, on this host."""
    return f"{record.path_host}\0{record.path}\0{record.size}\0{record.path_mtime_ns}".encode()


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


def _check_size(size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise FileTooLargeError(
            f"the file is over the size cap of {max_size} bytes (read {size} bytes so far); "
            "raise max_size or serve a smaller file"
        )
