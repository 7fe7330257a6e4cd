"""What unfinished uploads may hold, and the check each start and each part passes.

Unfinished uploads are bytes a visitor can make the server keep, so they have limits of their
own beside the store's byte budget (see :mod:`.parts`): a cap on all of them together and one
per browser session. And they never make room: a stored file is never evicted for an upload
that may never complete, so an upload that does not fit is refused, with the error saying
which limit it met (the ``Upload`` component shows it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exc import StoreFullError, UploadLimitError
from ..units import human_size
from .keys import Keys
from .ledger_state import Head

__all__ = ["UploadLimits", "check_room", "check_start"]


@dataclass(frozen=True)
class UploadLimits:
    """How much unfinished uploads may hold."""

    #: Bytes of all unfinished uploads together.
    total: int
    #: Bytes of the unfinished uploads of one browser session (or one page, without a session).
    per_session: int
    #: Seconds without a new part after which an upload is given up (unless its ticket says otherwise).
    idle: int


def check_start(limits: UploadLimits, head: Head, size: int, session: str) -> None:
    """Refuse a new upload of ``size`` bytes for ``session`` that would pass ``limits``.

    :raises UploadLimitError: it is over a limit on unfinished uploads (its ``kind`` says which).
    """
    largest = min(limits.per_session, limits.total)
    if size > largest:
        raise UploadLimitError(
            f"a file of {human_size(size)} is over this server's limit on unfinished uploads "
            f"({human_size(largest)})",
            kind="size",
            limit=largest,
        )
    mine = sum(int(u["s"]) for u in head.uploads.values() if u["c"] == session)
    if mine + size > limits.per_session:
        raise UploadLimitError(
            f"this browser's unfinished uploads hold {human_size(mine)}; with this one "
            f"({human_size(size)}) they would pass the limit of {human_size(limits.per_session)} "
            "per session: finish or cancel them first",
            kind="session",
            limit=limits.per_session,
        )
    if head.upload_reserved + size > limits.total:
        raise UploadLimitError(
            "the server is receiving too many uploads at once "
            f"({human_size(head.upload_reserved)} unfinished): try again in a few minutes",
            kind="total",
            limit=limits.total,
        )


def check_room(head: Head, budget: int | None, keys: Keys, nbytes: int) -> None:
    """Refuse ``nbytes`` more that the budget or the disk cannot take without evicting.

    :raises StoreFullError: the budget is spent, or the disk would go below its reserve once
        every unfinished upload has written what it still has to.
    """
    if budget is not None and head.used + nbytes > budget:
        raise StoreFullError(
            f"the store is full: {human_size(head.used)} of its {human_size(budget)} are in use, "
            f"and unfinished uploads never evict stored files; try again later",
            needed=nbytes,
            available=max(0, budget - head.used),
        )
    free = keys.free_space()
    if free is not None and keys.min_free_space:
        # What the unfinished uploads have still to write will come out of the free space too.
        to_come = sum(int(u["s"]) - int(u["b"]) for u in head.uploads.values())
        if free - to_come - nbytes < keys.min_free_space:
            raise StoreFullError(
                f"the disk that holds the store has {human_size(free)} free, too little for "
                f"{human_size(nbytes)} more beside the unfinished uploads and the reserve of "
                f"{human_size(keys.min_free_space)}: try again later",
                needed=nbytes,
                available=max(0, free - to_come - keys.min_free_space),
            )
