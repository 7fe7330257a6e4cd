"""FileServeTransform and FileOutput: the Dash side.

The transform wraps every callback that has a ``FileOutput``: what the callback
returns at a ``FileOutput`` position is stored and replaced by its URL; every
other position is left untouched. The file route is added to each Dash app at
its creation through ``dash.hooks`` (a Flask rule cannot be added after the
first request, and DashProxy applies transforms inside that request); at
request time the route finds its transform through the app.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

import dash
from dash import ALL, ALLSMALLER, Output
from dash_extensions.enrich import DashTransform
from flask import Flask, has_request_context, request
from werkzeug.wrappers import Response

from . import route
from .exc import FileServeError, UnsupportedValueError
from .service import _SHARED_BACKEND_ADVICE, DEFAULT_TIMEOUT, FileService
from .store import CacheLike
from .values import FileOptions

__all__ = ["FileOutput", "FileServeTransform"]

logger = logging.getLogger(__name__)
_NO_UPDATE = type(dash.no_update)
# Set on wrapped callbacks so that a callback shared by several apps (the global
# dash_extensions.enrich.callback) is wrapped once, not once per app.
_WRAPPED_MARK = "__dfc_transform__"


class FileOutput(Output):
    """An ``Output`` whose values are files: the callback returns the file, the
    browser gets its URL.

    The options are the defaults for values returned here; ``File(...)`` overrides
    them per value. See :class:`dfc_transform.values.FileOptions` for their meaning.
    """

    def __init__(
        self,
        component_id: Any,
        component_property: str,
        *,
        allow_duplicate: bool = False,
        filename: str | None = None,
        mime_type: str | None = None,
        download: bool = False,
        one_time: bool = False,
        sandbox: bool = True,
    ) -> None:
        super().__init__(component_id, component_property, allow_duplicate)
        self.file_options = FileOptions(filename, mime_type, download, one_time, sandbox)

    @property
    def is_multi(self) -> bool:
        """``True`` for ``ALL``/``ALLSMALLER`` ids, whose value is a list of files."""
        ids = self.component_id
        return isinstance(ids, dict) and any(v in (ALL, ALLSMALLER) for v in ids.values())


class FileServeTransform(DashTransform):  # type: ignore[misc]
    """A dash-extensions transform that serves what callbacks return to ``FileOutput``.

    ``app = DashProxy(transforms=[FileServeTransform()])``

    :param backend: a ``cachelib.BaseCache`` or ``flask_caching.Cache``; ``None``
        for the default ``FileSystemCache`` shared by all processes on this host.
    :param timeout: seconds a file stays available after it was returned.
    :param chunk_size: bytes per stored chunk (default 1 MiB, 512 KiB on memcached).
    :param max_size: largest file accepted, in bytes; ``None`` for no cap.
    :param copy_paths: see :class:`~dfc_transform.FileService`.
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
        super().__init__()
        #: The store and route this transform uses.
        self.service = FileService(
            backend, timeout=timeout, chunk_size=chunk_size, max_size=max_size, copy_paths=copy_paths
        )
        self._app: dash.Dash | None = None
        self._serving_pid: int | None = None

    def sort_key(self) -> int:
        # Innermost, next to the user's function: we see values as it returns them.
        return 0

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
        """Store ``value`` and return its URL; usable in any request of the app
        (a Flask route, a callback that uses ``set_props``)."""
        self._ensure_bound()
        return self.service.register(
            value,
            filename=filename,
            mime_type=mime_type,
            download=download,
            one_time=one_time,
            sandbox=sandbox,
        )

    def bind(self, app: dash.Dash) -> None:
        """Attach this transform to its app (done for you at the app's first request)."""
        if self._app is app:
            return
        if self._app is not None:
            raise FileServeError("a FileServeTransform serves one app; create one per app")
        self._app = app
        self._serving_pid = os.getpid()
        self.service.url_base = app.get_relative_path(f"/{route.ROUTE_NAME}/")
        _warn_on_unshared_secret(app)

    def _ensure_bound(self) -> None:
        if self._app is not None:
            return
        try:
            app = dash.get_app()
        except Exception:  # no app yet: URLs get no prefix until the first request binds us
            return
        if _transform_of(app) is self:
            self.bind(app)

    # -- callbacks ----------------------------------------------------------------

    def apply_serverside(self, callbacks: list[Any]) -> list[Any]:
        for callback in callbacks:
            spec = callback.outputs.structure
            # dash-extensions registers a one-element list as a single output.
            if isinstance(spec, list) and len(spec) == 1:
                spec = spec[0]
            if _has_file_output(spec) and not hasattr(callback.f, _WRAPPED_MARK):
                if self.service.per_process and callback.kwargs.get("background"):
                    message = (
                        f"callback {_name_of(callback.f)} is a background callback: it runs in another "
                        f"process, where a {self.service.store.backend_name} cannot hand its files to "
                        f"the web process; {_SHARED_BACKEND_ADVICE}"
                    )
                    logger.warning(message)
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
                callback.f = self._wrap(callback.f, spec)
        return callbacks

    def _wrap(self, func: Callable[..., Any], spec: Any) -> Callable[..., Any]:
        name = _name_of(func)

        def convert(result: Any) -> Any:
            self._ensure_bound()
            if self.service.per_process and self._serving_pid not in (None, os.getpid()):
                raise FileServeError(
                    f"this callback runs in process {os.getpid()} but the app serves files from process "
                    f"{self._serving_pid}, and a {self.service.store.backend_name} is private to one "
                    f"process; {_SHARED_BACKEND_ADVICE}",
                    where=f"callback {name}",
                )
            return self._convert(result, spec, name)

        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                return convert(await func(*args, **kwargs))

        else:

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return convert(func(*args, **kwargs))

        setattr(wrapper, _WRAPPED_MARK, self)
        return wrapper

    def _convert(self, value: Any, spec: Any, callback: str) -> Any:
        """Replace files by URLs along the output structure ``spec``."""
        if value is None or isinstance(value, _NO_UPDATE):
            return value
        if isinstance(spec, FileOutput):
            if not spec.is_multi:
                return self._store(value, spec, callback, str(spec))
            if not isinstance(value, (list, tuple)):
                raise UnsupportedValueError(
                    f"an ALL output takes a list of files, one per matching component; "
                    f"got {type(value).__name__}",
                    where=f"callback {callback}, output {spec}",
                )
            return [self._store(v, spec, callback, f"{spec}[{i}]") for i, v in enumerate(value)]
        if isinstance(spec, list) and isinstance(value, (list, tuple)) and len(value) == len(spec):
            return type(value)(self._convert(v, s, callback) for v, s in zip(value, spec, strict=True))
        if isinstance(spec, dict) and isinstance(value, dict):
            return {k: self._convert(v, spec[k], callback) if k in spec else v for k, v in value.items()}
        return value  # a shape Dash itself will reject, with its own message

    def _store(self, value: Any, output: FileOutput, callback: str, label: str) -> Any:
        if value is None or isinstance(value, _NO_UPDATE):
            return value
        where = f"callback {callback}, output {label}"
        record = self.service.add(value, output.file_options, where=where)
        return self.service.url_for(record)


