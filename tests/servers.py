"""Real redis-server and memcached processes for the backend contract suite.

Each server runs as a subprocess on a free port of 127.0.0.1, is polled until it
answers (no fixed sleeps) and is stopped by its process id. The binaries come
from Debian's ``redis-server`` and ``memcached`` packages.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["MemcachedServer", "RedisServer", "ServerError", "free_port", "python_tool"]

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
