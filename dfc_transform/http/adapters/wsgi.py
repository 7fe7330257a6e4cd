"""A lean WSGI layer in front of a Flask app: the GETs of files answered before Flask.

A file's GET needs nothing of the framework: no session, no URL map, no hooks of ours. Flask's
per-request work (request context, session, routing, response finalizing) cost as much as the
rest of a small file's answer, so :class:`FileRoute` answers ``GET`` and ``HEAD`` under the file
route straight from the WSGI environ, and hands everything else to the app.

It steps aside whenever the app has request hooks of someone else's (``before_request`` and
``after_request`` functions not of Dash or this package: an authentication layer, security
headers): the request then goes through Flask, where they run, as before. The check is made at
each request, so hooks added after the transform count too.
"""

from __future__ import annotations

import http
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.http import parse_cookie

from ..messages import FileBody, Headers, Request, Response

__all__ = ["FileRoute", "framework_free", "from_environ", "to_wsgi", "whole_file"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Modules whose request hooks a file's GET may skip: Dash's own (its server set-up, its
#: router; DashProxy's set-up) and ours (the session cookie, which files never set).
_OWN_HOOKS = ("dash", "dash_extensions", "dfc_transform")


class FileRoute:
    """WSGI middleware: ``GET``/``HEAD`` of ``<prefix>/...`` answered by ``handle``.

    ``prefix`` is the route's path on the app (``/_dash-files``); ``route_base`` where URLs
    start as browsers see them (``None``: under the request's ``SCRIPT_NAME``); ``direct()``
    says whether the framework may be skipped now.
    """

    def __init__(
        self,
        app: WSGIApp,
        prefix: str,
        handle: Callable[[Request], Response],
        route_base: str | None,
        direct: Callable[[], bool],
    ) -> None:
        self.app = app
        self._prefix = "/" + prefix.strip("/") + "/"
        self._handle = handle
        self._route_base = route_base
        self._direct = direct

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if (
            path.startswith(self._prefix)
            and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            and self._direct()
        ):
            # PATH_INFO holds the raw bytes as latin-1 (PEP 3333); names are UTF-8.
            subpath = path[len(self._prefix) :].encode("latin-1").decode("utf-8", "replace")
            base = self._route_base
            if base is None:
                base = environ.get("SCRIPT_NAME", "").rstrip("/") + self._prefix
            response = self._handle(from_environ(environ, subpath, base))
            return to_wsgi(response, environ, start_response)
        return self.app(environ, start_response)


def from_environ(environ: dict[str, Any], subpath: str, route_base: str) -> Request:
    """The core's request for a ``GET`` or ``HEAD`` in a WSGI environ (no body)."""
    headers = Headers(
        (key[5:].replace("_", "-"), value) for key, value in environ.items() if key.startswith("HTTP_")
    )
    query: dict[str, str] = {}
    for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        query.setdefault(key, value)  # the first value of a name, as Flask's args.get
    return Request(
        method=environ["REQUEST_METHOD"],
        subpath=subpath,
        route_base=route_base,
        query=query,
        headers=headers,
        cookies=parse_cookie(environ) if "HTTP_COOKIE" in environ else {},
        secure=environ.get("wsgi.url_scheme") == "https",
        multiprocess=bool(environ.get("wsgi.multiprocess")),
    )


def to_wsgi(response: Response, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Send the core's ``response`` through ``start_response``; return the WSGI body."""
    headers = list(response.headers)
    if response.length is not None:
        headers.append(("Content-Length", str(response.length)))
    start_response(f"{response.status} {http.HTTPStatus(response.status).phrase}", headers)
    body = response.body
    if environ["REQUEST_METHOD"] == "HEAD":
        response.close()
        return []
    if isinstance(body, bytes):
        return [body]
    if isinstance(body, FileBody):
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and whole_file(body):
            # The server may send it with sendfile: no copy through Python.
            body.file.seek(0)
            return wrapper(body.file, body.block)
        return body.chunks()
    return body


def whole_file(body: FileBody) -> bool:
    """Whether ``body`` is its whole file (which a WSGI server may then send by itself)."""
    return body.start == 0 and body.stop == os.fstat(body.file.fileno()).st_size


def framework_free(app: Any) -> bool:
    """Whether no request hook of someone else's is on the Flask (or Quart) ``app``."""
    for hooks in (app.before_request_funcs, app.after_request_funcs):
        for func in hooks.get(None, ()):
            module = getattr(func, "__module__", None) or ""
            if module.split(".", 1)[0] not in _OWN_HOOKS:
                return False
    return True
