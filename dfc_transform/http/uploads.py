"""The upload protocol: files sent in parts, straight into the store as chunks.

Under the file route (``<prefix>_dash-files/``), every request carries the page's ticket
in the ``X-Upload-Ticket`` header and is checked against it:

=================================  ==========================================================
``POST _upload``                   start: JSON ``{name, size, type}`` -> 201 and the status
``GET _upload/<handle>``           status: which parts the store has (to resume), the file if done
``PUT _upload/<handle>/<part>``    one part's bytes; ``?complete=1`` on the last one sent
                                   makes the file a stored file and answers its description
``DELETE _upload/<handle>``        cancel: what was written goes
=================================  ==========================================================

A status is ``{upload, part_size, parts, received, file}``; ``file`` is ``null`` until the
upload is complete, then ``{name, size, type, url, receipt}``, what the component puts in
its ``value``. Errors are ``{error, reason}`` with a 4xx status, ``error`` a sentence for the
user. A part is ``part_size`` bytes (a multiple of the store's chunk size; the last part
less) and is read from the request body one chunk at a time, each chunk written to the
store as it is complete: memory stays bounded by one chunk per request, and any worker or
host that shares the backend can take any part, in any order, any number of times (a chunk
already stored is not written again). The server keeps no state of its own: the handle
says everything (see :mod:`.tickets`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..exc import BackendUnavailableError, ContentMissingError, FileServeError
from ..naming import check_filename, essence, safe_filename
from ..settings import Settings
from ..store import ChunkStore, FileRecord, new_token
from . import session
from .files import file_url
from .messages import Request, Response
from .tickets import Handle, Ticket, TicketError, Tickets
from .upload_checks import Refused, accepted, check_size, mime_type, read_exact, release_memory

__all__ = ["METHODS", "ROUTE", "TICKET_HEADER", "describe", "handle_upload"]

logger = logging.getLogger(__name__)

#: The protocol's segment under the file route.
ROUTE = "_upload"
METHODS = ("GET", "POST", "PUT", "DELETE")
TICKET_HEADER = "X-Upload-Ticket"
#: A part is about this many bytes (a whole number of chunks, at least one).
PART_TARGET = 4 * 1024 * 1024
_MAX_START_BODY = 16 * 1024
_NO_STORE = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


def handle_upload(store: ChunkStore, settings: Settings, request: Request) -> Response:
    """Answer one request of the protocol; ``request.subpath`` starts with ``_upload``."""
    parts = [p for p in request.subpath.split("/")[1:] if p]
    method = request.method
    try:
        if store.profile.per_process and request.multiprocess:
            raise Refused(
                503,
                "uploads need a store that every worker process shares; this one keeps files in one process",
                "backend",
            )
        tickets = Tickets(store)
        ticket = tickets.ticket(request.headers.get(TICKET_HEADER))
        protocol = _Protocol(store, settings, tickets, request)
        if not parts and method == "POST":
            return protocol.start(ticket)
        if not parts or len(parts) > 2:
            raise Refused(404, "no such upload request", "unknown")
        upload = tickets.handle(parts[0])
        if upload.component != ticket.component:
            raise Refused(403, "this upload belongs to another upload component", "wrong-upload")
        if len(parts) == 1 and method == "GET":
            return _json(200, protocol.status(upload, parts[0]))
        if len(parts) == 1 and method == "DELETE":
            return _json(200, protocol.cancel(upload, parts[0]))
        if len(parts) == 2 and method == "PUT":
            return _json(200, protocol.put_part(upload, parts[0], parts[1]))
        raise Refused(405, f"{method} is not part of the upload protocol here", "method")
    except TicketError as err:
        status = 410 if err.reason == "expired" else 403
        return _refuse(store, Refused(status, str(err), err.reason))
    except Refused as err:
        return _refuse(store, err)
    except ContentMissingError as err:
        return _refuse(store, Refused(409, str(err), "missing"))
    except BackendUnavailableError as err:
        logger.warning("upload failed: %s", err)
        return _refuse(store, Refused(503, "the file store cannot be reached; try again", "backend"))
    except FileServeError as err:  # the byte budget (FileTooLargeError), a name that cannot be served
        return _refuse(store, Refused(413 if "budget" in str(err) else 400, str(err), "refused"))


class _Protocol:
    """The steps of the protocol for one request."""

    def __init__(self, store: ChunkStore, settings: Settings, tickets: Tickets, request: Request) -> None:
        self.store = store
        self.settings = settings
        self.tickets = tickets
        self.request = request

    def start(self, ticket: Ticket) -> Response:
        request = self.request
        body = read_exact(request.body, _MAX_START_BODY + 1) if request.body is not None else b""
        if len(body) > _MAX_START_BODY:
            raise Refused(413, "the upload's description is too long", "too-large")
        try:
            wanted = json.loads(body)
            name, size, declared = str(wanted["name"]), wanted["size"], str(wanted.get("type") or "")
        except (ValueError, KeyError, TypeError) as err:
            raise Refused(400, "send JSON {name, size, type} to start an upload", "bad-request") from err
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Refused(400, f"size must be a whole number of bytes, got {size!r}", "bad-request")
        name = safe_filename(name) or "file"
        try:
            check_filename(name)
        except ValueError as err:
            raise Refused(400, str(err), "bad-name") from err
        check_size(name, size, ticket.max_size, self.settings)
        mime = mime_type(name, declared)
        if ticket.accept is not None and not accepted(ticket.accept, name, {mime, essence(declared)}):
            raise Refused(
                415,
                f"{name} is not a type this upload accepts (it accepts {', '.join(ticket.accept)})",
                "type",
            )
        store = self.store
        chunk_size = store.chunk_size
        owner, new_session = session.owner_for(request.cookies) if ticket.private else (None, None)
        upload = Handle(
            storage=new_token(),
            component=ticket.component,
            name=name,
            size=size,
            mime_type=mime,
            chunk_size=chunk_size,
            part_chunks=max(1, PART_TARGET // chunk_size),
            expires=round(time.time() + ticket.upload_lifetime, 3),
            owner=owner,
        )
        # Noted in the expiry journal: an upload never finished is swept with its parts.
        store.begin_parts(upload.storage, upload.chunk_count, upload.expires)
        if store.journal is not None:
            store.journal.start_sweeper(store.sweep)
        response = _json(201, _status_of(upload, self.tickets.dump_handle(upload), [], None))
        if new_session is not None:
            response.headers.append(session.cookie_header(new_session, secure=request.secure))
        return response

    def status(self, upload: Handle, text: str) -> dict[str, Any]:
        store = self.store
        record = store.get(self.tickets.token_of(upload))
        if record is not None:
            return _status_of(upload, text, list(range(upload.part_count)), self.describe(record))
        return _status_of(upload, text, _received(store, upload), None)

    def put_part(self, upload: Handle, text: str, part_text: str) -> dict[str, Any]:
        if not (part_text.isascii() and part_text.isdigit()) or int(part_text) >= upload.part_count:
            raise Refused(
                404, f"this upload has parts 0 to {upload.part_count - 1}, not {part_text[:20]!r}", "part"
            )
        part = int(part_text)
        expected = upload.part_length(part)
        length = self.request.content_length
        if length is not None and length != expected:
            status, what = (413, "too-large") if length > expected else (400, "short")
            raise Refused(status, f"part {part} is {expected} bytes, not {length}", what)
        store = self.store
        token = self.tickets.token_of(upload)
        done = store.get(token)
        if done is None:
            try:
                self._write_part(upload, part)
            finally:
                release_memory()
        complete = self.request.query.get("complete") == "1"
        if complete and done is None:
            done = self._complete(upload, token)
        file = self.describe(done) if complete and done is not None else None
        return {"upload": text, "part": part, "file": file}

    def _write_part(self, upload: Handle, part: int) -> None:
        """Read the part one chunk at a time; write each chunk the store does not have yet."""
        store = self.store
        stream = self.request.body
        first, stop = upload.part_span(part)
        for index in range(first, stop):
            want = min(upload.chunk_size, upload.size - index * upload.chunk_size)
            data = read_exact(stream, want) if stream is not None else b""
            if len(data) < want:
                raise Refused(400, f"part {part} ended early: send it again", "short")
            if not store.has_chunk(upload.storage, index):
                store.write_chunk(upload.storage, index, data)
            del data
        if stream is not None and stream.read(1):
            raise Refused(413, f"part {part} is longer than {upload.part_length(part)} bytes", "too-large")

    def cancel(self, upload: Handle, text: str) -> dict[str, Any]:
        """Remove what was written, unless the upload is complete: a stored file stays."""
        store = self.store
        if store.get(self.tickets.token_of(upload)) is not None:
            return {"upload": text, "cancelled": False}
        store.abort_parts(upload.storage)
        return {"upload": text, "cancelled": True}

    def _complete(self, upload: Handle, token: str) -> FileRecord:
        store = self.store
        timeout = self.settings.timeout
        now = time.time()
        record = FileRecord(
            token=token,
            size=upload.size,
            chunk_size=upload.chunk_size,
            mime_type=upload.mime_type,
            filename=upload.name,
            download=False,
            one_time=False,
            sandbox=True,
            created=now,
            expires=now + timeout if timeout else None,
            owner=upload.owner,
            storage=upload.storage,
        )
        missing = [p for p in range(upload.part_count) if not _has_part(store, upload, p)]
        if missing:
            raise Refused(409, f"parts {missing} never arrived: send them again", "missing", missing=missing)
        # Noted again for the file's own expiry: the note of the start was for the upload's deadline.
        store.begin_parts(upload.storage, upload.chunk_count, record.expires)
        return store.complete_parts(record)

    def describe(self, record: FileRecord) -> dict[str, Any]:
        return describe(self.tickets, record, self.request.route_base)


# -- helpers -------------------------------------------------------------------------------


def describe(tickets: Tickets, record: FileRecord, route_base: str) -> dict[str, Any]:
    """What the component puts in its ``value`` for a finished upload."""
    return {
        "name": record.filename,
        "size": record.size,
        "type": record.mime_type,
        "url": file_url(route_base, record),
        "receipt": tickets.receipt(record.token),
    }


def _status_of(upload: Handle, text: str, received: list[int], file: Any) -> dict[str, Any]:
    return {
        "upload": text,
        "part_size": upload.part_size,
        "parts": upload.part_count,
        "received": received,
        "file": file,
    }


def _received(store: Any, upload: Handle) -> list[int]:
    return [p for p in range(upload.part_count) if _has_part(store, upload, p)]


def _has_part(store: Any, upload: Handle, part: int) -> bool:
    first, stop = upload.part_span(part)
    return all(store.has_chunk(upload.storage, index) for index in range(first, stop))


def _json(status: int, body: dict[str, Any]) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", "application/json"), *_NO_STORE], data)


def _refuse(store: ChunkStore, err: Refused) -> Response:
    # What is left of a refused request's body is drained by the server (gunicorn, werkzeug)
    # before the connection takes the next request.
    store.events.emit("failed", detail=f"upload refused ({err.status}): {err}")
    return _json(err.status, {"error": str(err), "reason": err.reason, **err.extra})
