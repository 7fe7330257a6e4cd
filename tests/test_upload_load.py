"""Uploads, registrations and downloads at once, for a minute, under gunicorn: nothing wrong, nothing cut.

tests/apps/upload_load_app.py runs in 4 gthread workers over the default store or Redis, with a
byte budget small enough that registrations evict all the time. 32 client threads, each on fresh
connections, do a mix of what browsers and the app do:

- legitimate uploads (1 byte to 4 parts, parts in any order), completed, downloaded, compared;
- abandoned uploads: started, one part sent, never heard of again (given up once idle);
- racing uploads: two clients send different bytes to the same part of one upload at once, then
  each completes with its own CRC-32s: a completion gives exactly the bytes its client named, or 409;
- a cancel racing the completion of the same upload: ``cancelled`` must tell the end state;
- registrations (files made by the app) that keep the budget full, each downloaded (sometimes a
  range) while others evict: a 404/410 before the transfer starts, or the exact bytes, never a cut;
- slow downloads of larger registered files (64 KiB every 50 ms through a small receive buffer).

Counted and checked at the end: no 5xx but the upload protocol's refusals for want of room (503
"busy", 507 "full", counted apart), no wrong bytes, no cut transfer, no error in the server's log,
a file that answered 404/410 only if the budget evicted it, the store (sampled every second, and
once more at the end) within the bound stated at :func:`_bound`, and the abandoned uploads given
up once idle.

``DFC_LOAD_SECONDS`` sets how long the load runs (60 s by default, as issue 17 asks; the whole
file then takes about two and a half minutes); ``pytest -s`` shows the figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import random
import re
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

from dfc_transform.store.backends import default_backend, profile_of
from dfc_transform.store.ledger import Head, Ledger

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
#: What the store holds beyond content, per entry (a key of Redis, a file of the default store):
#: a record's JSON (under 500 bytes here) and its file's line in the ledger's list of the minute
#: (about 120), a chunk's header, a part record, a tombstone; and once: the ledger's head, the
#: store's keys (HMAC, tickets), the registry of namespaces.
ENTRY_SLACK, FIXED_SLACK = 640, 64 * KIB
#: The server lets a transfer's lease go once it has written the last byte, a moment after the
#: client has read it: a download is taken to hold its file until this long after its last byte.
LEASE_LAG = 0.5
#: A given-up upload is purged by the request that gave it up before that request answers; the
#: first start that surely found it idle may answer a moment before another's purge ends.
PURGE_LAG = 2.0
#: Requests of the upload protocol, and the 5xx refusals it gives for want of room: all unfinished
#: uploads at their cap (503 "busy"), the store full (507 "full"). A 503 "backend" (the store
#: cannot be reached) is a failure here: the store is up all along.
UPLOAD_KINDS = frozenset({"start", "part", "complete", "cancel", "status"})
ROOM_REFUSALS = frozenset({(503, "busy"), (507, "full")})
#: Lines of the server's log that say something went wrong (refusals are logged as events: fine).
LOG_ERRORS = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|WORKER TIMEOUT|was sent SIG|Worker failed")

BACKENDS = ["default", "redis"]


def _bound(leased: int, stray: int, entries: int) -> int:
    """What the store may hold at a moment (docs/backends.md, "Byte budget and eviction";
    docs/uploads.md, "Limits"; docs/http.md, "A download is not cut by eviction").

    Its ledger counts stored files, files being written (the room each has taken, before its
    bytes are written), unfinished uploads (their whole declared sizes, and each part sent again
    while in flight) and evicted files whose chunks a transfer still reads, and keeps that within
    ``BUDGET``: uploads are refused, registrations evict the oldest files. Beyond it, only:

    - ``leased``: the files that transfers under way hold. Eviction passes them over; should
      nothing else be left to evict, the ledger stays over the budget by them until the next
      eviction after their transfers end. Measured by the client: the most bytes of files being
      downloaded at once (a range pins its whole file) since the last registration answered
      before the sample (each evicts what it needs room for) — see :meth:`Tally.beyond_budget`;
    - ``stray``: bytes of uploads that the ledger no longer counts while a request removes them:
      a cancel's parts, the attempt a part sent again replaces, the attempts a completion leaves
      out, and an idle upload given up (from the first moment it may be idle until a start surely
      found it so) — see :meth:`Protocol.done_with`. Unfinished uploads themselves are within the
      budget (and within ``UPLOAD_BYTES``), so they need nothing more;
    - what is not content: ``ENTRY_SLACK`` per entry of the store and ``FIXED_SLACK`` once.

    Each sample checks it in two halves (:func:`_check`), from one snapshot of the store and its
    ledger: the store holds no more than its ledger counts, ``stray`` and the metadata; the ledger
    counts no more than ``BUDGET + leased``. The default store is measured on disk (file sizes under
    ``$DFC_TRANSFORM_DIR`` but its expiry journal) under the ledger's lock, Redis by its values
    under the app's key prefix (``STRLEN``, cachelib's pickling included) in one script.
    """
    return BUDGET + leased + stray + entries * ENTRY_SLACK + FIXED_SLACK


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def token_of(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 2)[-2]


# -- what the store may hold beyond its budget, as the clients saw it ------------------------------


@dataclass
class Span:
    """``nbytes`` that the store may hold beyond its budget from ``start`` to ``end`` (monotonic)."""

    nbytes: int
    start: float
    end: float = math.inf


def _overlapping(spans: list[Span], a: float, b: float) -> list[Span]:
    return [s for s in spans if s.start <= b and s.end >= a]


def _most_at_once(spans: list[Span], a: float, b: float) -> int:
    """The largest sum of ``spans`` in effect at one moment of ``[a, b]``."""
    live = _overlapping(spans, a, b)
    moments = [a, *(s.start for s in live if s.start > a)]
    return max(sum(s.nbytes for s in live if s.start <= m <= s.end) for m in moments)


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
    #: The first few failures of each kind (the text before its first colon), and how many in all.
    failures: dict[str, list[str]] = field(default_factory=dict)
    failure_count: int = 0
    #: Tokens that answered 404/410 where the file was expected: each must have been evicted.
    gone: dict[str, str] = field(default_factory=dict)
    #: Downloads: the size of the file each holds (its lease), from its request to its last byte.
    leases: list[Span] = field(default_factory=list)
    #: Bytes of uploads the ledger may have let go of while they are being removed (see _bound).
    strays: list[Span] = field(default_factory=list)
    #: Abandoned uploads' spans in ``strays`` still open, and when a start sent later surely finds
    #: each idle (it then gives it up before it answers).
    idle: list[tuple[Span, float]] = field(default_factory=list)
    #: ``(sent, answered)`` of each registration: each evicted what it needed room for meanwhile.
    evicting: list[tuple[float, float]] = field(default_factory=list)

    def fail(self, message: str) -> None:
        with self.lock:
            self.failure_count += 1
            first = self.failures.setdefault(message.split(":", 1)[0], [])
            if len(first) < 5:
                first.append(message)

    def outcome(self, name: str) -> None:
        with self.lock:
            self.outcomes[name] += 1

    def answered(self, kind: str, status: int, body: bytes) -> None:
        with self.lock:
            self.answers[f"{kind} {status}"] += 1
            if status in (429, 503, 507) and kind in UPLOAD_KINDS:
                self.refusals[f"{kind} {status} {_reason(body)}"] += 1
        if status >= 500 and not (kind in UPLOAD_KINDS and (status, _reason(body)) in ROOM_REFUSALS):
            self.fail(f"{kind}: {status} {body[:300]!r}")

    def expect_gone(self, token: str, what: str) -> None:
        with self.lock:
            self.gone.setdefault(token, what)

    @contextlib.contextmanager
    def holding(self, spans: list[Span], nbytes: int, lag: float = 0.0) -> Iterator[None]:
        """``nbytes`` held in ``spans`` while the block runs, and ``lag`` seconds after."""
        span = Span(nbytes, time.monotonic())
        if nbytes:
            with self.lock:
                spans.append(span)
        try:
            yield
        finally:
            span.end = time.monotonic() + lag

    def evicted_in(self, reply: Reply) -> None:
        with self.lock:
            self.evicting.append((reply.sent, reply.answered))

    def abandoned(self, nbytes: int, touched: float, last_answered: float) -> None:
        """An upload left unfinished, holding ``nbytes``: the server may give it up (and remove
        them) from ``IDLE`` after its last part was sent, and surely has once a start sent
        ``IDLE`` after the last request that touched it was answered has been answered."""
        span = Span(nbytes, touched + IDLE)
        with self.lock:
            self.strays.append(span)
            self.idle.append((span, last_answered + IDLE + 0.05))

    def idle_given_up(self, reply: Reply) -> None:
        """A start or a part succeeded: every upload idle when it was sent was given up and removed."""
        with self.lock:
            still = []
            for span, after in self.idle:
                if reply.sent >= after:
                    span.end = reply.answered + PURGE_LAG
                else:
                    still.append((span, after))
            self.idle = still

    def beyond_budget(self, a: float, b: float) -> tuple[int, int]:
        """``(leased, stray)``: what the store may hold beyond its budget during ``[a, b]``."""
        with self.lock:
            leases, strays, evicting = list(self.leases), list(self.strays), list(self.evicting)
        # The ledger passes the budget by the files leased at its last eviction at most: the
        # last one before ``a`` began no earlier than the last evicting request answered by then.
        since = max((sent for sent, answered in evicting if answered <= a), default=0.0)
        leased = _most_at_once(leases, min(since, a), b)
        stray = sum(s.nbytes for s in _overlapping(strays, a, b))
        return leased, stray


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
        headers = {"Connection": "close"}
        want = expected
        if span is not None:
            headers["Range"] = f"bytes={span[0]}-{span[1] - 1}"
            want = expected[span[0] : span[1]]
        # The transfer leases the whole file (a range too) until a moment after its last byte.
        with self.tally.holding(self.tally.leases, len(expected), LEASE_LAG):
            status, length, got, error = self._get(url, headers, slow)
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
                f"CUT transfer: {kind} of {url}: {len(got)} of {length} bytes ({error or 'short'})"
            )
            return "bad"
        if length != len(want) or bytes(got) != want:
            self.tally.outcome("wrong bytes")
            self.tally.fail(
                f"WRONG bytes: {kind} from {url} (span {span}): {len(got)} bytes, Content-Length {length}, "
                f"expected {len(want)} bytes, sha256 {hashlib.sha256(got).hexdigest()[:16]} "
                f"!= {hashlib.sha256(want).hexdigest()[:16]}"
            )
            return "bad"
        return "ok"

    def _get(self, url: str, headers: dict[str, str], slow: bool) -> tuple[int, int, bytearray, str]:
        """``(status, Content-Length, body, error)`` of a GET (status 0: no answer)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
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
        return status, length, got, error


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
    #: When the last start or part request was answered, whatever the answer (an attempt
    #: that failed may have touched it too).
    last_answered: float
    #: The bytes of each part stored (answered 200).
    stored: dict[int, int] = field(default_factory=dict)
    #: The bytes of the part two clients send at once (a race): what a completion may leave out.
    contested: int = 0
    #: Completed, or cancelled: no longer open on the server.
    ended: bool = False

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
        self.tally.idle_given_up(reply)
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
            reply.answered,
        )

    def put(self, upload: Upload, part: int, data: bytes, *, contested: bool = False) -> Reply:
        """Send a part; ``contested``: another client sends the same part at once, and whichever
        is stored last removes the other's bytes (which the ledger no longer counts)."""
        with self.tally.holding(self.tally.strays, len(data) if contested else 0):
            reply = self.client.call(
                "part",
                "PUT",
                f"{upload.endpoint}/{upload.handle}/{part}",
                data,
                {**upload.headers, "X-Part-CRC32": crc(data), "Content-Type": "application/octet-stream"},
            )
        upload.last_answered = max(upload.last_answered, reply.answered)
        if reply.status == 200:
            upload.touched = max(upload.touched, reply.sent)
            upload.stored[part] = len(data)
            self.tally.idle_given_up(reply)
        return reply

    def complete(self, upload: Upload, crcs: list[str]) -> Reply:
        body = json.dumps({"parts": crcs}).encode()
        # A completion removes the attempts it leaves out (of a contested part) once it is decided.
        with self.tally.holding(self.tally.strays, upload.contested):
            reply = self.client.call(
                "complete",
                "POST",
                f"{upload.endpoint}/{upload.handle}",
                body,
                {**upload.headers, "Content-Type": "text/plain"},
            )
        if reply.status == 200:
            upload.ended = True
        return reply

    def cancel(self, upload: Upload) -> Reply:
        # A cancel removes the upload from the ledger, then its parts.
        with self.tally.holding(self.tally.strays, sum(upload.stored.values())):
            reply = self.client.call(
                "cancel", "DELETE", f"{upload.endpoint}/{upload.handle}", None, upload.headers
            )
        if reply.status == 200:
            upload.ended = True  # cancelled, or completed first: either way no longer open
        return reply

    def done_with(self, upload: Upload) -> None:
        """The client leaves ``upload``: unless it ended, it is abandoned, to be given up once idle."""
        if not upload.ended:
            self.tally.abandoned(sum(upload.stored.values()), upload.touched, upload.last_answered)

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
        upload = self.protocol.start(len(data))
        if upload is None:
            self.tally.outcome("legit: refused at start")
            return
        try:
            crcs = self.protocol.send_all(upload, data, "legit", rng)
            if crcs is None:
                return
            reply = self.protocol.complete(upload, crcs)
            if reply.status != 200:
                self.protocol.given_up_fairly(upload, reply, "legit: completion")
                return
        finally:
            self.protocol.done_with(upload)
        file = reply.json()["file"]
        if file["size"] != len(data):
            self.tally.fail(f"legit: the completion says {file['size']} bytes, {len(data)} were sent")
        result = self.client.fetch("upload download", file["url"], data)
        if result == "gone":
            self.tally.expect_gone(token_of(file["url"]), "a completed upload")
        self.tally.outcome(f"legit: completed, download {result}")

    def abandon(self, rng: random.Random) -> None:
        data = os.urandom(_upload_size(rng, 2 * PART))
        upload = self.protocol.start(len(data))
        if upload is None:
            self.tally.outcome("abandoned: refused at start")
            return
        reply = self.protocol.put(upload, 0, upload.piece(data, 0))
        if reply.status == 200:
            self.tally.outcome("abandoned: started, one part sent")
        else:
            self.protocol.given_up_fairly(upload, reply, "abandoned: part 0")
        self.protocol.done_with(upload)
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
            start, stop = contested * PART, min(size, (contested + 1) * PART)
            upload.contested = stop - start
            for part in range(upload.parts):
                if part != contested:
                    reply = self.protocol.put(upload, part, upload.piece(bytes(common), part))
                    if reply.status != 200:
                        self.protocol.given_up_fairly(upload, reply, f"race: part {part}")
                        self.protocol.cancel(upload)
                        self.protocol.done_with(upload)
                        return None
            versions = []
            for _ in range(2):
                mine = bytearray(common)
                mine[start:stop] = os.urandom(stop - start)
                versions.append(bytes(mine))
            return _RaceJob(upload, contested, versions)

        def act(job: _RaceJob, role: int) -> _RaceResult:
            upload, data = job.upload, job.versions[role]
            put = self.protocol.put(upload, job.contested, upload.piece(data, job.contested), contested=True)
            job.mark(role)
            job.sent.wait(timeout=2 * TIMEOUT)  # both parts answered: the completions race too
            crcs = [crc(upload.piece(data, part)) for part in range(upload.parts)]
            return _RaceResult(put, self.protocol.complete(upload, crcs))

        def verify(job: _RaceJob, results: list[_RaceResult]) -> None:
            upload = job.upload
            landed = [r for r, res in enumerate(results) if res.put.status == 200]
            done = [r for r, res in enumerate(results) if res.complete.status == 200]
            downloads = {}
            for r in done:
                file = results[r].complete.json()["file"]
                downloads[r] = self.client.fetch("race download", file["url"], job.versions[r])
                if downloads[r] == "gone":
                    self.tally.expect_gone(token_of(file["url"]), "a race's completed upload")
                elif downloads[r] == "bad":
                    other = self.client.fetch("race download", file["url"], job.versions[1 - r])
                    if other == "ok":
                        self.tally.fail(
                            f"race: the file of client {r}'s completion holds client {1 - r}'s bytes"
                        )
            for r, res in enumerate(results):
                if res.put.status not in (200, 503, 507):
                    self.protocol.given_up_fairly(upload, res.put, f"race: client {r}'s contested part")
                if res.complete.status in (200, 409):
                    continue
                if res.complete.status == 410 and done and downloads[done[0]] == "gone":
                    # The other completed first, and the budget evicted its file before this
                    # completion came: no upload, no file, nothing to compare with any more.
                    self.tally.outcome("race: the loser's completion 410 (the winner's file evicted already)")
                    continue
                self.protocol.given_up_fairly(upload, res.complete, f"race: client {r}'s completion")
            idle = any(res.put.status == 410 or (res.complete.status == 410 and not done) for res in results)
            if len(done) > 1:
                self.tally.fail(
                    f"race: BOTH completions succeeded ({[results[r].complete.body[:200] for r in done]})"
                )
            elif landed and not done and not idle:
                self.tally.fail(f"race: parts of clients {landed} arrived, yet no completion succeeded")
            elif done and done[0] not in landed:
                self.tally.fail(f"race: client {done[0]} completed although its part was refused")
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
                self.protocol.done_with(upload)
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
                if job is not None:
                    self.protocol.done_with(job.upload)
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
        if size >= 16:
            # It evicted what it needed room for between its request and its answer (a few
            # random bytes may be content stored already, which evicts nothing).
            self.tally.evicted_in(reply)
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


