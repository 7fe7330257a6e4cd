"""The file route: HTTP for stored files, as Werkzeug's ``send_file`` does it, on any server.

HEAD, single byte ranges (206/416) reading only the chunks they need, ``If-Range``,
``ETag``/``If-None-Match`` (304), ``If-Match`` (412), ``Last-Modified``,
``Cache-Control`` with the remaining lifetime, ``Content-Disposition`` and safety
headers. Every bad request gets a short plain-text 4xx, a store that cannot be
reached a 503: never a traceback.

One-time files are served whole only (a ``Range`` is ignored, ``Accept-Ranges:
none``): a copy assembled from ranges could never be told complete. Every transfer of
one streams all but its last piece, then claims the file through the store's atomic
claim; only the winner sends the last piece, every other transfer is cut short, so at
most one complete copy is ever delivered, and a transfer aborted before the end (the
adapter closes the body) consumes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

from werkzeug.datastructures import ContentRange
from werkzeug.http import http_date, quote_etag

from ..events import EventKind
from ..exc import BackendUnavailableError, ContentMissingError
from ..naming import content_disposition, is_inert_type
from ..store import ChunkStore, FileRecord, is_token
from . import session
from .conditional import not_modified, precondition_failed, requested_span
from .messages import SAFETY_HEADERS, Body, FileBody, Request, Response, plain

__all__ = ["ROUTE_NAME", "file_headers", "file_url", "serve_file"]

#: The route's segment after the app's URL prefix.
ROUTE_NAME = "_dash-files"

logger = logging.getLogger(__name__)

_EVENT_OF_STATUS: dict[int, EventKind] = {200: "served", 206: "partial", 304: "not_modified", 307: "served"}
#: How long a browser may keep a redirect to a presigned URL (which works for longer).
REDIRECT_MAX_AGE = 60
_NOT_FOUND = "Not found: no such file, or it has expired."


def serve_file(
    store: ChunkStore,
    request: Request,
    *,
    sendfile_header: str | None = None,
    sendfile_prefix: str = "",
) -> Response:
    """Answer a GET or HEAD of ``<prefix>_dash-files/<token>/<filename>``.

    The file name must be the registered one, so that a URL cannot be bent to another
    name or type. A private file opens only with the session cookie of the browser that
    caused it; to anyone else it is as missing as an unknown token.
    """
    events = store.events
    token, _, name = request.subpath.partition("/")
    if not is_token(token) or not name:
        events.emit("missing", detail=request.subpath[:80])
        return plain(404, "Not found: no such file.")
    try:
        record = store.lookup(token)
        if record is None or name != record.filename or not session.may_open(record.owner, request.cookies):
            events.emit("missing", token=token)
            return plain(404, _NOT_FOUND)
        if record.expires is not None and record.expires < time.time():
            events.emit("expired", token=token, filename=record.filename)
            return plain(404, _NOT_FOUND)
        if record.consumed or (record.one_time and store.is_claimed(record)):
            events.emit("missing", token=token, filename=record.filename, detail="delivered once already")
            return plain(410, "Gone: this file could be fetched only once.")
        if record.growing:
            response = _follow(store, record, request)
        else:
            response = _respond(store, record, request, sendfile_header, sendfile_prefix)
        kind = _EVENT_OF_STATUS.get(response.status)
        if kind is not None:
            events.emit(kind, token=token, filename=record.filename, size=response.length)
        return response
    except ContentMissingError as err:
        events.emit("failed", token=token, detail=str(err))
        return plain(410, "Gone: the file's content is no longer in the store.")
    except BackendUnavailableError as err:
        events.emit("failed", token=token, detail=str(err))
        return plain(503, "Service unavailable: the file store cannot be reached. Try again later.")


def _respond(
    store: ChunkStore,
    record: FileRecord,
    request: Request,
    sendfile_header: str | None,
    sendfile_prefix: str,
) -> Response:
    # When this content was last registered: the same content again answers as if new.
    last_modified = datetime.fromtimestamp(int(record.modified or record.created), tz=UTC)
    if not record.download and wants_download(request.query):
        # The same file as an attachment: another representation, with a tag of its own.
        record = replace(record, download=True)
    etag = _etag_of(record)
    headers = file_headers(record, last_modified)
    if precondition_failed(request.headers, etag, last_modified):
        return plain(412, "Precondition failed: If-Match or If-Unmodified-Since does not hold.")
    if not_modified(request.headers, etag, last_modified):
        return Response(304, headers)
    redirect = _redirect(store, record, headers)
    if redirect is not None:
        return redirect

    size = record.size
    span = None if record.one_time else requested_span(request.headers, size, etag, last_modified)
    if isinstance(span, str):
        content_range = ContentRange("bytes", None, None, size).to_header()
        return plain(416, "Range not satisfiable.", [("Content-Range", content_range)])
    start, stop = span if span is not None else (0, size)
    if span is not None:
        headers.append(("Content-Range", ContentRange("bytes", start, stop, size).to_header()))
    status = 206 if span is not None else 200

    disk = store.contents.open_path(record)
    if disk is None and not record.chunked:
        return plain(410, "Gone: the file changed or was removed on the server since it was registered.")
    if disk is not None and sendfile_header and not record.one_time:
        # The front server (nginx, Apache) sends the file, ranges included: no worker waits
        # on a slow client.
        disk.close()
        target = sendfile_prefix + quote(record.path or "") if sendfile_prefix else record.path or ""
        return Response(200, [*headers, (sendfile_header, target)], b"", length=size)

    body: Body
    if request.method == "HEAD":
        if disk is not None:
            disk.close()
        else:
            # Answer as a GET would: 410, not 200, when the content is gone (reads one chunk).
            if record.inline is None and stop > start:
                store.contents.chunk(record, start // record.chunk_size)
        body = b""
    elif disk is not None:
        body = FileBody(disk, start, stop, record.chunk_size)
    else:
        body = store.contents.iter_chunks(record, start, stop)
    if record.one_time and not isinstance(body, bytes):
        body = _deliver_once(body.chunks() if isinstance(body, FileBody) else body, store, record)
    return Response(status, headers, body, length=stop - start)


def _follow(store: ChunkStore, record: FileRecord, request: Request) -> Response:
    """Answer a file still being written: its bytes as they are made (see :mod:`..store.growing`).

    No size (unless declared), no ranges, no validators, not cached: it is not the file yet.
    """
    store.growing.check_alive(record)  # a writer that failed or died: a clean 410 now
    if not record.download and wants_download(request.query):
        record = replace(record, download=True)
    now = datetime.fromtimestamp(int(record.created), tz=UTC)
    headers = [
        (name, value)
        for name, value in file_headers(record, now)
        if name not in ("ETag", "Last-Modified", "Cache-Control", "Accept-Ranges")
    ]
    headers += [("Cache-Control", "no-store"), ("Accept-Ranges", "none")]
    length = record.size or None
    if request.method == "HEAD":
        return Response(200, headers, iter(()), length=length)
    body: Iterable[bytes] = store.growing.follow(record)
    if record.one_time:
        body = _deliver_once(body, store, record)
    return Response(200, headers, body, length=length)


def _redirect(store: ChunkStore, record: FileRecord, headers: list[tuple[str, str]]) -> Response | None:
    """A 307 to a presigned URL of the bucket that holds the file, where that is safe.

    Not for a one-time file (a presigned URL can be replayed until it expires), nor for active
    content shown inline (the bucket's answer would not carry our CSP sandbox): those are
    served through the app. Ranges and conditional requests then go to the bucket.
    """
    if record.one_time or any(name == "Content-Security-Policy" for name, _ in headers):
        return None
    url = store.contents.presigned_url(record, dict(headers))
    if url is None:
        return None
    return Response(
        307,
        [("Location", url), ("Cache-Control", f"private, max-age={REDIRECT_MAX_AGE}"), *SAFETY_HEADERS],
        b"",
    )


def wants_download(query: Mapping[str, str]) -> bool:
    """Whether the query asks for the file as an attachment: ``?download=1`` (or ``true``,
    ``yes``, as dash-file-cache spells it). It never turns an attachment into inline content."""
    return query.get("download", "").strip().lower() in ("1", "true", "yes")


def _etag_of(record: FileRecord) -> str:
    """The entity tag, unquoted: the token, and ``-a`` for an attachment (the same bytes under
    other headers: a cache must not answer one form with the other)."""
    return f"{record.token}-a" if record.download else record.token


def file_url(route_base: str, record: FileRecord) -> str:
    """The URL of a stored file: ``<route_base><token>/<filename>``, the name quoted whole."""
    return f"{route_base}{record.token}/{quote(record.filename, safe='')}"


def file_headers(record: FileRecord, last_modified: datetime) -> list[tuple[str, str]]:
    """The headers of a file's answers (200, 206, 304)."""
    mime = record.mime_type
    headers = [
        ("Content-Type", mime),
        ("Content-Disposition", content_disposition(record.filename, attachment=record.download)),
        ("ETag", quote_etag(_etag_of(record))),
        ("Last-Modified", http_date(last_modified)),
        ("Accept-Ranges", "none" if record.one_time else "bytes"),
        ("Cache-Control", _cache_control(record)),
        *SAFETY_HEADERS,
    ]
    if record.owner is not None:
        headers.append(("Vary", "Cookie"))
    if record.sandbox and not record.download and not is_inert_type(mime):
        # Rendered as a document on our origin, script in it (HTML, SVG, XML with an XSL
        # stylesheet, types nobody listed) could read the app's cookies and call its
        # callbacks; the sandbox gives it a null origin. Only known-inert types go without;
        # an attachment is saved, never rendered.
        policy = "sandbox" if record.sandbox is True else f"sandbox {record.sandbox}"
        headers.append(("Content-Security-Policy", policy))
    return headers


def _cache_control(record: FileRecord) -> str:
    if record.one_time:
        return "private, no-store"
    if record.expires is None:
        return "private, max-age=31536000, immutable"
    # The content under a token never changes: a browser that has it need not ask again.
    remaining = max(0, int(record.expires - time.time()))
    return f"private, max-age={remaining}, immutable"


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
