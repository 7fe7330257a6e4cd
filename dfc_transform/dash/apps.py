"""Which Dash app a request or a callback run belongs to, and what its callbacks must not do.

Several Dash apps may live in one process (and even on one Flask server, under different
prefixes), and a callback registered with ``dash_extensions.enrich.callback`` is shared by
all of them: the function is wrapped once. At run time, the transform to store through is
the one of the app serving the request, found here by server and URL prefix.
"""

from __future__ import annotations

import weakref
from typing import Any

import dash
from dash_extensions.enrich import DashProxy
from flask import current_app as current_flask_app
from flask import has_request_context, request

from ..exc import FileServeError
from .callbacks import name_of
from .output import FileOutput

__all__ = ["current_app", "refuse_unhandled", "remember", "serves"]

# Every Dash app made since dfc_transform was imported (a dash.hooks.setup hook adds them).
_apps: weakref.WeakSet[Any] = weakref.WeakSet()


def remember(app: dash.Dash) -> None:
    """Note ``app`` as one :func:`current_app` may answer."""
    _apps.add(app)


def current_app() -> dash.Dash | None:
    """The app the current request (or background job) is for; ``None`` if it cannot be told.

    ``dash.get_app()`` does not tell it inside a callback: Dash sets its app context for
    hooks and layouts but not around callbacks, and falls back to the last app created.
    """
    server: Any = None
    if has_request_context():
        server = current_flask_app._get_current_object()  # type: ignore[attr-defined]
        path = request.path
    else:  # a background job: the context Dash copied from the request has its path
        try:
            path = str(dash.callback_context.path or "")
        except Exception:  # not in a callback either
            return None
    path = path.split("?", 1)[0]
    best: list[Any] = []
    best_length = -1
    for app in list(_apps):
        if server is not None and getattr(app, "server", None) is not server:
            continue
        prefix = app.config.routes_pathname_prefix or "/"
        if path.startswith(prefix):
            if len(prefix) > best_length:
                best, best_length = [app], len(prefix)
            elif len(prefix) == best_length:
                best.append(app)
    return best[0] if len(best) == 1 else None


def serves(app: dash.Dash) -> bool:
    """Whether the current request is for ``app`` (``True`` outside requests)."""
    return not has_request_context() or current_app() in (app, None)


def refuse_unhandled(app: dash.Dash, transform: Any) -> None:
    """Refuse ``FileOutput``s in callbacks of ``app`` that its transform never saw.

    ``transform`` is the app's FileServeTransform, or ``None``. Dash would send what those
    callbacks return as JSON, and fail with "not JSON serializable".

    :raises FileServeError: naming every such callback and output, and what to do instead.
    """
    found = []
    for entry in list(getattr(app, "callback_map", {}).values()):
        outputs = entry.get("output")
        outputs = outputs if isinstance(outputs, list) else [outputs]
        files = [o for o in outputs if isinstance(o, FileOutput) and (transform is None or not o.handled)]
        if files:
            found.append(f"callback {name_of(entry.get('callback'))} (output {', '.join(map(str, files))})")
    if not found:
        return
    if not isinstance(app, DashProxy):
        advice = (
            "this app is a dash.Dash, which sends what callbacks return as JSON: make it a "
            "dash_extensions.enrich.DashProxy(transforms=[FileServeTransform()])"
        )
    elif transform is None:
        advice = (
            "this DashProxy has no FileServeTransform: add one, DashProxy(transforms=[FileServeTransform()])"
        )
    else:
        advice = (
            "it was registered with Dash directly (dash.callback, or app.callback after the app's first "
            "request), so the FileServeTransform never saw it: register it before the first request with "
            "@app.callback or dash_extensions.enrich.callback"
        )
    raise FileServeError(f"{'; '.join(found)} returns files to FileOutput, but {advice}")
