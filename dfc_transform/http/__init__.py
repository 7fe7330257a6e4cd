"""The HTTP core: the file route and the upload protocol, with no web framework inside.

- :mod:`.messages`: the small request and response values adapters speak;
- :mod:`.files`: serving stored files (ranges, conditional requests, one-time, private);
- :mod:`.conditional`: preconditions and ranges, decided from headers;
- :mod:`.uploads`, :mod:`.tickets`, :mod:`.upload_checks`, :mod:`.upload_answers`: the upload protocol;
- :mod:`.session`: the cookie that binds private files to a browser;
- :mod:`.adapters`: Flask (WSGI), Quart and Starlette (ASGI) in front of it.
"""

from __future__ import annotations

from ..settings import Settings
from ..store import ChunkStore
from .files import ROUTE_NAME, file_url, serve_file
from .messages import Request, Response, plain
from .uploads import ROUTE as UPLOAD_ROUTE
from .uploads import handle_upload

__all__ = ["ROUTE_NAME", "UPLOAD_ROUTE", "Request", "Response", "file_url", "handle", "plain"]


def handle(store: ChunkStore, settings: Settings, request: Request) -> Response:
    """Answer any request under the file route: a file, or a step of the upload protocol."""
    first = request.subpath.split("/", 1)[0]
    if first == UPLOAD_ROUTE:
        return handle_upload(store, settings, request)
    if request.method not in ("GET", "HEAD"):
        return plain(
            405,
            f"Method not allowed: files answer GET and HEAD, not {request.method}.",
            [("Allow", "GET, HEAD")],
        )
    if not request.subpath.strip("/"):
        return plain(404, "Not found: no such file.")
    return serve_file(
        store,
        request,
        sendfile_header=settings.sendfile_header,
        sendfile_prefix=settings.sendfile_prefix,
    )
