"""``UploadedFile``: what a callback gets for an uploaded file."""

from __future__ import annotations

import functools
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..store import ChunkReader, ChunkStore, FileRecord

__all__ = ["UploadedFile"]


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
    #: When the file was last modified, as the browser said (``File.lastModified``), in
    #: seconds since the epoch (``datetime.fromtimestamp(f.last_modified)``); ``None`` when
    #: the browser did not say. As ``dcc.Upload``'s ``last_modified``, it comes from the
    #: user's machine: a hint, not a fact.
    last_modified: float | None
    _store: ChunkStore = field(repr=False, compare=False)
    _record: FileRecord = field(repr=False, compare=False)

    def open(self) -> io.BufferedReader:
        """A new binary stream over the file, from its start (seekable)."""
        reader = ChunkReader(self._store.contents, self._record)
        return io.BufferedReader(reader, buffer_size=self._record.chunk_size)

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
