"""The chunked file store on top of any cachelib backend: files written, found and removed.

A file's content is kept in chunks of ``chunk_size`` bytes under keys derived from a
random storage key, ``dfc:<storage>:0``, ``dfc:<storage>:1``, ...; its metadata record
is kept under its public token, ``dfc:<token>:m``, written last so that a reader never
sees a record whose chunks are still being written. Keeping the two apart lets the token
be derived from the content (a keyed hash): the same content with the same options gets
the same URL and is stored once. With a namespace, every key is ``dfc:<namespace>:...``.

The rest of the store hangs off a :class:`ChunkStore`: its keys (:mod:`.keys`), the
ledger of sizes and the budget (:mod:`.ledger`), expiry and eviction (:mod:`.lifecycle`),
one-time claims (:mod:`.claims`), one copy of each content (:mod:`.dedupe`), files
written in parts (:mod:`.parts`) and files served while they are written
(:mod:`.growing`). Content goes in through :mod:`.budgeted`, and comes out through
:mod:`.reader`, chunk by chunk: memory stays at one chunk whatever the size.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..events import Events
from ..exc import BackendUnavailableError, FileServeError
from ..values import Source
from .backends import CacheLike, Profile
from .budgeted import UNLIMITED, BudgetedContent, check_size
from .claims import Claims
from .dedupe import Dedupe
from .direct_parts import DirectUploads
from .growing import Growing
from .keys import Keys
from .ledger import Ledger
from .lifecycle import Lifecycle
from .listing import FileInfo, list_files
from .namespaces import announce
from .parts import Uploads
from .reader import Contents
from .records import FileRecord, entry_of, new_token, read_record, write_record
from .upload_limits import UploadLimits

__all__ = ["INLINE_MAX", "ChunkStore"]

#: Files up to this size are kept in their record: one key to write and one to read.
INLINE_MAX = 128 * 1024
#: The most a chunk of a file served while it is made holds (see .growing).
GROWING_CHUNK_SIZE = 256 * 1024


class ChunkStore:
    """Files in chunks in a cache backend, as its :class:`~dfc_transform.store.backends.Profile` says.

    :param backend: any ``cachelib.BaseCache`` or ``flask_caching.Cache``.
    :param profile: what the backend is (chunk size, expiry, where to claim and lock).
    :param timeout: time-to-live of a file in seconds; 0 keeps files until evicted.
    :param namespace: prefix of every key: files of other namespaces are invisible.
    :param max_total_size: the byte budget of the whole store; ``None`` for none.
    :param uploads: the limits on unfinished uploads; ``None``: none but the budget's.
    :param min_free_space: on this host's disk, leave at least this many bytes free.
    :param about: what the namespace is, recorded with its first file (see :mod:`.namespaces`).
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
        uploads: UploadLimits | None = None,
        min_free_space: int = 0,
        about: dict[str, Any] | None = None,
    ) -> None:
        if profile.chunk_size < 1024:
            raise ValueError(f"chunk_size must be at least 1024 bytes, got {profile.chunk_size}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
        self.backend = backend
        self.profile = profile
        self.timeout = timeout
        self.events = events or Events()
        self.keys = Keys(
            backend, profile, namespace=namespace, timeout=timeout, min_free_space=min_free_space
        )
        self.ledger = Ledger(
            backend,
            self.keys.prefix + "ledger",
            lock_dir=profile.lock_dir,
            in_process=profile.per_process,
            budget=max_total_size,
            # Where no journal knows every file (Redis, memcached), the ledger lists them.
            listing=profile.journal is None,
            name=profile.name,
        )
        self._settings = (max_total_size, uploads, min_free_space)
        self.lifecycle = Lifecycle(
            self.keys, self.ledger, self.events, profile.journal, self._other_lifecycle
        )
        self.claims = Claims(self.keys, self.ledger, self.lifecycle, self.events)
        #: Files written in parts: the unfinished uploads.
        self.uploads = Uploads(
            self.keys,
            self.ledger,
            self.lifecycle,
            self.events,
            uploads or UploadLimits(total=UNLIMITED, per_session=UNLIMITED, idle=600),
        )
        #: Reading stored files: ranges, the file on disk, the bucket's URL (see :mod:`.reader`).
        self.contents = Contents(self.keys, self.lifecycle, profile)
        #: Files served while they are written (see :mod:`.growing`).
        self.growing = Growing(self)
        #: Uploads sent straight to the bucket, where files are objects (see :mod:`.direct_parts`).
        self.direct = DirectUploads(self.uploads, profile.blobs) if profile.blobs is not None else None
        #: The same content, served the same way, stored once (see :mod:`.dedupe`).
        self.dedupe = Dedupe(self.keys, self.ledger, self.lifecycle, self.events, profile)
        #: What the namespace is (the app's module, URL prefix, directory), recorded with the
        #: first file this store object writes (see :mod:`.namespaces`).
        self.about = about

    @property
    def namespace(self) -> str:
        return self.keys.namespace

    @property
    def chunk_size(self) -> int:
        return self.profile.chunk_size

    @property
    def journal(self) -> Any:
        return self.profile.journal

    @property
    def backend_name(self) -> str:
        return self.profile.name

    def _other_lifecycle(self, namespace: str) -> Lifecycle:
        budget, uploads, free = self._settings
        other = ChunkStore(
            self.backend,
            self.profile,
            timeout=self.timeout,
            namespace=namespace,
            max_total_size=budget,
            uploads=uploads,
            min_free_space=free,
        )
        return other.lifecycle

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
                    token = record.token or self.dedupe.token(_path_identity(record), record)
                    record = replace(record, token=token, chunked=False)
                    return self.dedupe.renew(token, record) or self._finish(record, storage, backref=False)
            if source.buffer is not None and not record.token:
                # The content is in memory: its token is known before anything is written.
                token = self.dedupe.token(hashlib.sha256(source.buffer).digest(), record)
                found = self.dedupe.renew(token, record)
                if found is not None:
                    return found
                record = replace(record, token=token)
            if source.buffer is not None and len(source.buffer) <= self._inline_max:
                check_size(len(source.buffer), max_size)
                content = bytes(source.buffer)
                return self._finish(
                    replace(record, size=len(content), inline=content), storage, backref=False
                )
            return self._put_chunks(source, record, storage, max_size)
        except BaseException:
            self.lifecycle.purge_storage(storage)
            # The backend may be down: the reservation then goes with the journal's sweep.
            with contextlib.suppress(Exception):
                self.ledger.release(storage)
            raise
        finally:
            source.release()

    def _put_chunks(
        self, source: Source, record: FileRecord, storage: str, max_size: int | None
    ) -> FileRecord:
        noted = record.token  # known now for one-time files and buffers: the journal names it
        # Noted before the first chunk: an interrupted write is swept too.
        self.lifecycle.note(storage, record.expires, noted)
        known = record.size if record.path else None
        if self.profile.blobs is not None:
            size, digest = self._write_blob(source, storage, max_size, known)
            record = replace(record, blob=True)
        else:
            size, digest = self._write_chunks(source, storage, max_size, known)
        if record.path is not None and size != record.size:
            raise FileServeError(
                f"file {record.path!r} changed size while it was read ({record.size} -> {size} bytes)"
            )
        record = replace(record, size=size)
        if not record.token:
            token = self.dedupe.token(digest, record)
            found = self.dedupe.renew(token, record)
            if found is not None:
                # The same content was there: ours is a second copy, and goes.
                self.lifecycle.purge_storage(storage)
                self.ledger.release(storage)
                return found
            record = replace(record, token=token)
        return self._finish(record, storage, backref=not noted)

    def put_growing(self, source: Source, record: FileRecord, *, max_size: int | None) -> FileRecord:
        """Store ``source`` as ``record`` while it is served: the record at once, the content
        drained in a thread (see :mod:`.growing`). Its token is random: the content is not
        known before it is made."""
        record = replace(
            record,
            token=record.token or new_token(),
            storage=new_token(),
            # Smaller chunks than stored files': a follower gets each as soon as it is made, so
            # a slow generator's first bytes leave early.
            chunk_size=min(self.chunk_size, GROWING_CHUNK_SIZE),
        )
        return self.growing.start(source, record, max_size=max_size)

    def budgeted(
        self, source: Source, storage: str, max_size: int | None, known: int | None, chunk_size: int
    ) -> BudgetedContent:
        """``source``'s content in chunks of ``chunk_size``, room reserved in the byte budget
        before each (see :mod:`.budgeted`)."""
        return BudgetedContent(
            self.ledger,
            self.lifecycle,
            source,
            storage,
            chunk_size=chunk_size,
            max_size=max_size,
            known=known,
        )

    def _write_chunks(
        self, source: Source, storage: str, max_size: int | None, known: int | None
    ) -> tuple[int, bytes]:
        """Write the content chunk by chunk; return its size and SHA-256."""
        keys = self.keys
        content = self.budgeted(source, storage, max_size, known, self.chunk_size)
        written = 0
        for piece in content:
            keys.set(keys.key(storage, written), piece, keys.chunk_timeout)
            written += 1
        if written > 1 and not keys.has(keys.key(storage, 0)):
            # A count threshold or maxmemory evicted the file's start while its end was written.
            raise BackendUnavailableError(
                f"the {self.backend_name} evicted the first chunks of this {content.size}-byte file "
                "while it was being written: it holds too little (raise its threshold or memory limit)"
            )
        return content.size, content.digest()

    def _write_blob(
        self, source: Source, storage: str, max_size: int | None, known: int | None
    ) -> tuple[int, bytes]:
        """Write the content as one object, a part at a time; return its size and SHA-256."""
        assert self.profile.blobs is not None
        writer = self.profile.blobs.writer(self.keys.key(storage, 0))
        content = self.budgeted(source, storage, max_size, known, self.chunk_size)
        try:
            for piece in content:
                self.keys.call(writer.write, piece)
            self.keys.call(writer.finish)
        except BaseException:
            writer.abort()
            raise
        return content.size, content.digest()

    def _finish(self, record: FileRecord, storage: str, *, backref: bool) -> FileRecord:
        """Write the record and enter the file in the ledger.

        ``backref``: the journal noted the chunks before their token was known, so the
        sweep needs to be told which file they are.
        """
        keys = self.keys
        if not record.chunked or record.inline is not None:
            self.lifecycle.note(storage, record.expires, record.token)
        elif backref:
            keys.set(keys.key(storage, "t"), record.token.encode("ascii"), keys.record_timeout)
        if record.inline is not None and self.ledger.budget is not None:
            self.ledger.reserve(storage, record.size, self.lifecycle)
        write_record(keys, record)
        self.ledger.commit(storage, record.token, entry_of(record), self.lifecycle)
        self.events.emit("registered", token=record.token, filename=record.filename, size=record.size)
        if self.journal is not None:
            self.journal.start_sweeper(self.sweep)
        if self.about is not None:
            announce(self.keys, self.about)
            self.about = None
        return record

    @property
    def _inline_max(self) -> int:
        """Files up to this size are kept in their record (one key, as a data URI is one value)."""
        return min(INLINE_MAX, self.chunk_size)

    # -- finding files (their contents are read through .reader) --------------------

    def get(self, token: str) -> FileRecord | None:
        """The record of ``token``, or ``None`` if unknown or expired."""
        record = read_record(self.keys, token)
        if record is None or (record.expires is not None and record.expires < time.time()):
            return None
        return record

    def lookup(self, token: str) -> FileRecord | None:
        """The record of ``token`` even if expired (the route tells expired from missing)."""
        return read_record(self.keys, token)

    def files(self) -> list[FileInfo]:
        """Every file of this namespace, oldest first (see :mod:`.listing`)."""
        return list_files(self.ledger, self.profile.journal, self.keys)

    # -- one-time files, removal, expiry (see .claims and .lifecycle) -------------------

    def claim(self, record: FileRecord) -> bool:
        """Claim a one-time file for the transfer about to complete; ``False`` if another did."""
        return self.claims.claim(record)

    def is_claimed(self, record: FileRecord) -> bool:
        return self.claims.is_claimed(record)

    def consume(self, record: FileRecord) -> None:
        self.claims.consume(record)

    def remove(self, token: str) -> bool:
        """Remove the file ``token`` now; ``True`` if it was there."""
        return self.lifecycle.remove(token)

    def sweep(
        self,
        *,
        force: bool = False,
        now: float | None = None,
        grace: float | None = None,
        only_mine: bool = False,
    ) -> int:
        """Purge expired files and give up idle uploads; return how many files went
        (see :meth:`.lifecycle.Lifecycle.sweep`)."""
        self.uploads.sweep_idle()
        return self.lifecycle.sweep(force=force, now=now, grace=grace, only_mine=only_mine)


def _path_identity(record: FileRecord) -> bytes:
    """What a file served by reference is known by: the same file, unchanged, on this host."""
    return f"{record.path_host}\0{record.path}\0{record.size}\0{record.path_mtime_ns}".encode()


def _with_path(record: FileRecord, path: Path, max_size: int | None) -> FileRecord:
    """The record of a path value: its size and identity, checked against the cap."""
    info = path.stat()
    check_size(info.st_size, max_size)
    return replace(
        record,
        size=info.st_size,
        path=str(path),
        path_host=socket.gethostname(),
        path_mtime_ns=info.st_mtime_ns,
    )
