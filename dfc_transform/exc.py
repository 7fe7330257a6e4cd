"""Exceptions raised by dfc_transform.

Every error derives from :class:`FileServeError`, which carries the context a
developer needs to find the cause: the callback, the output and the value.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BackendUnavailableError",
    "ContentMissingError",
    "FileServeError",
    "FileTooLargeError",
    "InvalidOptionError",
    "MissingPathError",
    "PartsMismatchError",
    "StoreFullError",
    "UnsupportedValueError",
    "UploadGoneError",
    "UploadLimitError",
]


class FileServeError(Exception):
    """Base class of every dfc_transform error.

    :param message: what went wrong and how to fix it.
    :param where: the callback and output concerned, e.g.
        ``"callback app.plot, output img.src"``; empty outside callbacks.
    """

    def __init__(self, message: str, *, where: str = "") -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def at(self, where: str) -> FileServeError:
        """Attach the callback and output concerned, where the error is caught; return ``self``."""
        if where and not self.where:
            self.where = where
            self.args = (f"{where}: {self.message}",)
        return self


class InvalidOptionError(FileServeError, ValueError):
    """An option (a file name, a mime type) that cannot be served safely; nothing was stored."""


class UnsupportedValueError(FileServeError, TypeError):
    """A value of a type that cannot be served was given."""


class MissingPathError(FileServeError, FileNotFoundError):
    """A ``str`` or ``os.PathLike`` value names no existing regular file."""


class FileTooLargeError(FileServeError, ValueError):
    """A file exceeds the ``max_size`` cap or the store's byte budget; nothing of it was kept.

    :param size: the bytes read when it was refused; :param limit: the cap it passed.
    """

    def __init__(
        self, message: str, *, size: int | None = None, limit: int | None = None, where: str = ""
    ) -> None:
        super().__init__(message, where=where)
        self.size = size
        self.limit = limit


class StoreFullError(FileServeError):
    """The store has no room left: its disk is at the free-space reserve, or its byte budget
    is held by unfinished uploads. Nothing half-written stays.

    :param needed: bytes that were to be written; :param available: bytes there was room for.
    """

    def __init__(self, message: str, *, needed: int = 0, available: int = 0, where: str = "") -> None:
        super().__init__(message, where=where)
        self.needed = needed
        self.available = available


class BackendUnavailableError(FileServeError, ConnectionError):
    """The cache backend failed (server down, disk full, ...)."""


class ContentMissingError(FileServeError, LookupError):
    """A chunk of a registered file is gone from the backend (evicted or flushed)."""


class UploadLimitError(FileServeError):
    """An upload refused by the limits on unfinished uploads (see ``max_upload_bytes``).

    :param kind: ``"size"`` (the file alone is over a limit), ``"session"`` (this browser's
        unfinished uploads would pass theirs), ``"total"`` (all unfinished uploads would).
    """

    def __init__(self, message: str, *, kind: str, limit: int, where: str = "") -> None:
        super().__init__(message, where=where)
        self.kind = kind
        self.limit = limit


class UploadGoneError(FileServeError):
    """An upload that is no longer open: ``reason`` is ``"idle"`` (no part came for its idle
    time), ``"cancelled"``, or ``"unknown"`` (past its deadline, or never started here)."""

    def __init__(self, message: str, *, reason: str, where: str = "") -> None:
        super().__init__(message, where=where)
        self.reason = reason


class PartsMismatchError(FileServeError):
    """A completion whose parts are not those the store holds: ``missing`` never arrived,
    ``mismatched`` hold other bytes than the completion names (another client sent them)."""

    def __init__(
        self, message: str, *, missing: Sequence[int] = (), mismatched: Sequence[int] = (), where: str = ""
    ) -> None:
        super().__init__(message, where=where)
        self.missing = list(missing)
        self.mismatched = list(mismatched)
