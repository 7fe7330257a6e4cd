"""Uploads, registrations and downloads at once, for a minute, under gunicorn: nothing wrong, nothing cut.

tests/apps/upload_load_app.py runs in 4 gthread workers over the default store or Redis, with a
byte budget small enough that registrations evict all the time. 32 client threads, each on fresh
connections, do a mix of what browsers and the app do:

- legitimate uploads (1 byte to 4 parts, parts in any order), completed, downloaded, compared;
- abandoned uploads: started, one part sent, never heard of again (given up after the idle time);
- racing uploads: two clients send different bytes to the same part of one upload at once, then
  each completes with its own CRC-32s: a completion gives exactly the bytes its client named, or 409;
- a cancel racing the completion of the same upload: ``cancelled`` must tell the end state;
- registrations (files made by the app) that keep the budget full, each downloaded (sometimes a
  range) while others evict: a 404/410 before the transfer starts, or the exact bytes, never a cut;
- slow downloads of larger registered files (64 KiB every 50 ms through a small receive buffer).

Counted and checked at the end: no 5xx but the 503/507 refusals the upload protocol allows (counted
apart), no wrong bytes, no cut transfer, a file that answered 404/410 only if the budget evicted it,
the store's bytes (sampled every second) within the bound stated at :func:`_bound`, and the abandoned
uploads given up (stats' ``uploads`` back to 0) within the idle time + 40 s.

``DFC_LOAD_SECONDS`` shortens the run locally (CI runs 60 s); ``pytest -s`` shows the figures.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import os
import random
import secrets
import socket
import threading
import time
import traceback
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .servers import RedisServer

APP = "upload_load_app"
HOST = "127.0.0.1"
KIB = 1024
MIB = 1024 * KIB

# -- what the app is given (see tests/apps/upload_load_app.py) -----------------------------------
BUDGET = 32 * MIB  # max_total_size
CHUNK = 64 * KIB  # chunk_size
UPLOAD_BYTES = 8 * MIB  # max_upload_bytes: every unfinished upload together
SESSION_BYTES = 1 * MIB  # max_upload_bytes_per_session: one ticket's unfinished uploads
IDLE = 5  # upload_idle_timeout, seconds
#: What the protocol makes a part of: a quarter of a session's bytes (under 4 MiB), whole chunks.
PART = (SESSION_BYTES // 4) // CHUNK * CHUNK
#: The largest upload here: 4 parts, one session's worth.
MAX_UPLOAD = 4 * PART

# -- the run --------------------------------------------------------------------------------------
SECONDS = float(os.environ.get("DFC_LOAD_SECONDS", "60"))
#: The socket timeout of every request: far above what any answer takes, even on a busy machine.
TIMEOUT = 30.0
#: Client threads of each kind: 32 in all (a racing pair or a cancel pair is two threads).
LEGIT, ABANDONING, RACE_PAIRS, CANCEL_PAIRS, REGISTERING, SLOW = 8, 2, 3, 2, 9, 3
#: The slow reader: this many bytes per read, a pause between reads, and a small receive buffer, so
#: that the server really waits on the client instead of handing the file to the kernel's buffers.
SLOW_READ, SLOW_PAUSE, SLOW_RCVBUF = 64 * KIB, 0.05, 64 * KIB
#: The bound's allowance for what is not content: per entry of the store (a record's JSON, a
#: chunk file's header, a part's record, a tombstone) and once (the ledger, its lock).
ENTRY_SLACK, FIXED_SLACK = 1 * KIB, 1 * MIB
#: Requests of the upload protocol: the only ones whose 503/507 are refusals the protocol allows.
UPLOAD_KINDS = frozenset({"start", "part", "complete", "cancel", "status"})

BACKENDS = ["default", "redis"]


def _bound(active_uploads: int, entries: int) -> int:
    """What the store may hold on disk (default store) or in Redis at any moment.

    The ledger keeps files + files being written + unfinished uploads (their declared sizes, and
    each part sent again while in flight) within ``BUDGET``: uploads are refused, registrations
    evict. What it no longer counts but is still stored is bounded by the uploads under way: an
    attempt at a part (at most ``PART``) still writing when its upload is completed, cancelled or
    given up, and the parts a cancel or a lost race is removing at that moment; each client upload
    under way (a racing pair or a cancel pair counts two) allows one ``PART``. Beyond content:
    ``ENTRY_SLACK`` per entry of the store (records, chunk headers, tombstones, part records) and
    ``FIXED_SLACK`` once (the ledger and the keys of the store itself).
    """
    return BUDGET + active_uploads * PART + entries * ENTRY_SLACK + FIXED_SLACK


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def token_of(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 2)[-2]


# -- the tally --------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Everything counted by every thread, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Answers per request kind and status (0: no answer: the connection failed or timed out).
    answers: Counter[str] = field(default_factory=Counter)
    #: The 503/507 (and 429) refusals of the upload protocol, per kind, status and reason.
    refusals: Counter[str] = field(default_factory=Counter)
    #: What each scenario ended in.
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    #: Uploads that some client is working on now (a racing or cancel pair counts two).
    active: int = 0
    #: Tokens that answered 404/410 where the file was expected: each must have been evicted.
    gone: dict[str, str] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        with self.lock:
            self.failure_count += 1
            if len(self.failures) < 40:
                self.failures.append(message)

    def outcome(self, name: str) -> None:
        with self.lock:
            self.outcomes[name] += 1

    def answered(self, kind: str, status: int, body: bytes) -> None:
        with self.lock:
            self.answers[f"{kind} {status}"] += 1
            if status in (429, 503, 507) and kind in UPLOAD_KINDS:
                self.refusals[f"{kind} {status} {_reason(body)}"] += 1
        if status >= 500 and not (kind in UPLOAD_KINDS and status in (503, 507)):
            self.fail(f"{kind}: {status} {body[:300]!r}")

    def expect_gone(self, token: str, what: str) -> None:
        with self.lock:
            self.gone.setdefault(token, what)

    @contextlib.contextmanager
    def uploading(self, count: int) -> Iterator[None]:
        with self.lock:
            self.active += count
        try:
            yield
        finally:
            with self.lock:
                self.active -= count


def _reason(body: bytes) -> str:
    try:
        return str(json.loads(body).get("reason"))
    except (ValueError, AttributeError):
        return "?"


# -- HTTP -------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int  # 0: no answer
    body: bytes = b""
    sent: float = 0.0  # time.monotonic() when the request was sent
    answered: float = 0.0  # ... and when its answer had arrived

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str:
        return _reason(self.body)


class Client:
    """One request per connection (the kernel hands each to any worker), each with a timeout."""

    def __init__(self, port: int, tally: Tally) -> None:
        self.port = port
        self.tally = tally

    def call(
        self,
        kind: str,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
        sent = time.monotonic()
        try:
            conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as err:
            self.tally.answered(kind, 0, b"")
            self.tally.fail(f"{kind}: no answer to {method} {path[:80]}: {type(err).__name__}: {err}")
            return Reply(0, b"", sent, time.monotonic())
        finally:
            conn.close()
        self.tally.answered(kind, status, data)
        return Reply(status, data, sent, time.monotonic())

    def fetch(
        self,
        kind: str,
        url: str,
        expected: bytes,
        *,
        span: tuple[int, int] | None = None,
        slow: bool = False,
    ) -> str:
        """GET ``url`` (``span``: a range of it) and check the body against ``expected``.

        Returns ``"ok"`` (the exact bytes), ``"gone"`` (404/410 before anything was sent), or
        ``"bad"`` (counted as a failure: a cut or wrong transfer, another status, no answer).
        """
        conn = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
        headers = {"Connection": "close"}
        want = expected
        if span is not None:
            headers["Range"] = f"bytes={span[0]}-{span[1] - 1}"
            want = expected[span[0] : span[1]]
        status, length, got, error = 0, -1, bytearray(), ""
        try:
            if slow:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
                sock.settimeout(TIMEOUT)
                try:
                    sock.connect((HOST, self.port))
                except OSError:
                    sock.close()
                    raise
                conn.sock = sock
            conn.request("GET", url, headers=headers)
            response = conn.getresponse()
            status = response.status
            length = int(response.getheader("Content-Length", "-1"))
            while True:
                piece = response.read(SLOW_READ if slow else 256 * KIB)
                if not piece:
                    break
                got += piece
                if slow:
                    time.sleep(SLOW_PAUSE)
        except http.client.IncompleteRead as err:
            got += err.partial
            error = "the connection closed before Content-Length"
        except (OSError, http.client.HTTPException) as err:
            error = f"{type(err).__name__}: {err}"
        finally:
            conn.close()
        self.tally.answered(kind, status, bytes(got[:300]) if status >= 500 else b"")
        if status in (404, 410):
            return "gone"
        if status == 0:
            self.tally.fail(f"{kind}: no answer to GET {url}: {error}")
            return "bad"
        good_status = 206 if span is not None else 200
        if status != good_status:
            self.tally.fail(f"{kind}: GET {url} answered {status}, not {good_status}")
            return "bad"
        if len(got) < length or error:
            self.tally.outcome("cut transfers")
            self.tally.fail(
                f"{kind}: CUT transfer of {url}: {len(got)} of {length} bytes ({error or 'short'})"
            )
            return "bad"
        if length != len(want) or bytes(got) != want:
            self.tally.outcome("wrong bytes")
            self.tally.fail(
                f"{kind}: WRONG bytes from {url} (span {span}): {len(got)} bytes, Content-Length {length}, "
                f"expected {len(want)} bytes, sha256 {hashlib.sha256(got).hexdigest()[:16]} "
                f"!= {hashlib.sha256(want).hexdigest()[:16]}"
            )
            return "bad"
        return "ok"


# -- the upload protocol ----------------------------------------------------------------------------


@dataclass
class Upload:
    endpoint: str
    headers: dict[str, str]
    handle: str
    size: int
    part_size: int
    parts: int
    #: When the last request that touched the upload on the server (start, a part) was sent.
    touched: float

    def piece(self, data: bytes, part: int) -> bytes:
        return data[part * self.part_size : (part + 1) * self.part_size]


class Protocol:
    def __init__(self, client: Client, tally: Tally) -> None:
        self.client = client
        self.tally = tally

    def start(self, size: int) -> Upload | None:
        """Start an upload under a fresh ticket (a session of its own); ``None`` if refused."""
        answer = self.client.call("ticket", "GET", "/ticket")
        if answer.status != 200:
            self.tally.fail(f"ticket: {answer.status}")
            return None
        ticket = answer.json()
        headers = {"X-Upload-Ticket": ticket["ticket"]}
        body = json.dumps({"name": "up.bin", "size": size, "type": "application/octet-stream"}).encode()
        reply = self.client.call(
            "start", "POST", ticket["endpoint"], body, {**headers, "Content-Type": "text/plain"}
        )
        if reply.status in (429, 503, 507):
            time.sleep(random.uniform(0.05, 0.3))  # as a browser would, before it tries again
            return None
        if reply.status != 201:
            self.tally.fail(f"start: {reply.status} {reply.body[:300]!r}")
            return None
        status = reply.json()
        if status["part_size"] != PART:
            self.tally.fail(f"start: part_size {status['part_size']}, the test's bound assumes {PART}")
        return Upload(
            ticket["endpoint"],
            headers,
            status["upload"],
            size,
            status["part_size"],
            status["parts"],
            reply.sent,
        )

    def put(self, upload: Upload, part: int, data: bytes) -> Reply:
        reply = self.client.call(
            "part",
            "PUT",
            f"{upload.endpoint}/{upload.handle}/{part}",
            data,
            {**upload.headers, "X-Part-CRC32": crc(data), "Content-Type": "application/octet-stream"},
        )
        if reply.status == 200:
            upload.touched = max(upload.touched, reply.sent)
        return reply

    def complete(self, upload: Upload, crcs: list[str]) -> Reply:
        body = json.dumps({"parts": crcs}).encode()
        return self.client.call(
            "complete",
            "POST",
            f"{upload.endpoint}/{upload.handle}",
            body,
            {**upload.headers, "Content-Type": "text/plain"},
        )

    def cancel(self, upload: Upload) -> Reply:
        return self.client.call(
            "cancel", "DELETE", f"{upload.endpoint}/{upload.handle}", None, upload.headers
        )

    def status(self, upload: Upload) -> Reply:
        return self.client.call("status", "GET", f"{upload.endpoint}/{upload.handle}", None, upload.headers)

    def given_up_fairly(self, upload: Upload, reply: Reply, what: str) -> bool:
        """Whether a 410 for ``upload`` is the idle timeout doing its job: the server cannot have
        seen more than ``reply.answered - upload.touched`` seconds without a part; a 410 sooner
        than ``IDLE`` (or any other refusal) is a failure."""
        if reply.status == 410 and reply.answered - upload.touched > IDLE - 0.1:
            self.tally.outcome(f"{what}: given up after {IDLE} s idle (a slow machine)")
            return True
        self.tally.fail(
            f"{what}: {reply.status} {reply.body[:300]!r} "
            f"({reply.answered - upload.touched:.1f} s after the last part was sent)"
        )
        return False

    def send_all(self, upload: Upload, data: bytes, what: str, rng: random.Random) -> list[str] | None:
        """Send every part, in a random order; their CRC-32s, or ``None`` if one failed."""
        order = list(range(upload.parts))
        rng.shuffle(order)
        for part in order:
            reply = self.put(upload, part, upload.piece(data, part))
            if reply.status != 200:
                self.given_up_fairly(upload, reply, f"{what}: part {part}")
                return None
        return [crc(upload.piece(data, part)) for part in range(upload.parts)]


def _upload_size(rng: random.Random, most: int) -> int:
    kind = rng.random()
    if kind < 0.2:
        return rng.randint(1, CHUNK)  # one chunk
    if kind < 0.4:
        return rng.randint(1, most // CHUNK) * CHUNK  # whole chunks
    return rng.randint(1, most)


# -- the scenarios ----------------------------------------------------------------------------------


@dataclass
class Registered:
    url: str
    seed: str
    size: int

    def data(self) -> bytes:
        return random.Random(self.seed).randbytes(self.size)


class Load:
    """The client side of the run: the threads' loops, sharing one tally."""

    def __init__(self, port: int, seconds: float) -> None:
        self.tally = Tally()
        self.client = Client(port, self.tally)
        self.protocol = Protocol(self.client, self.tally)
        self.end = time.monotonic() + seconds
        self.recent: deque[Registered] = deque(maxlen=64)
        self.recent_lock = threading.Lock()

    def running(self) -> bool:
        return time.monotonic() < self.end

    def loop(self, name: str, step: Callable[[random.Random], None]) -> Callable[[], None]:
        """A thread's body: ``step`` again and again until the end, an exception a failure."""

        def run() -> None:
            rng = random.Random(secrets.randbits(64))
            while self.running():
                try:
                    step(rng)
                except Exception:
                    self.tally.fail(f"{name}: {traceback.format_exc(limit=4)}")
                    time.sleep(0.1)

        return run

    # -- uploads ---------------------------------------------------------------------------

    def legit(self, rng: random.Random) -> None:
        data = os.urandom(_upload_size(rng, MAX_UPLOAD))
        with self.tally.uploading(1):
            upload = self.protocol.start(len(data))
            if upload is None:
                self.tally.outcome("legit: refused at start")
                return
            crcs = self.protocol.send_all(upload, data, "legit", rng)
            if crcs is None:
                return
            reply = self.protocol.complete(upload, crcs)
            if reply.status != 200:
                self.protocol.given_up_fairly(upload, reply, "legit: completion")
                return
        file = reply.json()["file"]
        if file["size"] != len(data):
            self.tally.fail(f"legit: the completion says {file['size']} bytes, {len(data)} were sent")
        result = self.client.fetch("upload download", file["url"], data)
        if result == "gone":
            self.tally.expect_gone(token_of(file["url"]), "a completed upload")
        self.tally.outcome(f"legit: completed, download {result}")

    def abandon(self, rng: random.Random) -> None:
        data = os.urandom(_upload_size(rng, 2 * PART))
        with self.tally.uploading(1):
            upload = self.protocol.start(len(data))
            if upload is None:
                self.tally.outcome("abandoned: refused at start")
                return
            reply = self.protocol.put(upload, 0, upload.piece(data, 0))
            if reply.status == 200:
                self.tally.outcome("abandoned: started, one part sent")
            else:
                self.protocol.given_up_fairly(upload, reply, "abandoned: part 0")
        time.sleep(rng.uniform(0.5, 1.5))  # so that abandoned uploads hold part of the cap, not all

    def race_pair(self) -> tuple[Callable[[], None], Callable[[], None]]:
        """Two threads: the leader starts an upload and sends all but the contested part; then both
        send their own bytes for that part at once, and both complete at once, each naming its own."""
        pair = _Pair()

        def prepare(rng: random.Random) -> _RaceJob | None:
            parts = rng.randint(1, 3)
            size = rng.randint((parts - 1) * PART + 1, parts * PART)
            common = bytearray(os.urandom(size))
            upload = self.protocol.start(size)
            if upload is None:
                self.tally.outcome("race: refused at start")
                return None
            contested = rng.randrange(upload.parts)
            for part in range(upload.parts):
                if part != contested:
                    reply = self.protocol.put(upload, part, upload.piece(bytes(common), part))
                    if reply.status != 200:
                        self.protocol.given_up_fairly(upload, reply, f"race: part {part}")
                        self.protocol.cancel(upload)
                        return None
            start, stop = contested * PART, min(size, (contested + 1) * PART)
            versions = []
            for _ in range(2):
                mine = bytearray(common)
                mine[start:stop] = os.urandom(stop - start)
                versions.append(bytes(mine))
            return _RaceJob(upload, contested, versions)

        def act(job: _RaceJob, role: int) -> _RaceResult:
            upload, data = job.upload, job.versions[role]
            put = self.protocol.put(upload, job.contested, upload.piece(data, job.contested))
            job.mark(role)
            job.sent.wait(timeout=2 * TIMEOUT)  # both parts answered: the completions race too
            crcs = [crc(upload.piece(data, part)) for part in range(upload.parts)]
            return _RaceResult(put, self.protocol.complete(upload, crcs))

        def verify(job: _RaceJob, results: list[_RaceResult]) -> None:
            upload = job.upload
            landed = [r for r, res in enumerate(results) if res.put.status == 200]
            done = [r for r, res in enumerate(results) if res.complete.status == 200]
            for r, res in enumerate(results):
                if res.put.status not in (200, 503, 507):
                    self.protocol.given_up_fairly(upload, res.put, f"race: client {r}'s contested part")
                if res.complete.status not in (200, 409):
                    self.protocol.given_up_fairly(upload, res.complete, f"race: client {r}'s completion")
            idle = any(res.put.status == 410 or res.complete.status == 410 for res in results)
            if len(done) > 1:
                self.tally.fail(
                    f"race: BOTH completions succeeded ({[results[r].complete.body[:200] for r in done]})"
                )
            elif landed and not done and not idle:
                self.tally.fail(f"race: parts of clients {landed} arrived, yet no completion succeeded")
            elif done and done[0] not in landed:
                self.tally.fail(f"race: client {done[0]} completed although its part was refused")
            for r in done:
                file = results[r].complete.json()["file"]
                result = self.client.fetch("race download", file["url"], job.versions[r])
                if result == "gone":
                    self.tally.expect_gone(token_of(file["url"]), "a race's completed upload")
                elif result == "bad":
                    other = self.client.fetch("race download", file["url"], job.versions[1 - r])
                    if other == "ok":
                        self.tally.fail(
                            f"race: the file of client {r}'s completion holds client {1 - r}'s bytes"
                        )
            self.tally.outcome(f"race: {len(landed)} parts landed, {len(done)} completed")

        return self._pair(pair, "race", prepare, act, verify)

    def cancel_pair(self) -> tuple[Callable[[], None], Callable[[], None]]:
        """Two threads: the leader sends a whole upload; then it completes while the other cancels."""
        pair = _Pair()

        def prepare(rng: random.Random) -> _RaceJob | None:
            data = os.urandom(_upload_size(rng, 2 * PART))
            upload = self.protocol.start(len(data))
            if upload is None:
                self.tally.outcome("cancel: refused at start")
                return None
            crcs = self.protocol.send_all(upload, data, "cancel", rng)
            if crcs is None:
                self.protocol.cancel(upload)
                return None
            job = _RaceJob(upload, -1, [data, data])
            job.sent.set()
            return job

        def act(job: _RaceJob, role: int) -> _RaceResult:
            upload, data = job.upload, job.versions[0]
            if role == 0:
                crcs = [crc(upload.piece(data, part)) for part in range(upload.parts)]
                return _RaceResult(Reply(200), self.protocol.complete(upload, crcs))
            return _RaceResult(Reply(200), self.protocol.cancel(upload))

        def verify(job: _RaceJob, results: list[_RaceResult]) -> None:
            upload, data = job.upload, job.versions[0]
            completion, cancel = results[0].complete, results[1].complete
            if cancel.status != 200:
                self.tally.fail(f"cancel: DELETE answered {cancel.status} {cancel.body[:300]!r}")
                return
            cancelled = cancel.json()["cancelled"]
            url = completion.json()["file"]["url"] if completion.status == 200 else None
            if completion.status not in (200, 410):
                self.tally.fail(f"cancel: completion answered {completion.status} {completion.body[:300]!r}")
            if cancelled:
                if url is not None:
                    status = self.client.call("cancel download", "GET", url).status
                    if status != 404:
                        self.tally.fail(f"cancel: cancelled, yet the completed file answers {status}")
                after = self.protocol.status(upload)
                if after.status != 410:
                    self.tally.fail(
                        f"cancel: cancelled, yet its status answers {after.status} {after.body[:200]!r}"
                    )
                self.tally.outcome(f"cancel: cancelled (completion {completion.status})")
                return
            if url is None:
                self.tally.fail(
                    f"cancel: not cancelled (completed first), yet the completion answered {completion.status}"
                )
                return
            result = self.client.fetch("cancel download", url, data)
            if result == "gone":
                self.tally.expect_gone(token_of(url), "an upload completed before its cancel")
            self.tally.outcome(f"cancel: completed first, download {result}")

        return self._pair(pair, "cancel", prepare, act, verify)

    def _pair(
        self,
        pair: _Pair,
        what: str,
        prepare: Callable[[random.Random], _RaceJob | None],
        act: Callable[[_RaceJob, int], _RaceResult],
        verify: Callable[[_RaceJob, list[_RaceResult]], None],
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        """The leader's and the partner's loops: each round, the leader prepares a job (or says stop),
        both act on it at once, and the leader checks what both got."""

        def leader() -> None:
            rng = random.Random(secrets.randbits(64))
            while True:
                job: _RaceJob | None = None
                stop = not self.running()
                with self.tally.uploading(2):
                    if not stop:
                        try:
                            job = prepare(rng)
                        except Exception:
                            self.tally.fail(f"{what} (preparing): {traceback.format_exc(limit=4)}")
                    pair.job, pair.stop = job, stop
                    if not pair.meet(self.tally, what):
                        return
                    if stop:
                        return
                    if job is not None:
                        pair.results[0] = pair.run(act, job, 0, self.tally, what)
                    if not pair.meet(self.tally, what):
                        return
                if job is not None and pair.results[0] is not None and pair.results[1] is not None:
                    try:
                        verify(job, [pair.results[0], pair.results[1]])
                    except Exception:
                        self.tally.fail(f"{what} (verifying): {traceback.format_exc(limit=4)}")
                pair.results = [None, None]

        def partner() -> None:
            while True:
                if not pair.meet(self.tally, what):
                    return
                if pair.stop:
                    return
                job = pair.job
                if job is not None:
                    pair.results[1] = pair.run(act, job, 1, self.tally, what)
                if not pair.meet(self.tally, what):
                    return

        return leader, partner

    # -- registrations and downloads --------------------------------------------------------

    def register(self, rng: random.Random, size: int) -> Registered | None:
        seed = secrets.token_hex(8)
        reply = self.client.call("register", "POST", f"/register?size={size}&seed={seed}")
        if reply.status != 200:
            if reply.status < 500:  # a 5xx is a failure already
                self.tally.fail(f"register: {reply.status} {reply.body[:300]!r}")
            return None
        return Registered(reply.json()["url"], seed, size)

    def registering(self, rng: random.Random) -> None:
        size = rng.choice(
            [rng.randint(1, CHUNK), rng.randint(CHUNK + 1, 1 * MIB), rng.randint(CHUNK + 1, 1 * MIB)]
        )
        mine = self.register(rng, size)
        if mine is None:
            return
        self.tally.outcome("registered")
        with self.recent_lock:
            self.recent.append(mine)
            older = rng.choice(list(self.recent))
        for file in (older, mine):
            data = file.data()
            span = None
            if rng.random() < 0.25 and file.size > 1:
                start = rng.randrange(file.size - 1)
                span = (start, rng.randint(start + 1, file.size))
            result = self.client.fetch("download", file.url, data, span=span)
            if result == "gone":
                self.tally.expect_gone(token_of(file.url), "a registered file")
            self.tally.outcome(f"download {'(range) ' if span else ''}{result}")

    def slow(self, rng: random.Random) -> None:
        file = self.register(rng, rng.randint(2 * MIB, 3 * MIB))
        if file is None:
            return
        started = time.monotonic()
        result = self.client.fetch("slow download", file.url, file.data(), slow=True)
        if result == "gone":
            self.tally.expect_gone(token_of(file.url), "a registered file (slow download)")
        self.tally.outcome(f"slow download {result}")
        if result == "ok":
            with self.tally.lock:
                self.tally.outcomes["slow download seconds (sum)"] += round(time.monotonic() - started)


@dataclass
class _RaceJob:
    upload: Upload
    contested: int
    versions: list[bytes]
    #: Set once both clients' parts are answered (the racers wait for it before completing).
    sent: threading.Event = field(default_factory=threading.Event)
    marked: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mark(self, role: int) -> None:
        """Client ``role`` is past its part (answered, or failed)."""
        with self.lock:
            self.marked.add(role)
            if len(self.marked) == 2:
                self.sent.set()


@dataclass
class _RaceResult:
    put: Reply
    complete: Reply


class _Pair:
    """Where two threads meet each round (a barrier that gives up after a while)."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2)
        self.job: _RaceJob | None = None
        self.stop = False
        self.results: list[_RaceResult | None] = [None, None]

    def meet(self, tally: Tally, what: str) -> bool:
        try:
            self.barrier.wait(timeout=4 * TIMEOUT)
            return True
        except threading.BrokenBarrierError:
            tally.fail(f"{what}: the pair's other thread never came (barrier broken)")
            self.barrier.abort()
            return False

    @staticmethod
    def run(
        act: Callable[[_RaceJob, int], _RaceResult], job: _RaceJob, role: int, tally: Tally, what: str
    ) -> _RaceResult | None:
        try:
            return act(job, role)
        except Exception:
            tally.fail(f"{what} (client {role}): {traceback.format_exc(limit=4)}")
            return None
        finally:
            job.mark(role)  # should it have failed before its part: the other need not wait


# -- measuring the store ------------------------------------------------------------------------------


def _store_bytes(store: Path, journal_most: list[int]) -> tuple[int, int]:
    """``(bytes, entries)`` under the default store's directory.

    The expiry journal (``expiry/``) is left out: a log of when each thing written expires, it
    grows with the number of writes (until their time is over), not with what the store holds;
    its largest size goes to ``journal_most[0]``, reported apart.
    """
    total = entries = journal = 0
    for root, _dirs, files in os.walk(store):
        in_journal = Path(root).relative_to(store).parts[:1] == ("expiry",)
        for name in files:
            try:
                size = os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # removed meanwhile
            if in_journal:
                journal += size
            else:
                total += size
                entries += 1
    journal_most[0] = max(journal_most[0], journal)
    return total, entries


def _redis_bytes(redis_server: RedisServer, prefix: str) -> tuple[int, int]:
    """``(bytes, keys)`` of the values under ``prefix`` in Redis (cachelib's pickling included)."""
    import redis

    r = redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=10)
    try:
        keys = sorted(set(r.scan_iter(match=prefix + "*", count=10_000)))
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        return sum(int(n) for n in pipe.execute()), len(keys)
    finally:
        r.close()


@dataclass
class Samples:
    count: int = 0
    #: The largest measurement, and the bound at that moment (default store: the disk;
    #: Redis: the values under the prefix).
    most: int = 0
    most_bound: int = 0
    #: The largest ``bytes + upload_bytes`` of /stats, and its bound.
    stats_most: int = 0
    stats_bound: int = 0
    #: The largest figure the ledger counted against the budget.
    used_most: int = 0
    journal_most: int = 0
    over: list[str] = field(default_factory=list)


def _sampler(
    load: Load, stop: threading.Event, samples: Samples, measure: Callable[[], tuple[int, int]]
) -> Callable[[], None]:
    def run() -> None:
        while not stop.wait(1.0):
            try:
                before = load.tally.active
                size, entries = measure()
                reply = load.client.call("stats", "GET", "/stats")
                active = max(before, load.tally.active)
                samples.count += 1
                bound = _bound(active, entries)
                if size > samples.most:
                    samples.most, samples.most_bound = size, bound
                if size > bound:
                    samples.over.append(
                        f"{size} bytes in {entries} entries > {bound} ({active} uploads under way)"
                    )
                if reply.status == 200:
                    stats = reply.json()
                    held = stats["bytes"] + stats["upload_bytes"]
                    # /stats counts content only: no allowance per entry.
                    stats_bound = _bound(active, 0)
                    if held > samples.stats_most:
                        samples.stats_most, samples.stats_bound = held, stats_bound
                    samples.used_most = max(samples.used_most, stats["used"])
                    if held > stats_bound:
                        samples.over.append(
                            f"/stats: bytes + upload_bytes = {held} > {stats_bound} ({stats})"
                        )
            except Exception:
                load.tally.fail(f"sampler: {traceback.format_exc(limit=4)}")

    return run


# -- the test -----------------------------------------------------------------------------------------


@pytest.mark.timeout(int(SECONDS) + 240)
@pytest.mark.parametrize("kind", BACKENDS)
def test_uploads_registrations_and_downloads_under_load(
    kind: str, start_gunicorn: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = tmp_path / "store"
    events = tmp_path / "events.log"
    prefix = f"load-{secrets.token_hex(4)}:"
    env = {
        "DFC_TRANSFORM_DIR": str(store),
        "DFC_TEST_EVENTS": str(events),
        "DFC_LOAD_MAX_TOTAL_SIZE": str(BUDGET),
        "DFC_LOAD_CHUNK_SIZE": str(CHUNK),
        "DFC_LOAD_UPLOAD_BYTES": str(UPLOAD_BYTES),
        "DFC_LOAD_SESSION_BYTES": str(SESSION_BYTES),
        "DFC_LOAD_IDLE": str(IDLE),
    }
    measure: Callable[[], tuple[int, int]]
    journal_most = [0]
    if kind == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        env |= {"DFC_TEST_BACKEND": f"redis://{redis_server.address}", "DFC_TEST_REDIS_PREFIX": prefix}
        measure = functools.partial(_redis_bytes, redis_server, prefix)
    else:
        env["DFC_TEST_BACKEND"] = "default"
        measure = functools.partial(_store_bytes, store, journal_most)

    server = start_gunicorn("load", env, "-w", "4", "-k", "gthread", "--threads", "8", module=APP)
    load = Load(server.port, SECONDS)
    tally = load.tally

    threads = [threading.Thread(target=load.loop("legit", load.legit)) for _ in range(LEGIT)]
    threads += [threading.Thread(target=load.loop("abandon", load.abandon)) for _ in range(ABANDONING)]
    for _ in range(RACE_PAIRS):
        threads += [threading.Thread(target=body) for body in load.race_pair()]
    for _ in range(CANCEL_PAIRS):
        threads += [threading.Thread(target=body) for body in load.cancel_pair()]
    threads += [threading.Thread(target=load.loop("register", load.registering)) for _ in range(REGISTERING)]
    threads += [threading.Thread(target=load.loop("slow", load.slow)) for _ in range(SLOW)]
    assert len(threads) == 32

    samples = Samples()
    stop = threading.Event()
    sampler = threading.Thread(target=_sampler(load, stop, samples, measure))
    for thread in [*threads, sampler]:
        thread.daemon = True  # should one hang past its timeouts, the test still ends (and says so)
        thread.start()
    began = time.monotonic()
    for thread in threads:
        thread.join(timeout=max(1.0, load.end + 4 * TIMEOUT - time.monotonic()))
    hung = sum(thread.is_alive() for thread in threads)
    ran = time.monotonic() - began
    stop.set()
    sampler.join(timeout=2 * TIMEOUT)

    # The abandoned uploads are given up once idle: by the next start or part, or within a
    # sweeper's round (30 s) of each worker; stats().uploads must come back to 0.
    drained_after: float | None = None
    last: Any = None
    deadline = time.monotonic() + IDLE + 40
    drain_start = time.monotonic()
    while time.monotonic() < deadline:
        reply = load.client.call("stats", "GET", "/stats")
        if reply.status == 200:
            last = reply.json()
            if last["uploads"] == 0:
                drained_after = time.monotonic() - drain_start
                break
        time.sleep(0.5)
    final_size, final_entries = measure()

    # Every file that answered 404/410 where it was expected must have been evicted by the budget.
    evicted = set()
    if events.exists():
        evicted = {line.split()[1] for line in events.read_text().splitlines() if line.startswith("evicted ")}
    lost = {token: what for token, what in tally.gone.items() if token not in evicted}

    figures = {
        "backend": kind,
        "seconds": round(ran, 1),
        "requests": sum(tally.answers.values()),
        "answers by kind and status": dict(sorted(tally.answers.items())),
        "upload refusals (429/503/507) by kind, status, reason": dict(sorted(tally.refusals.items())),
        "outcomes": dict(sorted(tally.outcomes.items())),
        "evicted files": len(evicted),
        "404/410 of expected files": len(tally.gone),
        "samples": samples.count,
        "max store bytes (disk or Redis values)": samples.most,
        "its bound": samples.most_bound,
        "max /stats bytes + upload_bytes": samples.stats_most,
        "its bound ": samples.stats_bound,
        "max ledger used": samples.used_most,
        "budget": BUDGET,
        "max journal bytes (not bounded)": journal_most[0],
        "stats().uploads back to 0 after (s)": None if drained_after is None else round(drained_after, 1),
        "last stats": last,
        "after the run: bytes, entries": (final_size, final_entries),
        "failures": tally.failure_count,
        "first failures": tally.failures,
    }
    report = json.dumps(figures, indent=1, default=str)
    print(report)

    assert hung == 0, f"{hung} client threads still running long after their deadline\n{report}"
    assert tally.failure_count == 0, report
    assert not samples.over, (
        "the store held more than its bound:\n" + "\n".join(samples.over[:20]) + "\n" + report
    )
    assert not lost, f"files answered 404/410 without being evicted: {lost}\n{report}"
    assert drained_after is not None, f"abandoned uploads still counted {IDLE + 40} s after the run\n{report}"
    assert final_size <= _bound(0, final_entries), report
    outcomes = tally.outcomes
    for needed in (
        "legit: completed, download ok",
        "abandoned: started, one part sent",
        "registered",
        "download ok",
        "slow download ok",
    ):
        assert outcomes[needed] > 0, f"nothing reached {needed!r}: the run did not exercise it\n{report}"
    assert any(k.startswith("race: 2 parts landed, 1 completed") for k in outcomes), report
    assert any(k.startswith("cancel:") for k in outcomes), report
