"""Content-addressed files: the same content, served the same way, is stored once.

A file's token is an HMAC of its content's SHA-256 and of how it is served (name, type,
download, sandbox, owner; see :func:`.records.content_token`), under a key every process
sharing the backend reads from it: the same content gets the same URL everywhere, and
nobody without the key and the content can guess it. Before a file is written (a buffer,
whose hash is known at once) or after (a stream, hashed as it was written), the store asks
here whether that token is stored already; if so, the stored file is *renewed* and the new
copy, if any, goes.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..events import Events
from .backends import Profile
from .keys import Keys
from .ledger import Ledger
from .lifecycle import Lifecycle
from .records import FileRecord, content_token, read_record, write_record

__all__ = ["Dedupe"]


class Dedupe:
    """The content tokens of one store, and the files found under them."""

    def __init__(
        self, keys: Keys, ledger: Ledger, lifecycle: Lifecycle, events: Events, profile: Profile
    ) -> None:
        self.keys = keys
        self.ledger = ledger
        self.lifecycle = lifecycle
        self.events = events
        self.profile = profile
        self._hmac_key: bytes | None = None

    def token(self, digest: bytes, record: FileRecord) -> str:
        """The token of content with SHA-256 ``digest`` served as ``record`` says."""
        if self._hmac_key is None:
            # Shared by every process through the backend: the same content, the same token.
            self._hmac_key = self.keys.shared_secret("hmac-key", self.ledger.exclusive())
        return content_token(self._hmac_key, digest, record)

    def renew(self, token: str, wanted: FileRecord) -> FileRecord | None:
        """If ``token`` is stored and intact, push back its expiry and return it; else ``None``.

        The renewed file answers as if registered now (``Last-Modified``, its lifetime), so
        that nobody can tell that the same content was there before.
        """
        if wanted.one_time:
            return None
        found = read_record(self.keys, token)
        if found is None or found.consumed or (found.chunked and not self._has_first_chunk(found)):
            return None
        renewed = replace(found, expires=wanted.expires, modified=time.time())
        keys = self.keys
        if self.profile.expiry == "native" and found.chunked and found.inline is None:
            # The backend forgets keys by their own time-to-live: give the chunks a new one.
            for index in range(found.chunk_count):
                key = keys.key(*found.chunk_at(index))
                data = keys.get(key)
                if not isinstance(data, bytes):
                    return None
                keys.set(key, data, keys.chunk_timeout)
        self.lifecycle.note(found.chunks_key, wanted.expires)
        write_record(keys, renewed)
        self.ledger.renew(token, found.created, wanted.expires)
        self.events.emit("registered", token=token, filename=found.filename, size=found.size)
        self.events.emit("deduplicated", token=token, filename=found.filename, size=found.size)
        return renewed

    def _has_first_chunk(self, record: FileRecord) -> bool:
        return (
            record.size == 0 or record.inline is not None or self.keys.has(self.keys.key(*record.chunk_at(0)))
        )
