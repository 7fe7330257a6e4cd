"""FileServeTransform: the Dash side, for a ``DashProxy`` or a plain ``dash.Dash`` on any server.

The transform wraps the server callbacks of its app (see :mod:`.callbacks`): what a callback
returns at a ``FileOutput`` position is stored and replaced by its URL (see :mod:`.results`),
every other position is left untouched, and files given to ``set_props`` are refused with a
message. A ``FileOutput`` on a ``dcc.Download`` starts a download (see :mod:`.downloads`).

It is attached to its app (see :mod:`.install`) when the app is built: a ``DashProxy`` asks
its transforms for their dependent transforms right after setting itself up, and the
transform attaches itself to it then (a Flask app takes no new route after its first
request, when DashProxy applies its transforms); a plain ``dash.Dash`` is given its
transform with :meth:`FileServeTransform.init_app`, and registers its file callbacks with
:meth:`FileServeTransform.callback`. At run time the callbacks find their transform through
the app that serves the request (see :mod:`.apps`): a callback shared by several apps
stores through each app's own.
"""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Unpack

import dash
from dash_extensions.enrich import CallbackBlueprint, DashProxy, DashTransform

from .. import http
from ..exc import FileServeError
from ..options import OptionArgs
from ..service import SHARED_BACKEND_ADVICE, FileService, Stats
from ..settings import SettingArgs
from ..store import CacheLike, FileInfo
from . import apps, inputs, install
from .callbacks import MARK, Plan, check_set_props, name_of, outputs_of, snapshot, wrap
from .output import FileOutput
from .results import to_urls

__all__ = ["FileServeTransform"]

logger = logging.getLogger(__name__)


