"""The expiry journal: removing expired files from backends that never do it themselves.

Redis and memcached drop expired keys on their own. cachelib's FileSystemCache
and SimpleCache only do so while pruning over a count threshold, which we turn
off (it could drop single chunks), so without help an expired file would stay on
disk or in memory until somebody asked for it.

Before a file's chunks are written, its token is noted in a bucket of the
journal named by the time the file expires (10-minute buckets). Now and then
(at most once a minute per process, on a registration) buckets whose files have
all expired are swept: each token's record and chunks are deleted through the
backend's public ``delete``. A token noted before its chunks also covers files
whose writing was interrupted (a cancelled background job): their chunks go too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["DirectoryJournal", "ExpiryJournal", "MemoryJournal"]

BUCKET_SECONDS = 600
SWEEP_INTERVAL = 60


class ExpiryJournal:
    """Where tokens wait for their expiry. Subclasses keep the buckets."""

    def __init__(self, *, grace: int) -> None:
        self.grace = grace
        self._next_sweep = 0.0
        self._lock = threading.Lock()

    def note(self, token: str, expires: float) -> None:
        """Remember that ``token`` expires at ``expires`` (Unix time)."""
        self._append(int(expires // BUCKET_SECONDS), token)

    def sweep_due(
        self, purge: Callable[[str], None], *, now: float | None = None, force: bool = False
    ) -> int:
        """Purge the tokens of every bucket that has fully expired; return how many.

        Runs at most once per ``SWEEP_INTERVAL`` seconds per process unless ``force``.
        """
        now = time.time() if now is None else now
        with self._lock:
            if not force and now < self._next_sweep:
                return 0
            self._next_sweep = now + SWEEP_INTERVAL
        purged = 0
        for bucket in self._buckets():
            # Chunks outlive their record by the grace period: wait for both.
            if (bucket + 1) * BUCKET_SECONDS + self.grace < now:
                for token in self._take(bucket):
                    purge(token)
                    purged += 1
        return purged

    def _append(self, bucket: int, token: str) -> None:
        raise NotImplementedError

    def _buckets(self) -> list[int]:
        raise NotImplementedError

    def _take(self, bucket: int) -> Iterable[str]:
        """Remove a bucket and return its tokens; only one caller gets them."""
        raise NotImplementedError


class MemoryJournal(ExpiryJournal):
    """For an in-process backend (``SimpleCache``)."""

    def __init__(self, *, grace: int) -> None:
        super().__init__(grace=grace)
        self._data: dict[int, list[str]] = {}

    def _append(self, bucket: int, token: str) -> None:
        with self._lock:
            self._data.setdefault(bucket, []).append(token)

    def _buckets(self) -> list[int]:
        with self._lock:
            return list(self._data)

    def _take(self, bucket: int) -> Iterable[str]:
        with self._lock:
            return self._data.pop(bucket, [])


class DirectoryJournal(ExpiryJournal):
    """For a backend shared by the processes of one host (the default ``FileSystemCache``).

    A bucket is a file of tokens, one a line. Lines are appended with ``O_APPEND``
    in one write each, which POSIX keeps whole when several processes append.
    A sweeper claims a bucket by renaming it, so two processes never sweep the
    same bucket and a bucket being written to is moved whole.
    """

    def __init__(self, directory: Path, *, grace: int) -> None:
        super().__init__(grace=grace)
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _append(self, bucket: int, token: str) -> None:
        fd = os.open(self.directory / f"{bucket}.tokens", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{token}\n".encode("ascii"))
        finally:
            os.close(fd)

    def _buckets(self) -> list[int]:
        buckets = []
        for entry in os.listdir(self.directory):
            stem, _, suffix = entry.partition(".")
            if suffix == "tokens" and stem.isdigit():
                buckets.append(int(stem))
        return buckets

    def _take(self, bucket: int) -> Iterable[str]:
        claimed = self.directory / f"{bucket}.sweeping-{os.getpid()}-{threading.get_ident()}"
        try:
            os.rename(self.directory / f"{bucket}.tokens", claimed)
        except FileNotFoundError:
            return []  # another process claimed it first
        try:
            return claimed.read_text("ascii").split()
        finally:
            claimed.unlink()
