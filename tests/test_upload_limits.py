"""Uploads inside their limits: they never evict stored files, their parts are atomic, idle
ones go back, a full disk is refused cleanly, and nothing tells one user about another's files.

Through Flask's test client on a plain Flask app with a ``FileService``, against the
default store and a real Redis; a real small file system (tmpfs) for the free-space reserve.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cachelib import RedisCache
from flask import Flask
from flask.testing import FlaskClient

from dfc_transform import FileService
from dfc_transform.exc import ContentMissingError, StoreFullError
from dfc_transform.http.tickets import Tickets
from dfc_transform.store.ledger import Kept

from .servers import RedisServer

CHUNK = 16 * 1024
KiB = 1024


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


class Client:
    """A browser of the app: its own cookies, a ticket, the protocol's requests."""

    def __init__(self, app: Flask, service: FileService, *, idle: int | None = None) -> None:
        self.http: FlaskClient = app.test_client()
        self.service = service
        self.endpoint = "/_dash-files/_upload"
        self.headers = {"X-Upload-Ticket": Tickets(service.store).issue("up", private=True, idle=idle)}

    def start(self, name: str, size: int, expect: int = 201) -> dict[str, Any]:
        body = json.dumps({"name": name, "size": size})
        r = self.http.post(self.endpoint, data=body, headers=self.headers)
        assert r.status_code == expect, r.get_data(as_text=True)
        return dict(r.get_json())

    def put(self, upload: str, part: int, data: bytes, expect: int = 200) -> dict[str, Any]:
        headers = {**self.headers, "X-Part-CRC32": crc(data)}
        r = self.http.put(f"{self.endpoint}/{upload}/{part}", data=data, headers=headers)
        assert r.status_code == expect, r.get_data(as_text=True)
        return dict(r.get_json())

    def complete(self, upload: str, crcs: list[str], expect: int | None = 200) -> tuple[int, dict[str, Any]]:
        r = self.http.post(
            f"{self.endpoint}/{upload}", data=json.dumps({"parts": crcs}), headers=self.headers
        )
        if expect is not None:
            assert r.status_code == expect, r.get_data(as_text=True)
        return r.status_code, dict(r.get_json())

    def cancel(self, upload: str) -> bool:
        r = self.http.delete(f"{self.endpoint}/{upload}", headers=self.headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        return bool(r.get_json()["cancelled"])

    def status(self, upload: str, expect: int = 200) -> dict[str, Any]:
        r = self.http.get(f"{self.endpoint}/{upload}", headers=self.headers)
        assert r.status_code == expect, r.get_data(as_text=True)
        return dict(r.get_json())

    def part(self, started: dict[str, Any], size: int, part: int = 0) -> bytes:
        """Random bytes as long as ``part`` of an upload of ``size`` bytes."""
        step = started["part_size"]
        return os.urandom(max(0, min(size, (part + 1) * step) - part * step))

    def upload(self, name: str, data: bytes) -> str:
        """Send ``data`` whole and complete it; return its URL."""
        started = self.start(name, len(data))
        size = started["part_size"]
        pieces = [data[p * size : (p + 1) * size] for p in range(started["parts"])]
        for part, piece in enumerate(pieces):
            self.put(started["upload"], part, piece)
        _, done = self.complete(started["upload"], [crc(p) for p in pieces])
        return str(done["file"]["url"])


Make = Callable[..., tuple[Flask, FileService]]


@pytest.fixture(params=["default", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Make:
    """An app with a FileService on the default store (in this test's directory) or Redis."""
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "store"))
    counter = iter(range(1000))

    def factory(**settings: Any) -> tuple[Flask, FileService]:
        backend: Any = None
        if request.param == "redis":
            redis: RedisServer = request.getfixturevalue("redis_server")
            host, port = redis.address.split(":")
            prefix = f"{request.node.name}-{next(counter)}:"
            backend = RedisCache(host=host, port=int(port), key_prefix=prefix, socket_timeout=5)
        app = Flask(__name__)
        service = FileService(backend, chunk_size=CHUNK, **settings)
        service.init_app(app)
        return app, service

    return factory


def register(service: FileService, app: Flask, data: bytes, name: str = "f.bin") -> str:
    with app.test_request_context():
        return service.register(data, filename=name)


# -- 1. unfinished uploads never evict stored files --------------------------------------------


def test_unfinished_uploads_never_evict_stored_files_and_stay_within_their_caps(make: Make) -> None:
    budget = 512 * KiB
    app, service = make(max_total_size=budget)  # uploads: 256 KiB in all, 128 KiB per session
    files = {register(service, app, os.urandom(32 * KiB), f"{i}.bin"): i for i in range(8)}  # 256 KiB
    alice, bob, carol, dave = (Client(app, service) for _ in range(4))
    started = []
    for client in (alice, alice, bob, bob):
        up = client.start("u.bin", 64 * KiB)
        client.put(up["upload"], 0, client.part(up, 64 * KiB))
        started.append(up)
    # This session's unfinished uploads are at their cap; all of them together at theirs.
    assert alice.start("u.bin", 64 * KiB, expect=429)["reason"] == "busy"
    refused = carol.start("u.bin", 64 * KiB, expect=503)
    assert "too many uploads" in refused["error"]
    # A file over a session's cap is refused at once, whatever is free.
    assert "over this server's limit" in dave.start("big.bin", 129 * KiB, expect=413)["error"]
    # Every stored file is still there: unfinished uploads evicted nothing. (HEAD: a GET
    # would hold each file against eviction for a few seconds, see test 7.)
    for url in files:
        assert alice.http.head(url).status_code == 200
    stats = service.stats()
    assert (stats.files, stats.bytes, stats.uploads) == (8, 256 * KiB, 4)
    # The store is full: a new registration evicts the oldest stored file, never an upload.
    register(service, app, os.urandom(32 * KiB), "new.bin")
    assert [alice.http.head(url).status_code for url in files].count(404) == 1
    for up in started:
        assert alice.status(up["upload"])["received"] == [0]
    assert service.stats().bytes + service.stats().uploads * 64 * KiB <= budget


def test_a_store_full_of_files_refuses_uploads_with_507_and_keeps_every_file(make: Make) -> None:
    app, service = make(
        max_total_size=256 * KiB, max_upload_bytes=256 * KiB, max_upload_bytes_per_session=256 * KiB
    )
    urls = [register(service, app, os.urandom(64 * KiB), f"{i}.bin") for i in range(4)]
    client = Client(app, service)
    full = client.start("u.bin", 64 * KiB, expect=507)
    assert full["reason"] == "full" and "the store is full" in full["error"]
    assert all(client.http.head(url).status_code == 200 for url in urls)
    # Once a file goes, the upload fits.
    assert service.remove(urls[0])
    assert client.http.get(client.upload("u.bin", os.urandom(64 * KiB))).status_code == 200


# -- 2. without a budget: a default cap, and a free-space reserve -------------------------------


def test_without_a_budget_unfinished_uploads_have_a_default_cap(make: Make) -> None:
    app, service = make()  # 4 GiB of unfinished uploads, 2 GiB per session
    client = Client(app, service)
    assert client.start("huge.bin", 3 * 1024**3, expect=413)["reason"] == "too-large"
    client.start("a.bin", 2 * 1024**3)
    assert client.start("b.bin", 1, expect=429)["reason"] == "busy"
    for _ in range(2):
        Client(app, service).start("c.bin", 1024**3)
    assert Client(app, service).start("d.bin", 1, expect=503)["reason"] == "busy"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB file system (tmpfs), mounted for this test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_the_default_store_keeps_a_free_space_reserve(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(small_disk / "store"))
    app = Flask(__name__)
    service = FileService(chunk_size=256 * KiB, min_free_space=4 * 1024**2)
    service.init_app(app)
    client = Client(app, service)
    # An upload that would leave less than the reserve free is refused at its start.
    refused = client.start("big.bin", 13 * 1024**2, expect=507)
    assert "reserve" in refused["error"] and refused["reason"] == "full"
    # A registration that runs into the reserve fails cleanly: nothing half-written stays.
    with pytest.raises(StoreFullError, match=r"would leave less than the reserve of 4\.0 MiB"):
        register(service, app, os.urandom(13 * 1024**2))
    assert _value_files(small_disk / "store" / "files") == []
    assert _free(small_disk) > 11 * 1024**2
    # What fits is stored and served.
    url = client.upload("ok.bin", b"z" * 2 * 1024**2)
    assert client.http.get(url).data == b"z" * 2 * 1024**2


def _value_files(directory: Path) -> list[str]:
    """Chunk and record files in a FileSystemCache directory (not its ledger or keys)."""
    found = []
    for path in directory.iterdir():
        size = path.stat().st_size
        if size > 4 * KiB:
            found.append(path.name)
    return found


def _free(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


# -- 3. abandoned uploads go back in minutes ----------------------------------------------------


def test_an_idle_upload_is_given_up_and_resuming_says_so(make: Make) -> None:
    app, service = make()
    assert service.settings.upload_idle_timeout == 600  # the default: minutes, not hours
    client = Client(app, service, idle=1)
    size = 3 * 4 * 1024**2
    up = client.start("u.bin", size)
    client.put(up["upload"], 0, client.part(up, size))
    assert service.stats().upload_bytes == up["part_size"]
    time.sleep(1.2)
    service.store.sweep(force=True)
    gone = client.status(up["upload"], expect=410)
    assert gone["reason"] == "idle" and "received no part for" in gone["error"]
    assert client.put(up["upload"], 1, client.part(up, size, 1), expect=410)["reason"] == "idle"
    stats = service.stats()
    assert (stats.uploads, stats.upload_bytes) == (0, 0)


# -- 4. parts are atomic; a cancel tells the truth -----------------------------------------------


def test_the_last_complete_sender_of_a_part_wins_and_completion_names_its_parts(make: Make) -> None:
    app, service = make()
    a, b = Client(app, service), Client(app, service)
    b.headers, b.http = a.headers, a.http  # two tabs of one page: one browser, one handle
    up = a.start("u.bin", CHUNK)
    mine, theirs = os.urandom(CHUNK), os.urandom(CHUNK)
    a.put(up["upload"], 0, mine)
    b.put(up["upload"], 0, theirs)
    _, refused = a.complete(up["upload"], [crc(mine)], expect=409)
    assert refused["mismatched"] == [0] and refused["reason"] == "mismatch"
    assert a.status(up["upload"])["crc32"] == {"0": crc(theirs)}
    _, done = b.complete(up["upload"], [crc(theirs)])
    assert b.http.get(done["file"]["url"]).data == theirs
    # The upload is the other's file now: completing it as mine is refused.
    assert a.complete(up["upload"], [crc(mine)], expect=409)[1]["reason"] == "mismatch"
    assert b.complete(up["upload"], [crc(theirs)])[1]["file"]["url"] == done["file"]["url"]


def test_parts_sent_at_once_by_two_clients_are_never_mixed(make: Make) -> None:
    app, service = make()
    for _ in range(10):
        a, b = Client(app, service), Client(app, service)
        b.headers = a.headers
        up = a.start("u.bin", 4 * 4 * 1024**2)  # four parts: each side sends the first one whole
        size = up["part_size"]
        datas = [os.urandom(size), os.urandom(size)]
        results = at_once(
            *(
                functools.partial(_send_and_complete, client, up["upload"], data)
                for client, data in zip((a, b), datas, strict=True)
            )
        )
        # Neither completes: three parts are missing; the part that is there is one side's, whole.
        assert all(status == 409 for status, _ in results)
        received = a.status(up["upload"])["crc32"]["0"]
        assert received in (crc(datas[0]), crc(datas[1]))


def test_a_cancel_racing_a_completion_answers_what_happened(make: Make) -> None:
    app, service = make()
    for _ in range(30):
        client = Client(app, service)
        data = os.urandom(CHUNK)
        up = client.start("u.bin", len(data))
        client.put(up["upload"], 0, data)
        cancelled, (status, answer) = at_once(
            functools.partial(client.cancel, up["upload"]),
            functools.partial(client.complete, up["upload"], [crc(data)], expect=None),
        )
        if cancelled:
            assert status == 410 and answer["reason"] == "cancelled"
            tickets = Tickets(service.store)
            token = tickets.token_of(tickets.handle(up["upload"]))
            assert client.http.get(f"/_dash-files/{token}/u.bin").status_code == 404
        else:
            assert status == 200 and client.http.get(answer["file"]["url"]).data == data
    assert service.stats().uploads == 0


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released together; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _send_and_complete(client: Client, upload: str, data: bytes) -> tuple[int, dict[str, Any]]:
    client.put(upload, 0, data)
    return client.complete(upload, [crc(data)] + ["00000000"] * 3, expect=None)


# -- 5. a hostile part index -------------------------------------------------------------------------


def test_a_part_index_that_is_not_ascii_digits_is_a_404(make: Make) -> None:
    app, service = make()
    client = Client(app, service)
    up = client.start("u.bin", CHUNK)["upload"]
    for index in ("%C2%B2", "%D9%A3", "1e3", "-1", "0x1", " 1", "9" * 30):
        r = client.http.put(f"{client.endpoint}/{up}/{index}", data=b"x", headers=client.headers)
        assert r.status_code == 404, index


# -- 6. no existence oracle through dedupe ----------------------------------------------------------


def test_a_deduplicated_registration_answers_as_if_new(make: Make) -> None:
    app, service = make(timeout=3600)
    http = app.test_client()
    content = os.urandom(2 * CHUNK)
    first = register(service, app, content)
    before = http.get(first).headers
    time.sleep(1.1)
    again = register(service, app, content)
    fresh = register(service, app, os.urandom(2 * CHUNK))
    assert again == first
    seen, new = http.get(again).headers, http.get(fresh).headers
    assert seen["Last-Modified"] == new["Last-Modified"] != before["Last-Modified"]
    assert seen["Cache-Control"] == new["Cache-Control"]
    assert set(seen.keys()) == set(new.keys())


# -- 7. a file being downloaded is not cut by eviction ----------------------------------------------


def test_a_transfer_in_progress_is_not_cut_by_eviction(make: Make) -> None:
    app, service = make(max_total_size=1024 * KiB)
    http = app.test_client()
    big = os.urandom(512 * KiB)
    url = register(service, app, big)
    response = http.get(url, buffered=False)
    body: Iterator[bytes] = iter(response.response)  # type: ignore[arg-type]
    received = [next(body)]  # the transfer is under way
    for i in range(6):  # the budget under pressure: the oldest file (ours) is the first to go
        register(service, app, os.urandom(256 * KiB), f"{i}.bin")
    received.extend(body)
    response.close()
    assert b"".join(received) == big
    # The transfer over, its lease goes with it: the next registration under pressure evicts the file.
    register(service, app, os.urandom(256 * KiB), "later.bin")
    assert http.get(url).status_code == 404


def test_a_transfer_that_starts_as_its_file_is_evicted_is_whole_or_refused(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two races between a transfer taking its lease and eviction: both end whole or clean."""
    app, service = make(max_total_size=1024 * KiB)
    store = service.store
    http = app.test_client()
    # 1. Evicted between the route's lookup and the lease: refused before a byte goes (410).
    data = os.urandom(300 * KiB)
    token = register(service, app, data).split("/")[-2]
    record = store.lookup(token)
    assert record is not None
    assert store.lifecycle.evict(token, "budget") is True
    with pytest.raises(ContentMissingError, match="was evicted"):
        store.contents.iter_chunks(record, 0, record.size)
    # ... and holds no lease: chunks that eviction kept for it go at the next round, not 10 s later.
    assert not store.lifecycle.leased(token)
    # 2. The lease taken between eviction's two looks: the record goes, the chunks stay until
    #    the transfer ends, then the next eviction round removes them.
    token = register(service, app, data).split("/")[-2]
    record = store.lookup(token)
    assert record is not None
    body = store.contents.iter_chunks(record, 0, record.size)  # leased, the record checked: under way
    real = store.lifecycle.leased
    looks: list[str] = []  # eviction's first look comes just before the lease was written

    def leased(t: str) -> bool:
        looks.append(t)
        return len(looks) > 1 and real(t)

    monkeypatch.setattr(store.lifecycle, "leased", leased)
    kept = store.lifecycle.evict(token, "budget")
    monkeypatch.setattr(store.lifecycle, "leased", real)
    assert isinstance(kept, Kept)
    assert http.get(f"/_dash-files/{token}/f.bin").status_code == 404  # no new transfer starts
    assert not store.lifecycle.settle(token, kept)  # ... but the one under way holds the chunks
    assert b"".join(body) == data
    assert store.lifecycle.settle(token, kept)  # over: they go
    with pytest.raises(ContentMissingError):
        store.contents.chunk(record, 1)
    # 3. A body closed before its first chunk (the client went away first) ends its lease too.
    token = register(service, app, data).split("/")[-2]
    record = store.lookup(token)
    assert record is not None
    body = store.contents.iter_chunks(record, 0, record.size)
    assert store.lifecycle.leased(token)
    body.close()  # type: ignore[attr-defined]
    assert not store.lifecycle.leased(token)


# -- 8. stats tell the truth ----------------------------------------------------------------------


def test_stats_count_files_and_unfinished_uploads_apart_and_agree_with_the_disk(
    make: Make, tmp_path: Path
) -> None:
    app, service = make()
    client = Client(app, service)
    register(service, app, os.urandom(300 * KiB))
    ups = [client.start("u.bin", 8 * 1024**2) for _ in range(2)]
    for up in ups:
        client.put(up["upload"], 0, client.part(up, 8 * 1024**2))
    stats = service.stats()
    assert (stats.files, stats.bytes) == (1, 300 * KiB)
    assert (stats.uploads, stats.upload_bytes) == (2, 2 * ups[0]["part_size"])
    store = tmp_path / "store" / "files"
    if store.is_dir():  # the default store: what its directory holds, record and ledger aside
        on_disk = sum(p.stat().st_size for p in store.iterdir())
        expected = stats.bytes + stats.upload_bytes
        assert expected <= on_disk <= expected + 64 * KiB
