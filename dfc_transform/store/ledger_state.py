"""The ledger's state in memory (see :mod:`.ledger`): the head it reads and writes under its lock,
and the changes a process gathers before it writes them."""

from __future__ import annotations

from typing import Any

__all__ = ["Head", "Pending"]


class Pending:
    """A bucket's changes gathered in this process, not yet written."""

    def __init__(self) -> None:
        self.nbytes = 0
        self.files = 0
        self.expires: float | None = None
        self.added: dict[str, list[Any]] = {}
        self.renewed: dict[str, float | None] = {}
        self.removed: set[str] = set()

    def count(self, nbytes: int, files: int, expires: float | None) -> None:
        self.nbytes += nbytes
        self.files += files
        if expires is not None:
            self.expires = expires if self.expires is None else max(self.expires, expires)

    def note(
        self, add: tuple[str, list[Any]] | None, renew: tuple[str, float | None] | None, remove: str | None
    ) -> None:
        if add is not None:
            self.added[add[0]] = add[1]
            self.removed.discard(add[0])
        if renew is not None:
            self.renewed[renew[0]] = renew[1]
        if remove is not None:
            self.added.pop(remove, None)
            self.removed.add(remove)

    def listed(self) -> bool:
        return bool(self.added or self.renewed or self.removed)

    def apply(self, bucket: dict[str, list[Any]]) -> None:
        """Apply the listing changes to a bucket's files."""
        bucket.update(self.added)
        for token, expires in self.renewed.items():
            if token in bucket:
                bucket[token][2] = expires
        for token in self.removed:
            bucket.pop(token, None)

    def absorb(self, other: Pending) -> None:
        """Take ``other``'s changes (made before this one's) back in."""
        self.count(other.nbytes, other.files, other.expires)
        for token, entry in other.added.items():
            if token not in self.removed:
                self.added.setdefault(token, entry)
        for token, expires in other.renewed.items():
            self.renewed.setdefault(token, expires)
        self.removed |= other.removed - set(self.added)


class Head:
    """The ledger's head: ``[bytes, files, last expiry]`` per bucket, the reservations of
    files being written, and the unfinished uploads (see :mod:`.parts`)."""

    def __init__(self, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        self.buckets: dict[int, list[Any]] = {int(k): v for k, v in data.get("buckets", {}).items()}
        self.reserved: dict[str, int] = dict(data.get("reserved", {}))
        self.uploads: dict[str, dict[str, Any]] = dict(data.get("uploads", {}))
        #: Evicted files whose chunks wait for a transfer under way to end: ``[size, until, chunks]``.
        self.kept: dict[str, list[Any]] = dict(data.get("kept", {}))

    @property
    def bytes(self) -> int:
        return sum(int(b[0]) for b in self.buckets.values())

    @property
    def files(self) -> int:
        return sum(int(b[1]) for b in self.buckets.values())

    @property
    def upload_reserved(self) -> int:
        """Bytes held for unfinished uploads: their sizes, and the parts sent again in flight."""
        return sum(int(u["s"]) + sum(int(a[2]) for a in u["a"].values()) for u in self.uploads.values())

    @property
    def used(self) -> int:
        """Bytes counted against the budget: files, files being written, unfinished uploads,
        and evicted files whose chunks a transfer still reads."""
        kept = sum(int(k[0]) for k in self.kept.values())
        return self.bytes + sum(self.reserved.values()) + self.upload_reserved + kept

    def add(self, bucket_id: int, size: int, expires: float | None) -> None:
        entry = self.buckets.setdefault(bucket_id, [0, 0, expires])
        entry[0] += size
        entry[1] += 1
        self.extend(bucket_id, expires)

    def extend(self, bucket_id: int, expires: float | None) -> None:
        entry = self.buckets.get(bucket_id)
        if entry is not None and entry[2] is not None:
            entry[2] = None if expires is None else max(entry[2], expires)

    def merge(self, bucket_id: int, nbytes: int, files: int, expires: float | None) -> None:
        """Add changes gathered elsewhere (counts may be negative: files removed)."""
        if files > 0 or bucket_id in self.buckets:
            entry = self.buckets.setdefault(bucket_id, [0, 0, expires])
            entry[0] += nbytes
            entry[1] += files
            self.extend(bucket_id, expires)
            if entry[1] <= 0:
                del self.buckets[bucket_id]

    def remove(self, bucket_id: int, size: int) -> None:
        entry = self.buckets.get(bucket_id)
        if entry is not None:
            entry[0] -= size
            entry[1] -= 1
            if entry[1] <= 0:
                del self.buckets[bucket_id]

    def drop_expired(self, now: float) -> list[int]:
        """Remove the buckets whose every file has expired; return their ids."""
        gone = [b for b, entry in self.buckets.items() if entry[2] is not None and entry[2] < now]
        for bucket_id in gone:
            del self.buckets[bucket_id]
        return gone

    def dump(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "reserved": self.reserved,
            "uploads": self.uploads,
            "kept": self.kept,
        }
