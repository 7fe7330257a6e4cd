"""The backend contract: one suite, run on every backend we support, against real servers.

Each backend gets a fresh ``FileService`` on a plain Flask app. Files go in and come back
byte for byte (sha256) through the Flask test client, and through a real threaded HTTP
server for concurrent downloads. redis-server and memcached are real processes started by
the session fixtures in ``conftest.py`` (see ``tests/servers.py``); nothing is mocked.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache, MemcachedCache, RedisCache, SimpleCache
from flask import Flask
from flask_caching import Cache
from pymemcache.client.base import PooledClient
from pymemcache.exceptions import MemcacheServerError
from werkzeug.serving import make_server

from dfc_transform import FileService
from dfc_transform.exc import BackendUnavailableError, FileTooLargeError
from dfc_transform.store.backends import DEFAULT_CHUNK_SIZE, MEMCACHED_CHUNK_SIZE, Profile
from dfc_transform.store.expiry import MemoryJournal
from dfc_transform.store.records import FileRecord
from dfc_transform.store.s3 import S3Store

from .servers import MemcachedServer, RedisServer, SeaweedServer

KiB = 1024
MiB = 1024 * KiB
#: memcached's default item size limit (``-I 1m``), key and flags included.
MEMCACHED_ITEM_LIMIT = 1024 * 1024

BACKENDS = [
    "simple", "filesystem", "redis", "memcached", "flask_caching_redis", "flask_caching_memcached", "s3",
]  # fmt: skip
MEMCACHED_BACKENDS = {"memcached", "flask_caching_memcached"}
ROUND_TRIP_SIZES = [0, 1, 5 * MiB, 64 * MiB]
CONCURRENT_CLIENTS = 20


@pytest.fixture(scope="session")
def payloads() -> dict[int, bytes]:
    """Random contents, made once per session: the 64 MiB one is costly enough."""
    return {size: os.urandom(size) for size in ROUND_TRIP_SIZES}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Rig:
    """A plain Flask app with a ``FileService`` on one backend."""

    kind: str
    app: Flask
    service: FileService
    cleanups: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def backend(self) -> Any:
        return self.service.backend

    def register(self, value: Any, **options: Any) -> str:
        # register() runs in requests in real apps; a flask_caching.Cache needs the app context.
        with self.app.test_request_context():
            return self.service.register(value, **options)

    def record(self, url: str) -> FileRecord:
        with self.app.app_context():
            record = self.service.store.get(token_of(url))
        assert record is not None, f"no record for {url}"
        return record

    def stored(self, key: str) -> Any:
        """What the backend holds under ``key``, read through its public ``get``."""
        with self.app.app_context():
            return self.backend.get(key)

    def key(self, token: str, part: object) -> str:
        """The backend key of part ``part`` (a chunk index, ``"m"`` for the record) of a file."""
        namespace = self.service.store.namespace
        return f"dfc:{namespace}:{token}:{part}" if namespace else f"dfc:{token}:{part}"

    def forget(self, key: str) -> None:
        with self.app.app_context():
            self.backend.delete(key)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.app.test_client().get(url, **kwargs)


def token_of(url: str) -> str:
    return url.split("/")[-2]


def _pymemcache(server: MemcachedServer) -> PooledClient:
    # A pymemcache client handed to the cache, the other way users configure memcached.
    # PooledClient: a threaded server shares it. No serde: only bytes and str are stored.
    return PooledClient(
        (server.host, server.port), default_noreply=False, connect_timeout=5, timeout=10, max_pool_size=32
    )


@pytest.fixture(params=BACKENDS)
def make_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """Build ``Rig`` objects on the parametrised backend; keys are unique to the test."""
    kind: str = request.param
    prefix = f"dfc-test-{uuid.uuid4().hex[:12]}:"
    rigs: list[Rig] = []

    def factory(**service_kwargs: Any) -> Rig:
        app = Flask(f"contract_{kind}")
        cleanups: list[Callable[[], Any]] = []
        backend: Any
        bind_late = False
        if kind == "simple":
            backend = SimpleCache(threshold=0)
        elif kind == "filesystem":
            backend = FileSystemCache(str(tmp_path / f"store{len(rigs)}"), threshold=0)
            cleanups.append(backend.clear)  # pytest keeps the last temp dirs: no 64 MiB left there
        elif kind == "redis":
            redis_server: RedisServer = request.getfixturevalue("redis_server")
            backend = RedisCache(redis_server.host, redis_server.port, key_prefix=prefix)
            cleanups.append(backend.clear)  # deletes this prefix's keys only
        elif kind == "memcached":
            memcached_server: MemcachedServer = request.getfixturevalue("memcached_server")
            # The list form, as users write it: cachelib builds a python-memcached client
            # (our `memcached` extra).
            backend = MemcachedCache([memcached_server.address], key_prefix=prefix)
            cleanups.append(backend.clear)  # our own server: flush_all is fine
        elif kind == "flask_caching_redis":
            redis_server = request.getfixturevalue("redis_server")
            config = {
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_HOST": redis_server.host,
                "CACHE_REDIS_PORT": redis_server.port,
                "CACHE_KEY_PREFIX": prefix,
            }
            backend = Cache(app, config=config)
            cleanups.append(lambda: _in_app(app, backend.clear))
        elif kind == "flask_caching_memcached":
            memcached_server = request.getfixturevalue("memcached_server")
            client = _pymemcache(memcached_server)
            config = {
                "CACHE_TYPE": "MemcachedCache",
                "CACHE_MEMCACHED_SERVERS": client,
                "CACHE_KEY_PREFIX": prefix,
            }
            # The app-factory pattern: the service is made before the cache meets its app (below).
            backend = Cache(config=config)
            bind_late = True
            cleanups += [lambda: _in_app(app, backend.clear), client.close]
        elif kind == "s3":
            # Through the app (redirect=False): the contract is about what the store keeps and
            # serves; redirects have tests of their own (test_s3.py).
            seaweed: SeaweedServer = request.getfixturevalue("seaweed_server")
            bucket = request.getfixturevalue("s3_bucket")
            backend = S3Store(
                bucket, endpoint_url=seaweed.endpoint_url, client=seaweed.client(), redirect=False
            )
            cleanups.append(backend.clear)
        else:
            raise ValueError(kind)
        service = FileService(backend, **service_kwargs)
        if bind_late:
            backend.init_app(app)
        service.init_app(app)
        rigs.append(Rig(kind, app, service, cleanups))
        return rigs[-1]

    yield factory
    for rig in rigs:
        for cleanup in rig.cleanups:
            cleanup()


def _in_app(app: Flask, func: Callable[[], Any]) -> Any:
    with app.app_context():
        return func()


@contextmanager
def http_server(app: Flask) -> Iterator[tuple[str, int]]:
    """Serve ``app`` with Werkzeug's threaded server on a free port; yield ``(host, port)``."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="contract-http", daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def http_get(address: tuple[str, int], url: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*address, timeout=60)
    try:
        conn.request("GET", url)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def expected_chunk_size(kind: str) -> int:
    return MEMCACHED_CHUNK_SIZE if kind in MEMCACHED_BACKENDS else DEFAULT_CHUNK_SIZE


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("size", ROUND_TRIP_SIZES, ids=["0B", "1B", "5MiB", "64MiB"])
def test_round_trip(make_rig: Callable[..., Rig], payloads: dict[int, bytes], size: int) -> None:
    rig = make_rig()
    data = payloads[size]
    url = rig.register(data, filename="blob.bin")
    r = rig.get(url)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == size
    body = r.get_data()
    assert len(body) == size
    assert sha(body) == sha(data)
    assert rig.record(url).size == size


