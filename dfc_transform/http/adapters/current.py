"""The browser session behind the code running now, on whatever server runs it.

A private file is bound to the session of the browser that caused it. Registering one
needs that browser's cookies, and a way to give it a session cookie when it has none;
where they come from depends on what runs the registration:

1. a request of Flask or Quart (a Dash callback on them, or a route of a plain app using
   ``FileService``): its request context;
2. a Dash callback on any other server (FastAPI), over HTTP: Dash's callback context has
   the cookies and a response adapter that sets cookies on the callback's answer; in a
   background job (another process) only the cookies Dash copied, and no answer to set
   one on; over a WebSocket (Quart, FastAPI) the cookies the socket was opened with
   (:data:`websocket_cookies`), and no answer either.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from ...exc import FileServeError
from .. import session

__all__ = ["current_owner", "script_root", "serving_app", "serving_multiprocess", "websocket_cookies"]

# A session id made during one request, kept until its answer goes: several private files
# of one callback must be bound to the same new session. Keyed by the object that stands
# for the answer (Dash's response adapter, Flask's or Quart's g).
_made: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

SetCookie = Callable[[str, str, dict[str, Any]], None]


def current_owner() -> str:
    """The owner hash of the browser session behind the code running now.

    In a request without the cookie a session id is made and the answer sets it; in a
    background callback the id comes from the cookies Dash hands the job.

    :raises FileServeError: outside any request, or in a background job whose browser
        sent no session cookie.
    """
    # The server's own request first: it knows whether the page came over HTTPS.
    found = _flask_request() or _quart_request() or _dash_callback()
    if found is None:
        raise FileServeError(
            "private=True binds a file to the browser session that caused it, but it was registered "
            "outside a request or callback: register private files in a callback or a route"
        )
    cookies, answer, set_cookie = found
    session_id = cookies.get(session.COOKIE) or (_made.get(answer) if answer is not None else None)
    if session_id:
        return session.digest(session_id)
    if answer is None or set_cookie is None:
        raise FileServeError(
            "private=True binds a file to the browser session that caused it, but this callback "
            f"runs outside a request and its browser sent no {session.COOKIE!r} cookie: load the app's "
            "page first (the app sets the cookie on it), or register the file without private=True"
        )
    session_id = _made[answer] = session.new_session_id()
    set_cookie(session.COOKIE, session_id, {"max_age": session.LIFETIME, "httponly": True, "samesite": "Lax"})
    return session.digest(session_id)


#: The cookies of the browser whose WebSocket the callback running now came over (Dash's
#: callback context has none there): set when the socket connects, inherited by its callbacks.
websocket_cookies: ContextVar[Mapping[str, str] | None] = ContextVar("dfc_websocket_cookies", default=None)
#: The ASGI app (a FastAPI/Starlette instance) serving the request now, as its scope says; set by
#: the Starlette adapter's middleware.
serving_app: ContextVar[Any] = ContextVar("dfc_serving_app", default=None)


def _dash_callback() -> tuple[Mapping[str, str], Any, SetCookie | None] | None:
    try:
        from dash import callback_context

        cookies = dict(callback_context.cookies or {})
    except Exception:  # not in a Dash callback
        return None
    socket_cookies = websocket_cookies.get()
    if socket_cookies is not None:
        # Over a WebSocket: the cookies are the socket's, and no answer can set one (the page
        # sets the session cookie when the app makes private files).
        return {**socket_cookies, **cookies}, None, None
    try:
        answer = callback_context.response
    except Exception:  # a background job: no answer to set a cookie on
        return cookies, None, None

    def set_cookie(name: str, value: str, options: dict[str, Any]) -> None:
        answer.set_cookie(name, value, path="/", **options)

    return cookies, answer, set_cookie


def _flask_request() -> tuple[Mapping[str, str], Any, SetCookie | None] | None:
    try:
        from flask import after_this_request, g, has_request_context, request
    except ImportError:  # pragma: no cover - Flask comes with Dash
        return None
    if not has_request_context():
        return None
    secure = request.is_secure

    def set_cookie(name: str, value: str, options: dict[str, Any]) -> None:
        @after_this_request
        def add(response: Any) -> Any:
            response.set_cookie(name, value, path="/", secure=secure, **options)
            return response

    return dict(request.cookies), g._get_current_object(), set_cookie


def _quart_request() -> tuple[Mapping[str, str], Any, SetCookie | None] | None:
    try:
        from quart import after_this_request, g, has_request_context, request
    except ImportError:  # Quart is an optional extra
        return None
    if not has_request_context():
        return None

    def set_cookie(name: str, value: str, options: dict[str, Any]) -> None:
        @after_this_request
        async def add(response: Any) -> Any:
            response.set_cookie(name, value, path="/", **options)
            return response

    return dict(request.cookies), g._get_current_object(), set_cookie


def script_root() -> str:
    """The path the app is mounted at (WSGI ``SCRIPT_NAME``, ASGI ``root_path``) in the request
    being served now; ``""`` outside requests."""
    try:
        from flask import has_request_context, request

        if has_request_context():
            return str(request.script_root)
    except ImportError:  # pragma: no cover - Flask comes with Dash
        pass
    try:
        from quart import has_request_context as quart_has_request
        from quart import request as quart_request

        if quart_has_request():
            return str(quart_request.root_path)
    except ImportError:  # Quart is an optional extra
        pass
    return ""


def serving_multiprocess() -> bool:
    """Whether the request being served now comes through a server with several worker
    processes (WSGI ``wsgi.multiprocess``); ``False`` when it cannot be told."""
    try:
        from flask import has_request_context, request

        return has_request_context() and bool(request.environ.get("wsgi.multiprocess"))
    except ImportError:  # pragma: no cover - Flask comes with Dash
        return False
