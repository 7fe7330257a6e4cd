"""Content that a library writes, read by the store as it is written.

A built-in converter does not produce bytes: it returns a :class:`Written`, the function
that writes the file (``df.to_csv(sink)``, ``fig.savefig(sink)``). Nothing runs until the
store reads it; then the function writes into a sink in one of two ways:

- **through a pipe** (the default): the function runs in a thread and writes into a
  bounded in-memory pipe that the store empties chunk by chunk. The writer waits while
  the pipe is full, so a 2 GB CSV export never sits in memory whole: at most the pipe's
  limit, one write and one chunk do. What the writer raises is raised again on the
  reading side, when the pipe runs dry; if the store stops reading (a size cap, a backend
  failure), the writer's next write raises ``BrokenPipeError`` and the thread ends.
- **through a spool**, in the caller's thread, for writers that seek or that build the
  whole file in memory when they cannot (TIFF, xlsx, Feather), and for libraries that
  must not run in another thread (matplotlib is not thread-safe; a figure may belong to
  pyplot): a ``tempfile.SpooledTemporaryFile`` holds the file in memory up to a few MiB
  and on disk beyond; the store then reads it back.

The pipe is a lock-guarded ``bytearray`` rather than ``os.pipe()``: no file descriptors
to leak and no ``SIGPIPE`` where a server has restored its default action.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from ...exc import FileServeError, UnsupportedValueError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["PIPE_LIMIT", "SPOOL_MEMORY", "Written", "text_sink"]

#: Bytes the pipe holds before the writer waits for the store to read.
PIPE_LIMIT = 1024 * 1024
#: Bytes a spool keeps in memory before it moves to a temporary file.
SPOOL_MEMORY = 4 * 1024 * 1024
#: Seconds a writer told to stop (its reader gone) is waited for; it stops at its next
#: write, and a daemon thread it stays if that takes longer (a long render, say).
_STOP_WAIT = 10.0


class Written:
    """A file that ``write(sink, **options)`` writes, readable like a binary stream.

    :param write: writes the whole file into the binary file object it is given.
    :param name: the file name its format suggests (``figure.png``), for files given none.
    :param what: what is written, for messages (``a pandas.DataFrame as csv``).
    :param spool: write into a spool in the caller's thread instead of through the pipe
        (a writer that seeks, or one that must stay in the caller's thread).
    :param charset: the text encoding of the content (``utf-8``), ``None`` for binary.
    :param sandbox: how HTML it makes is to be sandboxed when the file's options do not say
        (``"allow-scripts"``: its own script runs, in an opaque origin).
    :param options: keyword arguments for ``write``; the value's ``writer`` options are
        added to them by :meth:`configure`.
    """

    def __init__(
        self,
        write: Callable[..., object],
        *,
        name: str,
        what: str,
        spool: bool = False,
        charset: str | None = None,
        sandbox: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.write = write
        self.sandbox = sandbox
        self.name = name
        self.what = what
        self.spool = spool
        self.charset = charset
        self.options: dict[str, Any] = dict(options or {})
        self._read: Callable[[int], bytes] | None = None
        self._pipe: _Pipe | None = None
        self._thread: threading.Thread | None = None
        self._spool: IO[bytes] | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<Written {self.what} ({self.name})>"

    def configure(self, writer: Mapping[str, Any]) -> None:
        """Add the value's writer options; an ``encoding`` among them is the content's charset."""
        self.options.update(writer)
        encoding = writer.get("encoding")
        if self.charset is not None and isinstance(encoding, str):
            # A BOM does not change the charset: utf-8-sig is served as utf-8.
            self.charset = "utf-8" if encoding.lower().replace("_", "-") == "utf-8-sig" else encoding

    # -- the reading side (what Source.chunks and Source.release call) ---------------

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest if negative); ``b""`` at the end.

        The first call starts the writer; the last raises what the writer raised.
        """
        if size < 0:
            return b"".join(iter(lambda: self.read(PIPE_LIMIT), b""))
        if self._read is None:
            self._read = self._spooled() if self.spool else self._piped()
        data = self._read(size)
        if not data and self._thread is not None:
            self._thread.join()  # the writer has closed the pipe: it is returning
            self._thread = None
            if self._error is not None:
                error, self._error = self._error, None
                raise self._failure(error) from error
        return data

    def close(self) -> None:
        """Stop the writer (its next write raises ``BrokenPipeError``) and free the spool."""
        if self._pipe is not None:
            self._pipe.close_reading()
        if self._thread is not None:
            self._thread.join(_STOP_WAIT)
            self._thread = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    # -- the two ways of writing -----------------------------------------------------

    def _piped(self) -> Callable[[int], bytes]:
        pipe = self._pipe = _Pipe(PIPE_LIMIT)
        # The writer sees the caller's context variables (decimal contexts, a tracing span).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._feed, pipe), name="dfc-writer", daemon=True
        )
        self._thread.start()
        return pipe.take

    def _feed(self, pipe: _Pipe) -> None:
        sink = _Sink(pipe)
        try:
            self.write(sink, **self.options)
        except BaseException as err:  # handed to the reading side, which raises it
            self._error = err
        finally:
            pipe.close_writing()

    def _spooled(self) -> Callable[[int], bytes]:
        # Closed by close(), once the store has read it.
        spool = self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, mode="w+b")  # noqa: SIM115
        try:
            self.write(spool, **self.options)
        except Exception as err:
            raise self._failure(err) from err
        spool.seek(0)
        return spool.read

    def _failure(self, err: BaseException) -> BaseException:
        """What the store's caller sees of a writer's exception: the cause, with context."""
        if isinstance(err, FileServeError) or not isinstance(err, Exception):
            return err
        if isinstance(err, ImportError) and err.name:
            package = err.name.split(".")[0]
            return UnsupportedValueError(
                f"writing {self.what} needs {package}, which is not installed: pip install {package}"
            )
        return FileServeError(f"writing {self.what} failed: {type(err).__name__}: {err}")


