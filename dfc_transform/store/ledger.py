"""The ledger: every stored file's size and age, and every unfinished upload, shared through the backend.

It answers "how many files, how many bytes" for the whole store (every process and host
sharing the backend) and keeps the store within a byte budget: a registration that would
pass it evicts the files registered longest ago first. Unfinished uploads count against
the budget too, but never evict anything (see :mod:`.parts`).

Files are counted in buckets by the minute they were registered, in a head that keeps,
per bucket, its bytes, its file count and when its last file expires: a registration
reads and writes the head (a few dozen numbers), whatever the store holds, and expired
buckets leave the totals as a whole. With a budget, each bucket also lists its files (one
small JSON value per minute), so that eviction can take the oldest: it reads the oldest
buckets only. Everything is read and written under a lock that every sharer honours:
``flock`` on a file of this host for file-system backends, a key taken with the
backend's atomic ``add`` (Redis ``SET NX``, memcached ``add``) for shared ones, a thread
lock for an in-process cache (see :mod:`.locks`).

A file being written holds a reservation for the bytes read so far, so that concurrent
writers together never pass the budget either.

Without a budget nothing has to be decided at registration, and each process gathers
its changes and writes them to the head once a second (from a daemon thread, and
whenever it reads the totals): a registration then costs no lock and no backend call.
Changes a killed process never wrote only miss from the totals until their bucket expires.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..exc import BackendUnavailableError, FileTooLargeError, StoreFullError
from ..units import human_size
from .ledger_state import Head, Pending
from .locks import SharedLock

__all__ = ["Evict", "Head", "Kept", "Ledger"]


class Kept(NamedTuple):
    """An evicted file whose content stays until the transfer under way ends (see :mod:`.lifecycle`)."""

    size: int
    #: Unix time after which it goes whatever happens.
    until: float
    #: ``[[name, count], ...]``: where its chunks are.
    chunks: list[list[Any]]


class Evict(Protocol):
    """What the ledger asks of whoever removes files (the store's :class:`.lifecycle.Lifecycle`)."""

    def evict(self, token: str, reason: str) -> bool | Kept:
        """Remove ``token`` for ``reason``; ``False`` if it must stay (a transfer holds it),
        a :class:`Kept` if its record went but its chunks wait for a transfer to end."""

    def settle(self, token: str, kept: Kept) -> bool:
        """Remove the chunks of a kept file if its transfer has ended; ``True`` if they went."""


BUCKET_SECONDS = 60
#: How often a process writes its gathered changes (without a budget).
FLUSH_SECONDS = 1.0

logger = logging.getLogger(__name__)


class Ledger:
    """Sizes and ages of the files of one namespace, and its unfinished uploads.

    :param backend: the cache backend (its ``get``/``set``/``add``/``delete``).
    :param key: the ledger's key, e.g. ``dfc:<namespace>:ledger``.
    :param lock_dir: a directory of this host for a lock file; ``None`` locks through the
        backend (or with a thread lock when ``in_process``).
    :param budget: the most bytes the store may hold; ``None`` for no limit.
    :param listing: list files one by one even without a budget (where no expiry journal
        knows them: Redis, memcached), for :meth:`entries`.
    """

    def __init__(
        self,
        backend: Any,
        key: str,
        *,
        lock_dir: Path | None,
        in_process: bool,
        budget: int | None,
        listing: bool = False,
        name: str = "backend",
    ) -> None:
        self.backend = backend
        #: The backend as messages name it.
        self.name = name
        self.key = key
        self.budget = budget
        #: Files are listed one by one where they may have to be evicted, or where asked to.
        #: A file's entry is ``[size, created, expires, *details]`` (see :func:`.records.entry_of`).
        self.lists_files = budget is not None or listing
        self._shared_lock = SharedLock(
            backend, key, lock_dir=lock_dir, in_process=in_process, name=name, what="the ledger lock"
        )
        # Changes not yet written, per bucket; see _later() and flush().
        self._pending: dict[int, Pending] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flush_pid = os.getpid()
        self._flusher_pid: int | None = None

    # -- reading ----------------------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        """``(files, bytes)`` of the stored files now (not of files being written or uploaded)."""
        self.flush()
        head = self.read()
        head.drop_expired(time.time())
        return head.files, head.bytes

    def read(self) -> Head:
        """The head as it is now, without the lock (for reports)."""
        return Head(self._get(self.key))

    def entries(self) -> dict[str, list[Any]]:
        """Every file entered, by token (expired ones too, until their bucket goes); known
        only where the ledger lists files (see :attr:`lists_files`)."""
        self.flush()
        head = self.read()
        found: dict[str, list[Any]] = {}
        for bucket in sorted(head.buckets):
            found.update(self._bucket(bucket))
        return found

    # -- writing ----------------------------------------------------------------------

    def reserve(self, storage: str, nbytes: int, evict: Evict) -> None:
        """Hold ``nbytes`` more for the file being written under ``storage``.

        Files registered longest ago are evicted to make room; a file that cannot fit
        even in an empty store is refused with :class:`FileTooLargeError`, one that cannot
        fit beside the unfinished uploads with :class:`StoreFullError`.
        """
        with self.locked() as head:
            held = head.reserved.get(storage, 0) + nbytes
            if self.budget is not None and held > self.budget:
                head.reserved.pop(storage, None)
                raise FileTooLargeError(
                    f"the file is over the store's byte budget of {human_size(self.budget)} "
                    f"(max_total_size={self.budget}; read {held} bytes so far): raise max_total_size or "
                    "serve a smaller file",
                    size=held,
                    limit=self.budget,
                )
            uploading = head.upload_reserved
            if self.budget is not None and held + uploading > self.budget:
                head.reserved.pop(storage, None)
                raise StoreFullError(
                    f"the store's byte budget of {human_size(self.budget)} is held by unfinished "
                    f"uploads ({human_size(uploading)}), which are never evicted: try again when they "
                    "are done, or raise max_total_size",
                    needed=held,
                    available=self.budget - uploading,
                )
            head.reserved[storage] = held
            self.make_room(head, evict)

    def commit(self, storage: str, token: str, entry: list[Any], evict: Evict) -> None:
        """Enter the stored file ``token`` (its ``entry``), in place of the reservation of ``storage``."""
        size, created, expires = entry[0], entry[1], entry[2]
        if self.budget is None:
            self._later(_bucket_of(created), size, 1, expires, add=(token, entry))
            return
        with self.locked() as head:
            head.reserved.pop(storage, None)
            self.enter(head, token, entry)
            self.make_room(head, evict, keep=token)

    def enter(self, head: Head, token: str, entry: list[Any]) -> None:
        """Enter a stored file in a head held under :meth:`locked`."""
        bucket_id = _bucket_of(entry[1])
        head.add(bucket_id, entry[0], entry[2])
        if self.lists_files:
            bucket = self._bucket(bucket_id)
            bucket[token] = entry
            self._put_bucket(bucket_id, bucket)

    def renew(self, token: str, created: float, expires: float | None) -> None:
        """Push back the expiry of ``token`` (the same content registered again)."""
        if self.budget is None:
            self._later(_bucket_of(created), 0, 0, expires, renew=(token, expires))
            return
        with self.locked() as head:
            bucket_id = _bucket_of(created)
            head.extend(bucket_id, expires)
            bucket = self._bucket(bucket_id)
            if token in bucket:
                bucket[token][2] = expires
                self._put_bucket(bucket_id, bucket)

    def drop(self, token: str, created: float, size: int) -> None:
        """Forget a file (removed, consumed, swept) of ``size`` bytes."""
        if self.budget is None:
            self._later(_bucket_of(created), -size, -1, None, remove=token)
            return
        with self.locked() as head:
            bucket_id = _bucket_of(created)
            bucket = self._bucket(bucket_id)
            if bucket.pop(token, None) is not None:  # not evicted already
                head.remove(bucket_id, size)
                self._put_bucket(bucket_id, bucket)

    def release(self, storage: str) -> None:
        """Give back the reservation of a file whose writing failed or was not needed."""
        if self.budget is None:
            return  # nothing is reserved without a budget
        with self.locked() as head:
            head.reserved.pop(storage, None)

    def flush(self) -> None:
        """Write the changes this process gathered (without a budget) to the head."""
        # One flush at a time: a reader's flush waits for the flusher's to be written, rather
        # than finding nothing pending and reading the head before it is.
        if self._flush_pid != os.getpid():  # a forked child: its parent's lock may be held for good
            self._flush_lock, self._flush_pid = threading.Lock(), os.getpid()
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            with self.locked() as head:
                for bucket_id, change in pending.items():
                    head.merge(bucket_id, change.nbytes, change.files, change.expires)
                    if self.lists_files and change.listed():
                        bucket = self._bucket(bucket_id)
                        change.apply(bucket)
                        self._put_bucket(bucket_id, bucket)
        except BaseException:
            with self._pending_lock:  # they wait for the next round
                for bucket_id, change in pending.items():
                    self._pending.setdefault(bucket_id, Pending()).absorb(change)
            raise

    def _later(
        self,
        bucket_id: int,
        nbytes: int,
        files: int,
        expires: float | None,
        *,
        add: tuple[str, list[Any]] | None = None,
        renew: tuple[str, float | None] | None = None,
        remove: str | None = None,
    ) -> None:
        if self._flusher_pid != os.getpid():
            self._start_flusher()
        with self._pending_lock:
            change = self._pending.setdefault(bucket_id, Pending())
            change.count(nbytes, files, expires)
            if self.lists_files:
                change.note(add, renew, remove)

    def _start_flusher(self) -> None:
        """A daemon thread of this process writes the gathered changes once a second."""
        with self._pending_lock:
            if self._flusher_pid == os.getpid():
                return
            if self._flusher_pid is not None:
                self._pending = {}  # a forked child's copy of its parent's changes: the parent writes them
            self._flusher_pid = os.getpid()

        # The thread holds the ledger weakly: a store no longer used goes, and its thread ends
        # once its changes are written (or its backend has been gone for good).
        ledger = weakref.ref(self)

        def loop() -> None:
            failures = 0
            while True:
                time.sleep(FLUSH_SECONDS)
                this = ledger()
                if this is None:
                    return
                try:
                    this.flush()
                    failures = 0
                except Exception as err:  # the backend may be back at the next round; changes wait
                    failures += 1
                    if failures in (1, 10) or failures % 100 == 0:
                        logger.warning("writing the ledger failed (again at the next round): %s", err)
                del this

        threading.Thread(target=loop, name="dfc_transform-ledger", daemon=True).start()
        atexit.register(_flush_quietly, weakref.ref(self))

    def forget_expired(self, head: Head) -> None:
        """Drop the buckets whose every file has expired from a head held under :meth:`locked`."""
        for bucket_id in head.drop_expired(time.time()):
            if self.lists_files:
                self._delete_bucket(bucket_id)  # their keys: the sweep's, or the backend's time-to-live

    def make_room(self, head: Head, evict: Evict, keep: str | None = None) -> None:
        """Drop expired buckets; evict the oldest files (never ``keep``, nor one that a
        transfer holds) until the store is within budget. Uploads are never evicted."""
        self.forget_expired(head)
        for token, kept in list(head.kept.items()):
            if evict.settle(token, Kept(*kept)):
                del head.kept[token]
        if self.budget is None:
            return
        for bucket_id in sorted(head.buckets):
            if head.used <= self.budget:
                return
            bucket = self._bucket(bucket_id)
            changed = False
            for token, entry in sorted(bucket.items(), key=lambda item: item[1][1]):
                if head.used <= self.budget:
                    break
                if token == keep:
                    continue
                gone = evict.evict(token, "budget")
                if gone is False:
                    continue
                if isinstance(gone, Kept):
                    head.kept[token] = list(gone)
                del bucket[token]
                head.remove(bucket_id, int(entry[0]))
                changed = True
            if changed:
                self._put_bucket(bucket_id, bucket)

    # -- storage and locking -----------------------------------------------------------

    def _bucket(self, bucket_id: int) -> dict[str, list[Any]]:
        data = self._get(f"{self.key}:{bucket_id}")
        return data if isinstance(data, dict) else {}

    def _put_bucket(self, bucket_id: int, bucket: dict[str, list[Any]]) -> None:
        if bucket:
            self._set(f"{self.key}:{bucket_id}", bucket)
        else:
            self._delete_bucket(bucket_id)

    def _delete_bucket(self, bucket_id: int) -> None:
        self.backend.delete(f"{self.key}:{bucket_id}")

    def _get(self, key: str) -> Any:
        try:
            data = self.backend.get(key)
        except Exception as err:
            raise BackendUnavailableError(f"the ledger could not be read: {err}") from err
        try:
            return json.loads(data) if data is not None else None
        except (TypeError, ValueError):
            return None  # damaged or foreign: start again

    def _set(self, key: str, value: Any) -> None:
        try:
            written = self.backend.set(key, json.dumps(value, separators=(",", ":")).encode(), 0)
        except Exception as err:
            raise BackendUnavailableError(f"the ledger could not be written: {err}") from err
        if not written:
            raise BackendUnavailableError("the ledger could not be written (backend full?)")

    @contextlib.contextmanager
    def locked(self) -> Iterator[Head]:
        """The head, read under the ledger's lock and written back when the block ends
        without an error: every sharer sees the changes made in it as one."""
        with self._shared_lock.held():
            head = Head(self._get(self.key))
            yield head
            self._set(self.key, head.dump())

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """The ledger's lock alone, for other decisions every sharer must take one at a time."""
        return self._shared_lock.held()


def _flush_quietly(ledger: weakref.ref[Ledger]) -> None:
    """At exit: write what a ledger still holds, if it is still there."""
    this = ledger()
    if this is not None:
        with contextlib.suppress(Exception):
            this.flush()


def _bucket_of(created: float) -> int:
    return int(created // BUCKET_SECONDS)
