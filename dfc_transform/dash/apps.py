"""Which Dash app, and so which transform, a request or a callback run belongs to.

Several Dash apps may live in one process (and even on one server, under different
prefixes), and a callback registered with ``dash_extensions.enrich.callback`` is shared by
all of them: the function is wrapped once. At run time, the transform to store through is
the one of the app serving the request, found here by server and URL prefix among the
apps a transform was attached to.
"""

from __future__ import annotations

import weakref
from typing import Any
from urllib.parse import urlsplit

import dash

from ..http.adapters import current

__all__ = ["attach", "current_app", "transform_of"]

# Every app a transform is attached to, and its transform.
_transforms: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def attach(app: dash.Dash, transform: Any) -> None:
    """Note that ``transform`` serves ``app``."""
    _transforms[app] = transform


def transform_of(app: Any) -> Any:
    """The transform attached to ``app``, or ``None``."""
    try:
        return _transforms.get(app) if app is not None else None
    except TypeError:  # not weakly referenceable: no app of ours
        return None


def current_app() -> dash.Dash | None:
    """The app the current request (or background job) is for; ``None`` if it cannot be told.

    ``dash.get_app()`` does not tell it inside a callback: Dash sets its app context for
    hooks and layouts but not around callbacks, and falls back to the last app created.
    """
    server, path = _request()
    if path is None:
        return None
    best: list[Any] = []
    best_length = -1
    for app in list(_transforms):
        if server is not None and getattr(app, "server", None) is not server:
            continue
        prefix = app.config.routes_pathname_prefix or "/"
        if path.startswith(prefix):
            if len(prefix) > best_length:
                best, best_length = [app], len(prefix)
            elif len(prefix) == best_length:
                best.append(app)
    return best[0] if len(best) == 1 else None


def _request() -> tuple[Any, str | None]:
    """The server serving now (when it can be told) and the path requested."""
    try:
        from flask import current_app as flask_app
        from flask import has_request_context, request

        if has_request_context():
            return flask_app._get_current_object(), request.path  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - Flask comes with Dash
        pass
    try:
        from quart import current_app as quart_app
        from quart import has_request_context as quart_request_context
        from quart import request as quart_request

        if quart_request_context():
            return quart_app._get_current_object(), quart_request.path  # type: ignore[attr-defined]
    except ImportError:  # Quart is an optional extra
        pass
    # FastAPI: Dash's request adapter (any app's reads the request being served now), and the
    # app from the request's scope (see SessionCookie), where our middleware is installed.
    try:
        backend = dash.get_app().backend
        if getattr(backend, "server_type", None) == "fastapi" and backend.has_request_context():
            return current.serving_app.get(), str(backend.request_adapter().path)
    except Exception:  # no app, or no request of Dash's
        pass
    # A WebSocket, a background job: the path Dash keeps in the callback context (on FastAPI
    # a whole URL).
    try:
        path = str(dash.callback_context.path or "")
    except Exception:  # not in a callback either
        return None, None
    return None, urlsplit(path).path if "://" in path else path.split("?", 1)[0]
