"""A lock that every process (and host) sharing a backend honours.

What the lock is depends on where the data lives, as the backend's profile says:

- a thread lock, for a cache in this process (``SimpleCache``): nobody else sees its data;
- ``flock`` on a file of this host, for file-system backends: the kernel releases it when its
  holder dies, however it dies;
- a key taken with the backend's atomic ``add`` (Redis ``SET NX``, memcached ``add``, a
  conditional write on S3), for shared backends: it carries a time-to-live, so that a holder
  that dies gives it up after :data:`LOCK_TIMEOUT` seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..exc import BackendUnavailableError

__all__ = ["LOCK_TIMEOUT", "SharedLock"]

#: A lock taken through the backend is given up after this long, should its holder die.
LOCK_TIMEOUT = 10


class SharedLock:
    """The lock of what is kept under ``key`` in ``backend`` (the ledger's key, say): the key
    ``<key>:lock`` in the backend, or the file ``<key>.lock`` (colons as underscores) in
    ``lock_dir``. Not reentrant.

    :param lock_dir: a directory of this host for a lock file; ``None`` locks through the
        backend (or with a thread lock when ``in_process``).
    :param name: the backend as messages name it.
    :param what: the lock as messages name it.
    """

    def __init__(
        self, backend: Any, key: str, *, lock_dir: Path | None, in_process: bool, name: str, what: str
    ) -> None:
        self.backend = backend
        self.key = key + ":lock"
        self.name = name
        self.what = what
        self._path = lock_dir / f"{key.replace(':', '_')}.lock" if lock_dir is not None else None
        self._thread_lock = threading.Lock() if in_process else None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block.

        :raises BackendUnavailableError: the backend does not answer, or the lock stayed taken
            for twice :data:`LOCK_TIMEOUT`.
        """
        if self._thread_lock is not None:
            with self._thread_lock:
                yield
        elif self._path is not None:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock
        else:
            self._take()
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    self.backend.delete(self.key)

    def _take(self) -> None:
        """Take the lock's key, waiting (with backoff) while another holds it."""
        deadline = time.monotonic() + 2 * LOCK_TIMEOUT
        pause = 0.001
        free = 0
        free_since = 0.0
        while True:
            try:
                taken = self.backend.add(self.key, b"1", LOCK_TIMEOUT)
                held = taken or self.backend.get(self.key) is not None
            except Exception as err:
                raise BackendUnavailableError(f"{self.what} could not be taken: {err}") from err
            if taken:
                return
            if held:
                free = 0
            elif free == 0:
                free, free_since = 1, time.monotonic()
            else:
                free += 1
            # Not taken, and nobody holds it, time after time for a while: a memcached client
            # answers so when its server is down (it reports every failure as a miss). Once
            # or twice it is only a holder that let go between our two requests (a busy lock).
            if free >= 10 and time.monotonic() - free_since > 0.5:
                raise BackendUnavailableError(
                    f"the {self.name} cannot be reached: it neither takes {self.what}'s key nor shows "
                    "who holds it (is its server running?)"
                )
            if time.monotonic() > deadline:
                raise BackendUnavailableError(f"{self.what} {self.key!r} was held for too long")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
