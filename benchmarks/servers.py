"""Every Dash server: files served by Flask under gunicorn, FastAPI under uvicorn, Quart under hypercorn.

``python -m benchmarks.servers [--quick]`` from the repository root. The same app
(:mod:`benchmarks.servers_app`: a plain ``dash.Dash`` with ``files.init_app``, the default store) runs on
each server in turn, one worker each (gunicorn: ``gthread``, 4 threads), on a free port of 127.0.0.1:

1. **Throughput**: a file of 16 and 256 MiB (``--quick``: 16 MiB) fetched by curl (``-o /dev/null``),
   round after round; the median MiB/s, its ratio to gunicorn's, and the server process's peak RSS
   growth over the transfers (``VmHWM``, reset before through ``/proc/<pid>/clear_refs``).
2. **Slow readers**: 8 fast clients fetch a 10 KiB file over and over, first alone, then while 200 slow
   clients (``--quick``: 50) each read a 16 MiB file at about 1.3 MB/s (64 KiB every 50 ms through a
   64 KiB receive buffer; a process of their own, a thread each) for 20 s (``--quick``: 8 s). The fast
   clients' p50 and p99 latency in both phases, the ratio of the p99s, and the server's RSS growth. A
   worker pool of threads (gunicorn's ``gthread``) has as many slots as threads: slow readers take them
   all; an event loop (uvicorn, hypercorn) gives each transfer a task.

Every transfer is checked (status, size; the SHA-256 of each big file once). Prints markdown tables with
the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
SMALL = 10 * 1024
SLOW_SIZE = 16 * MiB


def content(size: int) -> bytes:
    """The file of ``size`` bytes: random, the same for a size in every process (1 MiB of random
    bytes repeated with a counter: randbytes takes at most 256 MiB minus a bit at once)."""
    block = random.Random(size).randbytes(min(size, MiB))
    pieces = (i.to_bytes(8, "big") + block[8:] for i in range(-(-size // MiB)))
    return b"".join(pieces)[:size]


@dataclass(frozen=True)
class Server:
    name: str
    backend: str

    def argv(self, port: int) -> list[str]:
        app = "benchmarks.servers_app:server"
        if self.name == "gunicorn":
            return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "-k", "gthread",
                    "--threads", "4", "--timeout", "120", app]  # fmt: skip
        if self.name == "uvicorn":
            return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                    "--log-level", "warning"]  # fmt: skip
        return [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", app]


SERVERS = [Server("gunicorn", "flask"), Server("uvicorn", "fastapi"), Server("hypercorn", "quart")]
LABELS = {
    "gunicorn": "Flask, gunicorn gthread",
    "uvicorn": "FastAPI, uvicorn",
    "hypercorn": "Quart, hypercorn",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


class Running:
    """One server with the app, its files registered."""

    def __init__(self, server: Server, sizes: list[int], folder: Path) -> None:
        self.port = _free_port()
        urls_file = folder / f"{server.name}.json"
        env = {**os.environ, "BENCH_BACKEND": server.backend, "BENCH_SIZES": ",".join(map(str, sizes)),
               "BENCH_URLS": str(urls_file), "DFC_TRANSFORM_DIR": str(folder / server.name),
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        self.process = subprocess.Popen(
            server.argv(self.port), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while not urls_file.exists() or not self._answers():
            assert self.process.poll() is None, f"{server.name} exited"
            assert time.monotonic() < deadline, f"{server.name} did not start"
            time.sleep(0.2)
        self.urls = {int(k): v for k, v in json.loads(urls_file.read_text()).items()}
        self.pid = self._worker(server)

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return True
        except OSError:
            return False

    def _worker(self, server: Server) -> int:
        """The process that answers: the server's worker (gunicorn and hypercorn start one), else
        the server itself (uvicorn without --workers)."""
        deadline = time.monotonic() + 10
        while True:
            children = self._children()
            if children or server.name == "uvicorn" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not children:
            return self.process.pid
        # The worker is the one that imported the app (a resource tracker may run beside it).
        return max(children, key=lambda pid: _rss(pid))

    def _children(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry))
        return found

    def reset_peak(self) -> int:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self.status("VmRSS:")

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise AssertionError(field)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _curl(port: int, url: str, size: int) -> float:
    """MiB/s of one GET by curl, its size checked."""
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}",
         f"http://127.0.0.1:{port}{url}"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout.split()  # fmt: skip
    assert out[0] == "200" and int(out[1]) == size, out
    return float(out[2]) / MiB


def _sha(port: int, url: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", url)
    response = conn.getresponse()
    sha = hashlib.sha256()
    while piece := response.read(MiB):
        sha.update(piece)
    conn.close()
    return sha.hexdigest()


def throughput(running: Running, sizes: list[int], rounds: int) -> dict[int, tuple[float, int]]:
    """Per size: median MiB/s, and the worker's peak RSS growth."""
    result = {}
    for size in sizes:
        url = running.urls[size]
        assert _sha(running.port, url) == hashlib.sha256(content(size)).hexdigest()
        base = running.reset_peak()
        speeds = [_curl(running.port, url, size) for _ in range(rounds)]
        result[size] = (statistics.median(speeds), running.status("VmHWM:") - base)
    return result


