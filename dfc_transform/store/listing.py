"""Listing the files of a store: what ``FileService.files()`` and ``python -m dfc_transform list`` show.

Two sources, whichever knows every file of the backend: the ledger, which lists files one by
one under a byte budget and on backends without an expiry journal (Redis, memcached), with
each file's details in its entry; else the expiry journal (the default store, every
``FileSystemCache`` and ``SimpleCache``), which notes every file's token, whose records are
then read. A "file" is a stored file with content: unfinished uploads and the tombstones of
delivered one-time files are not files; ``stats()`` counts the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .keys import Keys
from .ledger import Ledger
from .records import FileRecord, read_record

if TYPE_CHECKING:
    from .expiry import ExpiryJournal

__all__ = ["FileInfo", "list_files"]


@dataclass(frozen=True)
class FileInfo:
    """One stored file, as a listing shows it."""

    token: str
    filename: str
    mime_type: str
    size: int
    #: Unix time it was registered.
    created: float
    #: Unix time it expires; ``None``: it stays until evicted or removed.
    expires: float | None
    one_time: bool
    private: bool
    namespace: str

    @property
    def path(self) -> str:
        """Its URL path below the app's URL prefix: ``_dash-files/<token>/<name>``."""
        return f"_dash-files/{self.token}/{quote(self.filename, safe='')}"

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.created

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds until it expires (0 once it has); ``None`` when it never does."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - (time.time() if now is None else now))


def list_files(ledger: Ledger, journal: ExpiryJournal | None, keys: Keys) -> list[FileInfo]:
    """Every file of the namespace of ``keys`` that has not expired, oldest first."""
    if ledger.lists_files:
        found = [_from_entry(token, entry, keys) for token, entry in ledger.entries().items()]
    elif journal is not None:
        found = list(_from_journal(journal, keys))
    else:
        found = []
    now = time.time()
    files = [f for f in found if f is not None and (f.expires is None or f.expires > now)]
    return sorted(files, key=lambda f: (f.created, f.token))


def _from_entry(token: str, entry: list[Any], keys: Keys) -> FileInfo | None:
    if len(entry) >= 6:
        size, created, expires, name, mime, flags = entry[:6]
        return FileInfo(
            token, name, mime, int(size), created, expires, "o" in flags, "p" in flags, keys.namespace
        )
    record = read_record(keys, token)  # an entry of an older release: the details are in the record
    return _info(record, keys) if record is not None else None


def _from_journal(journal: ExpiryJournal, keys: Keys) -> list[FileInfo | None]:
    tokens = {}
    for name, _ in journal.names():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == keys.namespace and parts[2]:
            tokens[parts[2]] = parts[1]
    infos = []
    for token, storage in tokens.items():
        record = read_record(keys, token)
        # A renewed file is noted once more; a copy that lost to the same content was noted too.
        if record is not None and record.chunks_key == storage:
            infos.append(_info(record, keys))
    return infos


def _info(record: FileRecord, keys: Keys) -> FileInfo | None:
    if record.consumed:
        return None
    return FileInfo(
        record.token,
        record.filename,
        record.mime_type,
        record.size,
        record.created,
        record.expires,
        record.one_time,
        record.owner is not None,
        keys.namespace,
    )
