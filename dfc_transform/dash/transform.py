"""FileServeTransform and FileOutput: the Dash side.

The transform wraps every server callback of its app (see :mod:`.callbacks`): what the
callback returns at a ``FileOutput`` position is stored and replaced by its URL, every
other position is left untouched, and files given to ``set_props`` are refused with a
message. A ``FileOutput`` on a ``dcc.Download`` starts a download (see :mod:`.download`).

The file route is added to each Dash app at its creation through ``dash.hooks`` (a
Flask rule cannot be added after the first request, and DashProxy applies transforms
inside that request); at request time the route and the callbacks find their transform
through the app that serves the request (see :mod:`.apps`): a callback shared by several
apps stores and serves through each app's own transform.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Unpack

import dash
from dash_extensions.enrich import DashTransform
from flask import Flask, has_request_context, request
from flask import Response as FlaskResponse
from werkzeug.wrappers import Response

from .. import http
from ..exc import FileServeError, UnsupportedValueError
from ..http.adapters import flask as flask_adapter
from ..options import FileOptions, OptionArgs
from ..service import SHARED_BACKEND_ADVICE, FileService, Stats
from ..settings import SettingArgs
from ..store import CacheLike
from . import apps, inputs
from .callbacks import (
    MARK,
    Plan,
    check_set_props,
    concrete_ids,
    name_of,
    outputs_of,
    snapshot,
    wrap,
)
from .downloads import DOWNLOAD_PROPERTY, Downloads, companion_id, payload
from .output import FileOutput

__all__ = ["FileOutput", "FileServeTransform"]

logger = logging.getLogger(__name__)
_NO_UPDATE = type(dash.no_update)
_AS_DOWNLOAD = FileOptions(download=True)


class FileServeTransform(DashTransform):  # type: ignore[misc]
    """A dash-extensions transform that serves what callbacks return to ``FileOutput``.

    ``app = DashProxy(transforms=[FileServeTransform()])``; one transform per app.

    :param backend: a ``cachelib.BaseCache`` or ``flask_caching.Cache``; ``None``
        for the default ``FileSystemCache`` shared by all processes on this host.
    :param settings: those of :class:`~dfc_transform.FileService` (``timeout``,
        ``max_size``, ``max_total_size``, ``private``, ``chunk_size``, ``copy_paths``,
        ``namespace``, ``sendfile_header``, ``sendfile_prefix``, ``on_event``), passed on.
    """

    def __init__(self, backend: CacheLike | None = None, **settings: Unpack[SettingArgs]) -> None:
        super().__init__()
        #: The store and route this transform uses.
        self.service = FileService(backend, **settings)
        self._app: dash.Dash | None = None
        self._serving_pid: int | None = None
        self._downloads = Downloads()

    def sort_key(self) -> int:
        # Innermost, next to the user's function, before the serialising transforms (key 0):
        # we see values as the function returns them (a File is a dataclass that
        # DataclassTransform would turn into a dict), and they see URLs.
        return -1

    def register(self, value: Any, **options: Unpack[OptionArgs]) -> str:
        """Store ``value`` and return its URL; usable in any request of the app
        (a Flask route, a callback that uses ``set_props``). Options as for ``FileOutput``."""
        self._ensure_bound()
        return self.service.register(value, **options)

    def remove(self, url_or_token: str) -> bool:
        """Remove a file now (see :meth:`FileService.remove`)."""
        return self.service.remove(url_or_token)

    def purge_expired(self) -> int:
        """Remove every file whose time is over (see :meth:`FileService.purge_expired`)."""
        return self.service.purge_expired()

    def stats(self) -> Stats:
        """What the store holds and what happened (see :meth:`FileService.stats`)."""
        return self.service.stats()

    def bind(self, app: dash.Dash) -> None:
        """Attach this transform to its app (done for you at the app's first request).

        :raises FileServeError: if it already serves another app.
        """
        if self._app is app:
            return
        if self._app is not None:
            raise FileServeError(
                f"this FileServeTransform already serves the app at "
                f"{self._app.config.requests_pathname_prefix!r}, and cannot serve the app at "
                f"{app.config.requests_pathname_prefix!r} too: each app stores and serves through its "
                f"own; give each DashProxy its own FileServeTransform(...) (they may share one backend)"
            )
        self._app = app
        self._serving_pid = os.getpid()
        self.service.url_base = app.get_relative_path(f"/{http.ROUTE_NAME}/")
        self.service.adopt(app.config.name, app.config.requests_pathname_prefix)
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

    # -- set-up: callbacks and layout -------------------------------------------------

    def apply(self, callbacks: list[Any], clientside_callbacks: list[Any]) -> tuple[list[Any], list[Any]]:
        callbacks = self.apply_serverside(callbacks)
        return callbacks, clientside_callbacks + self._downloads.take_clientside_callbacks()

    def apply_serverside(self, callbacks: list[Any]) -> list[Any]:
        for callback in callbacks:
            if not callable(callback.f):
                continue
            if inputs.has_file_inputs(callback.inputs.structure) and not hasattr(callback.f, inputs.MARK):
                # FileInput/FileState: the function gets UploadedFile objects (see .inputs).
                callback.f = inputs.wrap_inputs(
                    callback.f, callback.inputs.structure, self._service_now, name_of(callback.f)
                )
            plan = getattr(callback.f, MARK, None)
            if plan is None:  # not yet wrapped by the transform of another app
                plan = self._plan(callback)
                callback.f = wrap(callback.f, plan, _after_callback)
            for output in callback.outputs:
                if isinstance(output, FileOutput):
                    output.handled = True
                    if output.file_options.private:
                        self.service.uses_private = True  # pages then give browsers a session
            if plan.companion is not None:
                self._downloads.add_companion(plan.companion)
                _serve_companions()
        return callbacks

    def _service_now(self) -> FileService:
        """The service of the app serving this call (a global callback serves several)."""
        return (_transform_of(apps.current_app()) or self).service

    def _plan(self, callback: Any) -> Plan:
        """Decide what the wrapper of ``callback`` does, and name its download companion."""
        name = name_of(callback.f)
        structure = callback.outputs.structure
        # dash-extensions registers a one-element list as a single output.
        single = isinstance(structure, list) and len(structure) == 1
        spec = snapshot(structure[0] if single else structure)
        files = [o for o in outputs_of(spec) if isinstance(o, FileOutput)]
        if not files:
            return Plan(name, None, owner=self)
        if self.service.per_process and callback.kwargs.get("background"):
            message = (
                f"callback {name} is a background callback: it runs in another process, where a "
                f"{self.service.store.backend_name} cannot hand its files to the web process; "
                f"{SHARED_BACKEND_ADVICE}"
            )
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        self._check_result_cache(callback, name)
        if not any(o.component_property == DOWNLOAD_PROPERTY for o in files):
            return Plan(name, spec, owner=self)
        # The companion gets its value by set_props, never as an output: see .downloads.
        companion = companion_id(name, list(callback.outputs), list(callback.inputs))
        return Plan(name, spec, companion, owner=self)

    def _check_result_cache(self, callback: Any, name: str) -> None:
        """Warn when a background manager caches results (URLs) longer than files live."""
        manager = callback.kwargs.get("manager") or callback.kwargs.get("background_callback_manager")
        if manager is None and self._app is not None:
            manager = getattr(self._app, "_background_manager", None)
        expire = getattr(manager, "expire", None)
        timeout = self.service.timeout
        if not callback.kwargs.get("background") or not expire or not timeout or expire <= timeout:
            return
        message = (
            f"callback {name} is a background callback whose manager caches results for {expire} s "
            f"(expire=), longer than files live ({timeout} s, the transform's timeout): a cached "
            "result would hand back a URL that answers 404; give the manager an expire no longer "
            "than the timeout, or the transform a longer timeout"
        )
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def layout(self, layout: Any, layout_is_function: bool) -> Any:
        # Served as it is: the download companions go beside it, by a layout hook (see .downloads).
        self._downloads.remember(layout)
        return layout

    # -- run time ------------------------------------------------------------------

    def _finish(self, plan: Plan, result: Any) -> Any:
        """What the wrapped function returned, as Dash must get it."""
        check_set_props(plan.name)
        if plan.spec is None:
            return result
        self._ensure_bound()
        if self.service.per_process and self._serving_pid not in (None, os.getpid()):
            raise FileServeError(
                f"this callback runs in process {os.getpid()} but the app serves files from process "
                f"{self._serving_pid}, and a {self.service.store.backend_name} is private to one "
                f"process; {SHARED_BACKEND_ADVICE}",
                where=f"callback {plan.name}",
            )
        files: list[dict[str, Any]] = []
        converted = self._convert(result, plan.spec, plan, files)
        if plan.companion is not None and files:
            dash.set_props(self._downloads.store_id(plan.companion), {"data": payload(files)})
        return converted

    def _convert(self, value: Any, spec: Any, plan: Plan, files: list[dict[str, Any]]) -> Any:
        """Replace files by URLs along the output structure ``spec``."""
        if value is None or isinstance(value, _NO_UPDATE):
            return value
        if isinstance(spec, FileOutput):
            if not spec.is_multi:
                return self._store(value, spec, plan, files, str(spec), None)
            if not isinstance(value, (list, tuple)):
                raise UnsupportedValueError(
                    f"an ALL output takes a list of files, one per matching component; "
                    f"got {type(value).__name__}",
                    where=f"callback {plan.name}, output {spec}",
                )
            ids = (
                concrete_ids(spec) if plan.companion and spec.component_property == DOWNLOAD_PROPERTY else []
            )
            return [
                self._store(v, spec, plan, files, f"{spec}[{i}]", ids[i] if i < len(ids) else None)
                for i, v in enumerate(value)
            ]
        if isinstance(spec, list) and isinstance(value, (list, tuple)) and len(value) == len(spec):
            return type(value)(self._convert(v, s, plan, files) for v, s in zip(value, spec, strict=True))
        if isinstance(spec, dict) and isinstance(value, dict):
            return {k: self._convert(v, spec[k], plan, files) if k in spec else v for k, v in value.items()}
        return value  # a shape Dash itself will reject, with its own message

    def _store(
        self, value: Any, output: FileOutput, plan: Plan, files: list[dict[str, Any]], label: str, ident: Any
    ) -> Any:
        if value is None or isinstance(value, _NO_UPDATE):
            return value
        where = f"callback {plan.name}, output {label}"
        options = output.file_options
        download: bool | None = False
        if plan.companion is not None and output.component_property == DOWNLOAD_PROPERTY:
            if ident is None:
                found = concrete_ids(output)
                ident = found[0] if found else output.component_id
            download = self._downloads.kind(ident, self._app)
        if download:
            options = _AS_DOWNLOAD.over(options)
        record = self.service.add(value, options, where=where)
        url = self.service.url_for(record)
        if download is False:
            return url
        files.append(
            {
                "id": ident,
                "property": output.component_property,
                "url": url,
                "filename": record.filename,
                "download": download,
            }
        )
        return dash.no_update


def _after_callback(plan: Plan, result: Any) -> Any:
    # The app serving this request, not the one whose transform wrapped the function:
    # a global callback is wrapped once and used by every app that includes it.
    transform = _transform_of(apps.current_app()) or plan.owner
    return transform._finish(plan, result)


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


_COMPANION_HOOK: list[bool] = []


def _serve_companions() -> None:
    """Put the download companions beside the layouts of the apps that have some: a layout
    hook, registered once, when the first is made (an app without a transform, or without
    downloads, is served its layout as it is)."""
    if _COMPANION_HOOK:
        return
    _COMPANION_HOOK.append(True)

    @dash.hooks.layout()
    def with_companions(layout: Any) -> Any:
        try:
            app = dash.get_app()  # get_layout runs in its app's context: the right app of several
        except Exception:
            return layout
        transform = _transform_of(app)
        return layout if transform is None else transform._downloads.serve(layout)


def _transform_of(app: Any) -> FileServeTransform | None:
    blueprint = getattr(app, "blueprint", None)
    for transform in getattr(blueprint, "transforms", ()):
        if isinstance(transform, FileServeTransform):
            return transform
    return None


# -- Dash hooks: every Dash app created after this import gets the route -------------


def _answer(subpath: str) -> Response:
    app = dash.get_app()  # the hook runs in the app's context: the right app of several
    transform = _transform_of(app)
    if transform is None:
        return flask_adapter.to_flask(
            http.plain(404, "Not found: this app has no FileServeTransform."), request.environ
        )
    transform.bind(app)
    service = transform.service
    base = service.url_base or request.script_root + f"/{http.ROUTE_NAME}/"
    answer = service.handle(flask_adapter.from_flask(request, subpath, base))
    return flask_adapter.to_flask(answer, request.environ)


@dash.hooks.route(name=f"{http.ROUTE_NAME}/<path:subpath>", methods=flask_adapter.METHODS)
def _serve(subpath: str) -> Response:
    return _answer(subpath)


@dash.hooks.route(name=http.ROUTE_NAME, methods=flask_adapter.METHODS)
def _serve_bare() -> Response:
    # Without this, Dash's catch-all would answer the bare prefix with the app's page.
    return _answer("")


@dash.hooks.route(name=f"{http.ROUTE_NAME}/", methods=flask_adapter.METHODS)
def _serve_slash() -> Response:
    return _answer("")


@dash.hooks.setup()
def _set_up(app: dash.Dash) -> None:
    apps.remember(app)
    server = getattr(app, "server", None)
    if not isinstance(server, Flask):
        return

    # DashProxy builds its blueprint after the setup hooks ran, and applies the
    # transforms in its first request: bind them just before that. This also refuses
    # a transform that another app has already bound.
    def bind() -> None:
        transform = _transform_of(app)
        if transform is not None and apps.serves(app):
            transform.bind(app)

    # After the request, the callbacks are all registered (Dash copies dash.callback's in
    # its first request; DashProxy registers its own then): check them once, and again
    # whenever more were added.
    checked = [-1]

    def check(response: FlaskResponse) -> FlaskResponse:
        count = len(getattr(app, "callback_map", {}))
        if count != checked[0] and apps.serves(app):
            apps.refuse_unhandled(app, _transform_of(app))
            checked[0] = count
        return response

    server.before_request(bind)
    server.after_request(check)

    def uses_private() -> bool:
        transform = _transform_of(app)
        return transform is not None and transform.service.uses_private

    flask_adapter.install_session_cookie(server, uses_private)
