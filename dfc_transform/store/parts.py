"""Files written in parts (uploads): every part atomic, every byte inside the limits.

An upload is *started* with its size, which it holds from then on in the ledger (see
:mod:`.ledger`): its bytes count against the store's byte budget, against a cap on the
bytes of all unfinished uploads and against one per browser session. A start that would
pass any of them is refused; it never evicts a stored file to make room (see
:mod:`.upload_limits`).

Each attempt at sending a part writes its chunks under keys of its own
(``<storage>.<attempt>:<i>``) and, once all of them have arrived, *publishes* itself in
the part's record (``<storage>:P<part>`` = ``"<attempt> <crc32>"``): a part becomes
visible whole or not at all, and of two clients sending one part the last to finish
wins. A completion names every part's checksum; the file is exactly those parts, or the
completion fails naming the parts that differ. Every step that changes an upload's state
(start, attempt, publish, complete, cancel, give up) happens under the ledger's lock, so
that a cancel racing a completion answers what really happened.

An upload that receives no part for its idle time is given up: its bytes go, and a
client coming back is told so (a tombstone ``<storage>:x`` says why).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..events import Events
from ..exc import PartsMismatchError, UploadGoneError, UploadLimitError
from .keys import Keys
from .ledger import Evict, Head, Ledger
from .lifecycle import Lifecycle
from .records import FileRecord, entry_of, read_record, write_record
from .upload_limits import UploadLimits, check_room, check_start

__all__ = ["Uploads"]

logger = logging.getLogger(__name__)

#: How often a process that takes uploads gives up idle ones (besides every start and part).
IDLE_SWEEP_SECONDS = 30


@dataclass(frozen=True)
class PartRecord:
    """The published attempt of a part."""

    attempt: int
    crc: str


class Uploads:
    """The unfinished uploads of one namespace."""

    def __init__(
        self, keys: Keys, ledger: Ledger, lifecycle: Lifecycle, events: Events, limits: UploadLimits
    ) -> None:
        self.keys = keys
        self.ledger = ledger
        self.lifecycle = lifecycle
        self.events = events
        self.limits = limits
        self._sweeper_pid: int | None = None
        lifecycle.forget_upload = self.forget

    # -- starting ---------------------------------------------------------------------

    def start(self, storage: str, size: int, *, session: str, idle: int, deadline: float) -> None:
        """Open an upload of ``size`` bytes under ``storage`` for ``session``.

        :raises UploadLimitError: over a limit on unfinished uploads.
        :raises StoreFullError: no room in the budget or on the disk without evicting.
        """
        now = time.time()
        with self.ledger.locked() as head:
            gone = self._give_up_idle(head, now)
            self.ledger.forget_expired(head)
            check_start(self.limits, head, size, session)
            check_room(head, self.ledger.budget, self.keys, size)
            head.uploads[storage] = {"c": session, "s": size, "t": now, "i": idle, "n": 0, "a": {}, "b": 0}
        self._purge(gone)
        # The ceiling: an upload still open at its deadline is swept with everything it wrote.
        self.lifecycle.note(storage, deadline)
        self._start_sweeper()

    # -- sending parts ----------------------------------------------------------------

    def begin_attempt(self, storage: str, part: int, length: int, parts: int) -> int:
        """Open an attempt at sending ``part`` (``length`` bytes) of the ``parts``; return its number.

        A part sent while it is stored already, or while another attempt at it is under way,
        holds its length more until it is published or given up.
        """
        now = time.time()
        with self.ledger.locked() as head:
            gone = self._give_up_idle(head, now)
            entry = self._entry(head, storage)
            again = any(int(a[0]) == part for a in entry["a"].values()) or self.keys.has(
                self._part_key(storage, part)
            )
            extra = length if again else 0
            if extra:
                if head.upload_reserved + extra > self.limits.total:
                    raise UploadLimitError(
                        "the server is receiving too many uploads at once: try again in a moment",
                        kind="total",
                        limit=self.limits.total,
                    )
                check_room(head, self.ledger.budget, self.keys, extra)
            attempt = int(entry["n"])
            entry["n"] = attempt + 1
            entry["a"][str(attempt)] = [part, now, extra, length]
            entry["t"] = now
            # Kept beside the ledger, for sweeping what the attempts wrote should it be lost.
            self.keys.set(self.keys.key(storage, "s"), f"{attempt + 1} {parts}".encode(), self._timeout)
        self._purge(gone)
        return attempt

    def write_chunk(self, storage: str, attempt: int, index: int, data: bytes) -> None:
        """Write chunk ``index`` (counted within its part) of an attempt."""
        self.keys.set(self.keys.key(f"{storage}.{attempt}", index), data, self._timeout)

    def publish(self, storage: str, part: int, attempt: int, crc: str, length: int) -> None:
        """Make a complete attempt the part's content (the last complete attempt wins).

        :raises UploadGoneError: the upload was cancelled, completed or given up meanwhile;
            what the attempt wrote is removed.
        """
        old: PartRecord | None = None
        with self.ledger.locked() as head:
            entry = head.uploads.get(storage)
            if entry is not None:
                old = self._part(storage, part)
                self.keys.set(self._part_key(storage, part), f"{attempt} {crc}".encode(), self._timeout)
                entry["a"].pop(str(attempt), None)
                entry["t"] = time.time()
                if old is None:
                    entry["b"] = int(entry["b"]) + length
        if entry is None:
            self.lifecycle.purge_chunks(f"{storage}.{attempt}", None)
            raise self.gone(storage)
        if old is not None and old.attempt != attempt:
            self.lifecycle.purge_chunks(f"{storage}.{old.attempt}", None)

    def abandon(self, storage: str, attempt: int) -> None:
        """Give up an attempt that failed (the client went away, a bad part): its bytes go."""
        with self.ledger.locked() as head:
            entry = head.uploads.get(storage)
            if entry is not None:
                entry["a"].pop(str(attempt), None)
        self.lifecycle.purge_chunks(f"{storage}.{attempt}", None)

    # -- the state of an upload ----------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        """``(unfinished uploads, bytes they have stored)``: their parts, and what the parts
        under way have written so far (counted a chunk at a time)."""
        uploads = self.ledger.read().uploads
        chunk = self.keys.profile.chunk_size
        stored = 0
        for storage, entry in uploads.items():
            stored += int(entry["b"])
            for attempt, (_, _, _, length) in entry["a"].items():
                name = f"{storage}.{attempt}"
                count = 0
                while count * chunk < int(length) and self.keys.has(self.keys.key(name, count)):
                    count += 1
                stored += min(int(length), count * chunk)
        return len(uploads), stored

    def received(self, storage: str, parts: int) -> dict[int, str]:
        """The parts stored so far, with their checksums.

        :raises UploadGoneError: the upload is no longer open.
        """
        self.check_open(storage)
        found = {}
        for part in range(parts):
            record = self._part(storage, part)
            if record is not None:
                found[part] = record.crc
        return found

    def check_open(self, storage: str) -> None:
        """:raises UploadGoneError: the upload under ``storage`` is no longer open."""
        if storage not in self.ledger.read().uploads:
            raise self.gone(storage)

    def complete(self, record: FileRecord, crcs: Sequence[str], part_chunks: int, evict: Evict) -> FileRecord:
        """Make the upload under ``record.storage`` the stored file ``record``, of exactly the
        parts whose checksums ``crcs`` names; return the stored record.

        Completing again with the same checksums returns the stored file.

        :raises PartsMismatchError: parts missing, or holding other bytes than named.
        :raises UploadGoneError: the upload was cancelled or given up.
        """
        storage = record.storage
        digest = _digest_of(crcs)
        losers: list[int] = []
        with self.ledger.locked() as head:
            entry = head.uploads.get(storage)
            if entry is None:
                done = read_record(self.keys, record.token)
                if done is None:
                    raise self.gone(storage)
                if done.parts_digest != digest:
                    raise PartsMismatchError("this upload was completed with other content", mismatched=[])
                return done
            winners, missing, mismatched = [], [], []
            for part, crc in enumerate(crcs):
                found = self._part(storage, part)
                if found is None:
                    missing.append(part)
                elif found.crc != crc:
                    mismatched.append(part)
                else:
                    winners.append(found.attempt)
            if missing or mismatched:
                raise PartsMismatchError(
                    _mismatch_message(missing, mismatched), missing=missing, mismatched=mismatched
                )
            record = replace(record, parts=tuple(winners), part_chunks=part_chunks, parts_digest=digest)
            write_record(self.keys, record)
            in_flight = {int(a) for a in entry["a"]}
            losers = [a for a in range(int(entry["n"])) if a not in in_flight and a not in set(winners)]
            del head.uploads[storage]
            self.ledger.enter(head, record.token, entry_of(record))
            self.ledger.make_room(head, evict, keep=record.token)
        for attempt in losers:
            self.lifecycle.purge_chunks(f"{storage}.{attempt}", None)
        for part in range(len(crcs)):
            self.keys.delete(self._part_key(storage, part))
        self.keys.delete(self.keys.key(storage, "s"))
        self.lifecycle.note(storage, record.expires, record.token)
        self.events.emit("registered", token=record.token, filename=record.filename, size=record.size)
        return record

    def cancel(self, storage: str, token: str) -> bool:
        """Cancel an unfinished upload; ``True`` if it ends not stored, ``False`` if it was
        completed first (the answer is true to what happened, whichever came first)."""
        with self.ledger.locked() as head:
            entry = head.uploads.pop(storage, None)
            if entry is None:
                return read_record(self.keys, token) is None
            self._tombstone(storage, "cancelled")
        self._purge([storage])
        # An attempt cut off by the cancel may still write its last chunk: sweep again later.
        self.lifecycle.note(storage, time.time() + 60)
        return True

    def forget(self, storage: str) -> None:
        """Drop an upload past its deadline from the ledger (its keys are swept)."""
        with self.ledger.locked() as head:
            head.uploads.pop(storage, None)

    # -- giving up idle uploads --------------------------------------------------------------

    def sweep_idle(self) -> int:
        """Give up every upload that received no part for its idle time; return how many."""
        with self.ledger.locked() as head:
            gone = self._give_up_idle(head, time.time())
        self._purge(gone)
        return len(gone)

    def _give_up_idle(self, head: Head, now: float) -> list[str]:
        gone = [s for s, u in head.uploads.items() if now - float(u["t"]) > float(u["i"])]
        for storage in gone:
            del head.uploads[storage]
            self._tombstone(storage, "idle")
        return gone

    def _start_sweeper(self) -> None:
        """Where no journal sweeps (Redis, memcached), a daemon thread of each process that
        takes uploads gives up idle ones, so that their bytes leave the budget in time."""
        if self.lifecycle.journal is not None or self._sweeper_pid == os.getpid():
            return
        self._sweeper_pid = os.getpid()

        def loop() -> None:
            while True:
                time.sleep(IDLE_SWEEP_SECONDS)
                try:
                    self.sweep_idle()
                except Exception as err:  # the backend may be back at the next round
                    logger.warning("giving up idle uploads failed (again at the next round): %s", err)

        threading.Thread(target=loop, name="dfc_transform-uploads", daemon=True).start()

    # -- helpers ---------------------------------------------------------------------------

    def _purge(self, storages: list[str]) -> None:
        """Remove what given-up uploads wrote; their tombstones stay, to tell a client why."""
        for storage in storages:
            self.lifecycle.purge_storage(storage, tombstone=True)

    def _entry(self, head: Head, storage: str) -> dict[str, Any]:
        entry = head.uploads.get(storage)
        if entry is None:
            raise self.gone(storage)
        return entry

    def gone(self, storage: str) -> UploadGoneError:
        """The error for an upload that is no longer open, saying why."""
        reason = self._reason(storage) or "unknown"
        if reason == "idle":
            message = (
                f"this upload received no part for {self.limits.idle} seconds and was given up: "
                "start it again"
            )
        elif reason == "cancelled":
            message = "this upload was cancelled"
        else:
            message = (
                "this upload is no longer open here (it took too long, or was never started): start it again"
            )
        return UploadGoneError(message, reason=reason)

    def _reason(self, storage: str) -> str | None:
        data = self.keys.get(self.keys.key(storage, "x"))
        return data.decode("ascii", "replace") if isinstance(data, bytes) else None

    def _tombstone(self, storage: str, reason: str) -> None:
        self.keys.set(self.keys.key(storage, "x"), reason.encode(), self._timeout)

    def _part_key(self, storage: str, part: int) -> str:
        return self.keys.key(storage, f"P{part}")

    def _part(self, storage: str, part: int) -> PartRecord | None:
        data = self.keys.get(self._part_key(storage, part))
        if not isinstance(data, bytes):
            return None
        attempt, _, crc = data.decode("ascii", "replace").partition(" ")
        return PartRecord(int(attempt), crc) if attempt.isdigit() and crc else None

    @property
    def _timeout(self) -> int:
        # The journal sweeps these where there is one; elsewhere they go with the upload's ceiling.
        return 0 if self.keys.profile.expiry == "journal" else 24 * 3600


def _digest_of(crcs: Sequence[str]) -> str:
    return hashlib.sha256(",".join(crcs).encode()).hexdigest()[:32]


def _mismatch_message(missing: list[int], mismatched: list[int]) -> str:
    said = []
    if missing:
        said.append(f"parts {missing} never arrived")
    if mismatched:
        said.append(
            f"parts {mismatched} hold other bytes than this completion names (sent again by another client?)"
        )
    return "; ".join(said) + ": send them again"
