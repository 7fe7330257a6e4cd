"""Run every benchmark in one go: ``python -m benchmarks.run [--quick]`` from the repository root.

Starts a redis-server and gunicorn (1 worker, gthread) on free ports of 127.0.0.1, measures

1. serving throughput of a registered file: ours (default store, Redis, a path by reference),
   dash-file-cache 0.2.0 (``CachePlain``, ``CacheFile``) and Flask's ``send_file``;
2. the server's peak memory growth while serving;
3. end to end, callback to last byte: ``FileOutput`` against a base64 ``data:`` URI;
4. the transform's overhead per callback (SimpleCache, default store);
5. ``register()`` throughput per backend;

on the same random bytes, for 1, 16 and 256 MiB (``--quick``: 1 and 16 MiB, fewer repeats);
part 4 runs first, before the others have written gigabytes. Stops both servers, prints
markdown tables and writes ``benchmarks/results.json``.
``python -m benchmarks.plot`` then draws ``docs/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from . import inprocess, report, served

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
PACKAGES = [
    "dfc-transform", "dash", "dash-extensions", "flask", "werkzeug", "cachelib", "gunicorn", "redis",
    "hiredis", "dash-file-cache", "asgiref", "plotly", "orjson",
]  # fmt: skip


@dataclass(frozen=True)
class Config:
    """Sizes and repeats of one run."""

    mode: str
    sizes: list[int]
    serving_repeats: dict[int, int]
    e2e_repeats: dict[int, int]
    register_repeats: dict[int, int]
    #: Callbacks of each kind (file, plain) per backend, fired in alternating rounds.
    overhead_callbacks: int
    overhead_rounds: int


FULL = Config(
    mode="full",
    sizes=[1 * MiB, 16 * MiB, 256 * MiB],
    serving_repeats={1 * MiB: 101, 16 * MiB: 61, 256 * MiB: 25},
    e2e_repeats={1 * MiB: 41, 16 * MiB: 21, 256 * MiB: 9},
    register_repeats={1 * MiB: 41, 16 * MiB: 15, 256 * MiB: 7},
    overhead_callbacks=2000,
    overhead_rounds=10,
)
QUICK = Config(
    mode="quick",
    sizes=[1 * MiB, 16 * MiB],
    serving_repeats={1 * MiB: 5, 16 * MiB: 5},
    e2e_repeats={1 * MiB: 5, 16 * MiB: 5},
    register_repeats={1 * MiB: 5, 16 * MiB: 5},
    overhead_callbacks=200,
    overhead_rounds=5,
)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    with open("/proc/meminfo") as f:
        memory_kib = int(f.readline().split()[1])
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    redis_server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    versions["redis-server"] = redis_server.split("v=")[1].split()[0] if "v=" in redis_server else "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_kib / 1024 / 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def make_data(directory: Path, sizes: list[int]) -> tuple[dict[int, Path], dict[int, str]]:
    """Random files, one per size: the same bytes for every variant."""
    directory.mkdir(parents=True)
    files, digests = {}, {}
    for size in sizes:
        path = directory / f"{size}.bin"
        sha = hashlib.sha256()
        with open(path, "wb") as f:
            for start in range(0, size, MiB):
                block = os.urandom(min(MiB, size - start))
                sha.update(block)
                f.write(block)
        files[size], digests[size] = path, sha.hexdigest()
    return files, digests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 and 16 MiB, fewer repeats (a smoke test)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    from cachelib import RedisCache, SimpleCache

    from dfc_transform import FileService
    from tests.servers import RedisServer

    started = time.time()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
        "machine": machine(),
        "config": asdict(config),
    }
    with tempfile.TemporaryDirectory(prefix="dfc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        sizes = config.sizes
        print(f"data: {', '.join(f'{s // MiB} MiB' for s in sizes)} in {tmp}", file=sys.stderr, flush=True)
        files, digests = make_data(tmp / "data", sizes)
        # cachelib's SimpleCache counts items (chunks): give it room for the largest file.
        threshold = max(sizes) // MiB * 4 + 20_000
        # Small files first, on a quiet file system: the gigabytes written and deleted by the
        # other parts slow the creation of small files for minutes (journal commits, discards).
        os.environ["DFC_TRANSFORM_DIR"] = str(tmp / "overhead-store")
        results["transform_overhead"] = inprocess.transform_overhead(
            {"SimpleCache": lambda: SimpleCache(threshold=threshold), "default store": lambda: None},
            config.overhead_callbacks,
            config.overhead_rounds,
        )
        redis = RedisServer(tmp / "redis")
        redis.start()
        try:
            server = served.Gunicorn(
                tmp / "gunicorn",
                {
                    "BENCH_DATA": str(tmp / "data"),
                    "BENCH_REDIS": redis.address,
                    "BENCH_DFC_DIR": str(tmp / "dfc-file"),
                    "DFC_TRANSFORM_DIR": str(tmp / "server-store"),
                },
            )
            try:
                results["server_pid"] = server.worker_pid
                results["serving"] = served.serving(server.port, sizes, config.serving_repeats, digests)
                results["end_to_end"] = served.end_to_end(server.port, sizes, config.e2e_repeats, digests)
            finally:
                server.stop()
            # The server's files would otherwise be written back to disk during the next parts.
            shutil.rmtree(tmp / "server-store", ignore_errors=True)
            shutil.rmtree(tmp / "dfc-file", ignore_errors=True)

            def redis_cache() -> RedisCache:
                return RedisCache(host=redis.host, port=redis.port, key_prefix="bench:")

            os.environ["DFC_TRANSFORM_DIR"] = str(tmp / "register-store")
            results["registration"] = inprocess.registration(
                {
                    "default store": lambda: FileService(),
                    # The chunk size is a trade: FileSystemCache pays a fixed cost per item written.
                    "default store, 4 MiB chunks": lambda: FileService(chunk_size=4 * MiB),
                    "Redis": lambda: FileService(redis_cache()),
                    "SimpleCache": lambda: FileService(SimpleCache(threshold=threshold)),
                },
                files,
                config.register_repeats,
            )
        finally:
            redis.stop()
    results["elapsed_seconds"] = time.time() - started
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(report.markdown(results))
    print(f"written: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
