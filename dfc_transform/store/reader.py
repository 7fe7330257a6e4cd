"""A seekable binary stream over a stored file, one chunk in memory at a time."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from .records import FileRecord

if TYPE_CHECKING:
    from .chunkstore import ChunkStore

__all__ = ["ChunkReader"]


class ChunkReader(io.RawIOBase):
    """A seekable binary stream over a stored file, reading one chunk from the store at a time.

    Memory stays at one chunk whatever the file's size. A chunk gone from the store
    (expired, evicted) raises :class:`~dfc_transform.exc.ContentMissingError`: never a
    short or wrong read.
    """

    def __init__(self, store: ChunkStore, record: FileRecord) -> None:
        super().__init__()
        self._store = store
        self._record = record
        self._pos = 0
        self._index = -1
        self._chunk = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._record.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._piece(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return bytes(self._piece(size))

    def readall(self) -> bytes:
        pieces = []
        while piece := self._piece(self._record.chunk_size):
            pieces.append(bytes(piece))
        return b"".join(pieces)

    def _piece(self, size: int) -> memoryview:
        """Up to ``size`` bytes from the position, within one chunk (empty at the end)."""
        record = self._record
        if size <= 0 or self._pos >= record.size:
            return memoryview(b"")
        index, offset = divmod(self._pos, record.chunk_size)
        if index != self._index:
            self._chunk = b""  # let the last one go before the next one comes
            self._chunk = self._store.chunk(record, index)
            self._index = index
        piece = memoryview(self._chunk)[offset : offset + size]
        self._pos += len(piece)
        return piece

    def close(self) -> None:
        self._chunk = b""
        super().close()
