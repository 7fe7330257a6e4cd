"""The metadata record of a stored file, its token, and how both are written.

A record is JSON bytes, never a pickled object: every backend keeps bytes as they
are, and nothing read back from a backend is ever unpickled by us. A small file's
content follows its record's JSON line in the same value (``inline``): one key to
write and one to read, the cost of a data URI.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .keys import Keys

__all__ = [
    "FileRecord",
    "content_token",
    "dump_record",
    "entry_of",
    "is_token",
    "load_record",
    "new_token",
    "read_record",
    "write_record",
]

#: 16 bytes: 128 bits, 22 URL-safe characters.
TOKEN_BYTES = 16
TOKEN_LENGTH = 22
_TOKEN_SHAPE = re.compile(f"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")


@dataclass(frozen=True)
class FileRecord:
    """The metadata of one registered file. Contents never change under a token."""

    token: str
    size: int
    chunk_size: int
    mime_type: str
    filename: str
    download: bool
    one_time: bool
    #: ``True``: ``Content-Security-Policy: sandbox`` for active types shown inline; a string
    #: adds its allowances (``"allow-scripts"``); ``False``: none.
    sandbox: bool | str
    created: float
    #: Unix time after which the file is gone; ``None``: kept until evicted.
    expires: float | None
    #: Set for path values: served from this file where it is visible and unchanged.
    path: str | None = None
    path_host: str | None = None
    path_mtime_ns: int | None = None
    #: ``False`` for paths served by reference only: no chunks in the backend.
    chunked: bool = True
    #: A one-time file after its transfer: answered with 410 until it expires.
    consumed: bool = False
    #: For a private file: the hash of the session id that may open it (see :mod:`.session`).
    owner: str | None = None
    #: The key the chunks are stored under; empty: the token (files of the first round).
    storage: str = ""
    #: When this content was last registered (``Last-Modified``); ``None``: ``created``. The
    #: same content registered again answers as if new: nobody learns it was there before.
    modified: float | None = None
    #: A file uploaded in parts: the attempt whose bytes won, per part (see :mod:`.parts`);
    #: chunk ``i`` is then chunk ``i - p * part_chunks`` of ``<storage>.<parts[p]>``.
    parts: tuple[int, ...] | None = None
    #: Chunks per part of a file uploaded in parts.
    part_chunks: int = 0
    #: A file uploaded in parts: a digest of its parts' checksums, as its completion named them.
    parts_digest: str | None = None
    #: Being written while it is served (see :mod:`.growing`): its size is not known yet
    #: (``size`` is the declared one, or 0).
    growing: bool = False
    #: The whole content is one object (object storage, see :mod:`.s3`), kept where chunk 0
    #: would be; its chunks are ranges of it.
    blob: bool = False
    #: A small file's content, kept in the record itself (no chunks).
    inline: bytes | None = field(default=None, repr=False)

    @property
    def chunk_count(self) -> int:
        return 0 if self.inline is not None else -(-self.size // self.chunk_size)

    @property
    def chunks_key(self) -> str:
        """What the chunk keys derive from."""
        return self.storage or self.token

    def chunk_at(self, index: int) -> tuple[str, int]:
        """Where chunk ``index`` is kept: the name its key derives from, and its number there."""
        if self.parts is None:
            return self.chunks_key, index
        part = index // self.part_chunks
        return f"{self.chunks_key}.{self.parts[part]}", index - part * self.part_chunks

    def chunk_groups(self) -> list[tuple[str, int]]:
        """Every name chunks are kept under, with how many chunks it holds."""
        if self.inline is not None or not self.chunked:
            return []
        if self.blob:
            return [(self.chunks_key, 1)]
        if self.parts is None:
            return [(self.chunks_key, self.chunk_count)]
        count = self.chunk_count
        return [
            (f"{self.chunks_key}.{attempt}", min(self.part_chunks, count - p * self.part_chunks))
            for p, attempt in enumerate(self.parts)
        ]


_RECORD_FIELDS = tuple(f.name for f in fields(FileRecord) if f.name != "inline")


def new_token() -> str:
    """A random token (also used for storage keys)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def content_token(key: bytes, digest: bytes, record: FileRecord) -> str:
    """The token of content with ``digest`` served as ``record`` says: an HMAC under ``key``.

    The same content with the same options gets the same token in every process that
    shares the key; without the key and the content, it cannot be guessed.
    """
    served_as = [record.filename, record.mime_type, record.download, record.sandbox, record.owner]
    message = digest + json.dumps(served_as, separators=(",", ":")).encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def is_token(text: str) -> bool:
    """Tell whether ``text`` has the shape of a token (cheap, before any backend call)."""
    return _TOKEN_SHAPE.fullmatch(text) is not None


def dump_record(record: FileRecord) -> bytes:
    # JSON bytes rather than a dict: every backend keeps bytes as they are (chunks rely on it),
    # whereas a dict depends on the client's serialiser: pymemcache without a serde stores
    # str(dict) and hands back bytes, and every file would then be a 404.
    # The flat dict asdict() would make, without its deep copies (half of a small registration).
    flat = {name: getattr(record, name) for name in _RECORD_FIELDS}
    flat["inline"] = record.inline is not None
    # JSON escapes newlines in strings: the first b"\n" ends the header.
    header = json.dumps(flat, separators=(",", ":")).encode()
    return header if record.inline is None else header + b"\n" + record.inline


def load_record(data: Any) -> FileRecord | None:
    """The record in ``data``, or ``None`` for anything else (missing, foreign, damaged)."""
    try:
        header, _, content = data.partition(b"\n")
        flat = json.loads(header)
        inline = flat.pop("inline", False)
        if flat.get("parts") is not None:
            flat["parts"] = tuple(int(p) for p in flat["parts"])
        record = FileRecord(**flat, inline=content if inline else None)
    except (TypeError, ValueError, AttributeError):
        return None
    if record.inline is not None and len(record.inline) != record.size:
        return None  # cut short: never served as a short file
    return record


def read_record(keys: Keys, token: str) -> FileRecord | None:
    """The record stored under ``token``, or ``None`` (missing, foreign, damaged)."""
    return load_record(keys.get(keys.key(token, "m")))


def write_record(keys: Keys, record: FileRecord) -> None:
    keys.set(keys.key(record.token, "m"), dump_record(record), keys.record_timeout)


def entry_of(record: FileRecord) -> list[Any]:
    """A file's entry in the ledger: ``[size, created, expires, filename, mime_type, flags]``,
    the flags ``"o"`` for one-time and ``"p"`` for private."""
    flags = ("o" if record.one_time else "") + ("p" if record.owner is not None else "")
    return [record.size, record.created, record.expires, record.filename, record.mime_type, flags]