class _Pipe:
    """A bounded byte pipe between one writing and one reading thread."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._lock = threading.Condition()
        self._writing = True
        self._reading = True
        # How much the reader waits for, so that the writer wakes it once per piece, not per write.
        self._want = 1

    def put(self, data: ReadableBuffer) -> None:
        view = memoryview(data).cast("B")
        # A large write (numpy hands over 16 MiB at a time) goes in limit-sized pieces, so
        # that the pipe never holds much more than its limit.
        for start in range(0, len(view), self._limit):
            self._put(view[start : start + self._limit])

    def _put(self, piece: memoryview) -> None:
        with self._lock:
            while len(self._buffer) >= self._limit and self._reading:
                self._lock.wait()
            if not self._reading:
                raise BrokenPipeError("the store stopped reading this file (refused or failed)")
            self._buffer += piece
            if len(self._buffer) >= self._want:
                self._lock.notify_all()

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes (``size`` > 0) once that many are there or the writer is done."""
        with self._lock:
            # Never more than the limit: a writer waiting on a full pipe must wake the reader.
            self._want = min(size, self._limit)
            while self._writing and len(self._buffer) < self._want:
                self._lock.wait()
            n = min(size, len(self._buffer))
            data = bytes(memoryview(self._buffer)[:n])
            del self._buffer[:n]
            self._lock.notify_all()
            return data

    def close_writing(self) -> None:
        with self._lock:
            self._writing = False
            self._lock.notify_all()

    def close_reading(self) -> None:
        with self._lock:
            self._reading = False
            self._buffer.clear()
            self._lock.notify_all()


class _Sink(io.BufferedIOBase):
    """The binary file object a writer writes into: not seekable, every write whole.

    Not an ``io.BufferedWriter``: numpy would take it for a file on disk and call ``tofile``.
    """

    def __init__(self, pipe: _Pipe) -> None:
        super().__init__()
        self._pipe = pipe
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        if self.closed:
            raise ValueError("write to a closed file")
        size = memoryview(data).nbytes
        self._pipe.put(data)
        self._position += size
        return size

    def tell(self) -> int:
        # What zipfile, pyarrow and matplotlib ask to learn where they are; seeking stays refused.
        return self._position


@contextlib.contextmanager
def text_sink(sink: IO[bytes], encoding: str = "utf-8") -> Iterator[IO[str]]:
    """``sink`` as a text file for writers that write ``str``; the sink stays open afterwards."""
    text = io.TextIOWrapper(sink, encoding=encoding, newline="")
    try:
        yield text
        text.flush()
    finally:
        text.detach()
