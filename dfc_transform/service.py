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
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cachelib import FileSystemCache, SimpleCache
from flask import Flask, has_request_context, request
from werkzeug.wrappers import Response

from . import route, session
from .exc import FileServeError, InvalidOptionError
from .expiry import GRACE, ExpiryJournal, MemoryJournal
from .naming import (
    OCTET_STREAM,
    check_filename,
    extension_for,
    mime_type_for,
    normalize_mime_type,
    safe_filename,
)
from .store import (
    DEFAULT_CHUNK_SIZE,
    MEMCACHED_CHUNK_SIZE,
    CacheLike,
    ChunkStore,
    FileRecord,
    default_backend,
    default_cache_dir,
    is_token,
    new_token,
)
from .values import File, FileOptions, Source, to_source

__all__ = ["FileService"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3600
_DEFAULTS = FileOptions(download=False, one_time=False, sandbox=True, private=False)
# Backends whose data lives on this host only: a path is visible to every reader.
_HOST_LOCAL_BACKENDS = {"FileSystemCache", "SimpleCache"}
# Backends whose data lives in one process only.
_PER_PROCESS_BACKENDS = {"SimpleCache"}
_SHARED_BACKEND_ADVICE = (
    "use a backend that all processes share: the default store (FileServeTransform() without a "
    "backend), cachelib.FileSystemCache(dir, threshold=0) on one host, or cachelib.RedisCache across hosts"
)
_SENDFILE_HEADERS = ("X-Sendfile", "X-Accel-Redirect")


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
        copy_paths: bool | None = None,
        private: bool = False,
        namespace: str | None = None,
        sendfile_header: str | None = None,
        sendfile_prefix: str = "",
    ) -> None:
        journal: ExpiryJournal | None = None
        claims_dir: Path | None = None
        self._default_store = backend is None
        if backend is None:
            backend, journal = default_backend()
            claims_dir = default_cache_dir() / "claims"
        for method in ("get", "set", "delete", "has"):
            if not callable(getattr(backend, method, None)):
                raise TypeError(
                    f"backend must be a cachelib.BaseCache or flask_caching.Cache, "
                    f"got {type(backend).__name__} without a {method}() method"
                )
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 bytes or None, got {max_size}")
        if sendfile_header is not None and sendfile_header not in _SENDFILE_HEADERS:
            raise ValueError(
                f"sendfile_header must be one of {_SENDFILE_HEADERS} or None, got {sendfile_header!r}"
            )
        self.store = ChunkStore(
            backend,
            chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
            timeout=timeout,
            journal=journal,
            claims_dir=claims_dir,
        )
        self.store.namespace = namespace or ""
        self._auto_namespace = namespace is None and self._default_store
        self.max_size = max_size
        self.defaults = FileOptions(private=private).over(_DEFAULTS)
        self.sendfile_header = sendfile_header
        self.sendfile_prefix = sendfile_prefix
        self._chunk_size = chunk_size
        self._copy_paths = copy_paths
        self._settled = False
        self._settle()
        #: Where URLs start, e.g. ``/app/_dash-files/``; set by the transform from the
        #: Dash app's ``requests_pathname_prefix``. ``None``: the Flask route's path,
        #: under the request's ``SCRIPT_NAME``.
        self.url_base: str | None = None
        self._route_path = "/" + route.ROUTE_NAME + "/"

    def _settle(self) -> None:
        """Fit the defaults to the backend's kind, once it is known.

        A ``flask_caching.Cache`` may meet its app, and so its backend, only after the
        service was made (app factories); until then it is judged as a generic cache and
        this runs again on each ``add()``.
        """
        inner = _unwrap(self.backend)
        kind = type(inner).__name__
        if kind == "NullCache":
            raise TypeError("a NullCache stores nothing: every URL would be a 404; " + _SHARED_BACKEND_ADVICE)
        if self._chunk_size is None:
            # memcached refuses items over 1 MB: its chunks must stay under that.
            self.store.chunk_size = MEMCACHED_CHUNK_SIZE if "Memcache" in kind else DEFAULT_CHUNK_SIZE
        #: Whether path values are copied into the backend or served from disk by reference.
        self.copy_paths = (
            self._copy_paths if self._copy_paths is not None else kind not in _HOST_LOCAL_BACKENDS
        )
        #: ``True`` when files live in this process only (``SimpleCache``).
        self.per_process = kind in _PER_PROCESS_BACKENDS
        if self.store.journal is None and self.per_process:
            self.store.journal = MemoryJournal(grace=GRACE)
        self._settled = inner is not self.backend or not _is_flask_caching(self.backend)
        if inner is not self.backend or not _is_flask_caching(self.backend):
            _warn_on_count_pruning(inner)

    @property
    def backend(self) -> CacheLike:
        """The cache backend files are kept in."""
        return self.store.backend

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
        app.after_request(session.set_cookie_if_missing)
        self._route_path = url_prefix + "/"
        self.adopt(app, url_prefix)

    def adopt(self, app: Flask, url_prefix: str) -> None:
        """Take the namespace of ``app`` (on the default store, unless one was given)."""
        if self._auto_namespace:
            self.store.namespace = app_namespace(app, url_prefix)

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

    def register(
        self,
        value: Any,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
        download: bool | None = None,
        one_time: bool | None = None,
        sandbox: bool | None = None,
        private: bool | None = None,
    ) -> str:
        """Store ``value`` (anything a ``FileOutput`` accepts) and return its URL."""
        options = FileOptions(filename, mime_type, download, one_time, sandbox, private)
        return self.url_for(self.add(value, options))

    def add(self, value: Any, options: FileOptions, *, where: str = "") -> FileRecord:
        """Store ``value`` with ``options`` (a :class:`File` may override them); return the record.

        Errors are :class:`FileServeError` naming ``where`` (the callback and output).
        """
        try:
            if isinstance(value, File):
                options = value.options.over(options)
                value = value.data
            if not self._settled:
                self._settle()
            if self.per_process and has_request_context() and request.environ.get("wsgi.multiprocess"):
                # Another worker would answer the GET and not find the file: fail now, loudly.
                raise FileServeError(
                    f"the {self.store.backend_name} keeps files in this process, but this server runs "
                    f"several worker processes; {_SHARED_BACKEND_ADVICE}"
                )
            source = to_source(value)
            record = self._new_record(source, options.over(self.defaults))
            if self.store.journal is not None:
                self.store.journal.start_sweeper(self.store.sweep)
            return self.store.put(source, record, copy_path=self.copy_paths, max_size=self.max_size)
        except FileServeError as err:
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
            token=new_token(),
            size=0,
            chunk_size=self.store.chunk_size,
            mime_type=mime,
            filename=filename,
            download=bool(opts.download),
            one_time=bool(opts.one_time),
            sandbox=bool(opts.sandbox),
            created=now,
            expires=now + self.store.timeout if self.store.timeout else None,
            owner=session.current_owner() if opts.private else None,
        )

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