def _warn_on_unshared_secret(app: dash.Dash) -> None:
    """Background jobs under several workers need one secret_key for all of them.

    Dash signs the job handles it gives the browser with the Flask ``secret_key``
    and DashProxy makes up a random one per process when none is set: a poll that
    reaches another worker is refused and the page waits forever, file or not.
    """
    multiprocess = has_request_context() and request.environ.get("wsgi.multiprocess")
    if multiprocess and getattr(app, "_background_manager", None) and not app.server.secret_key:
        message = (
            "this app has background callbacks and runs in several worker processes, but no "
            "secret_key: set app.server.secret_key to the same value in every worker (from an "
            "environment variable), or polls that reach another worker never finish"
        )
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def _name_of(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _has_file_output(spec: Any) -> bool:
    if isinstance(spec, FileOutput):
        return True
    if isinstance(spec, list):
        return any(_has_file_output(s) for s in spec)
    if isinstance(spec, dict):
        return any(_has_file_output(s) for s in spec.values())
    return False


def _transform_of(app: Any) -> FileServeTransform | None:
    blueprint = getattr(app, "blueprint", None)
    for transform in getattr(blueprint, "transforms", ()):
        if isinstance(transform, FileServeTransform):
            return transform
    return None


# -- Dash hooks: every Dash app created after this import gets the route -------------


@dash.hooks.route(name=f"{route.ROUTE_NAME}/<path:subpath>", methods=("GET", "HEAD"))
def _serve_file(subpath: str) -> Response:
    app = dash.get_app()  # the hook runs in the app's context: the right app of several
    transform = _transform_of(app)
    if transform is None:
        return route.plain(404, "Not found: this app has no FileServeTransform.")
    transform.bind(app)
    return transform.service.serve(subpath)


@dash.hooks.route(name=route.ROUTE_NAME, methods=("GET", "HEAD"))
def _no_file() -> Response:
    # Without this, Dash's catch-all would answer the bare prefix with the app's page.
    return route.plain(404, "Not found: no such file.")


@dash.hooks.route(name=f"{route.ROUTE_NAME}/", methods=("GET", "HEAD"))
def _no_file_slash() -> Response:
    return route.plain(404, "Not found: no such file.")


@dash.hooks.setup()
def _bind_before_first_request(app: dash.Dash) -> None:
    server = getattr(app, "server", None)
    if not isinstance(server, Flask):
        return

    # DashProxy builds its blueprint after the setup hooks ran, and applies the
    # transforms in its first request: bind them just before that.
    def bind() -> None:
        transform = _transform_of(app)
        if transform is not None and transform._app is None:
            transform.bind(app)

    server.before_request(bind)
