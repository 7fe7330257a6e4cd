"""The settings of a file service, in one place with their defaults and checks.

``FileService(backend, **settings)`` and ``FileServeTransform(backend, **settings)`` take
them by name and build one :class:`Settings`, which the store, the HTTP core and the Dash
side read. Adding a setting means adding a field here (and its key to
:class:`SettingArgs`, which only tells type checkers the names; a test keeps the two alike).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, TypedDict

from .events import Hook

__all__ = [
    "DEFAULT_TIMEOUT",
    "SETTING_NAMES",
    "SettingArgs",
    "Settings",
    "min_free_space",
    "settings_from",
    "upload_limits",
]

DEFAULT_TIMEOUT = 3600
#: Files below this size go into a picture's ``src`` as data: URIs (chosen by measurement:
#: docs/performance.md).
DEFAULT_INLINE_BELOW = 32 * 1024
SENDFILE_HEADERS = ("X-Sendfile", "X-Accel-Redirect")
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True)
class Settings:
    """How a file service stores and serves.

    :param timeout: seconds a registered file stays available; ``0``: until evicted.
    :param chunk_size: bytes per stored chunk (default 1 MiB, 512 KiB on memcached).
    :param max_size: largest file accepted, in bytes; ``None`` for no cap.
    :param max_total_size: the byte budget of the whole store (oldest files evicted
        first); ``None`` for none.
    :param copy_paths: copy path values into the backend (``True``) or serve them from
        disk by reference (``False``). ``None`` copies when the backend may be shared by
        several hosts (anything but a file-system or in-process cache).
    :param private: the default of the ``private`` option (URLs bound to the browser session).
    :param namespace: keeps this app's files apart from other apps' in a shared backend.
        ``None``: on the default store, one derived from the app (its directory, module and
        URL prefix), the same in its web and background processes; none on a backend you
        pass (give one when several apps share it).
    :param sendfile_header: ``"X-Accel-Redirect"`` (nginx) or ``"X-Sendfile"`` (Apache,
        lighttpd): path values on this host are sent by the front server, so that no worker
        waits on a slow client. ``None`` (default): sent by the app.
    :param sendfile_prefix: put before the file's path in that header, e.g. nginx's
        ``internal`` location (``"/_protected"`` with ``location /_protected/ { internal;
        alias /; }``).
    :param on_event: hooks called with every :class:`~dfc_transform.events.FileEvent`.
    :param max_upload_bytes: the most bytes all unfinished uploads together may hold.
        ``None``: half of ``max_total_size``, or 4 GiB without one. A start past it is
        refused (503, the component tries again later).
    :param max_upload_bytes_per_session: the most bytes the unfinished uploads of one browser
        session may hold (a page's, without a session). ``None``: half of ``max_upload_bytes``.
        A file larger than this is refused at its start (413); more uploads past it are
        refused with 429.
    :param upload_idle_timeout: seconds without a new part after which an upload is given up
        and its bytes removed (``Upload(idle_timeout=...)`` sets it per component).
    :param min_free_space: on a store on this host's disk, refuse a write that would leave
        fewer bytes free. ``None``: 64 MiB or 1% of the file system, whichever is larger;
        ``0``: no check.
    :param inline_below: files a callback returns to the ``src`` of a picture, a sound or a
        video that are smaller than this many bytes go into the output as ``data:`` URIs: one
        request instead of two (see :mod:`dfc_transform.values.inline`); ``0`` never.
    """

    timeout: int = DEFAULT_TIMEOUT
    chunk_size: int | None = None
    max_size: int | None = None
    max_total_size: int | None = None
    copy_paths: bool | None = None
    private: bool = False
    namespace: str | None = None
    sendfile_header: str | None = None
    sendfile_prefix: str = ""
    on_event: Iterable[Hook] = ()
    max_upload_bytes: int | None = None
    max_upload_bytes_per_session: int | None = None
    upload_idle_timeout: int = 600
    min_free_space: int | None = None
    inline_below: int = DEFAULT_INLINE_BELOW

    def __post_init__(self) -> None:
        for name in (
            "max_size",
            "max_total_size",
            "max_upload_bytes",
            "max_upload_bytes_per_session",
            "min_free_space",
            "inline_below",
        ):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a number of bytes >= 0 or None, got {value!r}")
        if not isinstance(self.upload_idle_timeout, int) or self.upload_idle_timeout < 1:
            raise ValueError(
                "upload_idle_timeout must be a whole number of seconds >= 1, "
                f"got {self.upload_idle_timeout!r}"
            )
        if not isinstance(self.timeout, int) or self.timeout < 0:
            raise ValueError(f"timeout must be a whole number of seconds >= 0, got {self.timeout!r}")
        if self.chunk_size is not None and self.chunk_size < 1024:
            raise ValueError(f"chunk_size must be at least 1024 bytes, got {self.chunk_size}")
        if self.sendfile_header is not None and self.sendfile_header not in SENDFILE_HEADERS:
            raise ValueError(
                f"sendfile_header must be one of {SENDFILE_HEADERS} or None, got {self.sendfile_header!r}"
            )
        if self.namespace is not None and not set(self.namespace) <= _NAMESPACE_CHARS:
            raise ValueError(f"namespace must be letters, digits, '_', '-' or '.', got {self.namespace!r}")
        object.__setattr__(self, "on_event", tuple(self.on_event))


SETTING_NAMES = tuple(f.name for f in fields(Settings))


class SettingArgs(TypedDict, total=False):
    """The settings as keyword arguments (see :class:`Settings` for their meaning)."""

    timeout: int
    chunk_size: int | None
    max_size: int | None
    max_total_size: int | None
    copy_paths: bool | None
    private: bool
    namespace: str | None
    sendfile_header: str | None
    sendfile_prefix: str
    on_event: Iterable[Hook]
    max_upload_bytes: int | None
    max_upload_bytes_per_session: int | None
    upload_idle_timeout: int
    min_free_space: int | None
    inline_below: int


def settings_from(given: dict[str, Any], where: str) -> Settings:
    """:class:`Settings` from keyword arguments, refusing unknown names clearly."""
    unknown = sorted(set(given) - set(SETTING_NAMES))
    if unknown:
        raise TypeError(
            f"{where} got unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"the settings are {', '.join(SETTING_NAMES)}"
        )
    return Settings(**given)


#: Unfinished uploads may hold this much without a byte budget, unless told otherwise.
DEFAULT_UPLOAD_BYTES = 4 * 1024**3
#: The least free space kept on the disk of a store on this host (or 1% of it, if more).
DEFAULT_MIN_FREE_SPACE = 64 * 1024**2


def upload_limits(settings: Settings) -> tuple[int, int]:
    """``(all unfinished uploads, one session's)`` in bytes, defaults resolved."""
    total = settings.max_upload_bytes
    if total is None:
        total = settings.max_total_size // 2 if settings.max_total_size is not None else DEFAULT_UPLOAD_BYTES
    per_session = settings.max_upload_bytes_per_session
    if per_session is None:
        per_session = total // 2
    return total, min(per_session, total)


def min_free_space(settings: Settings, disk_size: int | None) -> int:
    """The free-space reserve in bytes, the default resolved against a disk of ``disk_size`` bytes."""
    if settings.min_free_space is not None:
        return settings.min_free_space
    return max(DEFAULT_MIN_FREE_SPACE, (disk_size or 0) // 100)
