"""Session-bound files: URLs that open only in the browser session that caused them.

The app gives each browser a random session id (128 bits) in an ``HttpOnly`` cookie.
A private file's record keeps a hash of that id, never the id itself; the route serves
the file only to a request whose cookie hashes the same, and answers everyone else as
if the file did not exist. Nothing is kept per process, so this works across workers
and hosts that share the backend, and a URL copied into a chat, a log or a browser
history is useless elsewhere.

This module decides from cookies and makes cookies; finding the cookies of the request
being served now, on whatever server, is the adapters' (:mod:`.adapters.current`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from werkzeug.http import dump_cookie

__all__ = ["COOKIE", "cookie_header", "digest", "may_open", "new_session_id", "owner_for"]

#: The cookie that carries the session id.
COOKIE = "dfc_session"
#: The longest a browser keeps a cookie (RFC 6265bis).
LIFETIME = 400 * 24 * 3600


def digest(session_id: str) -> str:
    """What a private file's record keeps of the session id."""
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()[:32]


def may_open(owner: str | None, cookies: Mapping[str, str]) -> bool:
    """Tell whether a request with ``cookies`` comes from the session a file with ``owner`` is bound to."""
    if owner is None:
        return True
    session_id = cookies.get(COOKIE)
    return session_id is not None and hmac.compare_digest(digest(session_id), owner)


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


def owner_for(cookies: Mapping[str, str]) -> tuple[str, str | None]:
    """The owner hash of the session in ``cookies``, and a new session id when there is none
    (the answer must then set it with :func:`cookie_header`)."""
    session_id = cookies.get(COOKIE)
    if session_id:
        return digest(session_id), None
    session_id = new_session_id()
    return digest(session_id), session_id


def cookie_header(session_id: str, *, secure: bool) -> tuple[str, str]:
    """The ``Set-Cookie`` header that gives a browser ``session_id``."""
    value = dump_cookie(
        COOKIE, session_id, max_age=LIFETIME, httponly=True, samesite="Lax", secure=secure, path="/"
    )
    return "Set-Cookie", value
