"""One-time files: claimed once, atomically, by the transfer about to complete.

``O_EXCL`` in a claims directory where the backend is this host's disk, else the
backend's atomic ``add`` (Redis ``SET NX``, memcached ``add``): of several transfers in
any processes (and hosts, for a shared backend), exactly one wins.
"""

from __future__ import annotations

import os
from dataclasses import replace

from ..events import Events
from .keys import Keys
from .ledger import Ledger
from .lifecycle import Lifecycle
from .records import FileRecord, write_record

__all__ = ["Claims"]


class Claims:
    """Claims of one-time files of one namespace."""

    def __init__(self, keys: Keys, ledger: Ledger, lifecycle: Lifecycle, events: Events) -> None:
        self.keys = keys
        self.ledger = ledger
        self.lifecycle = lifecycle
        self.events = events
        claims_dir = keys.profile.claims_dir
        if claims_dir is not None:
            claims_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def claim(self, record: FileRecord) -> bool:
        """Claim a one-time file for the transfer about to complete; ``False`` if another did."""
        path = self.keys.claim_path(record.token)
        if path is not None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return False
            os.close(fd)
            return True
        return self.keys.add(self.keys.key(record.token, "c"), b"1", self.keys.record_timeout)

    def is_claimed(self, record: FileRecord) -> bool:
        """Tell whether a transfer of this one-time file has claimed it already."""
        path = self.keys.claim_path(record.token)
        if path is not None:
            return path.exists()
        return self.keys.has(self.keys.key(record.token, "c"))

    def consume(self, record: FileRecord) -> None:
        """Remove a one-time file's content, leaving a tombstone so that later GETs get 410."""
        write_record(self.keys, replace(record, consumed=True, inline=None))
        for name, count in record.chunk_groups():
            self.lifecycle.purge_chunks(name, count)
        self.ledger.drop(record.token, record.created, record.size)
        self.events.emit("removed", token=record.token, filename=record.filename, detail="delivered once")
