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

__all__ = ["DEFAULT_TIMEOUT", "SETTING_NAMES", "SettingArgs", "Settings"]

DEFAULT_TIMEOUT = 3600
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

    def __post_init__(self) -> None:
        for name in ("max_size", "max_total_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a number of bytes >= 0 or None, got {value!r}")
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


def settings_from(given: dict[str, Any], where: str) -> Settings:
    """:class:`Settings` from keyword arguments, refusing unknown names clearly."""
    unknown = sorted(set(given) - set(SETTING_NAMES))
    if unknown:
        raise TypeError(
            f"{where} got unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"the settings are {', '.join(SETTING_NAMES)}"
        )
    return Settings(**given)
