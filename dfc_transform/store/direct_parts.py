"""Uploads straight into object storage: the browser sends the parts to the bucket.

On a store whose backend keeps files as objects (:class:`.s3.S3Store`), an upload is a
multipart upload of the file's object: the app signs an ``UploadPart`` URL per part, the
browser PUTs each part there, and the app server never carries the bytes. The app keeps what
it keeps for any upload (its bytes held in the ledger against the limits, see :mod:`.parts`),
and the multipart upload's id under ``<storage>:u`` so that a cancel or a sweep can abort it.
The bucket is the judge of which parts arrived (``ListParts``); the completion checks each
one's size before the bucket joins them.

The app sees no part arrive, so such an upload is not given up for being idle: it is given
up at its deadline (the ticket's ``upload_lifetime``).
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..exc import PartsMismatchError
from .ledger import Evict
from .parts import Uploads
from .records import FileRecord, entry_of, read_record, write_record
from .s3 import MIN_PART_SIZE, S3Store

__all__ = ["MAX_PARTS", "DirectUploads"]

#: S3 joins at most this many parts.
MAX_PARTS = 10_000


class DirectUploads:
    """The multipart uploads of one namespace's files, sent straight to the bucket."""

    def __init__(self, uploads: Uploads, blobs: S3Store) -> None:
        self.uploads = uploads
        self.keys = uploads.keys
        self.ledger = uploads.ledger
        self.lifecycle = uploads.lifecycle
        self.events = uploads.events
        self.blobs = blobs

    @staticmethod
    def part_chunks(size: int, chunk_size: int, wanted: int) -> int:
        """Chunks per part: ``wanted``, but at least S3's smallest part and few enough parts."""
        least = max(MIN_PART_SIZE, -(-size // MAX_PARTS))
        return max(wanted, -(-least // chunk_size))

    def start(self, storage: str) -> str:
        """Begin the multipart upload of the file under ``storage``; its upload id."""
        upload_id = self.blobs.start_multipart(self._object(storage))
        self.keys.set(self.keys.key(storage, "u"), upload_id.encode(), self.keys.record_timeout)
        return upload_id

    def part_urls(self, storage: str, upload_id: str, parts: int, until: float) -> list[str]:
        """The URL each part is PUT to, working until ``until`` (Unix time)."""
        seconds = max(60, int(until - time.time()))
        key = self._object(storage)
        return [self.blobs.presigned_part(key, upload_id, n + 1, seconds) for n in range(parts)]

    def received(self, storage: str, upload_id: str, lengths: list[int]) -> list[int]:
        """The parts (from 0) the bucket holds whole."""
        try:
            found = self.blobs.parts_of(self._object(storage), upload_id)
        except KeyError:  # aborted, or completed
            return []
        return [p for p, length in enumerate(lengths) if found.get(p + 1, ("", -1))[1] == length]

    def complete(self, record: FileRecord, upload_id: str, lengths: list[int], evict: Evict) -> FileRecord:
        """Join the parts into the file's object and store ``record`` for it.

        Completing again returns the stored file.

        :raises PartsMismatchError: parts missing from the bucket, or of another size.
        :raises UploadGoneError: the upload was cancelled or given up.
        """
        storage = record.storage
        key = self._object(storage)
        try:
            found = self.blobs.parts_of(key, upload_id)
        except KeyError:  # joined already (by a completion whose answer was lost), or aborted
            found = None
        if found is not None:
            missing = [p for p in range(len(lengths)) if p + 1 not in found]
            wrong = [p for p, n in enumerate(lengths) if p + 1 in found and found[p + 1][1] != n]
            if missing or wrong:
                raise PartsMismatchError(
                    f"the bucket lacks parts {missing} and holds parts {wrong} of another size",
                    missing=missing,
                    mismatched=wrong,
                )
            self.blobs.complete_multipart(key, upload_id, [found[p + 1][0] for p in range(len(lengths))])
        record = replace(record, blob=True)
        with self.ledger.locked() as head:
            entry = head.uploads.get(storage)
            if entry is None:
                done = read_record(self.keys, record.token)
                if done is None:
                    raise self.uploads.gone(storage)
                return done
            if self.blobs.size_of(key) != record.size:
                raise PartsMismatchError(
                    "the bucket joined the parts into a file of another size", mismatched=[]
                )
            write_record(self.keys, record)
            del head.uploads[storage]
            self.ledger.enter(head, record.token, entry_of(record))
            self.ledger.make_room(head, evict, keep=record.token)
        for suffix in ("u", "s"):
            self.keys.delete(self.keys.key(storage, suffix))
        self.lifecycle.note(storage, record.expires, record.token)
        self.events.emit("registered", token=record.token, filename=record.filename, size=record.size)
        return record

    def _object(self, storage: str) -> str:
        """The key of the file's object: where chunk 0 of ``storage`` would be."""
        return self.keys.key(storage, 0)