def test_content_is_chunked_under_token_keys(
    make_rig: Callable[..., Rig], payloads: dict[int, bytes]
) -> None:
    rig = make_rig()
    data = payloads[5 * MiB]
    url = rig.register(data)
    record = rig.record(url)
    chunk_size = expected_chunk_size(rig.kind)
    assert record.chunk_size == chunk_size
    assert record.chunk_count == -(-len(data) // chunk_size) > 1
    token = token_of(url)
    if rig.kind == "s3":
        # Object storage keeps the file as one object where chunk 0 would be; chunks are its ranges.
        assert record.blob and rig.stored(rig.key(record.storage, 0)) == data
        assert rig.stored(rig.key(record.storage, 1)) is None
    else:
        assert not record.blob
        for i in range(record.chunk_count):
            chunk = rig.stored(rig.key(record.storage, i))
            assert chunk == data[i * chunk_size : (i + 1) * chunk_size], f"chunk {i}"
        assert rig.stored(rig.key(record.storage, record.chunk_count)) is None
    assert isinstance(rig.stored(rig.key(token, "m")), bytes)  # JSON: no client serialiser involved


def test_unknown_token_is_404(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    r = rig.get("/_dash-files/" + "Q" * 22 + "/nothing.bin")
    assert r.status_code == 404
    assert r.mimetype == "text/plain"


# -- ranges, expiry, one-time -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=1000000-3500000", 1000000, 3500001),  # across chunk boundaries of 512 KiB and 1 MiB
        ("bytes=10-20", 10, 21),  # inside the first chunk
        ("bytes=-100", 5 * MiB - 100, 5 * MiB),  # suffix: the end of the last chunk
        ("bytes=4194304-", 4 * MiB, 5 * MiB),  # exactly on a chunk boundary, to the end
    ],
)
def test_range_request(
    make_rig: Callable[..., Rig], payloads: dict[int, bytes], header: str, start: int, stop: int
) -> None:
    rig = make_rig()
    data = payloads[5 * MiB]
    url = rig.register(data, filename="ranged.bin")
    r = rig.get(url, headers={"Range": header})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(data)}"
    assert int(r.headers["Content-Length"]) == stop - start
    assert r.get_data() == data[start:stop]


