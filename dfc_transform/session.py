"""Session-bound files: URLs that open only in the browser session that caused them.

The app gives each browser a random session id (128 bits) in an ``HttpOnly``
cookie. A private file's record keeps a hash of that id, never the id itself;
the route serves the file only to a request whose cookie hashes the same, and
answers everyone else as if the file did not exist. Nothing is kept per
process, so this works across workers and hosts that share the backend, and a
URL copied into a chat, a log or a browser history is useless elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, after_this_request, g, has_request_context, request
from werkzeug.wrappers import Request, Response

from .exc import FileServeError

__all__ = ["COOKIE", "current_owner", "install", "may_open"]

#: The cookie that carries the session id.
COOKIE = "dfc_session"
_LIFETIME = 400 * 24 * 3600  # the longest a browser keeps a cookie (RFC 6265bis)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()[:32]


def may_open(owner: str | None, req: Request) -> bool:
    """Tell whether ``req`` comes from the session a file with ``owner`` is bound to."""
    if owner is None:
        return True
    session_id = req.cookies.get(COOKIE)
    return session_id is not None and hmac.compare_digest(_digest(session_id), owner)


def current_owner() -> str:
    """The owner hash of the browser session behind this request or callback.

    In a request without the cookie a session id is made and the response sets it;
    in a background callback (another process, no request) it comes from the
    cookies Dash hands the job.
    """
    if has_request_context():
        session_id = request.cookies.get(COOKIE) or g.get("dfc_session_id")
        if not session_id:
            session_id = g.dfc_session_id = secrets.token_urlsafe(16)

            @after_this_request
            def remember(response: Response) -> Response:
                _set_cookie(response, session_id)
                return response

        return _digest(session_id)
    session_id = _callback_cookies().get(COOKIE)
    if not session_id:
        raise FileServeError(
            "private=True binds a file to the browser session that caused it, but this callback "
            f"runs outside a request and its browser sent no {COOKIE!r} cookie: load the app's page "
            "first (the app sets the cookie on it), or register the file without private=True"
        )
    return _digest(session_id)


def install(app: Flask, wanted: Callable[[], bool]) -> None:
    """Give browsers of ``app`` their session id on the page they load first, when ``wanted()``.

    Background callbacks need the cookie before their job starts: they cannot set one.
    ``wanted`` says whether private files are in use (the cookie is set for them only);
    several services or transforms on one app share one hook.
    """
    askers: list[Callable[[], bool]] = app.extensions.setdefault("dfc_transform.session", [])
    askers.append(wanted)
    if len(askers) > 1:
        return

    def set_cookie_if_missing(response: Response) -> Response:
        if (
            response.mimetype == "text/html"
            and COOKIE not in request.cookies
            and "dfc_session_id" not in g
            and any(ask() for ask in askers)
        ):
            _set_cookie(response, secrets.token_urlsafe(16))
        return response

    app.after_request(set_cookie_if_missing)


def _set_cookie(response: Response, session_id: str) -> None:
    secure = has_request_context() and request.is_secure
    response.set_cookie(
        COOKIE, session_id, max_age=_LIFETIME, httponly=True, samesite="Lax", secure=secure, path="/"
    )


def _callback_cookies() -> dict[str, Any]:
    try:
        from dash import callback_context

        cookies = callback_context.cookies
    except Exception:  # not in a Dash callback
        return {}
    return dict(cookies or {})
