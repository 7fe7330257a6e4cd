"""The ledger: every stored file's size and age, shared through the backend.

It answers "how many files, how many bytes" for the whole store (every process
and host sharing the backend) and keeps the store within a byte budget: a
registration that would pass it evicts the files registered longest ago first.
The ledger is one JSON value in the backend, read and written under a lock that
every sharer honours: ``flock`` on a file of this host for file-system backends,
a key taken with the backend's atomic ``add`` (Redis ``SET NX``, memcached
``add``) for shared ones, a thread lock for an in-process cache.

A file being written holds a reservation (``~<storage>``) for the bytes read so
far, so that concurrent writers together never pass the budget either.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .exc import BackendUnavailableError, FileTooLargeError

__all__ = ["Evict", "Ledger"]

#: Called with a file's token and why it goes ("budget" or "expired") to remove its keys.
Evict = Callable[[str, str], None]

#: A lock taken through the backend is given up after this long, should its holder die.
LOCK_TIMEOUT = 10
_RESERVED = "~"


class Ledger:
    """Sizes and ages of the files of one namespace.

    :param backend: the cache backend (its ``get``/``set``/``add``/``delete``).
    :param key: the ledger's key, e.g. ``dfc:<namespace>:ledger``.
    :param lock_dir: a directory of this host for a lock file; ``None`` locks through the
        backend (or with a thread lock when ``in_process``).
    :param budget: the most bytes the store may hold; ``None`` for no limit.
    """

    def __init__(
        self,
        backend: Any,
        key: str,
        *,
        lock_dir: Path | None,
        in_process: bool,
        budget: int | None,
    ) -> None:
        self.backend = backend
        self.key = key
        self.budget = budget
        self._lock_path = lock_dir / f"{key.replace(':', '_')}.lock" if lock_dir is not None else None
        self._thread_lock = threading.Lock() if in_process else None

    # -- reading ----------------------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        """``(files, bytes)`` held now, files being written included in the bytes."""
        now = time.time()
        live = {n: e for n, e in self._load().items() if n.startswith(_RESERVED) or not _expired(e, now)}
        files = sum(1 for name in live if not name.startswith(_RESERVED))
        return files, sum(int(e[0]) for e in live.values())

    def tokens(self) -> list[str]:
        """The tokens of the files held now (expired ones included, until they are swept)."""
        return [name for name in self._load() if not name.startswith(_RESERVED)]

    # -- writing ----------------------------------------------------------------------

    def reserve(self, storage: str, nbytes: int, evict: Evict) -> None:
        """Hold ``nbytes`` more for the file being written under ``storage``.

        Files registered longest ago are evicted (``evict(token, "budget")``) to make room; a file
        that cannot fit even in an empty store is refused with :class:`FileTooLargeError`.
        """
        with self._locked() as entries:
            name = _RESERVED + storage
            held = int(entries.get(name, [0])[0]) + nbytes
            if self.budget is not None and held > self.budget:
                entries.pop(name, None)
                raise FileTooLargeError(
                    f"the file is over the store's byte budget of {self.budget} bytes (read {held} "
                    "bytes so far); raise max_total_size or serve a smaller file"
                )
            entries[name] = [held, time.time(), None]
            self._make_room(entries, evict)

    def commit(self, storage: str, token: str, size: int, created: float, expires: float | None) -> None:
        """Turn the reservation of ``storage`` into the entry of the stored file ``token``."""
        with self._locked() as entries:
            entries.pop(_RESERVED + storage, None)
            entries[token] = [size, created, expires]
            now = time.time()
            for name in [n for n, e in entries.items() if not n.startswith(_RESERVED) and _expired(e, now)]:
                del entries[name]  # the sweep or the backend's time-to-live removes its keys

    def renew(self, token: str, expires: float | None) -> None:
        """Push back the expiry of ``token`` (the same content registered again)."""
        with self._locked() as entries:
            if token in entries:
                entries[token][2] = expires

    def drop(self, name: str) -> None:
        """Forget a file (removed, consumed, swept) or a reservation (``storage``, on failure)."""
        with self._locked() as entries:
            entries.pop(name, None)
            entries.pop(_RESERVED + name, None)

    def _make_room(self, entries: dict[str, list[Any]], evict: Evict) -> None:
        now = time.time()
        if self.budget is None:
            return
        for name in [n for n, e in entries.items() if not n.startswith(_RESERVED) and _expired(e, now)]:
            del entries[name]
            evict(name, "expired")  # on disk until the sweep: its bytes count until they are gone
        total = sum(int(e[0]) for e in entries.values())
        oldest_first = sorted((e[1], n) for n, e in entries.items() if not n.startswith(_RESERVED))
        for _, name in oldest_first:
            if total <= self.budget:
                break
            total -= int(entries.pop(name)[0])
            evict(name, "budget")

    # -- storage and locking -----------------------------------------------------------

    def _load(self) -> dict[str, list[Any]]:
        try:
            data = self.backend.get(self.key)
        except Exception as err:
            raise BackendUnavailableError(f"the ledger could not be read: {err}") from err
        try:
            entries = json.loads(data) if data is not None else {}
        except (TypeError, ValueError):
            entries = {}  # damaged or foreign: start again
        return entries if isinstance(entries, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, list[Any]]]:
        with self._lock():
            entries = self._load()
            yield entries
            if not self.backend.set(self.key, json.dumps(entries, separators=(",", ":")).encode(), 0):
                raise BackendUnavailableError("the ledger could not be written (backend full?)")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        if self._thread_lock is not None:
            with self._thread_lock:
                yield
        elif self._lock_path is not None:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock
        else:
            lock_key = self.key + ":lock"
            deadline = time.monotonic() + 2 * LOCK_TIMEOUT
            pause = 0.001
            while not self.backend.add(lock_key, b"1", LOCK_TIMEOUT):
                if time.monotonic() > deadline:
                    raise BackendUnavailableError(f"the ledger lock {lock_key!r} was held for too long")
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            try:
                yield
            finally:
                self.backend.delete(lock_key)


def _expired(entry: list[Any], now: float) -> bool:
    return entry[2] is not None and entry[2] < now
