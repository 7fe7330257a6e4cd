"""A file written into one object of an S3 bucket as its content is read.

The store hands a file's content on a chunk at a time (see :mod:`.budgeted`); the object is
written as it comes, so that memory stays at one part whatever the file's size: a file that
stays under one part is one PUT, a larger one a multipart upload whose parts go as they fill.
A write that fails or is given up aborts the multipart upload, so that no part is left behind
in the bucket (where unfinished multipart uploads are billed and invisible).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = ["BlobWriter"]


class BlobWriter:
    """Writes one object as its content arrives: a single PUT if it stays under one part,
    else a multipart upload (memory: one part). ``abort()`` leaves nothing behind."""

    def __init__(self, store: S3Store, object_key: str) -> None:
        self._store = store
        self._key = object_key
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._upload_id: str | None = None
        self._etags: list[str] = []
        self.size = 0

    def write(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        self.size += len(piece)
        if self._pending_size >= self._store.part_size:
            self._send_part()

    def finish(self) -> None:
        """Make the object whole and visible."""
        store = self._store
        if self._upload_id is None:
            store.call("put_object", Key=self._key, Body=b"".join(self._pending))
            return
        if self._pending_size or not self._etags:
            self._send_part()
        parts = [{"PartNumber": n, "ETag": e} for n, e in enumerate(self._etags, start=1)]
        store.call(
            "complete_multipart_upload",
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._store.call("abort_multipart_upload", Key=self._key, UploadId=self._upload_id)
        self._pending.clear()

    def _send_part(self) -> None:
        store = self._store
        if self._upload_id is None:
            self._upload_id = store.call("create_multipart_upload", Key=self._key)["UploadId"]
        body = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        answer = store.call(
            "upload_part", Key=self._key, UploadId=self._upload_id, PartNumber=len(self._etags) + 1, Body=body
        )
        self._etags.append(answer["ETag"])
