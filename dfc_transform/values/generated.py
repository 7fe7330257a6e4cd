"""Content made while it is served: a generator or iterator of bytes, sync or async.

A callback that returns ``(row.encode() for row in rows())`` answers at once with the URL;
the store drains the generator in a thread of its own (see :mod:`dfc_transform.store.growing`)
while browsers already receive what it has made. Here the value becomes a readable stream:

- a sync iterator is read in the draining thread, piece by piece;
- an async iterator (an ``async def`` generator) is run on an event loop of its own in a
  helper thread, a few pieces ahead of the reader (a bounded queue): the app's event loop is
  never blocked, and nothing waits on it.

Each piece must be bytes (or a bytearray, a memoryview): text is encoded by the generator
itself (``line.encode()``), so that the file's bytes are exactly what it yields.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..exc import UnsupportedValueError

__all__ = ["IteratorReader", "is_async_iterator", "is_iterator"]

#: Pieces an async generator may run ahead of the store.
_AHEAD = 4
_END = object()


def is_iterator(value: Any) -> bool:
    """A generator or another iterator (not a file object, whose iteration is by lines)."""
    return isinstance(value, Iterator) and not callable(getattr(value, "read", None))


def is_async_iterator(value: Any) -> bool:
    return isinstance(value, AsyncIterator)


class IteratorReader:
    """A binary stream over an iterator of bytes: ``read(n)`` as a file's."""

    def __init__(self, pieces: Iterator[Any] | AsyncIterator[Any], what: str) -> None:
        self._pieces: Iterator[Any] = _from_async(pieces) if isinstance(pieces, AsyncIterator) else pieces
        self._what = what
        self._pending = b""
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._pending) < size):
            piece = next(self._pieces, _END)
            if piece is _END:
                self._done = True
                break
            if not isinstance(piece, (bytes, bytearray, memoryview)):
                raise UnsupportedValueError(
                    f"{self._what} yielded a {type(piece).__name__}; it must yield bytes "
                    "(encode text as it is made: line.encode())"
                )
            self._pending += bytes(piece)
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        """Stop the generator (its ``finally`` blocks run)."""
        close = getattr(self._pieces, "close", None)
        if callable(close):
            close()


def _from_async(pieces: AsyncIterator[Any]) -> Iterator[Any]:
    """The items of an async iterator, made by an event loop of its own in a helper thread."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    async def pump() -> None:
        try:
            async for piece in pieces:
                while not stop.is_set():
                    try:
                        ahead.put(piece, timeout=0.1)
                        break
                    except queue.Full:
                        await asyncio.sleep(0)
                if stop.is_set():
                    return
            ahead.put(_END)
        except BaseException as err:  # raised again on the reading side
            ahead.put(_Failed(err))
        finally:
            aclose = getattr(pieces, "aclose", None)
            if callable(aclose):
                await aclose()

    thread = threading.Thread(target=asyncio.run, args=(pump(),), name="dfc-async-generator", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error
