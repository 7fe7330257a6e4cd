"""Flask (WSGI): the HTTP core's requests and responses as Flask's.

A whole file on disk goes out through the WSGI server's ``wsgi.file_wrapper`` (gunicorn
sends it with ``sendfile``: no copy through Python); chunk iterators go out as they are
read, and the server closes them when the client goes away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from flask import Flask, request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request as WerkzeugRequest
from werkzeug.wrappers import Response as WerkzeugResponse
from werkzeug.wsgi import wrap_file

from .. import session
from ..messages import FileBody, Headers, Request, Response
from .wsgi import FileRoute, framework_free, whole_file

__all__ = ["add_routes", "from_flask", "install_session_cookie", "to_flask"]

#: The methods the file route and the upload protocol answer.
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")


def from_flask(req: WerkzeugRequest, subpath: str, route_base: str) -> Request:
    """The core's request for the Flask/Werkzeug request ``req``."""
    environ = req.environ
    has_body = req.method in ("POST", "PUT")
    return Request(
        method=req.method,
        subpath=subpath,
        route_base=route_base,
        query={k: v for k, v in req.args.items()},
        headers=Headers(req.headers.items()),
        cookies=dict(req.cookies),
        body=_Body(req.stream) if has_body else None,
        secure=req.is_secure,
        multiprocess=bool(environ.get("wsgi.multiprocess")),
    )


def to_flask(response: Response, environ: dict[str, Any]) -> WerkzeugResponse:
    """A Werkzeug response that sends the core's ``response``."""
    body = response.body
    if isinstance(body, FileBody):
        if whole_file(body):
            # wrap_file lets the WSGI server use sendfile: no copy through Python.
            body.file.seek(0)
            iterable: Any = wrap_file(environ, body.file, buffer_size=body.block)
        else:
            iterable = body.chunks()
    else:
        iterable = body
    answer = WerkzeugResponse(iterable, status=response.status, direct_passthrough=True)
    answer.headers.clear()
    for name, value in response.headers:
        answer.headers.add(name, value)
    if response.length is not None:
        answer.content_length = response.length
    return answer


def add_routes(
    app: Flask,
    prefix: str,
    handle: Callable[[Request], Response],
    endpoint: str,
    route_base: str | None = None,
) -> None:
    """Route ``<prefix>`` and everything under it to ``handle`` on a Flask app.

    ``prefix`` is the route's path on the app (``/_dash-files``). ``route_base``: where URLs
    start as browsers see them (a Dash app's prefix); ``None``: the route's path under the
    request's ``SCRIPT_NAME``, so that an app mounted under a prefix works.
    """
    prefix = "/" + prefix.strip("/")

    def view(subpath: str = "") -> WerkzeugResponse:
        base = route_base if route_base is not None else request.script_root + prefix + "/"
        return to_flask(handle(from_flask(request, subpath, base)), request.environ)

    methods = list(METHODS)
    app.add_url_rule(f"{prefix}/<path:subpath>", endpoint=endpoint, view_func=view, methods=methods)
    for rule in (prefix, prefix + "/"):
        app.add_url_rule(rule, endpoint=f"{endpoint}{rule[-1]}", view_func=view, methods=methods)
    # The GETs of files skip Flask's per-request work while no one else's hooks want to run.
    app.wsgi_app = FileRoute(app.wsgi_app, prefix, handle, route_base, lambda: framework_free(app))  # type: ignore[method-assign]


class _Body:
    """The request's stream, on which a client that went away reads as the end."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except ClientDisconnected:
            return b""


def install_session_cookie(app: Flask, wanted: Callable[[], bool]) -> None:
    """Give browsers of ``app`` their session id on the page they load first, when ``wanted()``.

    Background callbacks need the cookie before their job starts: they cannot set one.
    ``wanted`` says whether private files are in use (the cookie is set for them only);
    several services or transforms on one app share one hook.
    """
    askers: list[Callable[[], bool]] = app.extensions.setdefault("dfc_transform.session", [])
    askers.append(wanted)
    if len(askers) > 1:
        return

    def set_cookie_if_missing(response: WerkzeugResponse) -> WerkzeugResponse:
        if (
            response.mimetype == "text/html"
            and session.COOKIE not in request.cookies
            and not any(c.startswith(session.COOKIE + "=") for c in response.headers.getlist("Set-Cookie"))
            and any(ask() for ask in askers)
        ):
            response.headers.add(*session.cookie_header(session.new_session_id(), secure=request.is_secure))
        return response

    app.after_request(set_cookie_if_missing)
