"""One seam for what happens to files: hooks that receive a small frozen record.

Every event goes through :meth:`Events.emit`: it is counted (the counters of
:meth:`FileService.stats`), logged at a level that fits it, and handed to each
hook the service was given::

    def to_metrics(event: FileEvent) -> None:
        statsd.incr(f"files.{event.kind}")

    FileServeTransform(on_event=[to_metrics])
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["EVENT_KINDS", "EventKind", "Events", "FileEvent", "Hook"]

logger = logging.getLogger("dfc_transform")

EventKind = Literal[
    "inlined",  # a small file went into the output as a data: URI instead of being stored
    "registered",  # a file was stored (or, with the same content and options, found and renewed)
    "deduplicated",  # ... and it was the same content: no second copy
    "served",  # a GET answered 200 (HEAD too)
    "partial",  # a GET answered 206
    "not_modified",  # a conditional GET answered 304
    "missing",  # a GET of a token that is unknown, consumed, or not this session's
    "expired",  # a GET of a file whose time is over (before the sweep removed it)
    "evicted",  # a file was removed to keep the store within its byte budget
    "removed",  # a file was removed by remove(), a sweep, or a one-time transfer
    "failed",  # a registration or a GET failed: the backend, the value, the content
]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]

_LEVELS = {"failed": logging.WARNING, "evicted": logging.INFO}


@dataclass(frozen=True)
class FileEvent:
    """What happened to a file, handed to hooks."""

    kind: EventKind
    #: The file's token, when there is one.
    token: str | None = None
    filename: str | None = None
    #: Bytes concerned (the file's size).
    size: int | None = None
    #: A human-readable detail (an error message, why a file was evicted).
    detail: str = ""
    time: float = field(default_factory=time.time)


Hook = Callable[[FileEvent], object]


class Events:
    """Counts events, logs them and calls the hooks; a hook that fails is logged, not raised."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self.hooks: list[Hook] = list(hooks)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def emit(
        self,
        kind: EventKind,
        *,
        token: str | None = None,
        filename: str | None = None,
        size: int | None = None,
        detail: str = "",
    ) -> None:
        with self._lock:
            self._counts[kind] += 1
        level = _LEVELS.get(kind, logging.DEBUG)
        if logger.isEnabledFor(level):
            logger.log(level, "%s %s %s %s", kind, token or "-", filename or "-", detail)
        if not self.hooks:
            return
        event = FileEvent(kind, token, filename, size, detail)
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # a hook's bug must not fail a download
                logger.exception("dfc_transform event hook %r failed", hook)

    def counts(self) -> dict[str, int]:
        """How often each kind happened in this process."""
        with self._lock:
            return {kind: self._counts.get(kind, 0) for kind in EVENT_KINDS}
