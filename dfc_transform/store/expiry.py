"""The expiry journal: removing expired files from backends that never do it themselves.

Redis and memcached drop expired keys on their own. cachelib's FileSystemCache
and SimpleCache only do so while pruning over a count threshold, which we turn
off (it could drop single chunks), so without help an expired file would stay on
disk or in memory until somebody asked for it.

Before a file's chunks are written, its token is noted in a bucket of the
journal named by the time the file expires (one-minute buckets), with that time.
Every ``SWEEP_INTERVAL`` seconds a daemon thread of each process that registered
a file sweeps what expired more than ``GRACE`` seconds ago: each file's record and
chunks are deleted through the backend's public ``delete``. A token noted before its chunks also covers files
whose writing was interrupted (a cancelled background job, a process killed):
their chunks go too. In a directory journal the sweep also removes the temp
files that a write cut short (a full disk, a killed process) left in the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = ["DirectoryJournal", "ExpiryJournal", "MemoryJournal"]

logger = logging.getLogger(__name__)

BUCKET_SECONDS = 60
#: How often each process's sweeper runs; with the grace, every file is gone at most
#: ``GRACE + SWEEP_INTERVAL`` seconds after its expiry.
SWEEP_INTERVAL = 30
#: A transfer that started just before its file expired has this long to finish.
GRACE = 30
#: Where files that never expire are noted (a bucket no sweep reaches: the year 36812).
NEVER = float(2**40)
#: A backend's temp file unchanged for this long was left by a write that failed or was
#: killed: a write puts one chunk (1 MiB at most) and renames it, in milliseconds.
STALE_TEMP_AGE = 5


class ExpiryJournal:
    """Where tokens wait for their expiry. Subclasses keep the buckets."""

    def __init__(self, *, grace: int) -> None:
        self.grace = grace
        self._next_sweep = 0.0
        self._lock = threading.Lock()
        self._sweeper_pid: int | None = None

    def start_sweeper(self, sweep: Callable[[], object]) -> None:
        """Run ``sweep`` every ``SWEEP_INTERVAL`` seconds in a daemon thread of this process.

        Started on a process's first registration (again in a forked child, where the
        parent's thread does not exist), so that sweeping never delays a registration.
        """
        if self._sweeper_pid == os.getpid():
            return
        with self._lock:
            if self._sweeper_pid == os.getpid():
                return
            self._sweeper_pid = os.getpid()

        def loop() -> None:
            while True:
                time.sleep(SWEEP_INTERVAL)
                try:
                    sweep()
                except Exception as err:  # a backend down now may be back at the next round
                    logger.warning("sweeping expired files failed (again at the next round): %s", err)

        threading.Thread(target=loop, name="dfc_transform-sweeper", daemon=True).start()

    def note(self, name: str, expires: float | None) -> None:
        """Remember that the file ``name`` expires at ``expires`` (Unix time; ``None``: never,
        noted all the same, so that the journal lists every file)."""
        when = NEVER if expires is None else expires
        self._append(int(when // BUCKET_SECONDS), f"{name} {when:.3f}")

    def names(self) -> Iterator[tuple[str, float]]:
        """Every entry noted, ``(name, expires)``, without taking any (for listing files)."""
        for bucket in self._buckets():
            for entry in self._peek(bucket):
                name, _, expires = entry.partition(" ")
                yield name, _float(expires, default=(bucket + 1) * BUCKET_SECONDS)

    def sweep_due(
        self,
        purge: Callable[[str, float], bool | None],
        *,
        now: float | None = None,
        force: bool = False,
        grace: float | None = None,
    ) -> int:
        """Purge every file whose expiry plus ``grace`` has passed; return how many went.

        ``purge(name, expires)`` removes a file noted to expire at ``expires`` and tells
        whether it did (a file renewed since is left alone), or ``None`` to keep the entry.

        Runs at most once per ``SWEEP_INTERVAL`` seconds per process unless ``force``.
        ``grace`` (default: the journal's) lets a transfer that started just before the
        file expired finish; ``0`` removes every expired file now.
        """
        now = time.time() if now is None else now
        grace = self.grace if grace is None else grace
        with self._lock:
            if not force and now < self._next_sweep:
                return 0
            self._next_sweep = now + SWEEP_INTERVAL
        purged = 0
        self._remove_stale_temp_files(now)
        for bucket in self._buckets():
            if bucket * BUCKET_SECONDS + grace > now:
                continue  # nothing in it has expired long enough
            for entry in self._take(bucket):
                name, _, expires = entry.partition(" ")
                due = _float(expires, default=(bucket + 1) * BUCKET_SECONDS)
                if due + grace <= now:
                    result = purge(name, due)
                    if result is None:  # not this sweeper's to remove: it stays noted
                        self._append(bucket, entry)
                    else:
                        purged += result
                else:
                    self._append(bucket, entry)
        return purged

    def _remove_stale_temp_files(self, now: float) -> None:
        """Remove what interrupted writes left behind (only a directory journal has any)."""

    def _append(self, bucket: int, entry: str) -> None:
        raise NotImplementedError

    def _buckets(self) -> list[int]:
        raise NotImplementedError

    def _take(self, bucket: int) -> Iterable[str]:
        """Remove a bucket and return its entries; only one caller gets them."""
        raise NotImplementedError

    def _peek(self, bucket: int) -> Iterable[str]:
        """A bucket's entries, left where they are."""
        raise NotImplementedError


def _float(text: str, *, default: float) -> float:
    """An entry's expiry; entries of the first round have none: their bucket's end is theirs."""
    try:
        return float(text)
    except ValueError:
        return default


class MemoryJournal(ExpiryJournal):
    """For an in-process backend (``SimpleCache``)."""

    def __init__(self, *, grace: int) -> None:
        super().__init__(grace=grace)
        self._data: dict[int, list[str]] = {}

    def _append(self, bucket: int, entry: str) -> None:
        with self._lock:
            self._data.setdefault(bucket, []).append(entry)

    def _buckets(self) -> list[int]:
        with self._lock:
            return list(self._data)

    def _take(self, bucket: int) -> Iterable[str]:
        with self._lock:
            return self._data.pop(bucket, [])

    def _peek(self, bucket: int) -> Iterable[str]:
        with self._lock:
            return list(self._data.get(bucket, []))


class DirectoryJournal(ExpiryJournal):
    """For a backend shared by the processes of one host (the default ``FileSystemCache``).

    A bucket is a file of tokens, one a line. Lines are appended with ``O_APPEND``
    in one write each, which POSIX keeps whole when several processes append.
    A sweeper claims a bucket by renaming it, so two processes never sweep the
    same bucket and a bucket being written to is moved whole.
    """

    def __init__(
        self,
        directory: Path,
        *,
        grace: int,
        temp_dir: Path | None = None,
        temp_suffix: str = "",
        temp_age: float = STALE_TEMP_AGE,
    ) -> None:
        super().__init__(grace=grace)
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        #: Where the backend writes its temp files, and their suffix.
        self.temp_dir = temp_dir
        self.temp_suffix = temp_suffix
        self.temp_age = temp_age

    def _remove_stale_temp_files(self, now: float) -> None:
        if self.temp_dir is None or not self.temp_suffix:
            return
        try:
            entries = list(os.scandir(self.temp_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.endswith(self.temp_suffix):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < now - self.temp_age:
                        os.unlink(entry.path)

    def _append(self, bucket: int, entry: str) -> None:
        fd = os.open(self.directory / f"{bucket}.tokens", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{entry}\n".encode("ascii"))
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
            return claimed.read_text("ascii").splitlines()
        finally:
            claimed.unlink()

    def _peek(self, bucket: int) -> Iterable[str]:
        try:
            return (self.directory / f"{bucket}.tokens").read_text("ascii", "replace").splitlines()
        except FileNotFoundError:
            return []
