"""The file route: HTTP for stored files, as Werkzeug's ``send_file`` does it.

HEAD, single byte ranges (206/416) reading only the chunks they need,
``If-Range``, ``ETag``/``If-None-Match`` (304), ``If-Match`` (412),
``Last-Modified``, ``Cache-Control`` with the remaining lifetime,
``Content-Disposition`` and safety headers. Every bad request gets a short
plain-text 4xx.

One-time files are served whole only (a ``Range`` is ignored, ``Accept-Ranges:
none``): a copy assembled from ranges could never be told complete. Every
transfer of one streams all but its last piece, then claims the file through
the backend's atomic ``add``; only the winner sends the last piece, every other
transfer is cut short, so at most one complete copy is ever delivered, and a
transfer aborted before the end consumes nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Literal
from urllib.parse import quote

from werkzeug.datastructures import ContentRange
from werkzeug.http import http_date, parse_if_range_header, quote_etag
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from . import session
from .events import EventKind
from .exc import BackendUnavailableError, ContentMissingError
from .naming import content_disposition, is_inert_type
from .records import FileRecord, is_token
from .store import ChunkStore

__all__ = ["ROUTE_NAME", "serve"]

#: The route's segment after the app's URL prefix.
ROUTE_NAME = "_dash-files"

logger = logging.getLogger(__name__)

# One byte-range-spec or suffix-range (RFC 9110 14.1.1); digits in ASCII only.
_BYTE_RANGE = re.compile(r"[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")
_SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def serve(
    store: ChunkStore,
    subpath: str,
    request: Request,
    *,
    sendfile_header: str | None = None,
    sendfile_prefix: str = "",
) -> Response:
    """Answer a GET or HEAD of ``<prefix>_dash-files/<subpath>``.

    ``subpath`` is ``<token>/<filename>``; the file name must be the registered
    one, so that a URL cannot be bent to another name or type. A private file
    opens only with the session cookie of the browser that caused it; to anyone
    else it is as missing as an unknown token.
    """
    events = store.events
    token, _, name = subpath.partition("/")
    if not is_token(token) or not name:
        events.emit("missing", detail=subpath[:80])
        return plain(404, "Not found: no such file.")
    try:
        record = store.lookup(token)
        if record is None or name != record.filename or not session.may_open(record.owner, request):
            events.emit("missing", token=token)
            return plain(404, "Not found: no such file, or it has expired.")
        if record.expires is not None and record.expires < time.time():
            events.emit("expired", token=token, filename=record.filename)
            return plain(404, "Not found: no such file, or it has expired.")
        if record.consumed or (record.one_time and store.is_claimed(record)):
            events.emit("missing", token=token, filename=record.filename, detail="delivered once already")
            return plain(410, "Gone: this file could be fetched only once.")
        response = _respond(store, record, request, sendfile_header, sendfile_prefix)
        kind = _EVENT_OF_STATUS.get(response.status_code)
        if kind is not None:
            events.emit(kind, token=token, filename=record.filename, size=response.content_length)
        return response
    except ContentMissingError as err:
        events.emit("failed", token=token, detail=str(err))
        return plain(410, "Gone: the file's content is no longer in the store.")
    except BackendUnavailableError as err:
        events.emit("failed", token=token, detail=str(err))
        return plain(503, "Service unavailable: the file store cannot be reached. Try again later.")


_EVENT_OF_STATUS: dict[int, EventKind] = {200: "served", 206: "partial", 304: "not_modified"}


def _respond(
    store: ChunkStore,
    record: FileRecord,
    request: Request,
    sendfile_header: str | None,
    sendfile_prefix: str,
) -> Response:
    environ = request.environ
    etag = quote_etag(record.token)
    last_modified = datetime.fromtimestamp(int(record.created), tz=UTC)
    headers = _file_headers(record, etag, last_modified)

    if _precondition_failed(request, record.token, last_modified):
        return plain(412, "Precondition failed: If-Match or If-Unmodified-Since does not hold.")
    if _not_modified(request, record.token, last_modified):
        return Response(status=304, headers=headers)

    size = record.size
    span = None if record.one_time else _requested_span(request, size, etag, last_modified)
    if isinstance(span, str):
        content_range = ContentRange("bytes", None, None, size).to_header()
        return plain(416, "Range not satisfiable.", {"Content-Range": content_range})
    partial = span is not None
    start, stop = span if span is not None else (0, size)

    disk = store.open_path(record)
    if disk is None and not record.chunked:
        return plain(410, "Gone: the file changed or was removed on the server since it was registered.")
    if disk is not None and sendfile_header and not record.one_time:
        # The front server (nginx, Apache) sends the file, ranges included: no worker waits
        # on a slow client.
        disk.close()
        target = sendfile_prefix + quote(record.path or "") if sendfile_prefix else record.path or ""
        return Response(status=200, headers={**headers, sendfile_header: target})

    body: Iterable[bytes]
    if request.method == "HEAD":
        if disk is not None:
            disk.close()
        else:
            # Answer as a GET would: 410, not 200, when the content is gone (reads one chunk).
            store.iter_chunks(record, start, stop)
        body = ()
    elif disk is not None:
        if partial or record.one_time:
            body = _file_range(disk, start, stop, record.chunk_size)
        else:
            # wrap_file lets the WSGI server use sendfile: no copy through Python.
            body = wrap_file(environ, disk, buffer_size=record.chunk_size)
    else:
        body = store.iter_chunks(record, start, stop)
    if record.one_time and request.method == "GET":
        body = _deliver_once(body, store, record)

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
        "Accept-Ranges": "none" if record.one_time else "bytes",
        "Cache-Control": _cache_control(record),
        **_SAFETY_HEADERS,
    }
    if record.owner is not None:
        headers["Vary"] = "Cookie"
    if record.sandbox and not record.download and not is_inert_type(mime):
        # Rendered as a document on our origin, script in it (HTML, SVG, XML with an XSL
        # stylesheet, types nobody listed) could read the app's cookies and call its
        # callbacks; the sandbox gives it a null origin. Only known-inert types go without;
        # an attachment is saved, never rendered.
        headers["Content-Security-Policy"] = "sandbox"
    return headers


def _cache_control(record: FileRecord) -> str:
    if record.one_time:
        return "private, no-store"
    if record.expires is None:
        return "private, max-age=31536000, immutable"
    # The content under a token never changes: a browser that has it need not ask again.
    remaining = max(0, int(record.expires - time.time()))
    return f"private, max-age={remaining}, immutable"


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
    return parse_byte_range(header, size)


def parse_byte_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """One ``Range: bytes=...`` header against a representation of ``size`` bytes (RFC 9110 14.1).

    ``(start, stop)`` for one satisfiable range; ``"unsatisfiable"`` (416) for one range
    that selects nothing: a first byte at or past the end, or a suffix of length 0
    (``bytes=-0``); ``None`` (ignore the header, send the whole file, as 14.2 allows) for
    anything malformed, another unit, or several ranges. Parsed here, not by a library,
    so that no dependency release changes these answers.
    """
    unit, sep, spec = header.partition("=")
    match = _BYTE_RANGE.fullmatch(spec)
    if not sep or unit.strip().lower() != "bytes" or match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix-range: the last N bytes
        suffix = int(last)
        return (max(0, size - suffix), size) if suffix > 0 else "unsatisfiable"
    start = int(first)
    stop = size if not last else int(last) + 1
    if last and stop <= start:
        return None  # last-pos < first-pos: invalid, ignored
    if start >= size:
        return "unsatisfiable"
    return start, min(stop, size)


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


def _deliver_once(body: Iterable[bytes], store: ChunkStore, record: FileRecord) -> Iterator[bytes]:
    """Pass ``body`` through, holding back its last byte until this transfer has claimed the file.

    The claim is atomic (see :meth:`ChunkStore.claim`): of several concurrent transfers, in
    any processes, one wins and sends the last byte; the others end short of it, which the
    client sees as a failed transfer (its Content-Length is not met). A client that aborts
    closes this generator before the claim, so the file survives for another try. Each piece
    goes out as soon as it is read, so that the headers are sent with the first one.
    """
    held = b""
    try:
        for piece in body:
            if piece:
                if held or len(piece) > 1:
                    yield held + piece[:-1]
                held = piece[-1:]
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    if not store.claim(record):
        raise ContentMissingError(f"one-time file {record.token} was delivered by another transfer")
    if held:
        yield held
    try:
        store.consume(record)
    except BackendUnavailableError as err:
        # The claim holds: no other transfer can complete; the content leaves with its time-to-live.
        logger.error("could not remove one-time file %s: %s", record.token, err)


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(text + "\n", status=status, mimetype="text/plain", headers=headers)
    response.headers.update(_SAFETY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response
