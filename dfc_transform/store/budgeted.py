"""A file's content as it is stored: in chunks, room reserved in the byte budget before each.

Both writers of the store read their content through :class:`BudgetedContent`: a file stored
whole (:mod:`.chunkstore`) and a file served while it is made (:mod:`.growing`). The budget is
reserved a few chunks ahead of what is written, so that a stream of unknown size makes room
(evicting older files) before its bytes land, never after; the size cap is checked as the
bytes come, so an oversized stream stops at the first chunk past it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from ..exc import FileTooLargeError
from ..units import human_size
from ..values import Source
from .ledger import Ledger
from .lifecycle import Lifecycle

__all__ = ["UNLIMITED", "BudgetedContent", "check_size"]

#: A stream's bytes are reserved in the ledger this many chunks at a time.
RESERVE_CHUNKS = 8
#: As good as no limit: what a store without a budget reserves, and unlimited upload caps.
UNLIMITED = 2**62


class BudgetedContent:
    """A source's content a chunk at a time, room reserved in the budget before each chunk is
    handed on, its size and SHA-256 known once it is read.

    :param storage: the storage key the reservation is made for.
    :param max_size: the file's size cap, or ``None``.
    :param known: the content's size where it is known beforehand (a path), reserved at once.
    """

    def __init__(
        self,
        ledger: Ledger,
        lifecycle: Lifecycle,
        source: Source,
        storage: str,
        *,
        chunk_size: int,
        max_size: int | None,
        known: int | None = None,
    ) -> None:
        self._ledger, self._lifecycle = ledger, lifecycle
        self._source, self._storage = source, storage
        self._max_size, self._known = max_size, known
        self._chunk_size = chunk_size
        self._hasher = hashlib.sha256()
        self.size = 0

    def digest(self) -> bytes:
        return self._hasher.digest()

    def __iter__(self) -> Iterator[bytes]:
        ledger, source, max_size = self._ledger, self._source, self._max_size
        reserved = 0
        if ledger.budget is None:
            reserved = UNLIMITED  # nothing to hold back without a budget
        elif self._known is not None or source.buffer is not None:
            reserved = self._known if self._known is not None else len(source.buffer or b"")
            check_size(reserved, max_size)
            ledger.reserve(self._storage, reserved, self._lifecycle)
        for piece in source.chunks(self._chunk_size):
            self.size += len(piece)
            check_size(self.size, max_size)
            if self.size > reserved:
                more = max(self.size - reserved, RESERVE_CHUNKS * self._chunk_size)
                ledger.reserve(self._storage, more, self._lifecycle)
                reserved += more
            self._hasher.update(piece)
            yield bytes(piece)


def check_size(size: int, max_size: int | None) -> None:
    """:raises FileTooLargeError: ``size`` is over ``max_size``."""
    if max_size is not None and size > max_size:
        raise FileTooLargeError(
            f"the file is over the size cap of {human_size(max_size)} (max_size={max_size}; read {size} "
            "bytes so far): raise max_size or serve a smaller file",
            size=size,
            limit=max_size,
        )
