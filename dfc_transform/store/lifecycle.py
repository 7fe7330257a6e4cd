"""How files leave the store: removed, swept when expired, evicted for the byte budget.

Backends that expire keys on their own (Redis, memcached) get a time-to-live with every
key. Backends that would only hide an expired key (cachelib's ``FileSystemCache`` and
``SimpleCache`` keep it until a prune) get keys without one and an expiry journal: the
sweep deletes every key of the file, whatever the backend would report.

A file being downloaded is not cut by eviction: its transfer holds a lease (a small key
naming until when, renewed as it goes), and eviction passes over leased files to the next
oldest. A lease is bounded (:data:`LEASE_MAX`): a transfer that never ends cannot keep a
file forever.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..events import Events
from ..exc import BackendUnavailableError
from .keys import Keys
from .ledger import Kept, Ledger
from .records import FileRecord, read_record

if TYPE_CHECKING:
    from .expiry import ExpiryJournal

__all__ = ["LEASE_MAX", "LEASE_SECONDS", "Lifecycle"]

#: A transfer's lease on its file lasts this long unless renewed (should its process die,
#: the file is kept no longer).
LEASE_SECONDS = 10.0
#: A transfer renews its lease this often; when it ends, its lease goes at once (unless another
#: transfer of the file renewed it since).
LEASE_RENEW = 1.0
#: No transfer keeps its file from eviction for longer than this.
LEASE_MAX = 1800.0
#: Chunks of files and uploads are probed up to this many (2**20 chunks are a TiB): bounded,
#: should a backend answer ``has()`` wrongly.
_MAX_CHUNKS = 2**20


class Lifecycle:
    """Removal, sweeping and eviction for the store of one namespace."""

    def __init__(
        self,
        keys: Keys,
        ledger: Ledger,
        events: Events,
        journal: ExpiryJournal | None,
        other: Callable[[str], Lifecycle],
    ) -> None:
        self.keys = keys
        self.ledger = ledger
        self.events = events
        self.journal = journal
        #: The lifecycle of another namespace sharing the backend (for the journal's entries).
        self._other = other
        #: Called with the storage of an unfinished upload whose time is over (see :mod:`.parts`).
        self.forget_upload: Callable[[str], None] = lambda storage: None

    @property
    def namespace(self) -> str:
        return self.keys.namespace

    # -- removing ---------------------------------------------------------------------

    def remove(self, token: str) -> bool:
        """Remove the file ``token`` now; ``True`` if it was there."""
        record = read_record(self.keys, token)
        if record is None:
            return False
        self.purge_file(record)
        self.ledger.drop(token, record.created, record.size)
        self.events.emit("removed", token=token, filename=record.filename, size=record.size)
        return True

    def purge_file(self, record: FileRecord) -> None:
        """Delete every key of a stored file: record, claim, lease, chunks."""
        keys = self.keys
        for part in ("m", "c", "l"):
            keys.delete(keys.key(record.token, part))
        claim = keys.claim_path(record.token)
        if claim is not None:
            claim.unlink(missing_ok=True)
        for name, count in record.chunk_groups():
            self.purge_chunks(name, count)
        keys.delete(keys.key(record.chunks_key, "t"))

    def purge_storage(self, storage: str, *, tombstone: bool = False) -> None:
        """Delete what an unfinished write or upload left under ``storage``: chunks written in
        order, the attempts of an upload's parts and their records; ``tombstone`` keeps the
        note of why an upload was given up (see :mod:`.parts`)."""
        keys = self.keys
        blobs = keys.profile.blobs
        upload_id = keys.get(keys.key(storage, "u")) if blobs is not None else None
        if blobs is not None and isinstance(upload_id, bytes):
            # An upload sent straight to the bucket: what it sent goes with it.
            blobs.abort_multipart(keys.key(storage, 0), upload_id.decode())
            keys.delete(keys.key(storage, "u"))
        self.purge_chunks(storage, None)
        info = keys.get(keys.key(storage, "s"))
        attempts, parts = _two_numbers(info)
        for seq in range(attempts):
            self.purge_chunks(f"{storage}.{seq}", None)
        for index in range(parts):
            keys.delete(keys.key(storage, f"P{index}"))
        for suffix in ("s", "t") if tombstone else ("s", "t", "x"):
            keys.delete(keys.key(storage, suffix))

    def purge_chunks(self, name: str, count: int | None) -> None:
        """Delete the chunks under ``name``: ``count`` of them, or as many as there are.

        Chunks are written in order, so those of an interrupted write are a prefix. Keys have
        no time-to-live where a journal sweeps them, so ``has()`` tells the truth there.
        """
        keys = self.keys
        index = 0
        while index < _MAX_CHUNKS and (
            (count is not None and index < count) or (count is None and keys.has(keys.key(name, index)))
        ):
            keys.delete(keys.key(name, index))
            index += 1

    # -- eviction and leases ------------------------------------------------------------

    def evict(self, token: str, reason: str) -> bool | Kept:
        """Remove ``token`` for the budget, unless a transfer of it holds a lease.

        The record goes first, so that no new transfer starts; a transfer that took its lease
        meanwhile (it checks the record again after taking it) keeps the chunks until it ends:
        they are :class:`Kept`, and go when :meth:`settle` finds the lease over.
        """
        if self.leased(token):
            return False
        record = read_record(self.keys, token)
        if record is None:
            self.keys.delete(self.keys.key(token, "m"))
            return True
        self.keys.delete(self.keys.key(token, "m"))
        self.events.emit(
            "evicted",
            token=token,
            filename=record.filename,
            size=record.size,
            detail="the store's byte budget",
        )
        if self.leased(token):
            groups = [[name, count] for name, count in record.chunk_groups()]
            return Kept(record.size, time.time() + LEASE_MAX, groups)
        self.purge_file(record)
        return True

    def settle(self, token: str, kept: Kept) -> bool:
        """Remove the chunks of an evicted file once no transfer holds it; ``True`` if they went."""
        if self.leased(token) and time.time() < kept.until:
            return False
        for name, count in kept.chunks:
            self.purge_chunks(str(name), int(count))
        self.keys.delete(self.keys.key(token, "l"))
        return True

    def leased(self, token: str) -> bool:
        value = self.keys.get(self.keys.key(token, "l"))
        until, _, _ = value.partition(b" ") if isinstance(value, bytes) else (b"", b"", b"")
        try:
            return float(until) > time.time()
        except ValueError:
            return False

    def lease(self, token: str) -> str | None:
        """Take a lease on ``token`` for a transfer about to read it (with a budget only, where
        eviction could cut it); return the lease's id, or ``None`` without a budget."""
        if self.ledger.budget is None:
            return None
        lease = secrets.token_hex(4)
        try:
            self.hold(token, lease)
        except BackendUnavailableError:
            # A file-system backend's write can lose a race with the eviction deleting the same
            # key (cachelib stats the file it has just renamed): once more.
            self.hold(token, lease)
        return lease

    def leasing(self, token: str, lease: str | None, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks``, renewing the transfer's lease as they are read; the lease ends with them
        (read to the end, failed, or closed, even before the first chunk)."""
        if lease is None:
            return chunks
        return _Leased(self, token, lease, chunks)

    def release(self, token: str, lease: str) -> None:
        """End the transfer's lease ``lease`` on ``token``, unless another transfer renewed it since."""
        with contextlib.suppress(Exception):  # the backend may be down: the lease runs out
            value = self.keys.get(self.keys.key(token, "l"))
            if isinstance(value, bytes) and value.endswith(lease.encode()):
                # Ours still: no other transfer renewed it since (they would, within a second).
                self.keys.delete(self.keys.key(token, "l"))

    def hold(self, token: str, lease: str) -> None:
        # The value says until when: a journal backend keeps the key past that (no time-to-live).
        until = time.time() + LEASE_SECONDS
        ttl = int(LEASE_SECONDS) + 1 if self.keys.profile.expiry == "native" else 0
        self.keys.set(self.keys.key(token, "l"), f"{until:.3f} {lease}".encode(), ttl)

    # -- sweeping -------------------------------------------------------------------------

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
            if only_mine and _namespace_of(name) != self.namespace:
                return None
            return self.purge_entry(name, expires)

        return int(self.journal.sweep_due(purge, now=now, force=force, grace=grace))

    def purge_entry(self, name: str, expires: float) -> bool:
        """Purge a journal entry that expired at ``expires``; ``True`` if a stored file went
        (not for what unfinished writes or uploads left, nor a file renewed since).

        An entry is ``<namespace>/<storage>/<token>``, or ``<namespace>/<storage>`` when the
        token was not known before writing (an upload, a stream): then ``<storage>:t`` names
        it, unless the write never finished. A file renewed since is left alone: it was noted
        again for later. An entry of the first round is a bare ``[<namespace>/]<token>``.
        """
        parts = name.split("/")
        namespace = parts[0] if len(parts) > 1 else ""
        storage = parts[1] if len(parts) > 1 else parts[0]
        if namespace != self.namespace:
            return self._other(namespace).purge_entry(name, expires)
        keys = self.keys
        if len(parts) > 2 and parts[2]:
            token = parts[2]
        else:
            back = keys.get(keys.key(storage, "t"))
            token = back.decode("ascii", "replace") if isinstance(back, bytes) else storage
        record = read_record(keys, token)
        if record is not None and record.chunks_key == storage and not _due(record, expires):
            return False
        if record is not None and record.chunks_key == storage:
            self.purge_file(record)
            if not record.consumed:  # a consumed file left the ledger then
                self.ledger.drop(token, record.created, record.size)
            self.events.emit("removed", token=token, filename=record.filename, detail="expired")
            keys.delete(keys.key(storage, "t"))
            return True
        # An unfinished write or upload, or a copy that lost to the same content.
        self.purge_storage(storage)
        if record is None:
            self.ledger.release(storage)  # an unfinished write's reservation
            self.forget_upload(storage)
        keys.delete(keys.key(storage, "t"))
        return False

    def note(self, storage: str, expires: float | None, token: str = "") -> None:
        """Note ``storage`` (and its token, once known) in the journal for ``expires`` (``None``: never)."""
        if self.journal is not None:
            name = f"{self.namespace}/{storage}/{token}" if token else f"{self.namespace}/{storage}"
            self.journal.note(name, expires)


def _namespace_of(name: str) -> str:
    """The namespace of a journal entry (see :meth:`Lifecycle.purge_entry`)."""
    return name.split("/", 1)[0] if "/" in name else ""


def _due(record: FileRecord, noted: float) -> bool:
    """Whether ``record`` expires when its journal entry said (not renewed since)."""
    return record.expires is not None and record.expires <= noted + 0.001  # noted to the millisecond


def _two_numbers(data: object) -> tuple[int, int]:
    """``"<a> <b>"`` as two numbers; ``(0, 0)`` for anything else."""
    if not isinstance(data, bytes):
        return 0, 0
    first, _, second = data.partition(b" ")
    if not (first.isdigit() and (not second or second.isdigit())):
        return 0, 0
    return int(first), int(second or 0)


class _Leased:
    """A transfer's chunks read under its lease, renewed as they are read.

    An iterator rather than a generator: a generator that is closed before its first chunk
    never runs its ``finally``, and a response whose client went away before the body started
    would hold its file's lease (and keep an evicted file's chunks) until the lease ran out.
    """

    def __init__(self, lifecycle: Lifecycle, token: str, lease: str, chunks: Iterator[bytes]) -> None:
        self._lifecycle = lifecycle
        self._token = token
        self._lease: str | None = lease
        self._chunks = chunks
        self._started = self._renewed = time.time()

    def __iter__(self) -> _Leased:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except BaseException:  # the end, or a chunk gone: the lease ends either way
            self.close()
            raise
        now = time.time()
        if self._lease is not None and now - self._renewed > LEASE_RENEW and now - self._started < LEASE_MAX:
            with contextlib.suppress(BackendUnavailableError):  # the next renewal may do
                self._lifecycle.hold(self._token, self._lease)
            self._renewed = now
        return chunk

    def close(self) -> None:
        """Stop reading and end the lease (once)."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        close = getattr(self._chunks, "close", None)
        try:
            if callable(close):
                close()
        finally:
            self._lifecycle.release(self._token, lease)

    def __del__(self) -> None:
        # As a generator's ``finally`` would: a body dropped without being closed ends its lease.
        with contextlib.suppress(Exception):
            self.close()
