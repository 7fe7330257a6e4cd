"""Content made while it is served: a callback returns a generator, answers at once with the
URL, and a GET from any worker receives the bytes as they are made (``dfc_transform.store.growing``)."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache
from dash_extensions.enrich import DashProxy, Input, html

from dfc_transform import File, FileOutput, FileServeTransform, FileService
from dfc_transform.options import FileOptions
from dfc_transform.store import growing

from .apps.generated_app import content, piece
from .conftest import DashClient, inp, out
from .servers import Gunicorn

MiB = 1024 * 1024


def _app(tmp_path: Path, make: Callable[[], Any], **transform: Any) -> tuple[DashClient, FileServeTransform]:
    files = FileServeTransform(
        FileSystemCache(str(tmp_path / "store"), threshold=0), inline_below=0, **transform
    )
    app = DashProxy(__name__, transforms=[files])
    app.layout = html.Div([html.Button(id="go"), html.A(id="a")])
    app.callback(FileOutput("a", "href", filename="export.bin"), Input("go", "n_clicks"))(lambda n: make())
    return DashClient(app), files


def _slow(pieces: int, delay: float, fail_at: int = -1) -> Iterator[bytes]:
    for index in range(pieces):
        if index == fail_at:
            raise RuntimeError("the export failed half way")
        time.sleep(delay)
        yield piece(index)


def _pieces(response: Any) -> Iterator[bytes]:
    """The body of a streamed test-client response, piece by piece as it comes."""
    for chunk in response.response:
        assert isinstance(chunk, bytes)
        yield chunk


def _read(client: DashClient, url: str) -> tuple[float, bytes, Any]:
    """Seconds to the first byte, the body, and the response, read as it streams."""
    start = time.perf_counter()
    r = client.http.get(url, buffered=False)
    first = None
    body = bytearray()
    for chunk in _pieces(r):
        if first is None:
            first = time.perf_counter() - start
        body += chunk
    return first or 0.0, bytes(body), r


def test_the_url_comes_at_once_and_the_bytes_as_they_are_made(tmp_path: Path) -> None:
    client, files = _app(tmp_path, lambda: _slow(24, 0.125))  # 6 MiB over 3 s
    start = time.perf_counter()
    url = client.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"]
    answered = time.perf_counter() - start
    first, body, r = _read(client, url)
    total = time.perf_counter() - start
    assert body == b"".join(piece(i) for i in range(24))
    # The URL, then the first byte, well before the generator ended (it takes 3 s at least).
    assert answered < total / 2 and answered + first < total / 2, (answered, first, total)
    assert "Content-Length" not in r.headers and r.headers["Cache-Control"] == "no-store"
    assert r.headers["Accept-Ranges"] == "none" and "ETag" not in r.headers
    # Complete: an ordinary stored file.
    done = client.http.get(url)
    assert done.headers["Content-Length"] == str(len(body)) and "ETag" in done.headers
    part = client.http.get(url, headers={"Range": "bytes=300000-300099"})
    assert part.status_code == 206 and part.data == body[300000:300100]
    assert files.service.stats().files == 1


def test_a_failing_generator_fails_every_transfer_and_leaves_nothing(tmp_path: Path) -> None:
    client, files = _app(tmp_path, lambda: _slow(24, 0.02, fail_at=10))
    url = client.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"]
    r = client.http.get(url, buffered=False)
    received = bytearray()
    with pytest.raises(Exception, match="failed while it was made"):
        for chunk in _pieces(r):
            received += chunk
    # What came before the failure at most (10 pieces), never the whole file (24), never a complete 200.
    assert len(received) <= 10 * 256 * 1024
    assert bytes(received) == b"".join(piece(i) for i in range(10))[: len(received)]
    assert client.http.get(url).status_code == 404
    assert files.service.stats().files == 0 and files.service.stats().events["failed"] >= 1
    left = [p for p in (tmp_path / "store").iterdir() if not p.name.endswith(".__wz_cache")]
    assert len(left) <= 3, left  # the store's key, ledger, namespaces: no chunk of it


def test_an_async_generator_and_declared_sizes(tmp_path: Path) -> None:
    async def made() -> AsyncIterator[bytes]:
        for index in range(8):
            await asyncio.sleep(0.01)
            yield piece(index)

    service = FileService(FileSystemCache(str(tmp_path / "store"), threshold=0))
    import flask

    app = flask.Flask(__name__)
    service.init_app(app)
    size = 8 * 256 * 1024
    with app.test_request_context():
        url = service.output_for(made(), FileOptions(filename="a.bin", size=size), prop="href", stream=True)
        wrong = service.output_for(
            (piece(i) for i in range(2)), FileOptions(filename="b.bin", size=size), prop="href", stream=True
        )
    assert isinstance(url, str) and isinstance(wrong, str)
    r = app.test_client().get(url, buffered=False)
    assert r.headers["Content-Length"] == str(size)  # declared: known from the first byte
    assert b"".join(_pieces(r)) == b"".join(piece(i) for i in range(8))
    # Content that is not the size it declared fails as a failing generator does: here it
    # failed before anyone asked, and the GET is a clean error.
    time.sleep(0.5)
    assert app.test_client().get(wrong).status_code in (404, 410)


def test_pieces_must_be_bytes(tmp_path: Path) -> None:
    events: list[Any] = []
    client, _ = _app(tmp_path, lambda: iter(["text"]), on_event=[events.append])
    url = client.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"]
    time.sleep(0.5)  # it fails at once: then its URL is a clean error
    assert client.http.get(url).status_code in (404, 410)
    failures = [e.detail for e in events if e.kind == "failed"]
    assert any("yielded a str; it must yield bytes" in d for d in failures), failures


def test_a_one_time_generated_file_opens_once(tmp_path: Path) -> None:
    client, _ = _app(tmp_path, lambda: File(_slow(8, 0.01), one_time=True))
    url = client.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"]
    _, body, _ = _read(client, url)
    assert body == b"".join(piece(i) for i in range(8))
    assert client.http.get(url).status_code == 410


def test_the_size_cap_fails_it_as_it_grows(tmp_path: Path) -> None:
    # 4 MiB made, 1 MiB allowed; the pause lets the GET start before the cap is reached.
    client, files = _app(tmp_path, lambda: _slow(16, 0.1), max_size=MiB)
    url = client.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"]
    received = bytearray()
    with pytest.raises(Exception, match="failed while it was made"):
        # Older Werkzeug test clients pull the first chunk inside get(): the failure may come there.
        r = client.http.get(url, buffered=False)
        assert r.status_code == 200
        for chunk in _pieces(r):
            received += chunk
    assert len(received) <= MiB
    assert client.http.get(url).status_code == 404 and files.service.stats().files == 0


def test_the_byte_budget_makes_room_as_it_grows(tmp_path: Path) -> None:
    budget = 3 * MiB
    client, files = _app(tmp_path, lambda: _slow(8, 0.0), max_total_size=budget)  # 2 MiB made
    old = files.service.register(os.urandom(2 * MiB), filename="old.bin")
    url = client.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"]
    _, body, _ = _read(client, url)
    assert body == b"".join(piece(i) for i in range(8))
    # The older file made the room (evicted), and the store stays within its budget.
    assert client.http.get(old).status_code in (404, 410)
    stats = files.service.stats()
    assert stats.files == 1 and stats.bytes == len(body) <= budget


def test_a_background_callback_stores_it_whole_before_answering(tmp_path: Path) -> None:
    files = FileServeTransform(FileSystemCache(str(tmp_path / "store"), threshold=0))
    service = files.service
    import flask

    app = flask.Flask(__name__)
    service.init_app(app)
    with app.test_request_context():
        url = service.output_for(_slow(4, 0.01), FileOptions(filename="a.bin"), prop="href", stream=False)
    assert isinstance(url, str)
    r = app.test_client().get(url)
    assert r.headers["Content-Length"] == str(4 * 256 * 1024) and "ETag" in r.headers


MAKER = """
import sys, time
from cachelib import FileSystemCache
from flask import Flask
from dfc_transform import FileService
from dfc_transform.options import FileOptions
from tests.apps.generated_app import piece

