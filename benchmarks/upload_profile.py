"""Where a worker's time goes during uploads: stage timers and cProfile for ``benchmarks.uploads --profile``.

Enabled in the benchmark's gunicorn worker by ``DFC_BENCH_PROFILE`` (``stages`` or ``cprofile``), never
otherwise: :func:`install` wraps the functions an upload's part passes through (the library's code is not
changed, only the names it looks up at call time are replaced in this process), and :func:`wrap` the WSGI
app, which tells each request's kind (one of our parts, one of the bare endpoint's, a start, a completion).

``stages``: every wrapped call adds its wall and CPU time (``time.thread_time``) to its stage, named by the
stages it runs inside (``chunk write > os.writev``), per kind of request; what a request took besides its
stages is the framework's (Flask, Werkzeug, the response). ``cprofile``: one ``cProfile.Profile`` per thread
and kind of request, on only while the thread answers a part; merged when reported. The report is the JSON of
:func:`report`, served by the benchmark app at ``/bench/profile``.
"""

from __future__ import annotations

import cProfile
import functools
import io
import os
import pstats
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MODES", "install", "kind_of", "report", "reset", "stage", "wrap"]

MODES = ("stages", "cprofile")

_local = threading.local()
_lock = threading.Lock()
#: (kind, stage path) -> [calls, wall seconds, CPU seconds]
_totals: dict[tuple[str, str], list[float]] = {}
#: (thread id, kind) -> a profiler, on while that thread answers a request of that kind.
_profilers: dict[tuple[int, str], cProfile.Profile] = {}

BACKGROUND = "background threads"
REQUEST = "request (whole, in the WSGI app)"


def _add(kind: str, path: str, wall: float, cpu: float) -> None:
    with _lock:
        entry = _totals.setdefault((kind, path), [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu


class stage:
    """Time the block as stage ``name``, inside whatever stages this thread is in already."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        stack: list[str] = getattr(_local, "stack", None) or []
        _local.stack = [*stack, self.name]
        self.wall = time.perf_counter()
        self.cpu = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.perf_counter() - self.wall, time.thread_time() - self.cpu
        stack: list[str] = _local.stack
        _add(getattr(_local, "kind", BACKGROUND), " > ".join(stack), wall, cpu)
        _local.stack = stack[:-1]


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        with stage(name):
            return function(*args, **kwargs)

    return timed_call


class _Module:
    """A module as another module sees it, with some of its functions timed."""

    def __init__(self, module: Any, **replaced: Callable[..., Any]) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def install() -> None:
    """Time the stages of the upload path in this process (``stages`` mode)."""
    import fcntl
    import zlib

    from cachelib import FileSystemCache

    import dfc_transform.http.uploads as protocol
    import dfc_transform.store.filecache as filecache
    import dfc_transform.store.ledger as ledger
    from dfc_transform.http.tickets import Tickets
    from dfc_transform.store.chunkstore import ChunkStore
    from dfc_transform.store.keys import Keys
    from dfc_transform.store.parts import Uploads

    def time_as(name: str, owner: Any, attribute: str) -> None:
        setattr(owner, attribute, timed(name, getattr(owner, attribute)))

    time_as("body read (read_exact)", protocol, "read_exact")
    time_as("malloc_trim", protocol, "release_memory")
    time_as("ticket and handle checks", Tickets, "ticket")
    time_as("ticket and handle checks", Tickets, "handle")
    time_as("record lookup (complete already?)", ChunkStore, "get")
    time_as("ledger: begin attempt", Uploads, "begin_attempt")
    time_as("ledger: publish", Uploads, "publish")
    time_as("chunk write (store)", Uploads, "write_chunk")
    time_as("free-space check (statvfs)", Keys, "check_room")
    time_as("read a key", filecache.BytesFileSystemCache, "_read")
    time_as("take a temp file", filecache._TempFiles, "take")
    name_of = timed("file name (md5 of the key)", FileSystemCache._get_filename)
    setattr(filecache.BytesFileSystemCache, "_get_filename", name_of)  # noqa: B010
    # Module functions looked up through the module at call time: the module's name is given a stand-in.
    setattr(protocol, "zlib", _Module(zlib, crc32=timed("crc32 (zlib)", zlib.crc32)))  # noqa: B010
    setattr(ledger, "fcntl", _Module(fcntl, flock=timed("flock", fcntl.flock)))  # noqa: B010
    system = {name: timed(f"os.{name}", getattr(os, name)) for name in ("open", "writev", "close", "replace")}
    setattr(filecache, "os", _Module(os, **system))  # noqa: B010


def kind_of(method: str, path: str) -> str | None:
    """The kind of an upload request, or ``None`` for the rest (pages, callbacks, the benchmark's own)."""
    if "/_upload" in path:
        rest = path.split("/_upload", 1)[1].strip("/").split("/")
        if method == "PUT":
            return "ours: PUT part"
        if method == "POST":
            return "ours: POST start" if rest == [""] else "ours: POST complete"
        return f"ours: {method}"
    if path.startswith("/bench/bare"):
        rest = path[len("/bench/bare") :].strip("/").split("/")
        if method == "PUT":
            return "bare: PUT part"
        return "bare: POST start" if rest == [""] else "bare: POST complete"
    return None


def wrap(app: Callable[..., Iterable[bytes]], mode: str) -> Callable[..., Iterable[bytes]]:
    """The WSGI ``app``, each upload request timed as a whole (and profiled in ``cprofile`` mode)."""

    def timed_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        kind = kind_of(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if kind is None:
            return app(environ, start_response)
        profiler = None
        if mode == "cprofile" and kind.endswith("PUT part"):
            key = (threading.get_ident(), kind)
            with _lock:
                profiler = _profilers.setdefault(key, cProfile.Profile())
        _local.kind, _local.stack = kind, []
        if profiler is not None:
            profiler.enable()
        try:
            with stage(REQUEST):
                answer = app(environ, start_response)
                try:
                    body = list(answer)  # a small JSON answer: sent after the timing
                finally:
                    close = getattr(answer, "close", None)
                    if close is not None:
                        close()
        finally:
            if profiler is not None:
                profiler.disable()
            _local.kind = BACKGROUND
        return body

    return timed_app


def reset() -> None:
    with _lock:
        _totals.clear()
        _profilers.clear()


def report(top: int = 30) -> dict[str, Any]:
    """``{"stages": [[kind, stage, calls, wall, cpu], ...], "cprofile": {kind: text}}``."""
    with _lock:
        stages = [[kind, path, *values] for (kind, path), values in _totals.items()]
        profilers = list(_profilers.items())
    texts = {}
    for kind in sorted({k for (_, k), _ in profilers}):
        out = io.StringIO()
        stats: pstats.Stats | None = None
        for (_, k), profiler in profilers:
            if k != kind:
                continue
            if stats is None:
                stats = pstats.Stats(profiler, stream=out)
            else:
                stats.add(profiler)
        if stats is not None:
            stats.strip_dirs().sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
            # What our read of a chunk calls: a bytes.join here would be a copy of the chunk.
            stats.print_callees("read_exact|_receive")
        texts[kind] = out.getvalue()
    return {"stages": stages, "cprofile": texts}