SLOW_READERS = """
import socket, sys, threading, time
port, path, count, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
stop = time.monotonic() + seconds
got = [0] * count
def read(i):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n".encode())
    while time.monotonic() < stop:
        data = s.recv(65536)
        if not data:
            break
        got[i] += len(data)
        time.sleep(0.05)
    s.close()
threads = [threading.Thread(target=read, args=(i,)) for i in range(count)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(1 for g in got if g > 0), sum(got))
"""


def _fast_clients(port: int, url: str, seconds: float, clients: int = 8) -> list[float]:
    """Latencies of GETs of the small file by ``clients`` threads for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < stop:
            start = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", url)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            took = time.perf_counter() - start
            assert response.status == 200 and len(body) == SMALL, response.status
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def slow_readers(running: Running, readers: int, seconds: float) -> dict[str, float]:
    small = running.urls[SMALL]
    alone = _fast_clients(running.port, small, min(5.0, seconds))
    base = running.reset_peak()
    slow = subprocess.Popen(
        [sys.executable, "-c", SLOW_READERS, str(running.port), running.urls[SLOW_SIZE], str(readers),
         str(seconds + 2)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2)  # every slow reader connected and reading
    busy = _fast_clients(running.port, small, seconds)
    out, _ = slow.communicate(timeout=seconds + 60)
    reading, received = map(int, out.split())
    return {
        "p50 alone": _p(alone, 0.5), "p99 alone": _p(alone, 0.99),
        "p50 busy": _p(busy, 0.5), "p99 busy": _p(busy, 0.99), "requests busy": len(busy),
        "readers served": reading, "slow MiB": received / MiB,
        "growth": running.status("VmHWM:") - base,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="16 MiB, 3 rounds, 50 slow readers for 8 s")
    args = parser.parse_args(argv)
    assert shutil.which("curl"), "curl is needed (Debian: apt-get install curl)"
    big = [16 * MiB] if args.quick else [16 * MiB, 256 * MiB]
    rounds, readers, seconds = (3, 50, 8.0) if args.quick else (5, 200, 20.0)
    started = time.monotonic()
    print(f"benchmarks.servers: load average {_load()} ({os.cpu_count()} CPUs) at the start")
    served: dict[str, dict[int, tuple[float, int]]] = {}
    slow: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for server in SERVERS:
            running = Running(server, sorted({SMALL, SLOW_SIZE, *big}), Path(tmp))
            try:
                served[server.name] = throughput(running, big, rounds)
                slow[server.name] = slow_readers(running, readers, seconds)
            finally:
                running.stop()
            print(f"  {server.name} done (load {_load()})", flush=True)
    print()
    print(f"### Serving, curl, 1 worker, medians of {rounds} (load average {_load()})")
    print()
    print("| server | " + " | ".join(f"{s // MiB} MiB: MiB/s, / gunicorn, peak growth" for s in big) + " |")
    print("|---|" + "---:|" * len(big))
    for name, by_size in served.items():
        cells = [
            f"{speed:.0f}, {speed / served['gunicorn'][size][0]:.2f}x, {growth / MiB:.1f} MiB"
            for size, (speed, growth) in by_size.items()
        ]
        print(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    print()
    print(f"### 8 fast clients (10 KiB GETs) while {readers} slow readers each read 16 MiB at ~1.3 MB/s "
          f"for {seconds:.0f} s (load average {_load()})")  # fmt: skip
    print()
    print("| server | p50 / p99 alone | p50 / p99 with slow readers | p99 ratio | fast GETs | slow readers "
          "served | server growth |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in slow.items():
        cells = [
            LABELS[name],
            f"{r['p50 alone'] * 1e3:.1f} / {r['p99 alone'] * 1e3:.1f} ms",
            f"{r['p50 busy'] * 1e3:.1f} / {r['p99 busy'] * 1e3:.1f} ms",
            f"{r['p99 busy'] / r['p99 alone']:.2f}x",
            f"{r['requests busy']:.0f}",
            f"{r['readers served']:.0f} of {readers}",
            f"{r['growth'] / MiB:.1f} MiB",
        ]
        print("| " + " | ".join(cells) + " |")
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