@dataclass
class Measure:
    """One snapshot of the store: what it holds (content and metadata), in how many entries, and
    what its ledger counts against the budget at that moment (see :class:`Head`)."""

    size: int
    entries: int
    used: int


def _disk_measure(store: Path, ledger_key: str, journal_most: list[int]) -> Callable[[], Measure]:
    """The default store's bytes on disk, under its ledger's lock: the ledger cannot change while
    they are counted (writes of the room it has given, and removals of uploads it has let go of,
    can: the second are the ``stray`` bytes of :func:`_bound`).

    The expiry journal (``expiry/``) is left out: a log of when each thing written expires, it
    grows with the number of writes (until their time is over), not with what the store holds;
    its largest size goes to ``journal_most[0]``, reported apart.
    """
    backend = default_backend(store)
    ledger = Ledger(
        backend,
        ledger_key,
        lock_dir=profile_of(backend).lock_dir,
        in_process=False,
        budget=BUDGET,
    )

    def measure() -> Measure:
        total = entries = journal = 0
        with ledger.exclusive():
            used = _used(ledger.read(), ledger_key)
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
        return Measure(total, entries, used)

    return measure


#: The length of every value under a prefix, and the ledger's head, in one script: Redis runs it
#: at once, a snapshot of both.
_REDIS_SNAPSHOT = """
local total, keys, cursor = 0, 0, "0"
repeat
    local found = redis.call("SCAN", cursor, "MATCH", ARGV[1], "COUNT", 10000)
    cursor = found[1]
    for _, key in ipairs(found[2]) do
        total = total + redis.call("STRLEN", key)
        keys = keys + 1
    end
until cursor == "0"
return {total, keys, redis.call("GET", KEYS[1])}
"""


