"""Where Dash apps really run: gunicorn workers, worker recycling, several hosts
sharing Redis, Redis going down and coming back, backends that evict."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .servers import Gunicorn, RedisServer

ROOT = Path(__file__).resolve().parent.parent
PAIRS = 500


def _pairs(server: Gunicorn, count: int) -> list[str]:
    """Register through a callback and fetch on a fresh connection, ``count`` times; return failures."""
    failures = []
    for n in range(count):
        status, url = server.callback(n)
        if status != 200:
            failures.append(f"callback {n}: {status} {url!r:.200}")
            continue
        status, data = server.request("GET", url)
        if status != 200 or data != f"file {n} ".encode() * 100:
            failures.append(f"GET {n}: {status} {data[:80]!r}")
    return failures


def _worker_pids(server: Gunicorn, tries: int = 16) -> set[int]:
    """The workers that answer ``tries`` concurrent slow requests: a busy worker accepts none."""
    with ThreadPoolExecutor(8) as pool:
        answers = pool.map(lambda _: server.request("GET", "/pid?sleep=0.2")[1], range(tries))
        return {json.loads(a)["pid"] for a in answers}


def test_four_workers_default_store(start_gunicorn: Any, tmp_path: Path) -> None:
    server = start_gunicorn("app", {"DFC_TRANSFORM_DIR": str(tmp_path / "store")}, "-w", "4")
    assert len(_worker_pids(server)) >= 2  # requests really spread over workers
    assert _pairs(server, PAIRS) == []


def test_four_workers_redis(start_gunicorn: Any, redis_server: RedisServer) -> None:
    server = start_gunicorn("app", {"DFC_TEST_BACKEND": f"redis://{redis_server.address}"}, "-w", "4")
    assert _pairs(server, PAIRS) == []


def test_worker_recycling_keeps_the_default_store(start_gunicorn: Any, tmp_path: Path) -> None:
    store = tmp_path / "store"
    server = start_gunicorn("app", {"DFC_TRANSFORM_DIR": str(store)}, "-w", "2", "--max-requests", "20")
    before = _worker_pids(server, 8)
    status, first_url = server.callback(12345)
    assert status == 200
    assert _pairs(server, 150) == []
    assert not before & _worker_pids(server, 8), "workers were not recycled"
    # A file registered by a worker long gone is still served.
    assert server.request("GET", first_url) == (200, b"file 12345 " * 100)
    assert (store / "files").is_dir()


def test_two_hosts_share_redis(start_gunicorn: Any, redis_server: RedisServer, tmp_path: Path) -> None:
    env = {"DFC_TEST_BACKEND": f"redis://{redis_server.address}"}
    host_a = start_gunicorn(
        "host-a", {**env, "DFC_TRANSFORM_DIR": str(tmp_path / "host-a" / "store")}, "-w", "2"
    )
    host_b = start_gunicorn(
        "host-b", {**env, "DFC_TRANSFORM_DIR": str(tmp_path / "host-b" / "store")}, "-w", "2"
    )
    for n in range(50):
        status, url = host_a.callback(n)
        assert status == 200
        assert host_b.request("GET", url) == (200, f"file {n} ".encode() * 100)
    # A path on host A: copied into Redis, so host B serves it after A's file is gone.
    private = tmp_path / "host-a" / "tmp" / "report.csv"
    data = os.urandom(3 * 1024 * 1024 + 5)
    private.write_bytes(data)
    status, url = host_a.callback(1, text=f"path:{private}")
    assert status == 200 and url.endswith("/pair.bin")  # the output names its files
    private.unlink()
    status, body = host_b.request("GET", url)
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_redis_down_then_back(start_gunicorn: Any, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        server = start_gunicorn("app", {"DFC_TEST_BACKEND": f"redis://{redis.address}"}, "-w", "2")
        status, url = server.callback(1)
        assert status == 200
        redis.stop()
        # The callback fails, naming the backend in the log; GETs are 503, never a 500.
        assert server.callback(2)[0] == 500
        assert "RedisCache backend failed" in server.log.read_text()
        for _ in range(5):
            status, body = server.request("GET", url)
            assert status == 503
            assert b"Traceback" not in body
        redis.start()  # same port, empty: no persistence
        assert server.request("GET", url)[0] == 404
        assert _pairs(server, 20) == []  # no restart needed
    finally:
        redis.stop()


def _check_evicting(server: Gunicorn, count: int, size: int) -> dict[str, int]:
    """Register ``count`` files of ``size`` bytes, fetching each at once and all again at the
    end, when many have been evicted; every 200 must carry the exact bytes."""
    outcomes = {"exact": 0, "gone": 0, "aborted": 0, "refused": 0}

    def fetch(n: int, url: str) -> None:
        expected = (f"{n:06d}" * (size // 6 + 1))[:size].encode()
        try:
            status, body = server.request("GET", url)
        except http.client.IncompleteRead:
            outcomes["aborted"] += 1  # a chunk vanished mid-stream: the connection was dropped
            return
        if status == 200:
            assert body == expected, f"a 200 with wrong content for file {n}"
            outcomes["exact"] += 1
        else:
            assert status in (404, 410), status
            outcomes["gone"] += 1

    registered = []
    for n in range(count):
        status, data = server.request("POST", f"/register?size={size}&seed={n:06d}")
        if status != 200:
            outcomes["refused"] += 1  # the backend evicted the file while it was written
            continue
        registered.append((n, json.loads(data)["url"]))
        fetch(*registered[-1])
    for n, url in registered:
        fetch(n, url)
    return outcomes


def test_filesystem_threshold_eviction_never_gives_a_wrong_200(start_gunicorn: Any, tmp_path: Path) -> None:
    env = {"DFC_TEST_BACKEND": f"fs:{tmp_path / 'small'}:40", "DFC_TEST_CHUNK": "4096"}
    server = start_gunicorn("app", env, "-w", "2")
    outcomes = _check_evicting(server, 60, 2 * 4096)
    assert outcomes["exact"] > 0
    assert outcomes["gone"] + outcomes["aborted"] + outcomes["refused"] > 0, outcomes  # eviction happened


def test_redis_lru_eviction_never_gives_a_wrong_200(start_gunicorn: Any, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis-lru")
    redis.extra_args = ["--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru"]
    redis.start()
    try:
        server = start_gunicorn("app", {"DFC_TEST_BACKEND": f"redis://{redis.address}"}, "-w", "2")
        outcomes = _check_evicting(server, 40, 1024 * 1024 + 100)
        assert outcomes["exact"] > 0
        assert outcomes["gone"] + outcomes["aborted"] + outcomes["refused"] > 0, outcomes
    finally:
        redis.stop()


def test_celery_background_callback(start_gunicorn: Any, redis_server: RedisServer, tmp_path: Path) -> None:
    """The callback body runs in a real Celery worker; the web process serves its file."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DFC_TEST_REDIS_URL": f"redis://{redis_server.address}",
        "DFC_TRANSFORM_DIR": str(tmp_path / "store"),
    }
    # The celery script next to this interpreter, not `python -m celery`: DashProxy registers its
    # tasks in the worker only when sys.argv[0] ends with "celery" (register_celery_tasks).
    celery = Path(sys.executable).with_name("celery")
    assert celery.is_file(), f"celery is not installed next to {sys.executable}"
    log = tmp_path / "celery.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [str(celery), "-A", "tests.apps.celery_app:celery_app", "worker", "--pool=solo", "--concurrency=1",
             "--loglevel=INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        server = start_gunicorn(
            "web",
            {k: env[k] for k in ("DFC_TEST_REDIS_URL", "DFC_TRANSFORM_DIR")},
            "-w",
            "2",
            module="celery_app",
        )
        body = {
            "output": "img.src",
            "outputs": {"id": "img", "property": "src"},
            "inputs": [{"id": "go", "property": "n_clicks", "value": 7}],
            "changedPropIds": ["go.n_clicks"],
            "state": [],
        }
        status, data = server.request("POST", "/_dash-update-component", body)
        assert status == 200, data
        handles = json.loads(data)
        query = f"?cacheKey={handles['cacheKey']}&job={handles['job']}"
        progress = []
        deadline = time.monotonic() + 60
        while True:
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no result from the Celery worker: " + log.read_text()[-3000:]
            status, data = server.request("POST", "/_dash-update-component" + query, body)
            assert status in (200, 204), data  # 204: nothing new yet
            reply = json.loads(data) if status == 200 else {}
            if "progress" in reply:
                progress.append(reply["progress"]["progress.children"])
            if "response" in reply:
                break
            time.sleep(0.1)
        url = reply["response"]["img"]["src"]
        status, content = server.request("GET", url)
        assert status == 200
        assert content.decode() == f"made by celery worker {worker.pid} for click 7"
        assert progress and all(p.endswith("%") for p in progress)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=30)
