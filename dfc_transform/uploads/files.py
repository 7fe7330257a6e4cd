"""``UploadedFile``: what a callback gets for an uploaded file, and its stream over the chunks."""

from __future__ import annotations

import functools
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records import FileRecord
from ..store import ChunkStore

__all__ = ["ChunkReader", "UploadedFile"]


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
            stop = min(record.size, (index + 1) * record.chunk_size)
            self._chunk = b"".join(self._store.iter_chunks(record, index * record.chunk_size, stop))
            self._index = index
        piece = memoryview(self._chunk)[offset : offset + size]
        self._pos += len(piece)
        return piece

    def close(self) -> None:
        self._chunk = b""
        super().close()


@dataclass(frozen=True)
class UploadedFile:
    """A file the browser uploaded through ``dfc_transform.Upload``, as a callback gets it
    from a ``FileInput``/``FileState``.

    It is a stored file like any other: :attr:`url` serves it (to the browser session that
    uploaded it, unless the component has ``private=False``), and it lives as long as the
    transform's ``timeout``. Read it with :attr:`stream` (``pandas.read_csv(f.stream)``),
    :meth:`open` for a stream of your own, :meth:`read` for all its bytes, or :meth:`save`
    to copy it to a path. Memory stays at one chunk while streaming, whatever the size.
    """

    #: The file's name, made safe (no directories, no control characters).
    name: str
    #: Its size in bytes.
    size: int
    #: Its type, from its name's extension (else as the browser said, else
    #: ``application/octet-stream``).
    mime_type: str
    #: Where the app serves it.
    url: str
    #: Its token in the store (``FileServeTransform.remove(token)`` removes it).
    token: str
    #: A path to the file's bytes on this host when the store keeps it as one file;
    #: ``None`` when it is kept in chunks (every store does for uploads): use :attr:`stream`
    #: or :meth:`save`.
    path: Path | None
    _store: ChunkStore = field(repr=False, compare=False)
    _record: FileRecord = field(repr=False, compare=False)

    def open(self) -> io.BufferedReader:
        """A new binary stream over the file, from its start (seekable)."""
        return io.BufferedReader(ChunkReader(self._store, self._record), buffer_size=self._record.chunk_size)

    @functools.cached_property
    def stream(self) -> io.BufferedReader:
        """A binary stream over the file, opened on first use (the same one each time)."""
        return self.open()

    def read(self) -> bytes:
        """All the file's bytes (in memory: mind the size)."""
        with self.open() as f:
            return f.read()

    def save(self, destination: str | Path) -> Path:
        """Copy the file to ``destination`` chunk by chunk; return the path."""
        path = Path(destination)
        with self.open() as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target, self._record.chunk_size)
        return path
