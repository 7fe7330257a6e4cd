"""The file route: HTTP for stored files, as Werkzeug's ``send_file`` does it.

HEAD, single byte ranges (206/416) reading only the chunks they need,
``If-Range``, ``ETag``/``If-None-Match`` (304), ``If-Match`` (412),
``Last-Modified``, ``Cache-Control`` with the remaining lifetime,
``Content-Disposition`` and safety headers. Every bad request gets a short
plain-text 4xx.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Literal

from werkzeug.datastructures import ContentRange
from werkzeug.http import http_date, parse_if_range_header, parse_range_header, quote_etag
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from .exc import BackendUnavailableError, ContentMissingError
from .naming import content_disposition, is_active_type
from .store import ChunkStore, FileRecord, is_token

__all__ = ["ROUTE_NAME", "serve"]

#: The route's segment after the app's URL prefix.
ROUTE_NAME = "_dash-files"

logger = logging.getLogger(__name__)

_SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def serve(store: ChunkStore, subpath: str, request: Request) -> Response:
    """Answer a GET or HEAD of ``<prefix>_dash-files/<subpath>``.

    ``subpath`` is ``<token>/<filename>``; the file name must be the registered
    one, so that a URL cannot be bent to another name or type.
    """
    token, _, name = subpath.partition("/")
    if not is_token(token) or not name:
        return plain(404, "Not found: no such file.")
    try:
        record = store.get(token)
        if record is None or name != record.filename:
            return plain(404, "Not found: no such file, or it has expired.")
        if record.consumed:
            return plain(410, "Gone: this file could be fetched only once.")
        return _respond(store, record, request)
    except ContentMissingError as err:
        logger.warning("%s", err)
        return plain(410, "Gone: the file's content is no longer in the store.")
    except BackendUnavailableError as err:
        logger.error("file store unavailable: %s", err)
        return plain(503, "Service unavailable: the file store cannot be reached. Try again later.")


def _respond(store: ChunkStore, record: FileRecord, request: Request) -> Response:
    environ = request.environ
    etag = quote_etag(record.token)
    last_modified = datetime.fromtimestamp(int(record.created), tz=timezone.utc)
    headers = _file_headers(record, etag, last_modified)

    if _precondition_failed(request, record.token, last_modified):
        return plain(412, "Precondition failed: If-Match or If-Unmodified-Since does not hold.")
    if _not_modified(request, record.token, last_modified):
        return Response(status=304, headers=headers)

    size = record.size
    span = _requested_span(request, size, etag, last_modified)
    if isinstance(span, str):
        content_range = ContentRange("bytes", None, None, size).to_header()
        return plain(416, "Range not satisfiable.", {"Content-Range": content_range})
    partial = span is not None
    start, stop = span if span is not None else (0, size)

    disk = store.open_path(record)
    if disk is None and not record.chunked:
        return plain(410, "Gone: the file changed or was removed on the server since it was registered.")

    body: Iterable[bytes]
    if request.method == "HEAD":
        if disk is not None:
            disk.close()
        else:
            # Answer as a GET would: 410, not 200, when the content is gone (reads one chunk).
            store.iter_chunks(record, start, stop)
        body = ()
    elif disk is not None:
        if partial:
            body = _file_range(disk, start, stop, record.chunk_size)
        else:
            # wrap_file lets the WSGI server use sendfile: no copy through Python.
            body = wrap_file(environ, disk, buffer_size=record.chunk_size)
    else:
        body = store.iter_chunks(record, start, stop)
    if record.one_time and not partial and request.method == "GET":
        body = _consume_after(body, store, record)

    response = Response(body, status=206 if partial else 200, headers=headers, direct_passthrough=True)
    response.content_length = stop - start
    if partial:
        response.headers["Content-Range"] = ContentRange("bytes", start, stop, size).to_header()
    return response


def _file_headers(record: FileRecord, etag: str, last_modified: datetime) -> dict[str, str]:
    mime = record.mime_type
    headers = {
        "Content-Type": mime,
        "Content-Disposition": content_disposition(record.filename, attachment=record.download),
        "ETag": etag,
        "Last-Modified": http_date(last_modified),
        "Accept-Ranges": "bytes",
        "Cache-Control": _cache_control(record),
        **_SAFETY_HEADERS,
    }
    if record.sandbox and not record.download and is_active_type(mime):
        # Rendered as a document on our origin, script in SVG/HTML could read the
        # app's cookies and call its callbacks; the sandbox gives it a null origin.
        headers["Content-Security-Policy"] = "sandbox"
    return headers


def _cache_control(record: FileRecord) -> str:
    if record.one_time:
        return "private, no-store"
    if record.expires is None:
        return "private, max-age=31536000, immutable"
    remaining = max(0, int(record.expires - time.time()))
    return f"private, max-age={remaining}"


def _precondition_failed(request: Request, token: str, last_modified: datetime) -> bool:
    """RFC 9110 13.2.2 steps 1-2: ``If-Match`` (strong), else ``If-Unmodified-Since``."""
    if "If-Match" in request.headers:
        return not request.if_match.contains(token)
    since = request.if_unmodified_since
    return since is not None and last_modified > since


def _not_modified(request: Request, token: str, last_modified: datetime) -> bool:
    """RFC 9110 13.2.2 steps 3-4: ``If-None-Match`` (weak), else ``If-Modified-Since``.

    Not werkzeug's ``is_resource_modified``: it answers a failed ``If-Match`` with 304.
    """
    if "If-None-Match" in request.headers:
        return request.if_none_match.contains_weak(token)
    since = request.if_modified_since
    return since is not None and last_modified <= since


def _requested_span(
    request: Request, size: int, etag: str, last_modified: datetime
) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """``(start, stop)`` for a satisfiable single range, ``"unsatisfiable"``, or ``None`` for all."""
    header = request.headers.get("Range")
    if header is None or size == 0:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None:
        parsed_if = parse_if_range_header(if_range)
        if parsed_if.etag is not None:
            # A strong comparison (RFC 9110 13.1.5): a weak tag never matches.
            if parsed_if.etag != etag.strip('"') or if_range.lstrip().startswith("W/"):
                return None
        elif parsed_if.date is None or parsed_if.date != last_modified:
            return None
    ranges = parse_range_header(header)
    if ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1:
        # Malformed and multi-range requests get the whole file (RFC 9110 14.2 allows it).
        return None
    if header.split("=", 1)[1].strip().startswith("-"):
        # A suffix longer than the file asks for all of it (RFC 9110 14.1.3), which
        # werkzeug refuses; and werkzeug reads "-0", unsatisfiable, as "0-".
        suffix = -ranges.ranges[0][0]
        return (max(0, size - suffix), size) if suffix > 0 else "unsatisfiable"
    span = ranges.range_for_length(size)
    return span if span is not None else "unsatisfiable"


def _file_range(f: IO[bytes], start: int, stop: int, block: int) -> Iterator[bytes]:
    with f:
        f.seek(start)
        remaining = stop - start
        while remaining > 0:
            data = f.read(min(block, remaining))
            if not data:
                raise ContentMissingError(f"{f.name!r} ended early")
            remaining -= len(data)
            yield data


def _consume_after(body: Iterable[bytes], store: ChunkStore, record: FileRecord) -> Iterator[bytes]:
    """Pass ``body`` through; remove the file once the last byte went out.

    A client that aborts closes this generator early, so the file survives.
    """
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    try:
        store.consume(record)
    except BackendUnavailableError as err:
        # The transfer is complete; the file then lives until its time-to-live.
        logger.error("could not remove one-time file %s: %s", record.token, err)


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(text + "\n", status=status, mimetype="text/plain", headers=headers)
    response.headers.update(_SAFETY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response
