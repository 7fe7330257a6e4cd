"""One synchronous client for a Dash app on Flask, Quart or FastAPI, over each framework's own test client.

A :class:`ServerClient` is one browser: it loads the app's layout when it is made (as a page
does, and as Dash on FastAPI needs before it finds callbacks), keeps its own cookies, and
sends requests whose answers come back whole as :class:`Reply` values. Behind it:

- Flask: ``app.server.test_client()``;
- Quart: ``app.server.test_client()``, its connections (``request()``) driven on one event
  loop kept for the client's life; they give the headers as the app sent them (its
  ``open()`` rebuilds a response whose ``Content-Length`` is the body it read: 0 for a HEAD);
- FastAPI: ``starlette.testclient.TestClient(app.server)``, entered (the lifespan runs).

A body the server starts and cannot finish (an error mid-stream, fewer bytes than its
``Content-Length``) raises :class:`TransferCut`: what a browser sees as a failed download.

Each client makes its requests in a context of its own (``contextvars``), as a server's
connections run in its own: Dash's ``with_app_context`` sets its app ContextVar in the caller's
context, so one app's request made in the test's thread would otherwise make ``dash.get_app()``
name that app in every later test's requests (the event loops of the ASGI clients copy the
caller's context). Nothing of ``dfc_transform`` is imported here.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import dash
from werkzeug.datastructures import Headers

__all__ = ["Reply", "ServerClient", "TransferCut", "open_client", "output_key"]

T = TypeVar("T")


class TransferCut(Exception):
    """The server sent a status and headers, then failed to send the whole body."""

    def __init__(self, status: int, headers: Headers, why: str) -> None:
        super().__init__(f"{status} transfer cut short: {why}")
        self.status = status
        self.headers = headers


class Reply(NamedTuple):
    """A whole answer: its status, headers (looked up without regard to case) and body."""

    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def output_key(outputs: Any) -> str:
    """The ``output`` field Dash's renderer sends: ``id.prop``, or ``..a.x...b.y..`` for several."""
    if isinstance(outputs, dict):
        return f"{outputs['id']}.{outputs['property']}"
    return ".." + "...".join(f"{o['id']}.{o['property']}" for o in outputs) + ".."


