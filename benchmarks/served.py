"""Parts 1-3, measured over HTTP against :mod:`benchmarks.app` under gunicorn.

1. serving throughput of a registered file, per variant and size;
2. the server's peak memory growth while it serves;
3. end to end, callback to last byte: a ``FileOutput`` (POST, then GET) against a base64
   ``data:`` URI (POST only).

Variants and, for part 3, the two modes are interleaved round by round, so that the noise
of a shared machine falls on all of them alike. The memory peak is taken on a few extra runs
of its own (see :func:`_server_cost`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import quote

from .client import fetch, get_json

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
#: What each variant registers: an in-memory ``BytesIO`` or the file's path (see :mod:`benchmarks.app`).
VARIANTS = {
    "ours-store": "memory",
    "ours-path": "path",
    "ours-redis": "memory",
    "dfc-plain": "memory",
    "dfc-plain-path": "path",
    "dfc-file": "memory",
    "send_file": "path",
}
#: Where the URLs of our files start (see ``/bench/forget`` in :mod:`benchmarks.app`).
OUR_PREFIXES = ("/_dash-files/", "/_redis-files/")


class Gunicorn:
    """``benchmarks.app:server`` under gunicorn: one worker, gthread; stopped by its pid."""

    def __init__(self, home: Path, env: dict[str, str], *, threads: int = 4) -> None:
        from tests.servers import free_port

        self.port = free_port()
        self.log = home / "gunicorn.log"
        home.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
            "--threads", str(threads), "--bind", f"127.0.0.1:{self.port}", "--timeout", "900",
            "--log-level", "warning", "benchmarks.app:server",
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited at start: " + self.log.read_text()[-3000:])
            try:
                self.worker_pid = int(get_json(self.port, "/bench/mem")["pid"])
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("gunicorn did not answer: " + self.log.read_text()[-3000:]) from None
                time.sleep(0.1)
        # DashProxy applies its transforms in the first request of the app.
        get_json(self.port, "/_dash-layout")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


#: Extra runs per variant whose only purpose is the memory peak (see :func:`_server_cost`).
MEMORY_RUNS = 3


def _server_cost(
    port: int, measured: Any, *, memory: bool = False, idle_cpu: float = 0.0
) -> tuple[Any, int, float]:
    """Run ``measured()``; return its result, the server's peak RSS growth and CPU seconds meanwhile.

    With ``memory``, the worker first hands its free heap back to the system and resets its
    peak (see ``/bench/mem``), so that the growth counts all the memory ``measured()`` needs;
    the timed runs skip that, since it would make the next allocations fault pages in as a
    warm server does not. The CPU time read also covers the ``/bench/mem`` requests around
    ``measured()``: ``idle_cpu`` (see :func:`_idle_cpu`) is subtracted.
    """
    before = get_json(port, "/bench/mem?reset=1" if memory else "/bench/mem")
    result = measured()
    after = get_json(port, "/bench/mem")
    growth = max(0, after["hwm"] - before["rss"]) if memory else 0
    return result, growth, after["cpu"] - before["cpu"] - idle_cpu


def _idle_cpu(port: int) -> float:
    """The server's CPU seconds for the memory requests alone, with nothing measured between them."""
    return median(_server_cost(port, lambda: None)[2] for _ in range(15))


def serving(
    port: int, sizes: list[int], repeats: dict[int, int], digests: dict[int, str]
) -> list[dict[str, Any]]:
    """Part 1 and 2: throughput, memory growth and CPU time per variant and size."""
    rows = []
    idle = _idle_cpu(port)
    for size in sizes:
        urls = {}
        for variant in VARIANTS:
            registered = get_json(port, f"/bench/register?variant={variant}&size={size}", method="POST")
            urls[variant] = registered["url"]
            # The first GET checks the bytes and warms the page cache and the code paths.
            first = fetch(port, urls[variant], digest=True)
            if first.status != 200 or first.sha256 != digests[size]:
                raise RuntimeError(f"{variant} served wrong bytes for {size}: {first.status} {first.size}")
        growth: dict[str, list[int]] = {v: [] for v in VARIANTS}
        for _ in range(MEMORY_RUNS):
            for variant, url in urls.items():
                growth[variant].append(_server_cost(port, lambda u=url: fetch(port, u), memory=True)[1])
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(repeats[size]):
            for variant, url in urls.items():
                got, _, used = _server_cost(port, lambda u=url: fetch(port, u), idle_cpu=idle)
                if got.status != 200 or got.size != size:
                    raise RuntimeError(f"{variant}: {got.status}, {got.size} of {size} bytes")
                times[variant].append(got.seconds)
                cpu[variant].append(used)
        for variant in VARIANTS:
            seconds = median(times[variant])
            rows.append(
                {
                    "variant": variant,
                    "value": VARIANTS[variant],
                    "size": size,
                    "repeats": len(times[variant]),
                    "seconds": times[variant],
                    "median_seconds": seconds,
                    "mib_per_s": size / MiB / seconds,
                    "memory_growth": growth[variant],
                    "max_memory_growth": max(growth[variant]),
                    "server_cpu_seconds": cpu[variant],
                    "median_server_cpu_seconds": median(cpu[variant]),
                }
            )
            _forget(port, urls[variant])
        _print_progress("serving", size, rows[-len(VARIANTS) :], "mib_per_s", "MiB/s")
    return rows


