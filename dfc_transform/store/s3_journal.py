"""The expiry journal of an S3 bucket: the same journal as on disk, with objects for lines.

S3 cannot append, and a bucket's lifecycle rules expire objects in days, not minutes, so a
file's entry (see :mod:`.expiry`) is an empty object ``<prefix>journal/<bucket>/<entry>``, the
entry percent-quoted whole (stores fold the ``//`` an entry of the default namespace would
make): writing one is one PUT, listing a bucket one LIST. A sweeper takes a bucket by a claim (a
conditional write, which one host wins), so that two hosts never sweep the same bucket at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from .expiry import ExpiryJournal

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = ["S3Journal"]

#: A sweeper that died holding a claim gives it up after this long.
CLAIM_SECONDS = 300


class S3Journal(ExpiryJournal):
    """The journal of the files in an :class:`.S3Store`."""

    def __init__(self, store: S3Store, *, grace: int) -> None:
        super().__init__(grace=grace)
        self.store = store
        self.root = store.object_key("journal/")

    def _append(self, bucket: int, entry: str) -> None:
        self.store.call("put_object", Key=f"{self.root}{bucket}/{quote(entry, safe='')}", Body=b"")

    def _buckets(self) -> list[int]:
        found = []
        for prefix in self.store.list_keys(self.root, delimiter="/"):
            name = prefix[len(self.root) :].rstrip("/")
            if name.isdigit():
                found.append(int(name))
        return found

    def _take(self, bucket: int) -> Iterable[str]:
        claim = f"journal-claim:{bucket}"
        if not self.store.add(claim, b"", CLAIM_SECONDS):
            return []  # another host sweeps it now
        try:
            keys = list(self.store.list_keys(f"{self.root}{bucket}/"))
            self.store.delete_objects(keys)
        finally:
            self.store.delete(claim)
        cut = len(f"{self.root}{bucket}/")
        return [unquote(key[cut:]) for key in keys]

    def _peek(self, bucket: int) -> Iterable[str]:
        cut = len(f"{self.root}{bucket}/")
        return [unquote(key[cut:]) for key in self.store.list_keys(f"{self.root}{bucket}/")]
