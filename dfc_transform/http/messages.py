"""The HTTP core's request and response: small values that any server's adapter speaks.

The file route and the upload protocol are functions from a :class:`Request` to a
:class:`Response`; no web framework is imported here or in them. An adapter
(:mod:`dfc_transform.http.adapters`) builds the request from its framework's and turns
the response into its framework's: WSGI for Flask, ASGI for Quart and Starlette.

A body is one of three things: ``bytes``; an iterator of chunks (closed by the adapter
when the client goes away, before it is exhausted: a one-time file relies on it); or a
:class:`FileBody`, a span of a file on disk that a server may send without copying it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

__all__ = ["SAFETY_HEADERS", "Body", "FileBody", "Headers", "Readable", "Request", "Response", "plain"]

#: Headers every answer of ours carries: no content sniffing, no referrer to other sites.
SAFETY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"))


class Readable(Protocol):
    """A request body: blocking reads, ``b""`` at its end (or when the client went away)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Headers(Mapping[str, str]):
    """Request headers, looked up without regard to case (the first value of a name)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = {}
        for name, value in items:
            self._items.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Request:
    """What the core needs of a request."""

    method: str
    #: The path below the route's prefix: ``<token>/<name>`` or ``_upload/...``.
    subpath: str
    #: The URL the route's paths start at, as the browser sees it: ``/app/_dash-files/``.
    route_base: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    cookies: Mapping[str, str] = field(default_factory=dict)
    #: The request body, read with blocking ``read(n)`` calls (an adapter on an async server
    #: feeds it from its event loop); ``None`` when there is none.
    body: Readable | None = None
    #: ``True`` on HTTPS: cookies we set are then ``Secure``.
    secure: bool = False
    #: ``True`` when several processes serve the app (a per-process store cannot).
    multiprocess: bool = False

    @property
    def content_length(self) -> int | None:
        text = self.headers.get("Content-Length")
        if text is None or not text.isascii() or not text.isdigit():
            return None
        return int(text)


@dataclass(frozen=True)
class FileBody:
    """Bytes ``[start, stop)`` of an open file, to be sent and then closed."""

    file: IO[bytes]
    start: int
    stop: int
    #: Read this many bytes at a time when the server cannot send the file itself.
    block: int = 1024 * 1024

    @property
    def path(self) -> str:
        return os.fsdecode(self.file.name) if isinstance(self.file.name, (str, bytes)) else ""

    def chunks(self) -> Iterator[bytes]:
        """The span read ``block`` bytes at a time; the file is closed at the end."""
        with self.file as f:
            f.seek(self.start)
            remaining = self.stop - self.start
            while remaining > 0:
                data = f.read(min(self.block, remaining))
                if not data:
                    raise OSError(f"{self.path!r} ended {remaining} bytes early")
                remaining -= len(data)
                yield data


Body = bytes | Iterable[bytes] | FileBody


@dataclass
class Response:
    """What the core answers: a status, headers and a body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""
    #: The exact number of bytes the body holds (``Content-Length``); ``None``: unknown.
    length: int | None = None

    def __post_init__(self) -> None:
        if self.length is None and isinstance(self.body, bytes):
            self.length = len(self.body)

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or ``None``."""
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)

    def close(self) -> None:
        """Let go of the body without sending it (a HEAD, an error in the adapter)."""
        if isinstance(self.body, FileBody):
            self.body.file.close()
        else:
            close: Any = getattr(self.body, "close", None)
            if callable(close):
                close()


def plain(status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A short plain-text answer (errors): never cached, never sniffed."""
    return Response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Cache-Control", "no-store"),
            *SAFETY_HEADERS,
            *headers,
        ],
        (text + "\n").encode(),
    )
