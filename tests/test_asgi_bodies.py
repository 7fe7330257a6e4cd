"""Response bodies on the async servers (``dfc_transform.http.adapters.asgi.chunks``): read in
worker threads, and closed, not read on, when the client goes away, even in the middle of a read."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

from dfc_transform.http.adapters.asgi import chunks
from dfc_transform.http.messages import Response


def test_a_body_cancelled_in_the_middle_of_a_read_is_closed_after_it_quietly() -> None:
    events: list[str] = []
    reading = threading.Event()

    def body() -> Iterator[bytes]:
        try:
            yield b"first"
            reading.set()
            time.sleep(0.3)  # a slow read (a remote store), under way when the client goes
            events.append("second read")
            yield b"second"
            events.append("read on")  # never: the client went away
        finally:
            events.append("closed")

    async def main() -> list[dict[str, Any]]:
        problems: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: problems.append(context))

        async def send() -> None:
            async for _ in chunks(Response(200, [], body())):
                pass

        task = asyncio.ensure_future(send())
        await asyncio.to_thread(reading.wait, 5)
        task.cancel()  # the client went away
        await asyncio.sleep(0.05)
        task.cancel()  # and the server cancels again, while the body is being closed
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)
        gc.collect()
        await asyncio.sleep(0)
        return problems

    problems = asyncio.run(main())
    assert problems == []  # no "Task exception was never retrieved", no "generator already executing"
    assert events == ["second read", "closed"]