# A SimpleCache always prunes by count (it reads 0 as 500); past this many items (100 GB of
# 1 MiB chunks) the count is never the limit in practice.
_ENOUGH_ITEMS = 100_000


def _warn_on_count_pruning(backend: Any) -> None:
    """Warn about backends that delete items by count: files would vanish before their time."""
    threshold = getattr(backend, "_threshold", 0)
    if isinstance(backend, FileSystemCache) and threshold > 0:
        setting = "cachelib.FileSystemCache(dir, threshold=0) (flask_caching: CACHE_THRESHOLD=0)"
    elif isinstance(backend, SimpleCache) and threshold < _ENOUGH_ITEMS:
        setting = (
            "a SimpleCache threshold above the number of chunks it will hold (it reads 0 as 500; "
            "flask_caching: CACHE_THRESHOLD)"
        )
    else:
        return
    message = (
        f"the {type(backend).__name__} deletes items by count once it holds more than {threshold}: "
        f"chunks of files go before their timeout and their URLs answer 404/410; use {setting}"
    )
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _is_flask_caching(backend: Any) -> bool:
    return type(backend).__module__.startswith("flask_caching") and type(backend).__name__ == "Cache"


def _unwrap(backend: Any) -> Any:
    """The cachelib backend inside a ``flask_caching.Cache`` (if it can be reached now)."""
    if _is_flask_caching(backend):
        try:
            return backend.cache
        except Exception:  # not bound to an app yet: judge by the wrapper for now
            return backend
    return backend
