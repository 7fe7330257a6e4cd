"""Exceptions raised by dfc_transform.

Every error derives from :class:`FileServeError`, which carries the context a
developer needs to find the cause: the callback, the output and the value.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ContentMissingError",
    "FileServeError",
    "FileTooLargeError",
    "InvalidOptionError",
    "MissingPathError",
    "UnsupportedValueError",
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
    """A file exceeds the ``max_size`` cap; nothing of it was kept."""


class BackendUnavailableError(FileServeError, ConnectionError):
    """The cache backend failed (server down, disk full, ...)."""


class ContentMissingError(FileServeError, LookupError):
    """A chunk of a registered file is gone from the backend (evicted or flushed)."""
