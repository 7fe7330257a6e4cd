"""``python -m dfc_transform``, run as a user would: a subprocess, on real stores (the default
store, a store directory given either way, a FileSystemCache, Redis and memcached)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache, MemcachedCache, RedisCache
from flask import Flask

from dfc_transform import FileService
from dfc_transform.cli import commands, main
from dfc_transform.exc import BackendUnavailableError

from .servers import MemcachedServer, RedisServer


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dfc_transform", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    done = cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def error(*args: str, env: dict[str, str] | None = None) -> str:
    """The one line a failing command prints (the last: an old cachelib logs one of its own on import)."""
    done = cli(*args, env=env)
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return line


def stats(*args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(ok("stats", "--json", *args, env=env))


def listed(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return list(json.loads(ok("list", "--json", *args, env=env)))


def app_service(name: str, prefix: str = "/", **settings: Any) -> tuple[Flask, FileService]:
    """A Flask app ``name`` with a FileService on the default store, under its own namespace."""
    app = Flask(name)
    service = FileService(**settings)
    service.init_app(app)
    service.adopt(name, prefix)
    return app, service


def register(app: Flask, service: FileService, data: bytes, **options: Any) -> str:
    with app.test_request_context():
        return service.register(data, **options)


def test_help_says_what_it_does() -> None:
    out = ok("--help")
    for words in (
        "stats",
        "list",
        "purge",
        "--dir",
        "--redis",
        "--memcached",
        "DFC_TRANSFORM_DIR",
        "namespace",
    ):
        assert words in out
    assert "--expired" in ok("purge", "--help") and "--all" in ok("purge", "--help")


def test_apps_of_a_shared_store_are_told_apart_and_counted_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"DFC_TRANSFORM_DIR": str(tmp_path / "store")}
    monkeypatch.setenv("DFC_TRANSFORM_DIR", env["DFC_TRANSFORM_DIR"])
    reports, reports_service = app_service("reports_app", "/reports/", timeout=600)
    brief, brief_service = app_service("brief_app", timeout=15)
    register(reports, reports_service, b"a" * 1000, filename="a.csv")
    register(reports, reports_service, b"b" * 3_000_000, filename="big data.bin", private=True)
    short = register(brief, brief_service, b"c" * 500, one_time=True)
    reports_service.stats(), brief_service.stats()  # stats lag by up to a second: write this process's now
    ours, theirs = reports_service.store.namespace, brief_service.store.namespace

    found = stats(env=env)
    assert (found["files"], found["bytes"]) == (3, 3_001_500)
    rows = {row["namespace"]: row for row in found["namespaces"]}
    assert rows[ours]["files"] == 2 and rows[ours]["bytes"] == 3_001_000
    assert (
        rows[ours]["app"] == "reports_app, prefix /reports/" and rows[theirs]["app"] == "brief_app, prefix /"
    )
    table = ok("stats", env=env)
    assert "3,001,000" in table and "reports_app" in table and "brief_app" in table and "total" in table

    files = listed(env=env)
    assert [f["name"] for f in files] == ["a.csv", "big data.bin", "file.bin"]  # oldest first
    big = files[1]
    assert big["path"].startswith("/reports/_dash-files/") and big["path"].endswith("/big%20data.bin")
    assert (big["size"], big["private"], big["one_time"], big["namespace"]) == (3_000_000, True, False, ours)
    assert big["mime_type"] == "application/octet-stream" and 0 <= big["age"] < 60 < big["time_left"] <= 600
    assert files[2]["one_time"] is True and files[2]["namespace"] == theirs
    assert "big%20data.bin" in ok("list", env=env)

    # An unknown namespace is an error naming the known ones; a bare purge of a shared store too.
    line = error("purge", "--namespace", "nope", env=env)
    assert "has no namespace 'nope'" in line and f"{ours} (reports_app, prefix /reports/)" in line
    line = error("purge", env=env)
    assert "holds the files of 2 apps" in line and "--all" in line
    assert len(listed("--namespace", ours, env=env)) == 2  # nothing was removed

    # purge --expired, then of one namespace: the counts are those stats and list gave.
    _wait_expired(brief_service, short)
    assert ok("purge", "--expired", env=env).strip() == "removed 1 expired files"
    assert stats("--namespace", ours, env=env)["files"] == len(listed("--namespace", ours, env=env)) == 2
    assert ok("purge", "--namespace", ours, env=env).strip() == "removed 2 files"
    assert stats(env=env)["files"] == 0 and listed(env=env) == []
    register(brief, brief_service, b"d" * 10)
    brief_service.stats()
    assert ok("purge", "--all", env=env).strip() == "removed 1 files"


def _wait_expired(service: FileService, url: str) -> None:
    deadline = time.monotonic() + 30
    while service.store.get(url.split("/")[-2]) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_store_directory_is_recognised_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "srv"
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(root))
    app, service = app_service("dir_app")
    register(app, service, b"x" * 4096)
    service.stats()
    # DFC_TRANSFORM_DIR as the app had it, or its files/ directory: the same store.
    assert stats("--dir", str(root))["bytes"] == 4096
    assert stats("--dir", str(root / "files"))["bytes"] == 4096
    # A directory that is no store is an error, never a silent 0.
    (tmp_path / "other").mkdir()
    line = error("stats", "--dir", str(tmp_path / "other"))
    assert "is not a dfc_transform store" in line
    assert error("stats", "--dir", str(tmp_path / "missing")) == (
        f"error: {str(tmp_path / 'missing')!r} is not a directory"
    )
    assert ok("purge", "--dir", str(root / "files")).strip() == "removed 1 files"


def test_a_filesystemcache_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "default"))
    directory = tmp_path / "cache"
    service = FileService(FileSystemCache(str(directory), threshold=0), timeout=600)
    service.register(b"x" * 4096)
    service.stats()
    env = {"DFC_TRANSFORM_DIR": str(tmp_path / "default")}
    assert stats("--dir", str(directory), env=env)["bytes"] == 4096
    assert [f["size"] for f in listed("--dir", str(directory), env=env)] == [4096]
    assert ok("purge", "--dir", str(directory), env=env).strip() == "removed 1 files"
    assert stats("--dir", str(directory), env=env)["files"] == 0


def test_a_redis(redis_server: RedisServer) -> None:
    backend = RedisCache(redis_server.host, redis_server.port, key_prefix="cli-test:")
    service = FileService(backend, namespace="app", timeout=600)
    service.register(b"r" * 100, filename="r.txt")
    service.register(b"s" * 2_000_000, filename="s.bin")
    service.stats()  # stats lag by up to a second: write this process's now
    url = f"redis://{redis_server.address}/0"
    found = stats("--redis", url, "--key-prefix", "cli-test:")
    assert (found["files"], found["bytes"]) == (2, 2_000_100)
    assert [f["name"] for f in listed("--redis", url, "--key-prefix", "cli-test:")] == ["r.txt", "s.bin"]
    assert ok("purge", "--redis", url, "--key-prefix", "cli-test:").strip() == "removed 2 files"
    assert service.stats().files == 0


def test_a_memcached(memcached_server: MemcachedServer) -> None:
    backend = MemcachedCache([memcached_server.address], key_prefix="cli-test:")
    service = FileService(backend, namespace="app", timeout=600)
    service.register(b"m" * 100, filename="m.txt")
    service.register(b"n" * 1_500_000, filename="n.bin")
    service.stats()
    where = ("--memcached", memcached_server.address, "--key-prefix", "cli-test:")
    found = stats(*where)
    assert (found["files"], found["bytes"]) == (2, 1_500_100)
    assert [f["name"] for f in listed(*where)] == ["m.txt", "n.bin"]
    assert ok("purge", *where).strip() == "removed 2 files"
    assert stats(*where)["files"] == 0


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    assert error("stats", "--redis", "redis://127.0.0.1:1/0").startswith("error: the Redis at")
    assert error("stats", "--memcached", "127.0.0.1:1").startswith(
        "error: the memcached at 127.0.0.1:1 cannot be reached"
    )
    assert "takes HOST:PORT" in error("stats", "--memcached", "nowhere")


def test_a_memcached_that_is_down_is_named(tmp_path: Path) -> None:
    service = FileService(MemcachedCache(["127.0.0.1:1"]))
    with pytest.raises(
        BackendUnavailableError, match=r"MemcachedCache \(memcached at 127\.0\.0\.1:1\) cannot be reached"
    ):
        service.register(b"x")


def test_list_writes_a_chunk_at_a_time_what_one_table_and_one_json_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``list`` makes and writes its rows ROWS_PER_WRITE at a time (100,000 files are never
    all rows at once): the output is the same whatever that number, and ``--json`` is one
    ``json.dumps`` of every row."""
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "store"))
    reports, reports_service = app_service("chunks_app", "/reports/", timeout=600)
    brief, brief_service = app_service("kept_app", timeout=0)
    for i in range(12):
        app, service = (reports, reports_service) if i % 3 else (brief, brief_service)
        register(app, service, f"{i}".encode(), filename=f"f {i}.txt", one_time=i % 4 == 0)
    reports_service.stats(), brief_service.stats()
    fixed = time.time() + 1  # one "now" for every run
    monkeypatch.setattr(commands, "time", types.SimpleNamespace(time=lambda: fixed))

    outputs: dict[bool, set[str]] = {False: set(), True: set()}
    for rows_per_write in (1000, 5, 1):
        monkeypatch.setattr(commands, "ROWS_PER_WRITE", rows_per_write)
        for as_json in (False, True):
            assert main(["list", "--json"] if as_json else ["list"]) == 0
            outputs[as_json].add(capsys.readouterr().out)
    assert len(outputs[False]) == len(outputs[True]) == 1
    (text,), (dumped,) = outputs[False], outputs[True]
    rows = json.loads(dumped)
    assert dumped == json.dumps(rows) + "\n"
    assert [r["name"] for r in rows] == [f"f {i}.txt" for i in range(12)]  # oldest first, both apps
    assert rows[0]["path"].startswith("/_dash-files/") and rows[0]["path"].endswith("/f%200.txt")
    assert rows[1]["path"].startswith("/reports/_dash-files/")
    assert rows[0]["time_left"] is None and 590 < rows[1]["time_left"] < 600
    assert [r["one_time"] for r in rows] == [i % 4 == 0 for i in range(12)]
    lines = text.splitlines()
    assert lines[0].split() == ["age", "left", "size", "flags", "namespace", "path"] and len(lines) == 13
    for row, line in zip(rows, lines[1:]):
        assert line.endswith(f" {row['path']}  (text/plain)") and row["namespace"] in line
        assert ("never" in line) == (row["time_left"] is None) and (" 1- " in line) == row["one_time"]

    # An empty store: an empty list, and the header alone.
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "empty"))
    FileService(namespace="nothing")  # makes the store directory
    assert main(["list", "--json"]) == 0 and capsys.readouterr().out == "[]\n"
    assert main(["list"]) == 0 and capsys.readouterr().out == lines[0] + "\n"


def test_list_shows_the_url_path_a_file_service_serves_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "store"))
    urls = []
    for name, prefix in (("plain_app", None), ("custom_app", "/files")):
        server = Flask(name)
        files = FileService()
        if prefix is None:
            files.init_app(server)
        else:
            files.init_app(server, url_prefix=prefix)
        urls.append(files.register(name.encode(), filename=f"{name}.txt"))
        files.stats()  # written to the shared totals now
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["path"] for r in rows) == sorted(urls)  # the URLs the apps gave, as they are
