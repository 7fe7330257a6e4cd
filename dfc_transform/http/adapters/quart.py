"""Quart (ASGI): the HTTP core's requests and responses as Quart's.

The core runs in a worker thread (see :mod:`.asgi`); the body of an upload's part is read
from Quart's request body as it arrives, and an answer's body is sent a chunk at a time.
Quart cuts responses after ``RESPONSE_TIMEOUT`` (60 s): a file's is not cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from quart import Quart, request
from quart import Response as QuartResponse

from .. import session
from ..messages import Headers, Request, Response
from .asgi import BlockingBody, answer, chunks

__all__ = ["add_routes", "from_quart", "install_session_cookie", "to_quart"]

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")


def from_quart(req: Any, subpath: str, route_base: str) -> Request:
    """The core's request for the Quart request ``req`` (its body read as it arrives)."""
    has_body = req.method in ("POST", "PUT")
    return Request(
        method=req.method,
        subpath=subpath,
        route_base=route_base,
        query={k: v for k, v in req.args.items()},
        headers=Headers(req.headers.items()),
        cookies=dict(req.cookies),
        body=BlockingBody(req.body.__aiter__(), asyncio.get_running_loop()) if has_body else None,
        secure=req.scheme in ("https", "wss"),
    )


def to_quart(response: Response) -> QuartResponse:
    """A Quart response that sends the core's ``response`` a chunk at a time."""
    answer_ = QuartResponse(chunks(response), status=response.status)
    answer_.headers.clear()
    for name, value in response.headers:
        answer_.headers.add(name, value)
    if response.length is not None:
        answer_.headers["Content-Length"] = str(response.length)
    answer_.timeout = None  # a large file to a slow client takes as long as it takes
    return answer_


def add_routes(
    app: Quart,
    prefix: str,
    handle: Callable[[Request], Response],
    endpoint: str,
    route_base: str | None = None,
) -> None:
    """Route ``<prefix>`` and everything under it to ``handle`` on a Quart app.

    ``route_base``: where URLs start as browsers see them (a Dash app's prefix); ``None``: the
    route's path under the request's ``root_path``.
    """
    prefix = "/" + prefix.strip("/")

    async def view(subpath: str = "") -> QuartResponse:
        base = route_base if route_base is not None else request.root_path + prefix + "/"
        return to_quart(await answer(handle, from_quart(request, subpath, base)))

    methods = list(METHODS)
    app.add_url_rule(f"{prefix}/<path:subpath>", endpoint=endpoint, view_func=view, methods=methods)
    for rule in (prefix, prefix + "/"):
        app.add_url_rule(rule, endpoint=f"{endpoint}{rule[-1]}", view_func=view, methods=methods)


def install_session_cookie(app: Quart, wanted: Callable[[], bool]) -> None:
    """Give browsers of ``app`` their session id on the page they load first, when ``wanted()``
    (see :func:`.flask.install_session_cookie`)."""

    async def set_cookie_if_missing(response: Any) -> Any:
        if (
            response.mimetype == "text/html"
            and session.COOKIE not in request.cookies
            and "Set-Cookie" not in response.headers
            and wanted()
        ):
            response.headers.add(
                *session.cookie_header(session.new_session_id(), secure=request.scheme == "https")
            )
        return response

    app.after_request(set_cookie_if_missing)
