"""What the ASGI adapters (Quart, Starlette) share: the core's blocking work off the event loop.

The HTTP core and the store make blocking calls (a file read, a Redis round trip), so on an
async server they run in worker threads, never on the event loop:

- :func:`answer` runs the core for a request in a thread;
- :class:`BlockingBody` lets the core read an async request body with blocking ``read(n)``
  calls from that thread (uploads);
- :func:`chunks` sends a response body chunk by chunk, each read in a thread, so that memory
  stays at a chunk or two per transfer; when the client goes away the server cancels it,
  and the body is closed (in a thread) without being read to its end: a one-time file's
  transfer that did not finish consumes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ..messages import FileBody, Request, Response

logger = logging.getLogger(__name__)

__all__ = ["BlockingBody", "answer", "chunks"]

_DONE = object()


async def answer(handle: Callable[[Request], Response], request: Request) -> Response:
    """``handle(request)``, run in a worker thread."""
    return await asyncio.to_thread(handle, request)


class BlockingBody:
    """An async stream of byte chunks, read with blocking ``read(n)`` calls from another thread."""

    def __init__(self, source: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._source = source
        self._loop = loop
        self._buffer = b""
        self._ended = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            future = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            piece = future.result()
            if piece is None:
                self._ended = True
            else:
                self._buffer += piece
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    async def _next(self) -> bytes | None:
        try:
            return await self._source.__anext__()
        except StopAsyncIteration:
            return None
        except Exception:  # the client went away: the core sees the body end early
            return None


async def chunks(response: Response) -> AsyncIterator[bytes]:
    """The response's body, each piece read in a worker thread."""
    body = response.body
    if isinstance(body, bytes):
        if body:
            yield body
        return
    iterator: Iterator[bytes] = body.chunks() if isinstance(body, FileBody) else iter(body)
    # A generator cannot be closed while a thread runs it: the close waits for the read under way.
    lock = threading.Lock()

    def step() -> Any:
        with lock:
            return next(iterator, _DONE)

    def close() -> None:
        with lock:
            closer = getattr(iterator, "close", None)
            if callable(closer):
                closer()

    try:
        while True:
            piece: Any = await asyncio.to_thread(step)
            if piece is _DONE:
                return
            yield piece
    finally:
        # Not read to its end (the client went away, the task was cancelled): close it, so
        # that what it holds (a file, a one-time claim not yet made) is let go, even if this
        # task is cancelled again meanwhile.
        closing = asyncio.ensure_future(asyncio.to_thread(close))
        closing.add_done_callback(_quietly)
        with contextlib.suppress(BaseException):
            await asyncio.shield(closing)


def _quietly(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished task's error (logged once), so that asyncio does not report it."""
    if not task.cancelled() and task.exception() is not None:
        logger.debug("closing a response body failed: %r", task.exception())
