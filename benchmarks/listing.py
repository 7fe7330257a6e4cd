"""Listing many small files: ``FileService.files()`` and ``python -m dfc_transform list``.

``python -m benchmarks.listing [--quick]`` fills a store with 100,000 files of a few bytes
each (5,000 with ``--quick``), each with its own content, through ``FileService.register``
in a few processes at once: the default store (a ``FileSystemCache`` directory in
``$DFC_TRANSFORM_DIR``), then a Redis (a ``redis-server`` started on a free port of
127.0.0.1 in a temp directory, stopped by its pid at the end). On each it times

- ``FileService.files()``, in this process;
- ``python -m dfc_transform list`` and ``list --json``, each a subprocess writing to a file
  (checked: a line, or a JSON object, per file), with its peak RSS (its ``ru_maxrss``, from
  ``os.wait4`` in a small launcher: see ``_LAUNCHER``);
- ``python -m dfc_transform --help``: what starting the command line costs before it lists anything;

the median wall time of a few runs each, and prints a markdown table per backend, with the
load average before and after (the machine may be busy with other work).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cachelib import RedisCache

from dfc_transform import FileService

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
KEY_PREFIX = "bench:"
#: Files stay an hour: none expires while it is measured, and each shows its time left.
TIMEOUT = 3600
#: Files registered per task of a filling process.
BATCH = 1000


@dataclass(frozen=True)
class Where:
    """A store the filling processes, this process and the command line all open."""

    label: str
    #: ``DFC_TRANSFORM_DIR`` of the default store, else ``None``.
    directory: str | None = None
    #: ``host:port`` of a Redis, else ``None``.
    redis: str | None = None

    def service(self) -> FileService:
        if self.redis is not None:
            host, _, port = self.redis.partition(":")
            backend = RedisCache(host=host, port=int(port), key_prefix=KEY_PREFIX)
            return FileService(backend, namespace=NAMESPACE, timeout=TIMEOUT)
        assert self.directory is not None
        os.environ["DFC_TRANSFORM_DIR"] = self.directory  # FileService() opens the default store
        return FileService(namespace=NAMESPACE, timeout=TIMEOUT)

    def cli_args(self) -> list[str]:
        if self.redis is not None:
            return ["--redis", f"redis://{self.redis}/0", "--key-prefix", KEY_PREFIX]
        return []

    def cli_env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if self.directory is not None:
            env["DFC_TRANSFORM_DIR"] = self.directory
        return env


# -- filling ---------------------------------------------------------------------------

_services: dict[Where, FileService] = {}


def _fill_batch(where: Where, start: int, stop: int) -> int:
    """Register files ``start`` to ``stop``: a few bytes each, every one its own content."""
    service = _services.get(where)
    if service is None:
        service = _services[where] = where.service()
    for i in range(start, stop):
        service.register(f"{i}\n".encode(), filename=f"file-{i}.txt", one_time=i % 10 == 0)
    service.stats()  # writes this process's ledger changes now: a pool's worker never runs atexit
    return stop - start


def fill(where: Where, count: int, workers: int) -> float:
    """Fill ``where`` with ``count`` files in ``workers`` processes; return the seconds it took."""
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")  # with the package imported; each opens its service
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        batches = [(s, min(s + BATCH, count)) for s in range(0, count, BATCH)]
        done = sum(pool.map(_fill_batch, [where] * len(batches), *zip(*batches, strict=True)))
    assert done == count
    return time.perf_counter() - started


# -- measuring -------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    files: int
    seconds: float
    #: A run of the command line (a subprocess), not a call in this process.
    command: bool = False
    #: Peak resident memory in MiB, of a command's process.
    peak_mib: float = 0.0


def time_files(where: Where, count: int, runs: int) -> Row:
    service = where.service()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        found = service.files()
        times.append(time.perf_counter() - started)
        assert len(found) == count, (len(found), count)
    return Row("`FileService.files()` (in process)", count, statistics.median(times))


#: Starts the command from a small process and reports its time, exit code and peak RSS.
#: A process's peak RSS (``ru_maxrss``) starts from that of the process it was forked from, as
#: large as this one once it has listed 100,000 files: measured directly, every command would
#: seem to take what this process took. The launcher, a bare interpreter, is a few MiB.
_LAUNCHER = """
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {time.perf_counter() - started} {usage.ru_maxrss}")
"""


def run_cli(args: list[str], env: dict[str, str], out: Path) -> tuple[float, float]:
    """Run ``python -m dfc_transform ARGS`` writing to ``out``: ``(seconds, peak RSS in MiB)``."""
    report, errors = out.with_suffix(".report"), out.with_suffix(".err")
    argv = [sys.executable, "-S", "-c", _LAUNCHER, str(report), sys.executable, "-m", "dfc_transform", *args]
    with open(out, "wb") as stdout, open(errors, "wb") as stderr:
        subprocess.run(argv, env=env, stdout=stdout, stderr=stderr, check=True)
    code, seconds, peak_kib = report.read_text().split()
    assert code == "0", errors.read_text()[-2000:]
    return float(seconds), int(peak_kib) / 1024  # KiB on Linux


def time_cli(what: str, args: list[str], env: dict[str, str], runs: int, check: Callable[[Path], int]) -> Row:
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.txt"
        for _ in range(runs):
            seconds, peak = run_cli(args, env, out)
            times.append(seconds)
            peaks.append(peak)
            files = check(out)
    return Row(what, files, statistics.median(times), command=True, peak_mib=max(peaks))


def _table_lines(count: int) -> Callable[[Path], int]:
    def check(out: Path) -> int:
        with open(out, "rb") as f:
            lines = sum(1 for _ in f) - 1  # the header
        assert lines == count, (lines, count)
        return lines

    return check


def _json_files(count: int) -> Callable[[Path], int]:
    def check(out: Path) -> int:
        rows = json.loads(out.read_bytes())
        assert len(rows) == count and all(r["namespace"] == NAMESPACE for r in rows), (len(rows), count)
        return len(rows)

    return check


def measure(where: Where, count: int, runs: int) -> list[Row]:
    args, env = where.cli_args(), where.cli_env()
    return [
        time_files(where, count, runs),
        time_cli("`list`", ["list", *args], env, runs, _table_lines(count)),
        time_cli("`list --json`", ["list", "--json", *args], env, runs, _json_files(count)),
    ]


def print_table(label: str, rows: list[Row], fill_seconds: float, count: int, startup: float) -> None:
    rate = count / fill_seconds
    print(f"### {label}: {count:,} files (filled in {fill_seconds:.1f} s, {rate:,.0f} files/s)")
    print()
    print("| what | files | seconds | files/s | seconds less start-up | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        peak = f"{row.peak_mib:.0f} MiB" if row.command else "-"
        less = f"{row.seconds - startup:.2f}" if row.command else "-"
        rate = row.files / row.seconds
        print(f"| {row.what} | {row.files:,} | {row.seconds:.2f} | {rate:,.0f} | {less} | {peak} |")
    print()


# -- a Redis of our own ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A ``redis-server`` without persistence on a free port of 127.0.0.1: its ``host:port``.

    Stopped by its pid when the block ends (SIGTERM, then SIGKILL)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    for _ in range(5):  # another process may take the port between _free_port() and bind()
        port = _free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(workdir)]  # fmt: skip
        with open(workdir / "redis.log", "ab") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while process.poll() is None and not _answers(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None and _answers(port):
            break
        _stop(process)
    else:
        raise SystemExit(f"redis-server did not start: {(workdir / 'redis.log').read_text()[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# -- main ------------------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5,000 files: a smoke test")
    parser.add_argument("--files", type=int, help="how many files (default: 100,000; 5,000 with --quick)")
    args = parser.parse_args(argv)
    count = args.files or (5_000 if args.quick else 100_000)
    runs = 1 if args.quick else 3
    workers = max(2, min(4, os.cpu_count() or 1))
    started = time.perf_counter()
    print(f"load average before: {_load()} ({os.cpu_count()} CPUs)")
    print()
    with tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp:
        startup = statistics.median(
            run_cli(["--help"], Where("").cli_env(), Path(tmp) / "help.txt")[0] for _ in range(runs)
        )
        print(f"start-up of the command line (`python -m dfc_transform --help`): {startup:.2f} s")
        print()
        store = Where("default store (FileSystemCache directory)", directory=str(Path(tmp) / "store"))
        fill_seconds = fill(store, count, workers)
        print_table(store.label, measure(store, count, runs), fill_seconds, count, startup)
        with redis_server(Path(tmp) / "redis") as address:
            redis = Where(f"Redis ({address})", redis=address)
            fill_seconds = fill(redis, count, workers)
            print_table(redis.label, measure(redis, count, runs), fill_seconds, count, startup)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average after: {_load()}; this process's peak RSS: {own:.0f} MiB; "
          f"wall time: {time.perf_counter() - started:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