def _callback_body(mode: str, size: int, n: int) -> bytes:
    suffix = "" if mode == "file" else "-uri"
    body = {
        "output": f"img{suffix}.src",
        "outputs": {"id": f"img{suffix}", "property": "src"},
        "inputs": [{"id": f"go{suffix}", "property": "n_clicks", "value": n}],
        "changedPropIds": [f"go{suffix}.n_clicks"],
        "state": [{"id": f"size{suffix}", "property": "title", "value": str(size)}],
    }
    return json.dumps(body).encode()


def _end_to_end_once(port: int, mode: str, size: int, n: int, *, check: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    body = _callback_body(mode, size, n)
    post = fetch(port, "/_dash-update-component", method="POST", body=body, keep=True)
    if post.status != 200:
        raise RuntimeError(f"callback {mode} answered {post.status}: {post.body!r:.1000}")
    wire = post.wire
    if mode == "file":
        url = json.loads(post.body or b"")["response"]["img"]["src"]
        got = fetch(port, url, digest=check is not None)
        seconds = time.perf_counter() - start
        wire += got.wire
        ok = got.status == 200 and got.size == size and (check is None or got.sha256 == check)
    else:
        url = None
        seconds = time.perf_counter() - start
        ok = True
        if check is not None:
            uri = json.loads(post.body or b"")["response"]["img-uri"]["src"]
            ok = hashlib.sha256(base64.b64decode(uri.partition(",")[2])).hexdigest() == check
    if not ok:
        raise RuntimeError(f"end to end {mode} at {size} bytes delivered wrong bytes")
    return {"seconds": seconds, "wire": wire, "url": url}


def _forget(port: int, url: str | None) -> None:
    """Remove one of our files through ``FileService.remove`` (other variants' URLs are left alone)."""
    if url is None:
        return
    removed = get_json(port, f"/bench/forget?url={quote(url, safe='')}", method="POST")["removed"]
    if url.startswith(OUR_PREFIXES) and not removed:
        raise RuntimeError(f"FileService.remove did not find {url}")


def end_to_end(
    port: int, sizes: list[int], repeats: dict[int, int], digests: dict[int, str]
) -> list[dict[str, Any]]:
    """Part 3: ``FileOutput`` (POST + GET) against a ``data:`` URI (POST only)."""
    rows = []
    n = 0
    idle = _idle_cpu(port)
    modes = ("file", "data-uri")
    for size in sizes:
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        growth: dict[str, list[int]] = {m: [] for m in modes}
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        for mode in modes:
            n += 1
            warm_up = _end_to_end_once(port, mode, size, n, check=digests[size])  # checks the bytes
            _forget(port, warm_up["url"])
        for round_ in range(repeats[size] + MEMORY_RUNS):
            memory = round_ >= repeats[size]  # the last rounds measure the memory peak only
            for mode in modes:
                n += 1
                run, grown, used = _server_cost(
                    port,
                    lambda m=mode, s=size, i=n: _end_to_end_once(port, m, s, i),
                    memory=memory,
                    idle_cpu=idle,
                )
                _forget(port, run["url"])
                if memory:
                    growth[mode].append(grown)
                else:
                    runs[mode].append(run)
                    cpu[mode].append(used)
        for mode, mode_runs in runs.items():
            seconds = [r["seconds"] for r in mode_runs]
            rows.append(
                {
                    "mode": mode,
                    "size": size,
                    "repeats": len(seconds),
                    "seconds": seconds,
                    "median_seconds": median(seconds),
                    "wire_bytes": median(r["wire"] for r in mode_runs),
                    "memory_growth": growth[mode],
                    "max_memory_growth": max(growth[mode]),
                    "median_server_cpu_seconds": median(cpu[mode]),
                }
            )
        _print_progress("end to end", size, rows[-2:], "median_seconds", "s")
    return rows


def _print_progress(part: str, size: int, rows: list[dict[str, Any]], key: str, unit: str) -> None:
    parts = ", ".join(f"{r.get('variant', r.get('mode'))} {r[key]:.4g} {unit}" for r in rows)
    print(f"  {part} {size // MiB} MiB: {parts}", file=sys.stderr, flush=True)
