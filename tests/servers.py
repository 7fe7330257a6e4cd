"""Real redis-server and memcached processes for the backend contract suite.

Each server runs as a subprocess on a free port of 127.0.0.1, is polled until it
answers (no fixed sleeps) and is stopped by its process id. The binaries come
from Debian's ``redis-server`` and ``memcached`` packages.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["Gunicorn", "MemcachedServer", "RedisServer", "ServerError", "free_port", "python_tool"]

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