def _redis_measure(redis_server: RedisServer, prefix: str, ledger_key: str) -> Callable[[], Measure]:
    """The values under ``prefix`` in Redis (cachelib's pickling included), and the ledger's head."""
    import redis
    from cachelib import RedisCache

    serializer = RedisCache.serializer

    def measure() -> Measure:
        r = redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=10)
        try:
            pattern = prefix.replace("*", r"\*") + "*"
            found: Any = r.eval(_REDIS_SNAPSHOT, 1, prefix + ledger_key, pattern)
        finally:
            r.close()
        head = Head(json.loads(serializer.loads(found[2])) if found[2] else None)
        return Measure(int(found[0]), int(found[1]), _used(head, ledger_key))

    return measure


def _used(head: Head, key: str) -> int:
    if not head.buckets and not head.uploads:
        raise AssertionError(f"no ledger at {key!r} (or an empty one) while the store is in use")
    return head.used


@dataclass
class Samples:
    count: int = 0
    #: The largest measurement (default store: the disk; Redis: the values under the prefix), and
    #: with it: the ledger's count, ``(leased, stray, entries)`` as :func:`_bound` takes them.
    most: Measure = field(default_factory=lambda: Measure(0, 0, 0))
    most_allowed: tuple[int, int, int] = (0, 0, 0)
    #: How many samples held more than the budget (content and metadata together), and how many
    #: found the ledger over it (files leased when eviction needed room).
    over_budget: int = 0
    used_over_budget: int = 0
    #: The largest figure the ledger counted against the budget, and its bound then.
    used_most: int = 0
    used_bound: int = 0
    #: The largest allowances met.
    leased_most: int = 0
    stray_most: int = 0
    over: list[str] = field(default_factory=list)


