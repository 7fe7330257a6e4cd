"""FileService: the store and the route, without Dash.

``FileServeTransform`` is built on it; a plain Flask app uses it directly::

    service = FileService()
    service.init_app(flask_app)

    @flask_app.post("/report")
    def report():
        return {"url": service.register(io.StringIO("hello"), filename="hello.txt")}
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

from flask import Flask, has_request_context, request
from werkzeug.wrappers import Response

from . import route, session
from .backends import CacheLike, Profile, default_backend, profile_of, unwrap, warn_on_count_pruning
from .events import Events, Hook
from .exc import BackendUnavailableError, FileServeError, InvalidOptionError
from .naming import (
    OCTET_STREAM,
    check_filename,
    extension_for,
    mime_type_for,
    normalize_mime_type,
    safe_filename,
)
from .options import DEFAULTS, FileOptions, OptionArgs, options_from
from .records import FileRecord, is_token, new_token
from .store import ChunkStore
from .values import File, Source, to_source

__all__ = ["FileService", "Settings", "Stats"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3600
_SHARED_BACKEND_ADVICE = (
    "use a backend that all processes share: the default store (FileServeTransform() without a "
    "backend), cachelib.FileSystemCache(dir, threshold=0) on one host, or cachelib.RedisCache across hosts"
)
_SENDFILE_HEADERS = ("X-Sendfile", "X-Accel-Redirect")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]*")


class Settings(TypedDict, total=False):
    """The keyword arguments of :class:`FileService` (and ``FileServeTransform``), for type checkers."""

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


@dataclass(frozen=True)
class Stats:
    """What a store holds and what happened to its files."""

    #: Files held by the whole store, every process and host that shares it.
    files: int
    #: Bytes held by the whole store (files being written included).
    bytes: int
    #: Events of each kind seen by this process (see :mod:`dfc_transform.events`).
    events: dict[str, int] = field(default_factory=dict)


class FileService:
    """Registers files in a cache backend and serves them over HTTP.

    :param backend: a ``cachelib.BaseCache`` or ``flask_caching.Cache``; ``None``
        for the default ``FileSystemCache`` (see :func:`dfc_transform.store.default_cache_dir`).
    :param timeout: seconds a registered file stays available; ``0``: until evicted.
    :param chunk_size: bytes per stored chunk (default 1 MiB, 512 KiB on memcached).
    :param max_size: largest file accepted, in bytes; ``None`` for no cap.
    :param copy_paths: copy path values into the backend (``True``) or serve them
        from disk by reference (``False``). ``None`` copies when the backend may be
        shared by several hosts (anything but a file-system or in-process cache).
    :param private: the default of the ``private`` option (URLs bound to the browser session).
    :param namespace: keeps this app's files apart from other apps' in a shared backend.
        ``None``: on the default store, one derived from the app (its directory, module
        and URL prefix), the same in its web and background processes; none on a backend
        you pass (give one when several apps share it).
    :param sendfile_header: ``"X-Accel-Redirect"`` (nginx) or ``"X-Sendfile"`` (Apache,
        lighttpd): path values on this host are sent by the front server, so that no
        worker waits on a slow client. ``None`` (default): sent by the app.
    :param sendfile_prefix: put before the file's path in the header, e.g. nginx's
        ``internal`` location (``"/_protected"`` with ``location /_protected/ { internal;
        alias /; }``).
    """

    def __init__(
        self,
        backend: CacheLike | None = None,
        *,
        timeout: int = DEFAULT_TIMEOUT,
        chunk_size: int | None = None,
        max_size: int | None = None,
        max_total_size: int | None = None,
        copy_paths: bool | None = None,
        private: bool = False,
        namespace: str | None = None,
        sendfile_header: str | None = None,
        sendfile_prefix: str = "",
        on_event: Iterable[Hook] = (),
    ) -> None:
        self._auto_namespace = namespace is None and backend is None
        if backend is None:
            backend = default_backend()
        for method in ("get", "set", "delete", "has"):
            if not callable(getattr(backend, method, None)):
                raise TypeError(
                    f"backend must be a cachelib.BaseCache or flask_caching.Cache, "
                    f"got {type(backend).__name__} without a {method}() method"
                )
        for name, value in (("max_size", max_size), ("max_total_size", max_total_size)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 bytes or None, got {value}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
        if chunk_size is not None and chunk_size < 1024:
            raise ValueError(f"chunk_size must be at least 1024 bytes, got {chunk_size}")
        if sendfile_header is not None and sendfile_header not in _SENDFILE_HEADERS:
            raise ValueError(
                f"sendfile_header must be one of {_SENDFILE_HEADERS} or None, got {sendfile_header!r}"
            )
        #: The cache backend files are kept in.
        self.backend = backend
        self.timeout = timeout
        self.max_size = max_size
        self.max_total_size = max_total_size
        #: The options of files that set none (see :mod:`dfc_transform.options`).
        self.defaults = FileOptions(private=private).over(DEFAULTS)
        #: Whether files bound to a browser session are made here (then pages set the cookie).
        self.uses_private = private
        self.sendfile_header = sendfile_header
        self.sendfile_prefix = sendfile_prefix
        #: Counts what happens to files and hands it to the hooks (see :mod:`dfc_transform.events`).
        self.events = Events(on_event)
        if namespace is not None and not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace must be letters, digits, '_', '-' or '.', got {namespace!r}")
        self._namespace = namespace or ""
        self._chunk_size = chunk_size
        self._copy_paths = copy_paths
        self._store: ChunkStore | None = None
        if unwrap(backend) is not None:
            self._build_store()  # a flask_caching.Cache without its app yet is judged when it has one
        #: Where URLs start, e.g. ``/app/_dash-files/``; set by the transform from the
        #: Dash app's ``requests_pathname_prefix``. ``None``: the Flask route's path,
        #: under the request's ``SCRIPT_NAME``.
        self.url_base: str | None = None
        self._route_path = "/" + route.ROUTE_NAME + "/"

    @property
    def store(self) -> ChunkStore:
        """The chunk store, built from the backend's profile once the backend is known."""
        return self._store or self._build_store()

    def _build_store(self) -> ChunkStore:
        inner = unwrap(self.backend)
        if inner is None:
            raise BackendUnavailableError(
                "the flask_caching.Cache has no app yet: call cache.init_app(app) before files are stored"
            )
        profile: Profile = profile_of(inner, chunk_size=self._chunk_size)
        warn_on_count_pruning(inner)
        self._store = ChunkStore(
            self.backend,
            profile,
            timeout=self.timeout,
            namespace=self._namespace,
            max_total_size=self.max_total_size,
            events=self.events,
        )
        return self._store

    @property
    def per_process(self) -> bool:
        """``True`` when files live in this process only (``SimpleCache``)."""
        return unwrap(self.backend) is not None and self.store.profile.per_process

    @property
    def copy_paths(self) -> bool:
        """Whether path values are copied into the backend or served from disk by reference."""
        if self._copy_paths is not None:
            return self._copy_paths
        return not self.store.profile.host_local

    def init_app(
        self, app: Flask, *, url_prefix: str = "/" + route.ROUTE_NAME, endpoint: str = "dfc_files"
    ) -> None:
        """Add the file route ``<url_prefix>/<token>/<filename>`` to a Flask app."""
        url_prefix = "/" + url_prefix.strip("/")
        app.add_url_rule(
            f"{url_prefix}/<path:subpath>", endpoint=endpoint, view_func=self._view, methods=["GET", "HEAD"]
        )
        for rule in (url_prefix, url_prefix + "/"):
            app.add_url_rule(rule, endpoint=f"{endpoint}_none", view_func=_no_file, methods=["GET", "HEAD"])
        session.install(app, lambda: self.uses_private)
        self._route_path = url_prefix + "/"
        from .uploads import add_routes  # the upload protocol; it builds on this module

        add_routes(app, self, url_prefix, endpoint)
        self.adopt(app, url_prefix)

    def adopt(self, app: Flask, url_prefix: str) -> None:
        """Take the namespace of ``app`` (on the default store, unless one was given)."""
        if self._auto_namespace and self._namespace != app_namespace(app, url_prefix):
            self._namespace = app_namespace(app, url_prefix)
            self._store = None  # built again, with the namespace in every key

    def _view(self, subpath: str) -> Response:
        return self.serve(subpath)

    def serve(self, subpath: str) -> Response:
        """Answer the current request for ``<token>/<filename>``."""
        return route.serve(
            self.store,
            subpath,
            request,
            sendfile_header=self.sendfile_header,
            sendfile_prefix=self.sendfile_prefix,
        )

    def register(self, value: Any, **options: Unpack[OptionArgs]) -> str:
        """Store ``value`` (anything a ``FileOutput`` accepts) and return its URL.

        The options (``filename``, ``mime_type``, ``download``, ``one_time``, ``sandbox``,
        ``private``) are described in :class:`~dfc_transform.options.FileOptions`.
        """
        return self.url_for(self.add(value, options_from(dict(options), "register()")))

    def add(self, value: Any, options: FileOptions, *, where: str = "") -> FileRecord:
        """Store ``value`` with ``options`` (a :class:`File` may override them); return the record.

        Errors are :class:`FileServeError` naming ``where`` (the callback and output).
        """
        try:
            if isinstance(value, File):
                options = value.options.over(options)
                value = value.data
            if self.per_process and has_request_context() and request.environ.get("wsgi.multiprocess"):
                # Another worker would answer the GET and not find the file: fail now, loudly.
                raise FileServeError(
                    f"the {self.store.backend_name} keeps files in this process, but this server runs "
                    f"several worker processes; {_SHARED_BACKEND_ADVICE}"
                )
            source = to_source(value, filename=options.filename, mime_type=options.mime_type)
            record = self._new_record(source, options.over(self.defaults))
            store = self.store
            if store.journal is not None:
                store.journal.start_sweeper(store.sweep)
            return store.put(source, record, copy_path=self.copy_paths, max_size=self.max_size)
        except FileServeError as err:
            self.events.emit("failed", detail=str(err.at(where)))
            raise err.at(where) from err.__cause__

    def _new_record(self, source: Source, opts: FileOptions) -> FileRecord:
        """The record of a file about to be stored: everything but its size is known.

        Names and types that cannot be served are refused here, before anything is written.
        """
        filename = safe_filename(opts.filename or source.name_hint or "")
        try:
            check_filename(filename)
            mime = normalize_mime_type(opts.mime_type) if opts.mime_type else None
        except ValueError as err:
            source.release()
            raise InvalidOptionError(str(err)) from None
        if mime is None:
            mime = mime_type_for(filename) if filename else None
        if mime is None:
            mime = "text/plain" if source.charset else OCTET_STREAM
        if source.charset and "charset=" not in mime:
            mime += f"; charset={source.charset}"
        if not filename:
            filename = "file" + extension_for(mime)
        now = time.time()
        return FileRecord(
            token=new_token() if opts.one_time else "",  # else derived from the content
            size=0,
            chunk_size=self.store.chunk_size,
            mime_type=mime,
            filename=filename,
            download=bool(opts.download),
            one_time=bool(opts.one_time),
            sandbox=bool(opts.sandbox),
            created=now,
            expires=now + self.timeout if self.timeout else None,
            owner=self._owner() if opts.private else None,
        )

    def remove(self, url_or_token: str) -> bool:
        """Remove a registered file now; ``True`` if it was there.

        Takes the URL :meth:`register` returned (with or without host and prefix) or its
        token. Its URL answers 404 from then on.
        """
        token = _token_of(url_or_token)
        return token is not None and self.store.remove(token)

    def stats(self) -> Stats:
        """What the whole store holds (every process and host sharing it), and what this
        process saw happen (counts of each event kind)."""
        files, size = self.store.ledger.totals()
        return Stats(files=files, bytes=size, events=self.events.counts())

    def clear(self) -> int:
        """Remove every file of this store (of its namespace), whatever its expiry; return how many.

        Files being written, and any the ledger lost track of, are swept from the journal too.
        """
        swept = self.store.sweep(force=True, now=float("inf"), grace=0, only_mine=True)
        return swept + sum(self.store.remove(token) for token in self.store.ledger.tokens())

    def _owner(self) -> str:
        self.uses_private = True
        return session.current_owner()

    def purge_expired(self) -> int:
        """Remove every file whose time is over, now; return how many were removed.

        A daemon thread of each registering process does this once a minute.
        """
        return self.store.sweep(force=True, grace=0)

    def url_for(self, record: FileRecord) -> str:
        """The URL of a stored file: ``<url_base><token>/<filename>``."""
        base = self.url_base
        if base is None:
            # A plain Flask app may be mounted under a prefix (SCRIPT_NAME).
            base = (request.script_root if has_request_context() else "") + self._route_path
        return f"{base}{record.token}/{quote(record.filename, safe='')}"


def _token_of(url_or_token: str) -> str | None:
    """The token of ``<base><token>/<name>`` (the name is quoted: it has no slash) or a bare token."""
    path = url_or_token.split("?", 1)[0].split("#", 1)[0]
    parts = path.rsplit("/", 2)
    text = parts[-2] if len(parts) >= 2 else parts[0]
    return text if is_token(text) else None


def _no_file() -> Response:
    return route.plain(404, "Not found: no such file.")


def app_namespace(app: Flask, url_prefix: str) -> str:
    """A namespace that every process of ``app`` computes alike, and another app does not.

    From the app's directory, its module's name and its URL prefix: a web worker, a
    background-callback process and a Celery worker that import the same app module agree
    on it without talking to each other (the name ``__main__`` is taken from its file).
    """
    module = app.import_name
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None) or "__main__"
        module = Path(main_file).stem
    seed = f"{os.path.realpath(app.root_path)}|{module.rsplit('.', 1)[-1]}|{url_prefix}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]
