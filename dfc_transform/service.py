"""FileService: the store and the route, without Dash.

``FileServeTransform`` is built on it; a plain Flask app uses it directly::

    service = FileService()
    service.init_app(flask_app)

    @flask_app.post("/report")
    def report():
        return {"url": service.register(io.StringIO("hello"), filename="hello.txt")}
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Flask, has_request_context, request
from werkzeug.wrappers import Response

from . import route
from .exc import FileServeError
from .expiry import ExpiryJournal, MemoryJournal
from .naming import OCTET_STREAM, extension_for, mime_type_for, safe_filename
from .store import (
    CHUNK_GRACE,
    DEFAULT_CHUNK_SIZE,
    MEMCACHED_CHUNK_SIZE,
    CacheLike,
    ChunkStore,
    FileRecord,
    default_backend,
    is_token,
)
from .values import File, FileOptions, to_source

__all__ = ["FileService"]

DEFAULT_TIMEOUT = 3600
_DEFAULTS = FileOptions(download=False, one_time=False, sandbox=True)
# Backends whose data lives on this host only: a path is visible to every reader.
_HOST_LOCAL_BACKENDS = {"FileSystemCache", "SimpleCache"}
# Backends whose data lives in one process only.
_PER_PROCESS_BACKENDS = {"SimpleCache"}
_SHARED_BACKEND_ADVICE = (
    "use a backend that all processes share: the default store (FileServeTransform() without a "
    "backend), cachelib.FileSystemCache(dir, threshold=0) on one host, or cachelib.RedisCache across hosts"
)


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
    """

    def __init__(
        self,
        backend: CacheLike | None = None,
        *,
        timeout: int = DEFAULT_TIMEOUT,
        chunk_size: int | None = None,
        max_size: int | None = None,
        copy_paths: bool | None = None,
    ) -> None:
        journal: ExpiryJournal | None = None
        if backend is None:
            backend, journal = default_backend()
        for method in ("get", "set", "delete", "has"):
            if not callable(getattr(backend, method, None)):
                raise TypeError(
                    f"backend must be a cachelib.BaseCache or flask_caching.Cache, "
                    f"got {type(backend).__name__} without a {method}() method"
                )
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 bytes or None, got {max_size}")
        self.store = ChunkStore(
            backend, chunk_size=chunk_size or DEFAULT_CHUNK_SIZE, timeout=timeout, journal=journal
        )
        self.max_size = max_size
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
            self.store.journal = MemoryJournal(grace=CHUNK_GRACE)
        self._settled = inner is not self.backend or not _is_flask_caching(self.backend)

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
        self._route_path = url_prefix + "/"

    def _view(self, subpath: str) -> Response:
        return self.serve(subpath)

    def serve(self, subpath: str) -> Response:
        """Answer the current request for ``<token>/<filename>``."""
        return route.serve(self.store, subpath, request)

    def register(
        self,
        value: Any,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
        download: bool = False,
        one_time: bool = False,
        sandbox: bool = True,
    ) -> str:
        """Store ``value`` (anything a ``FileOutput`` accepts) and return its URL."""
        options = FileOptions(filename, mime_type, download, one_time, sandbox)
        return self.url_for(self.add(value, options))

    def add(self, value: Any, options: FileOptions, *, where: str = "") -> FileRecord:
        """Store ``value`` with ``options`` (a :class:`File` may override them); return the record."""
        if isinstance(value, File):
            options = value.options.over(options)
            value = value.data
        if not self._settled:
            self._settle()
        if self.per_process and has_request_context() and request.environ.get("wsgi.multiprocess"):
            # Another worker would answer the GET and not find the file: fail now, loudly.
            raise FileServeError(
                f"the {self.store.backend_name} keeps files in this process, but this server runs "
                f"several worker processes; {_SHARED_BACKEND_ADVICE}",
                where=where,
            )
        source = to_source(value, where=where)
        opts = options.over(_DEFAULTS)
        filename = safe_filename(opts.filename or source.name_hint or "")
        mime = opts.mime_type or (mime_type_for(filename) if filename else None)
        if mime is None:
            mime = "text/plain" if source.charset else OCTET_STREAM
        if source.charset and "charset=" not in mime:
            mime += f"; charset={source.charset}"
        if not filename:
            filename = "file" + extension_for(mime)
        return self.store.put(
            source,
            filename=filename,
            mime_type=mime,
            download=bool(opts.download),
            one_time=bool(opts.one_time),
            sandbox=bool(opts.sandbox),
            copy_path=self.copy_paths,
            max_size=self.max_size,
            where=where,
        )

    def remove(self, url_or_token: str) -> bool:
        """Remove a registered file now; ``True`` if it was there.

        Takes the URL :meth:`register` returned (with or without host and prefix) or its token.
        Its URL answers 404 from then on.
        """
        token = _token_of(url_or_token)
        if token is None or self.store.get(token) is None:
            return False
        self.store.purge(token)
        return True

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