def _check(measure: Measure, leased: int, stray: int) -> list[str]:
    """What is wrong with a snapshot: :func:`_bound`, in its two halves."""
    wrong = []
    # The ledger counts all that the store holds, but uploads being removed (and metadata).
    counted = measure.used + stray + measure.entries * ENTRY_SLACK + FIXED_SLACK
    if measure.size > counted:
        wrong.append(
            f"the store holds {measure.size} bytes in {measure.entries} entries, more than its ledger "
            f"counts ({measure.used}) and {stray} bytes of uploads being removed allow: {counted}"
        )
    # The ledger keeps within the budget, but for files leased.
    if measure.used > BUDGET + leased:
        wrong.append(
            f"the ledger counts {measure.used} bytes > {BUDGET + leased} (files leased: {leased} bytes)"
        )
    return wrong


def _sampler(
    load: Load, stop: threading.Event, samples: Samples, measure: Callable[[], Measure]
) -> Callable[[], None]:
    tally = load.tally

    def run() -> None:
        while not stop.wait(1.0):
            try:
                began = time.monotonic()
                found = measure()
                leased, stray = tally.beyond_budget(began, time.monotonic())
                samples.count += 1
                samples.leased_most = max(samples.leased_most, leased)
                samples.stray_most = max(samples.stray_most, stray)
                samples.over_budget += found.size > BUDGET
                samples.used_over_budget += found.used > BUDGET
                if found.size > samples.most.size:
                    samples.most, samples.most_allowed = found, (leased, stray, found.entries)
                if found.used > samples.used_most:
                    samples.used_most, samples.used_bound = found.used, BUDGET + leased
                samples.over += _check(found, leased, stray)
            except Exception:
                tally.fail(f"sampler: {traceback.format_exc(limit=4)}")

    return run


