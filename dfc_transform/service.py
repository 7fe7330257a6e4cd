"""FileService: the store and the HTTP core wired together, without Dash.

``FileServeTransform`` is built on it; a plain Flask app uses it directly::

    service = FileService()
    service.init_app(flask_app)

    @flask_app.post("/report")
    def report():
        return {"url": service.register(io.StringIO("hello"), filename="hello.txt")}
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Unpack

from . import http
from .events import Events
from .exc import BackendUnavailableError, FileServeError, InvalidOptionError
from .http.adapters import current
from .naming import name_and_type
from .options import DEFAULTS, FileOptions, OptionArgs, options_from
from .settings import SettingArgs, Settings, min_free_space, settings_from, upload_limits
from .store import (
    CacheLike,
    ChunkStore,
    FileInfo,
    FileRecord,
    UploadLimits,
    default_backend,
    is_token,
    new_token,
    profile_of,
    unwrap,
    warn_on_count_pruning,
)
from .store.namespaces import app_directory, app_namespace, module_name
from .values import File, Source, to_source
from .values.inline import data_uri, may_inline, send_dict

__all__ = ["FileService", "Stats"]

logger = logging.getLogger(__name__)

SHARED_BACKEND_ADVICE = (
    "use a backend that all processes share: the default store (FileServeTransform() without a "
    "backend), cachelib.FileSystemCache(dir, threshold=0) on one host, or cachelib.RedisCache across hosts"
)


@dataclass(frozen=True)
class Stats:
    """What a store holds and what happened to its files."""

    #: Files stored in the whole store, every process and host that shares it.
    files: int
    #: Their bytes (their content: records and the like add a few hundred bytes per file).
    bytes: int
    #: Unfinished uploads.
    uploads: int = 0
    #: The bytes unfinished uploads have stored so far.
    upload_bytes: int = 0
    #: Events of each kind seen by this process (see :mod:`dfc_transform.events`).
    events: dict[str, int] = field(default_factory=dict)


class FileService:
    """Registers files in a cache backend and serves them over HTTP.

    :param backend: a ``cachelib.BaseCache`` or ``flask_caching.Cache``; ``None`` for the
        default ``FileSystemCache`` (see :func:`dfc_transform.store.default_cache_dir`).
    :param settings: see :class:`~dfc_transform.settings.Settings` (``timeout``,
        ``max_size``, ``max_total_size``, ``private``, ``chunk_size``, ``copy_paths``,
        ``namespace``, ``sendfile_header``, ``sendfile_prefix``, ``on_event``).
    """

    def __init__(self, backend: CacheLike | None = None, **settings: Unpack[SettingArgs]) -> None:
        self.settings: Settings = settings_from(dict(settings), "FileService()")
        self._auto_namespace = self.settings.namespace is None and backend is None
        if backend is None:
            backend = default_backend()
        for method in ("get", "set", "delete", "has"):
            if not callable(getattr(backend, method, None)):
                raise TypeError(
                    f"backend must be a cachelib.BaseCache or flask_caching.Cache, "
                    f"got {type(backend).__name__} without a {method}() method"
                )
        #: The cache backend files are kept in.
        self.backend = backend
        #: The options of files that set none (see :mod:`dfc_transform.options`).
        self.defaults = FileOptions(private=self.settings.private).over(DEFAULTS)
        #: Whether files bound to a browser session are made here (then pages set the cookie).
        self.uses_private = self.settings.private
        #: Counts what happens to files and hands it to the hooks (see :mod:`dfc_transform.events`).
        self.events = Events(self.settings.on_event)
        self._namespace = self.settings.namespace or ""
        #: What this app is, recorded with its namespace (see :mod:`dfc_transform.store.namespaces`).
        self._about: dict[str, Any] = {"module": module_name("__main__")}
        self._store: ChunkStore | None = None
        if unwrap(backend) is not None:
            self._build_store()  # a flask_caching.Cache without its app yet is judged when it has one
        #: Where URLs start, e.g. ``/app/_dash-files/``; set by the transform from the Dash
        #: app's ``requests_pathname_prefix``. ``None``: the route's path under the request's
        #: ``SCRIPT_NAME`` (or ``root_path``).
        self.url_base: str | None = None
        self._route_path = "/" + http.ROUTE_NAME + "/"

    @property
    def timeout(self) -> int:
        """Seconds a registered file stays available; ``0``: until evicted."""
        return self.settings.timeout

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
        warn_on_count_pruning(inner)
        settings = self.settings
        profile = profile_of(inner, chunk_size=settings.chunk_size)
        total, per_session = upload_limits(settings)
        self._store = ChunkStore(
            self.backend,
            profile,
            timeout=settings.timeout,
            namespace=self._namespace,
            max_total_size=settings.max_total_size,
            events=self.events,
            uploads=UploadLimits(total=total, per_session=per_session, idle=settings.upload_idle_timeout),
            min_free_space=min_free_space(settings, _disk_size(profile.disk)),
            about=self._about,
        )
        return self._store

    @property
    def per_process(self) -> bool:
        """``True`` when files live in this process only (``SimpleCache``)."""
        return unwrap(self.backend) is not None and self.store.profile.per_process

    @property
    def copy_paths(self) -> bool:
        """Whether path values are copied into the backend or served from disk by reference."""
        if self.settings.copy_paths is not None:
            return self.settings.copy_paths
        return not self.store.profile.host_local

    # -- HTTP ------------------------------------------------------------------------

    def handle(self, request: http.Request) -> http.Response:
        """Answer a request under the file route (a file, or a step of an upload)."""
        return http.handle(self.store, self.settings, request)

    def init_app(
        self, app: Any, *, url_prefix: str = "/" + http.ROUTE_NAME, endpoint: str = "dfc_files"
    ) -> None:
        """Add the file route ``<url_prefix>/<token>/<filename>`` (and the upload protocol) to a Flask app."""
        from .http.adapters import flask as flask_adapter

        flask_adapter.add_routes(app, url_prefix, self.handle, endpoint)
        flask_adapter.install_session_cookie(app, lambda: self.uses_private)
        self._route_path = "/" + url_prefix.strip("/") + "/"
        self.adopt(app.import_name, url_prefix, route=self._route_path)

    def adopt(self, import_name: str, url_prefix: str, *, route: str | None = None) -> None:
        """Take the namespace of the app ``import_name`` (on the default store, unless one was given).

        ``route``: the URL path its files are under (``/reports/_dash-files/``), for the command
        line's listing."""
        self._about = {
            "module": module_name(import_name),
            "prefix": url_prefix,
            "route": route or url_prefix.rstrip("/") + f"/{http.ROUTE_NAME}/",
            "directory": app_directory(import_name),
        }
        namespace = app_namespace(import_name, url_prefix)
        if self._auto_namespace and self._namespace != namespace:
            self._namespace = namespace
        if unwrap(self.backend) is not None:
            self._build_store()  # again, with the namespace in every key and what the app is

    # -- registering -----------------------------------------------------------------

    def register(self, value: Any, **options: Unpack[OptionArgs]) -> str:
        """Store ``value`` (anything a ``FileOutput`` accepts) and return its URL.

        The options (``filename``, ``mime_type``, ``download``, ``one_time``, ``sandbox``,
        ``private``, ``inline_below``) are described in :class:`~dfc_transform.options.FileOptions`.
        Only with ``inline_below`` given may the answer be a ``data:`` URI (where it will go is
        not known here).
        """
        url = self.output_for(value, options_from(dict(options), "register()"))
        assert isinstance(url, str)  # a dict only for a ``data`` property
        return url

    def add(self, value: Any, options: FileOptions, *, where: str = "") -> FileRecord:
        """Store ``value`` with ``options`` (a :class:`File` may override them); return the record.

        Errors are :class:`FileServeError` naming ``where`` (the callback and output).
        """
        stored = self._serve(value, options, where=where, prop=None, inline=False)
        assert isinstance(stored, FileRecord)
        return stored

    def output_for(
        self,
        value: Any,
        options: FileOptions,
        *,
        where: str = "",
        prop: str | None = None,
        stream: bool = False,
    ) -> str | dict[str, Any]:
        """What to put at property ``prop`` of a component for ``value``: the URL of the stored
        file, or for a small one the file itself (see :mod:`.values.inline`): a ``data:`` URI,
        or at a ``data`` property what ``dcc.send_bytes`` gives a ``dcc.Download``.

        ``stream``: content made while it is read (a generator) is served while it is made,
        its URL returned at once (see :mod:`.store.growing`); else it is stored whole first.
        """
        stored = self._serve(value, options, where=where, prop=prop, inline=True, stream=stream)
        if isinstance(stored, FileRecord):
            return self.url_for(stored)
        content, record = stored
        if prop == "data":
            return send_dict(content, record.filename, record.mime_type)
        return data_uri(content, record.mime_type)

    def _serve(
        self,
        value: Any,
        options: FileOptions,
        *,
        where: str,
        prop: str | None,
        inline: bool,
        stream: bool = False,
    ) -> FileRecord | tuple[bytes, FileRecord]:
        """Store ``value`` and give its record; or, with ``prop`` given and the file small,
        give its content and the record it would have had (see :mod:`.values.inline`)."""
        try:
            if isinstance(value, File):
                options = value.options.over(options)
                value = value.data
            source = to_source(value, filename=options.filename, mime_type=options.mime_type)
            merged = options.over(self.defaults)
            if options.sandbox is None and source.sandbox is not None:
                merged = replace(merged, sandbox=source.sandbox)  # what the converter asks for its HTML
            record = self._new_record(source, merged)
            limit = self.settings.inline_below if merged.inline_below is None else merged.inline_below
            asked = merged.inline_below is not None
            if (
                inline
                and limit
                and not source.generated
                and may_inline(record.mime_type, prop, asked=asked, one_time=record.one_time)
            ):
                content, source = source.take(limit - 1)
                if content is not None:
                    source.release()
                    self.events.emit("inlined", filename=record.filename, size=len(content))
                    return content, record
            if source.generated and stream and prop is not None:
                # Made while it is served: the URL now, the content as it comes (see .store.growing).
                if merged.size is not None:
                    record = replace(record, size=merged.size)
                return self.store.put_growing(source, record, max_size=self.settings.max_size)
            if self.per_process and current.serving_multiprocess():
                # Another worker would answer the GET and not find the file: fail now, loudly.
                source.release()
                raise FileServeError(
                    f"the {self.store.backend_name} keeps files in this process, but this server runs "
                    f"several worker processes; {SHARED_BACKEND_ADVICE}"
                )
            return self.store.put(source, record, copy_path=self.copy_paths, max_size=self.settings.max_size)
        except FileServeError as err:
            self.events.emit("failed", detail=str(err.at(where)))
            raise err.at(where) from err.__cause__

    def _new_record(self, source: Source, opts: FileOptions) -> FileRecord:
        """The record of a file about to be stored: everything but its size is known.

        Names and types that cannot be served are refused here, before anything is written.
        """
        try:
            filename, mime = name_and_type(
                opts.filename, opts.mime_type, hint=source.name_hint, charset=source.charset
            )
        except ValueError as err:
            source.release()
            raise InvalidOptionError(str(err)) from None
        now = time.time()
        timeout = self.settings.timeout
        return FileRecord(
            token=new_token() if opts.one_time else "",  # else derived from the content
            size=0,
            chunk_size=self.store.chunk_size,
            mime_type=mime,
            filename=filename,
            download=bool(opts.download),
            one_time=bool(opts.one_time),
            sandbox=opts.sandbox if isinstance(opts.sandbox, str) else bool(opts.sandbox),
            created=now,
            expires=now + timeout if timeout else None,
            owner=self._owner() if opts.private else None,
        )

    def _owner(self) -> str:
        self.uses_private = True
        return current.current_owner()

    def url_for(self, record: FileRecord) -> str:
        """The URL of a stored file: ``<url_base><token>/<filename>``."""
        base = self.url_base
        if base is None:
            # A plain Flask or Quart app may be mounted under a prefix (SCRIPT_NAME, root_path).
            base = current.script_root() + self._route_path
        return http.file_url(base, record)

    # -- the store as a whole ----------------------------------------------------------

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
        uploads, upload_bytes = self.store.uploads.totals()
        return Stats(
            files=files, bytes=size, uploads=uploads, upload_bytes=upload_bytes, events=self.events.counts()
        )

    def files(self) -> list[FileInfo]:
        """Every file of this store (of its namespace), oldest first: its token, name, mime
        type, size, when it was made and expires, and whether it is one-time or private."""
        return self.store.files()

    def clear(self) -> int:
        """Remove every file of this store (of its namespace), whatever its expiry; return how
        many (the files :meth:`files` lists). Unfinished writes and uploads go too."""
        removed = sum(self.store.remove(f.token) for f in self.store.files())
        self.store.sweep(force=True, now=float("inf"), grace=0, only_mine=True)
        return removed

    def purge_expired(self) -> int:
        """Remove every file whose time is over, now; return how many were removed.

        A daemon thread of each registering process does this once a minute.
        """
        return self.store.sweep(force=True, grace=0)


def _disk_size(path: Any) -> int | None:
    if path is None:
        return None
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_blocks * info.f_frsize


def _token_of(url_or_token: str) -> str | None:
    """The token of ``<base><token>/<name>`` (the name is quoted: it has no slash) or a bare token."""
    path = url_or_token.split("?", 1)[0].split("#", 1)[0]
    parts = path.rsplit("/", 2)
    text = parts[-2] if len(parts) >= 2 else parts[0]
    return text if is_token(text) else None