class ServerClient(ABC):
    """A browser of a Dash app, whatever server the app runs on."""

    server = ""

    def __init__(self, app: dash.Dash) -> None:
        self.app = app
        layout = self.get("/_dash-layout")
        assert layout.status == 200, layout.text[:2000]
        #: The layout as this browser's page got it (an ``Upload`` has its ticket in it).
        self.layout: Any = layout.json()

    _context: contextvars.Context | None = None

    def in_context(self, call: Callable[[], T]) -> T:
        """``call()`` in this client's own context (see the module's docstring)."""
        if self._context is None:
            self._context = contextvars.Context()
        return self._context.run(call)

    # -- what each server's client does ------------------------------------------------

    @abstractmethod
    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, data: bytes | None = None
    ) -> Reply:
        """Send one request and read its answer whole.

        :raises TransferCut: the body broke off after the status was sent.
        """

    @abstractmethod
    def first_piece_then_abort(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Headers, bytes, int]:
        """GET ``url``, read the first piece of its body, then go away as a browser would.

        Returns the status, the headers, the first piece and how many bytes had arrived in
        all when the transfer ended (the app may send a little more before it notices).
        """

    @abstractmethod
    def cookie(self, name: str) -> str | None:
        """The value of this browser's cookie ``name``, or ``None``."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the test client (and its event loop or lifespan)."""

    # -- the rest, the same on every server --------------------------------------------

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", url, headers=headers)

    def head(self, url: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("HEAD", url, headers=headers)

    def delete(self, url: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("DELETE", url, headers=headers)

    def put(self, url: str, data: bytes, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("PUT", url, headers=headers, data=data)

    def post(self, url: str, data: bytes, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("POST", url, headers=headers, data=data)

    def post_json(
        self,
        url: str,
        body: Any,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Reply:
        """POST ``body`` as JSON, labelled ``content_type`` (``text/plain``: as a browser's
        ``fetch`` sends a string, which needs no CORS preflight)."""
        return self.post(url, json.dumps(body).encode(), {"Content-Type": content_type, **(headers or {})})

    def fire(
        self, outputs: Any, inputs: list[dict[str, Any]], *, state: list[dict[str, Any]] | None = None
    ) -> Any:
        """POST one callback as the renderer does; return the ``response`` part of its JSON."""
        body = {
            "output": output_key(outputs),
            "outputs": outputs,
            "inputs": inputs,
            "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"] if inputs else [],
            "state": state or [],
        }
        reply = self.post_json("/_dash-update-component", body)
        assert reply.status == 200, (reply.status, reply.text[:2000])
        return reply.json()["response"]

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked(method: str, status: int, headers: Headers, body: bytes) -> Reply:
    """The reply, or :class:`TransferCut` when the body is shorter than its ``Content-Length``."""
    length = headers.get("Content-Length")
    if method != "HEAD" and status != 304 and length is not None and len(body) < int(length):
        raise TransferCut(status, headers, f"{len(body)} of {length} bytes")
    return Reply(status, headers, body)


class FlaskClient(ServerClient):
    server = "flask"

    def __init__(self, app: dash.Dash) -> None:
        self.http = app.server.test_client()
        super().__init__(app)

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, data: bytes | None = None
    ) -> Reply:
        def exchange() -> Reply:
            response = self.http.open(url, method=method, headers=dict(headers or {}), data=data)
            found = Headers(response.headers)
            try:
                body = response.get_data()
            except Exception as err:  # the app's iterator raised mid-body
                raise TransferCut(response.status_code, found, repr(err)) from err
            finally:
                response.close()
            return _checked(method, response.status_code, found, body)

        return self.in_context(exchange)

    def first_piece_then_abort(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Headers, bytes, int]:
        def exchange() -> tuple[int, Headers, bytes, int]:
            response = self.http.get(url, headers=dict(headers or {}), buffered=False)
            first = next(iter(response.response))
            response.close()  # as a WSGI server closes the iterator when the client goes away
            return response.status_code, Headers(response.headers), first, len(first)

        return self.in_context(exchange)

    def cookie(self, name: str) -> str | None:
        found = self.http.get_cookie(name)
        return None if found is None else found.value

    def close(self) -> None:
        """Nothing to let go: Flask's client holds no loop or thread."""


class QuartClient(ServerClient):
    server = "quart"

    def __init__(self, app: dash.Dash) -> None:
        self.loop = asyncio.new_event_loop()
        self.http = app.server.test_client()
        # Cookies kept here: the connections of Quart's client send its jar but do not fill it.
        self.cookies: dict[str, str] = {}
        super().__init__(app)

    def _headers(self, headers: Mapping[str, str] | None, data: bytes | None) -> dict[str, str]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if data is not None:
            sent.setdefault("Content-Length", str(len(data)))  # as a browser (and an ASGI server) gives it
        return sent

    def _keep_cookies(self, headers: Headers) -> None:
        for line in headers.getlist("Set-Cookie"):
            pair, *attributes = (p.strip() for p in line.split(";"))
            name, _, value = pair.partition("=")
            if any(a.lower() == "max-age=0" for a in attributes):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, data: bytes | None = None
    ) -> Reply:
        async def exchange() -> Reply:
            connection = self.http.request(url, method=method, headers=self._headers(headers, data))
            try:
                async with connection:
                    if data:
                        await connection.send(data)
                    await connection.send_complete()
            except Exception as err:  # the app raised: after its headers, a cut transfer
                if connection.status_code is None:
                    raise
                raise TransferCut(connection.status_code, Headers(connection.headers), repr(err)) from err
            found = Headers(connection.headers)
            self._keep_cookies(found)
            assert connection.status_code is not None
            # A HEAD's answer has no body on the wire: hypercorn and uvicorn drop what an app sends
            # (the core's error answers carry their text whatever the method; Werkzeug drops it on Flask).
            body = b"" if method == "HEAD" else bytes(connection.response_data)
            return _checked(method, connection.status_code, found, body)

        return self.in_context(lambda: self.loop.run_until_complete(exchange()))

    def first_piece_then_abort(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Headers, bytes, int]:
        async def exchange() -> tuple[int, Headers, bytes, int]:
            connection = self.http.request(url, method="GET", headers=self._headers(headers, None))
            async with connection:
                await connection.send_complete()
                first = await connection.receive()
                # The ASGI message a server sends when the client's connection closes; Quart then
                # cancels the response and the body's iterator is closed.
                await connection.disconnect()
            # Leaving the block waited for the app; what it had sent meanwhile is in response_data.
            assert connection.status_code is not None
            received = len(first) + len(connection.response_data)
            return connection.status_code, Headers(connection.headers), first, received

        return self.in_context(lambda: self.loop.run_until_complete(exchange()))

    def cookie(self, name: str) -> str | None:
        return self.cookies.get(name)

    def close(self) -> None:
        if not self.loop.is_closed():
            self.in_context(lambda: self.loop.run_until_complete(self.loop.shutdown_default_executor()))
            self.loop.close()


class StarletteClient(ServerClient):
    server = "fastapi"

    def __init__(self, app: dash.Dash) -> None:
        with warnings.catch_warnings():
            # Starlette 1.x would have its client run on httpx2 (a UserWarning says so); httpx works.
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient

        self.http = TestClient(app.server)
        self.in_context(self.http.__enter__)  # runs the lifespan, where Dash sets up its routes
        try:
            super().__init__(app)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _sent_as(url: str) -> str:
        """``url`` as Starlette's client must be given it to put its path in the scope decoded once.

        Its transport decodes httpx's already decoded path again (``unquote(request.url.path)``,
        Starlette issue 2587): ``a%2541.txt`` would reach the app as ``aA.txt``, where a server
        (uvicorn) gives ``a%41.txt``. Its ``%`` signs escaped once more, the path comes out right.
        """
        path, mark, query = url.partition("?")
        return path.replace("%", "%25") + mark + query

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, data: bytes | None = None
    ) -> Reply:
        def exchange() -> Reply:
            sent = self._sent_as(url)
            with self.http.stream(method, sent, headers=dict(headers or {}), content=data) as response:
                found = Headers(list(response.headers.multi_items()))
                try:
                    body = response.read()
                except Exception as err:  # the app raised mid-body
                    raise TransferCut(response.status_code, found, repr(err)) from err
            return _checked(method, response.status_code, found, body)

        return self.in_context(exchange)

    def first_piece_then_abort(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Headers, bytes, int]:
        def exchange() -> tuple[int, Headers, bytes, int]:
            with self.http.stream("GET", self._sent_as(url), headers=dict(headers or {})) as response:
                first = next(response.iter_raw())
            # Closing the stream cancelled the app, whose body iterator was then closed.
            found = Headers(list(response.headers.multi_items()))
            return response.status_code, found, first, len(first)

        return self.in_context(exchange)

    def cookie(self, name: str) -> str | None:
        return self.http.cookies.get(name)

    def close(self) -> None:
        self.in_context(lambda: self.http.__exit__(None, None, None))


CLIENTS: dict[str, type[ServerClient]] = {c.server: c for c in (FlaskClient, QuartClient, StarletteClient)}


def open_client(app: dash.Dash) -> ServerClient:
    """A new browser of ``app`` (which has loaded its layout), on the test client of its server."""
    server = getattr(getattr(app, "backend", None), "server_type", "flask")
    return CLIENTS[server](app)
