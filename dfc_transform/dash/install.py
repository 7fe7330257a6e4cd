"""Attaching a transform to one Dash app, on whichever server it runs (Flask, Quart, FastAPI).

Nothing is registered on an app that has no transform: importing the package changes no
app. What an app with one gets, when the transform is attached to it (at the app's
construction for a ``DashProxy``, at ``init_app`` for a plain ``dash.Dash``):

- the file route ``<routes_pathname_prefix>_dash-files/...`` (files and the upload
  protocol), through the adapter of its server;
- the session cookie on its pages, while it makes private files;
- the script that lets ``dcc.Download`` save a URL (see :mod:`.downloads`);
- on a server with WebSocket callbacks, the socket's cookies for its callbacks (a hook
  registered once, that does nothing for other apps' sockets).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from types import FrameType
from typing import Any

import dash

from .. import http
from ..exc import FileServeError
from ..http.adapters import current
from ..service import FileService
from . import downloads

__all__ = ["SERVERS", "app_under_construction", "install"]

logger = logging.getLogger(__name__)

#: The servers Dash runs on that the file route speaks.
SERVERS = ("flask", "quart", "fastapi")


def install(app: dash.Dash, service: FileService, uses_private: Callable[[], bool]) -> None:
    """Give ``app`` the file route, the session cookie, and the download script.

    :raises FileServeError: on a server the route does not speak.
    """
    kind = server_type(app)
    prefix = app.config.routes_pathname_prefix + http.ROUTE_NAME
    base = service.url_base
    if kind == "flask":
        from ..http.adapters import flask as adapter

        adapter.add_routes(app.server, prefix, service.handle, f"dfc_files{prefix}", base)
        adapter.install_session_cookie(app.server, uses_private)
    elif kind == "quart":
        from ..http.adapters import quart as quart_adapter

        quart_adapter.add_routes(app.server, prefix, service.handle, f"dfc_files{prefix}", base)
        quart_adapter.install_session_cookie(app.server, uses_private)
    else:
        from ..http.adapters import starlette as starlette_adapter

        starlette_adapter.add_routes(app.server, prefix, service.handle, base)
        try:
            app.server.add_middleware(starlette_adapter.SessionCookie, wanted=uses_private)
        except RuntimeError as err:  # started already: private files then need the cookie set by hand
            logger.warning("no session cookie on this app's pages: %s", err)
    app.scripts.append_script(downloads.SCRIPT)
    if getattr(app.backend, "websocket_capability", False):
        _listen_to_sockets()


def server_type(app: dash.Dash) -> str:
    """``"flask"``, ``"quart"`` or ``"fastapi"``: the server ``app`` runs on.

    :raises FileServeError: another server, which the file route does not speak.
    """
    kind = getattr(getattr(app, "backend", None), "server_type", "flask")
    if kind not in SERVERS:
        raise FileServeError(
            f"this Dash app runs on a {kind!r} server; dfc_transform serves files on Flask, Quart and "
            "FastAPI (Dash(backend='flask' | 'quart' | 'fastapi'))"
        )
    return str(kind)


_LISTENING: list[bool] = []


def _listen_to_sockets() -> None:
    """Keep the cookies of each WebSocket for the callbacks that come over it (a callback
    context has none there, and private files need the browser's session)."""
    if _LISTENING:
        return
    _LISTENING.append(True)

    @dash.hooks.websocket_connect()
    def remember_cookies(websocket: Any) -> bool:
        cookies = getattr(websocket, "cookies", None)
        current.websocket_cookies.set(dict(cookies or {}))
        return True  # never refuses a socket: this hook only listens


def app_under_construction() -> dash.Dash | None:
    """The ``DashProxy`` whose ``__init__`` is running further up this thread's stack, if any.

    A transform is built before the app it is given to, and DashProxy learns its transforms
    only after ``dash.Dash.__init__`` has set the app up; yet a Flask app takes no new route
    after its first request, when DashProxy would first show them. DashProxy asks each
    transform for its dependent transforms right after ``dash.Dash.__init__``: the
    transform looks up the stack for the app then, and attaches itself there.
    """
    from dash_extensions.enrich import DashProxy

    code = DashProxy.__init__.__code__
    here = inspect.currentframe()
    frame: FrameType | None = here.f_back if here is not None else None
    for _ in range(12):
        if frame is None:
            return None
        if frame.f_code is code:
            app = frame.f_locals.get("self")
            return app if isinstance(app, DashProxy) else None
        frame = frame.f_back
    return None
