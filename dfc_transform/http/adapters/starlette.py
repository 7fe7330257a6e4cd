"""Starlette (FastAPI): the HTTP core's requests and responses as Starlette's.

The routes are plain Starlette routes put first in the app's router (before any catch-all,
such as the one Dash adds on FastAPI), with no FastAPI dependency injection: nothing of
ours is ever read as a response model. The core runs in a worker thread (see :mod:`.asgi`),
and answers stream a chunk at a time; Starlette stops the stream when the client goes away.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .. import session
from ..messages import Headers, Readable, Request, Response
from . import current
from .asgi import BlockingBody, answer, chunks

__all__ = ["SessionCookie", "add_routes", "from_starlette", "to_starlette"]

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE"]


def from_starlette(req: StarletteRequest, subpath: str, route_base: str) -> Request:
    """The core's request for the Starlette request ``req`` (its body read as it arrives)."""
    has_body = req.method in ("POST", "PUT")
    body: Readable | None = None
    if has_body:
        body = BlockingBody(req.stream().__aiter__(), asyncio.get_running_loop())
        if req.headers.get("content-type", "").startswith("application/json") and hasattr(
            req.state, "json_body"
        ):
            # Dash's FastAPI middleware read this body already, to parse its JSON, and left what
            # it parsed in the request's state: the stream is empty, and reading it would wait
            # for ever. Its JSON is the body (None: it was not JSON).
            parsed = req.state.json_body
            body = io.BytesIO(b"" if parsed is None else json.dumps(parsed).encode())
    return Request(
        method=req.method,
        subpath=subpath,
        route_base=route_base,
        query={k: v for k, v in req.query_params.items()},
        headers=Headers(req.headers.items()),
        cookies=dict(req.cookies),
        body=body,
        secure=req.url.scheme in ("https", "wss"),
    )


def to_starlette(response: Response) -> StarletteResponse:
    """A Starlette response that sends the core's ``response`` a chunk at a time."""
    answer_ = StreamingResponse(chunks(response), status_code=response.status)
    answer_.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if response.length is not None:
        answer_.raw_headers.append((b"content-length", str(response.length).encode()))
    return answer_


def add_routes(
    app: Any, prefix: str, handle: Callable[[Request], Response], route_base: str | None = None
) -> None:
    """Route ``<prefix>`` and everything under it to ``handle``, first in a Starlette (or
    FastAPI) app's router.

    ``route_base``: where URLs start as browsers see them (a Dash app's prefix); ``None``: the
    route's path under the request's ``root_path``.
    """
    prefix = "/" + prefix.strip("/")

    async def endpoint(req: StarletteRequest) -> StarletteResponse:
        subpath = req.path_params.get("subpath", "")
        base = route_base if route_base is not None else req.scope.get("root_path", "") + prefix + "/"
        return to_starlette(await answer(handle, from_starlette(req, subpath, base)))

    routes = [Route(f"{prefix}/{{subpath:path}}", endpoint, methods=METHODS)]
    routes += [Route(rule, endpoint, methods=METHODS) for rule in (prefix, prefix + "/")]
    app.router.routes[0:0] = routes


class SessionCookie:
    """ASGI middleware: give a browser its session id on an HTML page it loads, while
    ``wanted()`` (private files are made). Background callbacks need the cookie before their
    job starts: they cannot set one.

    It also tells which app serves the request (:data:`.current.serving_app`): on FastAPI
    nothing else says it, and several Dash apps may live in one process.
    """

    def __init__(self, app: Any, wanted: Callable[[], bool]) -> None:
        self.app = app
        self.wanted = wanted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        token = current.serving_app.set(scope.get("app"))
        try:
            await self._call(scope, receive, send)
        finally:
            current.serving_app.reset(token)

    async def _call(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _has_session(scope):
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                if html and self.wanted():
                    name, value = session.cookie_header(
                        session.new_session_id(), secure=scope.get("scheme") in ("https", "wss")
                    )
                    headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _has_session(scope: dict[str, Any]) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"cookie" and f"{session.COOKIE}=".encode() in value:
            return True
    return False
