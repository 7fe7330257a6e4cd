"""Files served while they are written: a generator drained into the store as browsers read.

:meth:`Growing.start` stores the file's record at once, marked ``growing`` (no size yet), and
drains the content in a thread of this process: chunk after chunk into the backend, each
followed by the count of chunks written so far under ``<storage>:g`` with the time. A GET from
any worker or host that shares the backend *follows* the writer (:meth:`Growing.follow`):
it sends each chunk as it appears, waiting for the next one a little at a time, and once the
record says the file is complete, it sends the rest as of any stored file.

While the file grows its size is unknown: the answer has no ``Content-Length`` (HTTP/1.1
sends it chunked) unless ``File(..., size=n)`` declared it, and no ranges. Once complete it is
an ordinary stored file (size, ranges, ETag).

When the content fails (the generator raises, a size cap, the backend), the record goes and
the written chunks with it: every transfer that follows it ends as failed (its connection is
closed without the last chunk) and later GETs are 404s. A writer that dies with its process
writes no more: a thread of each writing process refreshes the time under ``<storage>:g``
every :data:`HEARTBEAT` seconds, and a follower that finds it older than :data:`DEAD_AFTER`
gives up the same way; the journal's sweep removes what is left when the file expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from ..exc import ContentMissingError, FileServeError
from .records import FileRecord, entry_of, read_record, write_record

if TYPE_CHECKING:
    from ..values import Source
    from .chunkstore import ChunkStore

__all__ = ["DEAD_AFTER", "HEARTBEAT", "Growing"]

logger = logging.getLogger(__name__)

#: Seconds between two signs of life of a writer whose content is slow to come.
HEARTBEAT = 2.0
#: A writer silent for this long is taken for dead: its followers fail.
DEAD_AFTER = 15.0
#: A follower waits this long at first for the next chunk, then longer, up to _MAX_PAUSE.
_FIRST_PAUSE = 0.01
_MAX_PAUSE = 0.2


class Growing:
    """Writing and following files that are served while they are written."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store
        self._beating: dict[str, int] = {}  # storage -> chunks written, for the heartbeat thread
        self._lock = threading.Lock()
        self._heart: threading.Thread | None = None

    # -- the writer ------------------------------------------------------------------------

    def start(self, source: Source, record: FileRecord, *, max_size: int | None) -> FileRecord:
        """Store ``record`` as growing, and drain ``source`` into it in a thread; return at once."""
        store = self.store
        keys = store.keys
        record = replace(record, growing=True, chunked=True)
        # Noted before the first chunk: what a writer that dies leaves is swept at expiry.
        store.lifecycle.note(record.storage, record.expires, record.token)
        self._progress(record.storage, 0)
        write_record(keys, record)
        self._beat(record.storage, 0)
        thread = threading.Thread(
            target=self._drain, args=(source, record, max_size), name="dfc-growing-file", daemon=False
        )
        thread.start()
        return record

    def _drain(self, source: Source, record: FileRecord, max_size: int | None) -> None:
        store = self.store
        keys = store.keys
        storage = record.storage
        written = 0
        try:
            content = store.budgeted(source, storage, max_size, None, record.chunk_size)
            for piece in content:
                keys.set(keys.key(storage, written), piece, keys.chunk_timeout)
                written += 1
                self._progress(storage, written)
                self._beat(storage, written)
            if record.size and content.size != record.size:
                raise FileServeError(
                    f"the content declared {record.size} bytes (File(size=...)) and made {content.size}"
                )
            done = replace(record, growing=False, size=content.size, modified=time.time())
            # Counted before it is seen complete: a follower that ends finds it in the totals.
            store.ledger.commit(storage, done.token, entry_of(done), store.lifecycle)
            store.events.emit("registered", token=done.token, filename=done.filename, size=done.size)
            write_record(keys, done)
            keys.delete(keys.key(storage, "g"))
        except BaseException as err:
            self._fail(record, written, err)
        finally:
            self._beat(storage, None)
            source.release()

    def _fail(self, record: FileRecord, written: int, err: BaseException) -> None:
        """The content failed: its record and chunks go, so that followers and later GETs fail."""
        store = self.store
        keys = store.keys
        detail = f"{record.filename!r} failed while it was made: {type(err).__name__}: {err}"
        logger.warning("%s", detail)
        store.events.emit("failed", token=record.token, filename=record.filename, detail=detail)
        try:
            keys.delete(keys.key(record.token, "m"))
            keys.set(keys.key(record.storage, "g"), b"failed", keys.record_timeout)
            store.lifecycle.purge_chunks(record.storage, written)
            store.ledger.release(record.storage)
        except Exception as cleanup:  # the backend is down: the sweep removes it at expiry
            logger.warning("removing the parts of %r failed: %s", record.filename, cleanup)

    def _progress(self, storage: str, written: int) -> None:
        keys = self.store.keys
        keys.set(keys.key(storage, "g"), f"{written} {time.time():.3f}".encode(), keys.record_timeout)

    # -- the heartbeat ---------------------------------------------------------------------

    def _beat(self, storage: str, written: int | None) -> None:
        """Note ``storage`` as being written (``None``: no longer) for the heartbeat thread."""
        with self._lock:
            if written is None:
                self._beating.pop(storage, None)
                return
            self._beating[storage] = written
            if self._heart is None or not self._heart.is_alive():
                self._heart = threading.Thread(
                    target=self._heartbeat, name="dfc-growing-heartbeat", daemon=True
                )
                self._heart.start()

    def _heartbeat(self) -> None:
        while True:
            time.sleep(HEARTBEAT)
            with self._lock:
                beating = dict(self._beating)
                if not beating:
                    self._heart = None
                    return
            for storage, written in beating.items():
                try:
                    self._progress(storage, written)
                except Exception as err:  # the backend is down: followers will say so
                    logger.debug("heartbeat of %s failed: %s", storage, err)

    # -- the followers ---------------------------------------------------------------------

    def check_alive(self, record: FileRecord) -> None:
        """:raises ContentMissingError: the writer of the growing file failed or died."""
        self._written(record)

    def follow(self, record: FileRecord) -> Iterator[bytes]:
        """The whole content of a growing file, each chunk as soon as it is written.

        :raises ContentMissingError: mid-stream, when the writer fails or dies.
        """
        store = self.store
        keys = store.keys
        index = 0
        pause = _FIRST_PAUSE
        while True:
            data = keys.get(keys.key(record.storage, index))
            if isinstance(data, bytes):
                yield data
                index += 1
                pause = _FIRST_PAUSE
                continue
            current = read_record(keys, record.token)
            if current is None:
                raise ContentMissingError(f"{record.filename!r} failed while it was made")
            if not current.growing:
                # Complete: the rest (nothing, or the chunks written since we looked) as stored.
                start = index * current.chunk_size
                if start < current.size:
                    yield from store.contents.iter_chunks(current, start, current.size)
                return
            written = self._written(record)
            if written > index:
                continue  # written between our two reads
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)

    def _written(self, record: FileRecord) -> int:
        """Chunks the writer has written; :raises ContentMissingError: it failed or died."""
        keys = self.store.keys
        text = keys.get(keys.key(record.storage, "g"))
        if not isinstance(text, bytes) or text == b"failed":
            if read_record(keys, record.token) is not None and not isinstance(text, bytes):
                return 0  # complete meanwhile (its progress key goes last)
            raise ContentMissingError(f"{record.filename!r} failed while it was made")
        count, _, when = text.decode("ascii", "replace").partition(" ")
        try:
            written, noted = int(count), float(when)
        except ValueError:
            raise ContentMissingError(f"{record.filename!r} has damaged progress") from None
        if time.time() - noted > DEAD_AFTER:
            raise ContentMissingError(
                f"the process making {record.filename!r} stopped {int(time.time() - noted)} s ago"
            )
        return written