def test_unsatisfiable_range_is_416(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    url = rig.register(b"0123456789")
    r = rig.get(url, headers={"Range": "bytes=10-20"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */10"


def test_expiry(make_rig: Callable[..., Rig]) -> None:
    # 2 s, not 1: cachelib hands memcached an absolute whole second, int(time()) + timeout, so a
    # 1 s lifetime can end a moment after the write, before the first GET below.
    rig = make_rig(timeout=2)
    url = rig.register(b"short-lived", filename="s.txt")
    r = rig.get(url)
    assert r.status_code == 200
    assert r.get_data() == b"short-lived"
    assert r.headers["Cache-Control"].startswith("private, max-age=")
    assert 0 <= int(r.headers["Cache-Control"].split("max-age=")[1].split(",")[0]) <= 2
    deadline = time.monotonic() + 10
    while (status := rig.get(url).status_code) == 200:
        assert time.monotonic() < deadline, "the file was still served 10 s after its 2 s lifetime"
        time.sleep(0.1)
    assert status == 404
    # The record leaves the backend, not just our view of it: by the backend's own time-to-live,
    # or, where the backend would only hide an expired key, by the sweep.
    key = rig.key(token_of(url), "m")
    while rig.stored(key) is not None:
        rig.service.purge_expired()
        assert time.monotonic() < deadline, f"the {rig.kind} backend kept {key} past its time-to-live"
        time.sleep(0.1)


def test_one_time(make_rig: Callable[..., Rig], payloads: dict[int, bytes]) -> None:
    rig = make_rig()
    data = payloads[5 * MiB]
    url = rig.register(data, filename="once.bin", one_time=True)
    record = rig.record(url)
    # A HEAD does not consume the file; a one-time file is served whole only (Range ignored).
    assert rig.app.test_client().head(url).status_code == 200
    r = rig.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "private, no-store"
    assert sha(r.get_data()) == sha(data)
    for _ in range(2):
        r = rig.get(url)
        assert r.status_code == 410
        assert r.mimetype == "text/plain"
    assert [i for i in range(record.chunk_count) if rig.stored(rig.key(record.storage, i)) is not None] == []


def test_missing_first_chunk_is_410_not_a_short_200(
    make_rig: Callable[..., Rig], payloads: dict[int, bytes]
) -> None:
    rig = make_rig()
    url = rig.register(payloads[5 * MiB], filename="evicted.bin")
    rig.forget(rig.key(rig.record(url).storage, 0))  # as an eviction would
    r = rig.get(url)
    assert r.status_code == 410
    assert r.mimetype == "text/plain"


# -- real HTTP ---------------------------------------------------------------------------


def test_concurrent_gets_over_http(make_rig: Callable[..., Rig], payloads: dict[int, bytes]) -> None:
    rig = make_rig()
    data = payloads[5 * MiB]
    url = rig.register(data, filename="popular.bin")
    barrier = threading.Barrier(CONCURRENT_CLIENTS, timeout=30)

    with http_server(rig.app) as address:

        def fetch(_: int) -> tuple[int, str, int, str]:
            barrier.wait()  # all 20 requests in flight at once
            status, headers, body = http_get(address, url)
            return status, headers.get("Content-Length", ""), len(body), sha(body)

        with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
            results = list(pool.map(fetch, range(CONCURRENT_CLIENTS)))

    expected = (200, str(len(data)), len(data), sha(data))
    assert [r for r in results if r != expected] == []


def test_missing_middle_chunk_breaks_the_transfer_over_http(
    make_rig: Callable[..., Rig], payloads: dict[int, bytes]
) -> None:
    """Headers are out when a later chunk turns out missing: the client must see a failed transfer."""
    rig = make_rig()
    data = payloads[5 * MiB]
    url = rig.register(data, filename="holey.bin")
    record = rig.record(url)
    if rig.kind == "s3":
        # One object, read in one request: it is there or not, never holed. Gone: a clean 410.
        rig.forget(rig.key(record.storage, 0))
        assert rig.get(url).status_code == 410
        assert rig.get(url, headers={"Range": "bytes=100-200"}).status_code == 410
        return
    missing = record.chunk_count // 2
    rig.forget(rig.key(record.storage, missing))
    with (
        http_server(rig.app) as address,
        pytest.raises((http.client.IncompleteRead, ConnectionError)) as info,
    ):
        http_get(address, url)
    if isinstance(info.value, http.client.IncompleteRead):
        # What did arrive is the file's true beginning, up to the missing chunk at most.
        assert len(info.value.partial) <= missing * record.chunk_size
        assert data.startswith(info.value.partial)


# -- memcached specifics -----------------------------------------------------------------


def test_memcached_item_limit_is_real_and_chunking_avoids_it(
    memcached_server: MemcachedServer, payloads: dict[int, bytes]
) -> None:
    """The 5 MiB round trips above pass on memcached only because chunks stay under 1 MB."""
    client = _pymemcache(memcached_server)
    backend = MemcachedCache(client, key_prefix=f"dfc-test-{uuid.uuid4().hex[:12]}:")
    try:
        with pytest.raises(MemcacheServerError, match="too large"):
            backend.set("probe", b"x" * MEMCACHED_ITEM_LIMIT)

        chunked = FileService(backend)
        assert chunked.store.chunk_size == MEMCACHED_CHUNK_SIZE
        app = Flask(__name__)
        chunked.init_app(app)
        data = payloads[5 * MiB]
        url = chunked.register(data)
        assert sha(app.test_client().get(url).get_data()) == sha(data)

        # Forced 1 MiB chunks do not fit: a clear error at registration, not a URL that 410s later.
        whole = FileService(backend, chunk_size=1 * MiB)
        with pytest.raises(BackendUnavailableError, match="too large"):
            whole.register(data[::-1])  # other content: the same would be found stored already
    finally:
        backend.clear()
        client.close()


# -- the servers themselves --------------------------------------------------------------


def test_redis_server_restarts_on_the_same_port(tmp_path: Path) -> None:
    """``stop()``/``start()`` for fault injection: same port, a client reconnects, nothing persisted."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        port, pid = server.port, server.pid
        backend = RedisCache(server.host, server.port, key_prefix="restart:")
        assert backend.set("k", b"v", 60)
        server.stop()
        assert not server.running and not server.ping()
        with pytest.raises(Exception, match=r"(?i)connect"):
            backend.get("k")
        server.start()
        assert (server.port, server.running) == (port, True)
        assert server.pid != pid
        assert backend.get("k") is None  # --save '' and no AOF: a restart starts empty
        assert backend.set("k", b"w", 60) and backend.get("k") == b"w"
    finally:
        server.stop()
    assert server.pid is None


# -- the store manages itself: one copy per content, a byte budget, expiry, stats ------------------


def test_same_content_same_options_same_url_stored_once(
    make_rig: Callable[..., Rig], payloads: dict[int, bytes]
) -> None:
    rig = make_rig(timeout=600)
    data = payloads[5 * MiB]
    url = rig.register(data, filename="same.bin")
    first = rig.record(url)
    time.sleep(1.1)  # so that a renewal shows in the expiry
    assert rig.register(io.BytesIO(data), filename="same.bin") == url  # another value type, same content
    renewed = rig.record(url).expires
    assert renewed is not None and first.expires is not None and renewed > first.expires  # pushed back
    stats = rig.service.stats()
    assert (stats.files, stats.bytes) == (1, len(data))
    assert stats.events["deduplicated"] == 1
    # Another service sharing the backend (another worker or host) derives the same URL.
    other = FileService(rig.backend, timeout=600)
    with rig.app.test_request_context():
        assert other.register(data, filename="same.bin") == url
    # Other content, other options, or one-time files get URLs of their own.
    assert rig.register(data[:-1], filename="same.bin") != url
    assert rig.register(data, filename="other.bin") != url
    assert rig.register(data, filename="same.bin", download=True) != url
    once = {rig.register(data, filename="same.bin", one_time=True) for _ in range(2)}
    assert len(once) == 2 and url not in once
    assert sha(rig.get(url).get_data()) == sha(data)


def test_byte_budget_evicts_the_oldest_and_never_serves_a_wrong_200(
    make_rig: Callable[..., Rig], payloads: dict[int, bytes]
) -> None:
    size = 700 * 1024
    rig = make_rig(max_total_size=3 * size)
    files = [bytes([i]) * size for i in range(5)]
    urls = [rig.register(f, filename=f"f{i}.bin") for i, f in enumerate(files)]
    stats = rig.service.stats()
    assert stats.bytes <= 3 * size
    assert stats.files == 3
    assert stats.events["evicted"] == 2
    for i, url in enumerate(urls):
        r = rig.get(url)
        if i < 2:  # registered longest ago: gone
            assert r.status_code in (404, 410)
        else:
            assert (r.status_code, r.get_data()) == (200, files[i])
    with pytest.raises(FileTooLargeError, match="byte budget of"):
        rig.register(os.urandom(3 * size + 1))
    assert rig.service.stats().files == 3  # the refused file took nothing, evicted nothing


def test_purge_expired_leaves_nothing(make_rig: Callable[..., Rig], tmp_path: Path) -> None:
    rig = make_rig(timeout=2)
    urls = [rig.register(os.urandom(n), filename=f"{n}.bin") for n in (10, 70_000, 2 * MiB + 5)]
    records = [rig.record(url) for url in urls]
    deadline = time.monotonic() + 10
    while any(rig.get(url).status_code == 200 for url in urls):  # all of them, the last one too
        assert time.monotonic() < deadline
        time.sleep(0.1)
    rig.service.purge_expired()
    if rig.service.store.profile.expiry == "native":
        return  # Redis and memcached drop expired keys themselves (see test_expiry above)
    for record in records:
        keys = [rig.key(record.token, "m")]
        keys += [rig.key(record.storage, i) for i in range(record.chunk_count)]
        assert [k for k in keys if rig.stored(k) is not None] == []
    assert rig.service.stats().files == 0
    if rig.kind == "filesystem":
        # The directory holds none of our files: only the store's token key, ledger and
        # registry of namespaces stay.
        directory = Path(rig.backend._path)
        assert len(os.listdir(directory)) <= 3


def test_stats_count_what_happened(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    url = rig.register(b"0123456789" * 100, filename="s.txt")
    tag = rig.get(url).headers["ETag"]
    rig.get(url, headers={"Range": "bytes=0-9"})
    rig.get(url, headers={"If-None-Match": tag})
    rig.get(url.replace(token_of(url), "A" * 22))
    assert rig.service.remove(url) is True
    assert rig.service.remove(url) is False
    assert rig.get(url).status_code == 404
    events = rig.service.stats().events
    assert {k: events[k] for k in ("registered", "served", "partial", "not_modified", "removed")} == {
        "registered": 1,
        "served": 1,
        "partial": 1,
        "not_modified": 1,
        "removed": 1,
    }
    assert events["missing"] == 2
    assert rig.service.stats().files == 0


class _SelfProfiledCache(SimpleCache):
    """A kind of store the package does not know, which says what it is (ProfiledBackend)."""

    def __init__(self) -> None:
        super().__init__(threshold=0)
        self.asked: list[int] = []

    def store_profile(self, *, chunk_size: int) -> Profile:
        self.asked.append(chunk_size)
        return Profile(
            name="self-profiled store",
            chunk_size=4096,
            per_process=True,
            host_local=True,
            expiry="journal",
            journal=MemoryJournal(grace=0),
        )


def test_a_backend_that_gives_its_own_profile_is_built_from_it() -> None:
    """A new kind of store is one class with ``store_profile``: the store is built from what it
    says (here 4 KiB chunks, where a SimpleCache gets 1 MiB), and files round-trip through it."""
    backend = _SelfProfiledCache()
    service = FileService(backend)
    app = Flask(__name__)
    service.init_app(app)
    assert backend.asked and set(backend.asked) == {DEFAULT_CHUNK_SIZE}  # asked with the chunk size it gets
    assert service.store.profile.name == "self-profiled store"
    data = os.urandom(3 * 4096 + 17)
    with app.test_request_context():
        url = service.register(data, filename="x.bin")
    token = url.rsplit("/", 2)[-2]
    record = service.store.get(token)
    assert record is not None and record.chunk_size == 4096 and record.chunk_count == 4
    got = app.test_client().get(url)
    assert got.status_code == 200 and got.data == data