def _server_errors(log: Path) -> list[str]:
    """Lines of the server's log that say something went wrong, with what follows each."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    found = []
    for i, line in enumerate(lines):
        if LOG_ERRORS.search(line):
            # The whole traceback: up to the next log entry (a line that starts with its time).
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("[")), len(lines))
            found.append("\n".join(lines[i : min(end, i + 60)]))
    return found


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
    redis_server: RedisServer | None = None
    if kind == "redis":
        redis_server = request.getfixturevalue("redis_server")
        env |= {"DFC_TEST_BACKEND": f"redis://{redis_server.address}", "DFC_TEST_REDIS_PREFIX": prefix}
    else:
        env["DFC_TEST_BACKEND"] = "default"

    started = time.monotonic()
    server = start_gunicorn("load", env, "-w", "4", "-k", "gthread", "--threads", "8", module=APP)
    ledger_key = json.loads(server.request("GET", "/pid")[1])["ledger"]
    journal_most = [0]
    if redis_server is not None:
        measure = _redis_measure(redis_server, prefix, ledger_key)
    else:
        measure = _disk_measure(store, ledger_key, journal_most)
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

    # Once every transfer is over and every abandoned upload idle: a registration evicts what
    # leases kept (the store is back within its budget), and a start gives up every idle upload
    # (the 30-second sweepers of the workers would too, later).
    with tally.lock:
        idle_after = max((after for _, after in tally.idle), default=0.0)
    time.sleep(max(LEASE_LAG, idle_after - time.monotonic()))
    problems = []
    poke = load.register(random.Random(), 1000)
    upload = load.protocol.start(0)
    if poke is None or upload is None:
        problems.append("after the run, a registration or a start was refused: see the failures")
    else:
        load.protocol.cancel(upload)
    reply = load.client.call("stats", "GET", "/stats")
    last = reply.json() if reply.status == 200 else reply.status
    measured = time.monotonic()
    final = measure()
    final_allowed = tally.beyond_budget(measured, time.monotonic())  # no lease; stray: a purge ending
    after = time.monotonic() - began - ran

    # Every file that answered 404/410 where it was expected must have been evicted by the budget.
    evicted = set()
    if events.exists():
        evicted = {line.split()[1] for line in events.read_text().splitlines() if line.startswith("evicted ")}
    lost = {token: what for token, what in tally.gone.items() if token not in evicted}
    server_errors = _server_errors(server.log)

    figures = {
        "backend": kind,
        "seconds: server start, load, after": (round(began - started, 1), round(ran, 1), round(after, 1)),
        "requests": sum(tally.answers.values()),
        "answers by kind and status": dict(sorted(tally.answers.items())),
        "upload refusals (429/503/507) by kind, status, reason": dict(sorted(tally.refusals.items())),
        "outcomes": dict(sorted(tally.outcomes.items())),
        "evicted files": len(evicted),
        "404/410 of expected files": len(tally.gone),
        "budget": BUDGET,
        "samples": samples.count,
        "samples over the budget: store, ledger": (samples.over_budget, samples.used_over_budget),
        "max store bytes (disk or Redis values)": samples.most.size,
        "  its entries, ledger used": (samples.most.entries, samples.most.used),
        "  its bound": _bound(*samples.most_allowed),
        "  allowed: leased, stray, for entries": (
            samples.most_allowed[0],
            samples.most_allowed[1],
            samples.most_allowed[2] * ENTRY_SLACK + FIXED_SLACK,
        ),
        "max ledger used": samples.used_most,
        "  its bound (budget + leased)": samples.used_bound,
        "max allowance for leased files": samples.leased_most,
        "max allowance for uploads being removed": samples.stray_most,
        "max journal bytes (not bounded)": journal_most[0],
        "after the run: stats": last,
        "after the run: bytes, entries, ledger used": (final.size, final.entries, final.used),
        "  allowed: leased, stray": final_allowed,
        "errors in the server's log": len(server_errors),
        "failures": tally.failure_count,
        "first failures": tally.failures,
    }
    report = json.dumps(figures, indent=1, default=str)
    print(report)

    # Every property is checked, and every one that fails is said, with the figures.
    if hung:
        problems.append(f"{hung} client threads still running long after their deadline")
    if tally.failure_count:
        problems.append(
            f"{tally.failure_count} failures (wrong or cut transfers, 5xx, protocol answers): see above"
        )
    if server_errors:
        problems.append("the server logged errors:\n" + "\n".join(server_errors[:5]))
    if samples.over:
        problems.append("the store held more than its bound:\n  " + "\n  ".join(samples.over[:10]))
    if lost:
        problems.append(f"files answered 404/410 without being evicted: {lost}")
    if not isinstance(last, dict):
        problems.append(f"after the run, /stats answered {last}")
    else:
        if (last["uploads"], last["upload_bytes"], last["upload_reserved"]) != (0, 0, 0):
            problems.append(f"after the run, idle uploads not given up by a start: {last}")
        if last["used"] > BUDGET or last["kept"]:
            problems.append(f"after the run, no transfer under way, the ledger is over the budget: {last}")
    problems += [f"after the run, nothing under way: {wrong}" for wrong in _check(final, *final_allowed)]
    outcomes = tally.outcomes
    for needed in (
        "legit: completed, download ok",
        "abandoned: started, one part sent",
        "registered",
        "download ok",
        "slow download ok",
        "race: 2 parts landed, 1 completed",
    ):
        if not outcomes[needed]:
            problems.append(f"nothing reached {needed!r}: the run did not exercise it")
    if not any(k.startswith("cancel: ") and "refused" not in k for k in outcomes):
        problems.append("no cancel raced a completion: the run did not exercise it")
    assert not problems, "\n".join(problems) + "\n" + report