def pieces():
    for i in range(100):
        if i == 6:
            time.sleep(0.5)
            print("dying", flush=True)
            import os; os._exit(1)   # killed mid-export: no cleanup, no goodbye
        time.sleep(0.02)
        yield piece(i)

service = FileService(FileSystemCache(sys.argv[1], threshold=0))
app = Flask("maker")
service.init_app(app)
with app.test_request_context():
    print(service.output_for(pieces(), FileOptions(filename="x.bin"), prop="href", stream=True), flush=True)
time.sleep(60)
"""


def test_a_killed_writer_fails_its_followers_and_later_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(growing, "DEAD_AFTER", 5.0)
    store = tmp_path / "store"
    maker = subprocess.Popen(
        [sys.executable, "-c", MAKER, str(store)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert maker.stdout is not None
        url = maker.stdout.readline().strip()
        service = FileService(FileSystemCache(str(store), threshold=0))
        import flask

        app = flask.Flask(__name__)
        service.init_app(app)
        r = app.test_client().get(url, buffered=False)
        start = time.monotonic()
        with pytest.raises(Exception, match="stopped"):
            b"".join(_pieces(r))
        assert time.monotonic() - start < 5.0 + 10  # given up once it is silent too long
        later = app.test_client().get(url)
        assert later.status_code == 410
    finally:
        maker.kill()
        maker.wait()


def test_under_gunicorn_other_workers_follow_the_writer(tmp_path: Path, start_gunicorn: Any) -> None:
    pieces = 40
    server: Gunicorn = start_gunicorn(
        "gen",
        {"DFC_TRANSFORM_DIR": str(tmp_path / "store"), "GEN_PIECES": str(pieces), "GEN_DELAY": "0.1"},
        # Sync workers take one request at a time: a worker streaming the file accepts no other
        # connection, so two readers at once are answered by two workers, one at least not the
        # writer's (a shared listening socket need not spread connections otherwise).
        "-w", "3", "-k", "sync", "--keep-alive", "0",
        "--access-logfile", "-", "--access-logformat", "%(p)s %(m)s %(U)s %(s)s",
        module="generated_app",
    )  # fmt: skip
    body = {
        "output": "a.href",
        "outputs": {"id": "a", "property": "href"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    started = time.perf_counter()
    status, answer = server.request("POST", "/_dash-update-component", body)
    assert status == 200
    import json

    url = json.loads(answer)["response"]["a"]["href"]
    results: list[tuple[float, bytes]] = []

    def fetch() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("GET", url)
        response = conn.getresponse()
        first = None
        data = bytearray()
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            if first is None:
                first = time.perf_counter() - started
            data += chunk
        conn.close()
        results.append((first or 0.0, bytes(data)))

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    made_in = pieces * 0.1
    assert len(results) == 2
    assert all(data == content() for _, data in results)
    assert all(first < made_in / 2 for first, _ in results), [first for first, _ in results]
    log = server.log.read_text()
    writer = re.search(r"^<(\d+)> POST /_dash-update-component 200", log, re.MULTILINE)
    readers = set(re.findall(rf"^<(\d+)> GET {re.escape(url)} 200", log, re.MULTILINE))
    assert writer is not None and readers - {writer.group(1)}, log[-2000:]  # others than the writer's


BIG = """
import hashlib, resource, sys, threading
from cachelib import FileSystemCache
from flask import Flask
from dfc_transform import FileService
from dfc_transform.options import FileOptions

PIECE = b"0123456789abcdef" * 4096  # 64 KiB
COUNT = 16384  # 1 GiB

def pieces():
    for _ in range(COUNT):
        yield PIECE

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
service = FileService(FileSystemCache(sys.argv[1], threshold=0))
app = Flask("big")
service.init_app(app)
with app.test_request_context():
    url = service.output_for(pieces(), FileOptions(filename="big.bin"), prop="href", stream=True)
digest, size = hashlib.sha256(), 0
response = app.test_client().get(url, buffered=False)
for chunk in response.response:
    digest.update(chunk)
    size += len(chunk)
expected = hashlib.sha256()
for _ in range(COUNT):
    expected.update(PIECE)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(size, digest.hexdigest() == expected.hexdigest(), peak - before)
"""


def test_a_generated_gigabyte_with_memory_bounded(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BIG, str(tmp_path / "store")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    size, same, growth = done.stdout.split()
    assert int(size) == 1024**3 and same == "True"
    assert int(growth) < 64 * MiB, done.stdout
    for path in (tmp_path / "store").iterdir():  # pytest keeps the last temp dirs: no GiB left there
        path.unlink()
