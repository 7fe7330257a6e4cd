"""``python -m dfc_transform``, run as a user would: a subprocess, on real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache, RedisCache

from dfc_transform import FileService

from .servers import RedisServer


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dfc_transform", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def stats(*args: str, env: dict[str, str] | None = None) -> Any:
    done = cli("stats", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_help_says_what_it_does() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for words in ("stats", "purge", "--expired", "--dir", "--redis", "DFC_TRANSFORM_DIR", "namespace"):
        assert words in done.stdout
    assert "--expired" in cli("purge", "--help").stdout


def _wait_expired(service: FileService, url: str) -> None:
    deadline = time.monotonic() + 10
    while service.store.get(url.split("/")[-2]) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"DFC_TRANSFORM_DIR": str(tmp_path / "store")}
    monkeypatch.setenv("DFC_TRANSFORM_DIR", env["DFC_TRANSFORM_DIR"])
    lasting, brief = FileService(timeout=600), FileService(timeout=5, namespace="other-app")
    lasting.register(b"a" * 1000)
    lasting.register(b"b" * 3_000_000)
    short = brief.register(b"c" * 500)
    lasting.stats(), brief.stats()  # stats lag by up to a second: write this process's now
    found = stats(env=env)
    assert (found["files"], found["bytes"]) == (3, 3_001_500)
    rows = {row["namespace"]: row for row in found["namespaces"]}
    assert rows[""]["files"] == 2 and rows[""]["bytes"] == 3_001_000
    assert rows["other-app"]["files"] == 1
    table = cli("stats", env=env).stdout
    assert "3,001,000" in table and "other-app" in table and "total" in table
    _wait_expired(brief, short)
    done = cli("purge", "--expired", env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "removed 1 expired files")
    assert stats("--namespace", "", env=env)["files"] == 2
    done = cli("purge", env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "removed 2 files")
    assert stats(env=env)["files"] == 0


def test_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    service = FileService(FileSystemCache(str(directory), threshold=0), timeout=600)
    service.register(b"x" * 4096)
    service.stats()  # stats lag by up to a second: write this process's now
    assert stats("--dir", str(directory))["bytes"] == 4096
    assert cli("purge", "--dir", str(directory)).stdout.strip() == "removed 1 files"
    assert stats("--dir", str(directory))["files"] == 0


def test_a_redis(redis_server: RedisServer) -> None:
    service = FileService(
        RedisCache(redis_server.host, redis_server.port, key_prefix="cli-test:"), namespace="app"
    )
    service.register(b"r" * 100)
    service.stats()  # stats lag by up to a second: write this process's now
    url = f"redis://{redis_server.address}/0"
    assert stats("--redis", url, "--key-prefix", "cli-test:") == {
        "files": 1,
        "bytes": 100,
        "namespaces": [{"namespace": "app", "files": 1, "bytes": 100}],
    }
    assert cli("purge", "--redis", url, "--key-prefix", "cli-test:").stdout.strip() == "removed 1 files"
    assert service.stats().files == 0


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    done = cli("stats", "--dir", str(tmp_path / "missing"))
    assert done.returncode == 1
    # The last line: an old cachelib logs a line of its own on import ("no boto3 module found").
    assert done.stderr.strip().splitlines()[-1] == f"error: {str(tmp_path / 'missing')!r} is not a directory"
    assert "Traceback" not in done.stderr
    done = cli("stats", "--redis", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    assert done.stderr.startswith("error: the Redis at") and "Traceback" not in done.stderr