class FileServeTransform(DashTransform):  # type: ignore[misc]
    """Serves what callbacks return to ``FileOutput``; one transform per app.

    With dash-extensions: ``app = DashProxy(transforms=[FileServeTransform()])``, then
    ``@app.callback(FileOutput(...), ...)`` as usual. With a plain ``dash.Dash`` (on Flask,
    Quart or FastAPI)::

        app = Dash(__name__)
        files = FileServeTransform()
        files.init_app(app)

        @files.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
        def plot(n): ...

    :param backend: a ``cachelib.BaseCache`` or ``flask_caching.Cache``; ``None``
        for the default ``FileSystemCache`` shared by all processes on this host.
    :param settings: those of :class:`~dfc_transform.FileService` (``timeout``,
        ``max_size``, ``max_total_size``, ``private``, ``chunk_size``, ``copy_paths``,
        ``namespace``, ``sendfile_header``, ``sendfile_prefix``, ``on_event``, the upload
        limits), passed on.
    """

    def __init__(self, backend: CacheLike | None = None, **settings: Unpack[SettingArgs]) -> None:
        super().__init__()
        #: The store and route this transform uses.
        self.service = FileService(backend, **settings)
        # A weak reference: apps map to their transform weakly (see .apps), and a transform
        # holding its app would keep both alive for ever.
        self._app_ref: weakref.ref[dash.Dash] | None = None
        self._serving_pid: int | None = None

    def sort_key(self) -> int:
        # Innermost, next to the user's function, before the serialising transforms (key 0):
        # we see values as the function returns them (a File is a dataclass that
        # DataclassTransform would turn into a dict), and they see URLs.
        return -1

    # -- the app ---------------------------------------------------------------------

    @property
    def _app(self) -> dash.Dash | None:
        return self._app_ref() if self._app_ref is not None else None

    def init_app(self, app: dash.Dash) -> None:
        """Attach this transform to ``app``: its file route, its pages' scripts and cookie.

        Needed for a plain ``dash.Dash`` (then register file callbacks with :meth:`callback`)
        and for a ``DashProxy`` built with ``blueprint=``; a ``DashProxy`` given the transform
        in ``transforms=`` is attached as it is built.

        :raises FileServeError: if it already serves another app, or the app runs on a server
            the file route does not speak.
        """
        if self._app is app:
            return
        if self._app is not None:
            raise FileServeError(
                f"this FileServeTransform already serves the app at "
                f"{self._app.config.requests_pathname_prefix!r}, and cannot serve the app at "
                f"{app.config.requests_pathname_prefix!r} too: each app stores and serves through its "
                f"own; give each app its own FileServeTransform(...) (they may share one backend)"
            )
        install.server_type(app)  # refuses a server the route does not speak, before anything changes
        self._app_ref = weakref.ref(app)
        self._serving_pid = os.getpid()
        self.service.url_base = app.get_relative_path(f"/{http.ROUTE_NAME}/")
        self.service.adopt(app.config.name, app.config.requests_pathname_prefix)
        apps.attach(app, self)
        install.install(app, self.service, lambda: self.service.uses_private)

    def bind(self, app: dash.Dash) -> None:
        """The same as :meth:`init_app`."""
        self.init_app(app)

    def get_dependent_transforms(self) -> list[Any]:
        # DashProxy asks this right after dash.Dash.__init__ set it up: attach to it now.
        app = install.app_under_construction()
        if app is not None:
            self.init_app(app)
        return []

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        """Register a callback of a plain ``dash.Dash`` whose outputs may be ``FileOutput``s
        (and inputs ``FileInput``s): as ``app.callback``, with every option of it
        (``background``, ``running``, ``progress``, pattern matching, ``prevent_initial_call``...).
        Call :meth:`init_app` first."""
        app = self._app
        if app is None:
            raise FileServeError(
                "this FileServeTransform serves no app yet: call files.init_app(app) before @files.callback"
            )
        if isinstance(app, DashProxy):
            return app.callback(*args, **kwargs)

        def register(func: Callable[..., Any]) -> Any:
            blueprint = CallbackBlueprint(*args, **kwargs)
            blueprint.f = func
            [prepared] = self.apply_serverside([blueprint])
            return app.callback(*args, **kwargs)(prepared.f)

        return register

    # -- files -----------------------------------------------------------------------

    def register(self, value: Any, **options: Unpack[OptionArgs]) -> str:
        """Store ``value`` and return its URL; usable in any request of the app
        (a route, a callback that uses ``set_props``). Options as for ``FileOutput``."""
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

    def files(self) -> list[FileInfo]:
        """Every file of this app's store, oldest first (see :meth:`FileService.files`)."""
        return self.service.files()

    # -- callbacks --------------------------------------------------------------------

    def apply_serverside(self, callbacks: list[Any]) -> list[Any]:
        if self._app is not None:
            _warn_on_unshared_secret(self._app)
        for callback in callbacks:
            if not callable(callback.f):
                continue
            if inputs.has_file_inputs(callback.inputs.structure) and not hasattr(callback.f, inputs.MARK):
                # FileInput/FileState: the function gets UploadedFile objects (see .inputs).
                callback.f = inputs.wrap_inputs(
                    callback.f, callback.inputs.structure, self._service_now, name_of(callback.f)
                )
                # Uploads are private by default: the page must give the browser its session
                # before the first callback (a WebSocket callback sees no cookie set later).
                self.service.uses_private = True
            if getattr(callback.f, MARK, None) is None:  # not yet wrapped by the transform of another app
                callback.f = wrap(callback.f, self._plan(callback), _after_callback)
            for output in callback.outputs:
                if isinstance(output, FileOutput):
                    output.handled = True
                    if output.file_options.private:
                        self.service.uses_private = True  # pages then give browsers a session
        return callbacks

    def _service_now(self) -> FileService:
        """The service of the app serving this call (a global callback serves several)."""
        return (apps.transform_of(apps.current_app()) or self).service

    def _plan(self, callback: Any) -> Plan:
        """Decide what the wrapper of ``callback`` does."""
        name = name_of(callback.f)
        structure = callback.outputs.structure
        # dash-extensions registers a one-element list as a single output.
        single = isinstance(structure, list) and len(structure) == 1
        spec = snapshot(structure[0] if single else structure)
        if not any(isinstance(o, FileOutput) for o in outputs_of(spec)):
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
        return Plan(name, spec, owner=self, background=bool(callback.kwargs.get("background")))

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

    def finish(self, plan: Plan, result: Any) -> Any:
        """What the wrapped function returned, as Dash must get it."""
        check_set_props(plan.name)
        if plan.spec is None:
            return result
        if self._app is None:
            raise FileServeError(
                "this FileServeTransform was not attached to its app as the app was built (a DashProxy "
                "made with blueprint=, or a subclass that builds its blueprint otherwise): call "
                "transform.init_app(app) right after making the app",
                where=f"callback {plan.name}",
            )
        if self.service.per_process and self._serving_pid not in (None, os.getpid()):
            raise FileServeError(
                f"this callback runs in process {os.getpid()} but the app serves files from process "
                f"{self._serving_pid}, and a {self.service.store.backend_name} is private to one "
                f"process; {SHARED_BACKEND_ADVICE}",
                where=f"callback {plan.name}",
            )
        return to_urls(self.service, plan, result)


def _after_callback(plan: Plan, result: Any) -> Any:
    # The app serving this request, not the one whose transform wrapped the function:
    # a global callback is wrapped once and used by every app that includes it.
    transform = apps.transform_of(apps.current_app()) or plan.owner
    return transform.finish(plan, result)


def _warn_on_unshared_secret(app: dash.Dash) -> None:
    """Background jobs under several workers need one secret_key for all of them.

    Dash signs the job handles it gives the browser with the server's ``secret_key``
    and DashProxy makes up a random one per process when none is set: a poll that
    reaches another worker is refused and the page waits forever, file or not.
    """
    from flask import has_request_context, request

    multiprocess = has_request_context() and request.environ.get("wsgi.multiprocess")
    secret = getattr(app.server, "secret_key", None)
    if multiprocess and getattr(app, "_background_manager", None) and not secret:
        message = (
            "this app has background callbacks and runs in several worker processes, but no "
            "secret_key: set app.server.secret_key to the same value in every worker (from an "
            "environment variable), or polls that reach another worker never finish"
        )
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
