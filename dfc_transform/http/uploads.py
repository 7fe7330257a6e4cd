"""The upload protocol: files sent in parts, straight into the store.

Under the file route (``<prefix>_dash-files/``), every request carries the page's ticket
in the ``X-Upload-Ticket`` header and is checked against it:

=================================  ==========================================================
``POST _upload``                   start: ``{name, size, type, lastModified}`` -> 201, the status
``GET _upload/<handle>``           status: the parts the store has and their CRC-32s, the file if done
``PUT _upload/<handle>/<part>``    one part's bytes (``X-Part-CRC32`` checks them on arrival)
``POST _upload/<handle>``          complete: ``{parts: [crc32, ...]}`` -> the file's description
``DELETE _upload/<handle>``        cancel: what was written goes; ``{cancelled}`` says the end state
=================================  ==========================================================

A status is ``{upload, part_size, parts, received, crc32, file}``; ``file`` is ``null``
until the upload is complete, then ``{name, size, type, url, receipt, last_modified}``,
what the component puts in its ``value``. Errors are ``{error, reason}`` with a 4xx or
5xx status, ``error`` a sentence for the user (see :mod:`.upload_answers` for each).

A part is ``part_size`` bytes (a whole number of the store's chunks; the last part less)
and is read from the request body one chunk at a time, each chunk written as it is
complete: memory stays bounded by one chunk per request, and any worker or host that
shares the backend can take any part, in any order, any number of times. A part counts
only once all of it has arrived (the last complete sender wins), and the completion
names every part's CRC-32: the file is exactly those parts or the completion fails (see
:mod:`dfc_transform.store.parts`). The server keeps no state of its own beyond the
store's: the handle says everything (see :mod:`.tickets`).

On a store that keeps files in a bucket (:class:`~dfc_transform.S3Store`), parts go straight
there: the status carries ``direct``, a presigned ``UploadPart`` URL per part, the browser
PUTs each part to its URL, and the completion has the bucket join the parts once their sizes
are checked (the bucket's ``ListParts`` is what the status calls received). A PUT of a part to
the app is then refused (409). See :mod:`dfc_transform.store.direct_parts`.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from typing import Any

from ..naming import check_filename, essence, safe_filename
from ..settings import Settings
from ..store import ChunkStore, FileRecord, new_token
from . import session
from .files import file_url
from .messages import Request, Response
from .tickets import Handle, Ticket, Tickets
from .upload_answers import Refused, json_answer, refusal, refuse
from .upload_checks import accepted, check_size, mime_type, read_exact, release_memory

__all__ = ["CRC_HEADER", "METHODS", "ROUTE", "TICKET_HEADER", "describe", "handle_upload"]

#: The protocol's segment under the file route.
ROUTE = "_upload"
METHODS = ("GET", "POST", "PUT", "DELETE")
TICKET_HEADER = "X-Upload-Ticket"
CRC_HEADER = "X-Part-CRC32"
#: A part is about this many bytes (a whole number of chunks, at least one).
PART_TARGET = 4 * 1024 * 1024
_MAX_START_BODY = 16 * 1024


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
            return json_answer(200, protocol.status(upload, parts[0]))
        if len(parts) == 1 and method == "POST":
            return json_answer(200, protocol.complete(upload, parts[0]))
        if len(parts) == 1 and method == "DELETE":
            return json_answer(200, protocol.cancel(upload, parts[0]))
        if len(parts) == 2 and method == "PUT":
            return json_answer(200, protocol.put_part(upload, parts[0], parts[1]))
        raise Refused(405, f"{method} is not part of the upload protocol here", "method")
    except Exception as err:
        return refuse(store, refusal(err))
    finally:
        release_memory()


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
            name, size, declared = wanted.get("name"), wanted["size"], str(wanted.get("type") or "")
            modified = wanted.get("lastModified")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise Refused(400, "send JSON {name, size, type} to start an upload", "bad-request") from err
        if name is not None and not isinstance(name, str):
            raise Refused(400, f"name must be a string or null, got {type(name).__name__}", "bad-request")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Refused(400, f"size must be a whole number of bytes, got {size!r}", "bad-request")
        name = safe_filename(name or "") or "file"
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
        # The session whose unfinished uploads are counted together: the browser's, else the page's.
        counted_as = (
            owner or _session_of(request) or hashlib.sha256(ticket_text(request).encode()).hexdigest()[:32]
        )
        storage = new_token()
        part_chunks = _part_chunks(chunk_size, store.uploads.limits.per_session)
        expires = round(time.time() + ticket.upload_lifetime, 3)
        idle = ticket.idle or store.uploads.limits.idle
        if store.direct is not None:
            # The parts go to the bucket, unseen by the app: the upload lives to its deadline.
            part_chunks = store.direct.part_chunks(size, chunk_size, part_chunks)
            idle = max(idle, int(ticket.upload_lifetime))
        store.uploads.start(storage, size, session=counted_as, idle=idle, deadline=expires)
        try:
            direct = store.direct.start(storage) if store.direct is not None else None
        except BaseException:
            store.uploads.forget(storage)  # its bytes are no longer held
            raise
        upload = Handle(
            storage=storage,
            component=ticket.component,
            name=name,
            size=size,
            mime_type=mime,
            chunk_size=chunk_size,
            part_chunks=part_chunks,
            expires=expires,
            owner=owner,
            last_modified=_seconds(modified),
            direct=direct,
        )
        response = json_answer(201, self._status(upload, self.tickets.dump_handle(upload), {}, None))
        if new_session is not None:
            response.headers.append(session.cookie_header(new_session, secure=request.secure))
        return response

    def status(self, upload: Handle, text: str) -> dict[str, Any]:
        store = self.store
        record = store.get(self.tickets.token_of(upload))
        if record is not None:
            return self._status(upload, text, {}, self.describe(record, upload))
        if upload.direct is not None and store.direct is not None:
            store.uploads.check_open(upload.storage)
            received = store.direct.received(upload.storage, upload.direct, _lengths(upload))
            return self._status(upload, text, dict.fromkeys(received, ""), None)
        return self._status(upload, text, store.uploads.received(upload.storage, upload.part_count), None)

    def _status(self, upload: Handle, text: str, received: dict[int, str], file: Any) -> dict[str, Any]:
        status = _status_of(upload, text, received, file)
        if upload.direct is not None and file is None and self.store.direct is not None:
            # Where each part goes: the bucket, by a URL signed for this upload's lifetime.
            status["direct"] = self.store.direct.part_urls(
                upload.storage, upload.direct, upload.part_count, upload.expires
            )
            status["crc32"] = {}
        return status

    def put_part(self, upload: Handle, text: str, part_text: str) -> dict[str, Any]:
        if (
            not (part_text.isascii() and part_text.isdigit() and len(part_text) <= 9)
            or int(part_text) >= upload.part_count
        ):
            raise Refused(
                404, f"this upload has parts 0 to {upload.part_count - 1}, not {part_text[:20]!r}", "part"
            )
        if upload.direct is not None:
            raise Refused(409, "the parts of this upload go straight to the file store, not here", "direct")
        part = int(part_text)
        expected = upload.part_length(part)
        length = self.request.content_length
        if length is not None and length != expected:
            status, what = (413, "too-large") if length > expected else (400, "short")
            raise Refused(status, f"part {part} is {expected} bytes, not {length}", what)
        declared = self.request.headers.get(CRC_HEADER)
        if declared is not None and not _is_crc(declared):
            raise Refused(
                400, f"{CRC_HEADER} must be 8 hexadecimal digits, got {declared[:20]!r}", "bad-request"
            )
        done = self.store.get(self.tickets.token_of(upload))
        if done is not None:
            # Complete already (this is a part sent again whose answer was lost): nothing to write.
            return {"upload": text, "part": part, "crc32": declared, "file": self.describe(done, upload)}
        uploads = self.store.uploads
        attempt = uploads.begin_attempt(upload.storage, part, expected, upload.part_count)
        try:
            crc = self._receive(upload, part, attempt)
            if declared is not None and declared.lower() != crc:
                raise Refused(
                    400, f"part {part} arrived damaged (CRC-32 {crc}, not {declared}): send it again", "short"
                )
        except BaseException:
            uploads.abandon(upload.storage, attempt)
            raise
        uploads.publish(upload.storage, part, attempt, crc, expected)
        return {"upload": text, "part": part, "crc32": crc}

    def _receive(self, upload: Handle, part: int, attempt: int) -> str:
        """Read the part one chunk at a time into the attempt's keys; return its CRC-32."""
        uploads = self.store.uploads
        stream = self.request.body
        first, stop = upload.part_span(part)
        crc = 0
        for index in range(first, stop):
            want = min(upload.chunk_size, upload.size - index * upload.chunk_size)
            data = read_exact(stream, want) if stream is not None else b""
            if len(data) < want:
                raise Refused(400, f"part {part} ended early: send it again", "short")
            crc = zlib.crc32(data, crc)
            uploads.write_chunk(upload.storage, attempt, index - first, data)
            del data
        if stream is not None and stream.read(1):
            raise Refused(413, f"part {part} is longer than {upload.part_length(part)} bytes", "too-large")
        return f"{crc & 0xFFFFFFFF:08x}"

    def complete(self, upload: Handle, text: str) -> dict[str, Any]:
        body = self.request.body
        limit = 16 * upload.part_count + 1024
        data = read_exact(body, limit + 1) if body is not None else b""
        try:
            crcs = json.loads(data)["parts"] if len(data) <= limit else None
        except (ValueError, KeyError, TypeError) as err:
            raise Refused(
                400, "send JSON {parts: [crc32, ...]} to complete an upload", "bad-request"
            ) from err
        if not (
            isinstance(crcs, list)
            and len(crcs) == upload.part_count
            and all(isinstance(c, str) and _is_crc(c) for c in crcs)
        ):
            raise Refused(
                400, f"a completion names the CRC-32 of each of the {upload.part_count} parts", "bad-request"
            )
        timeout = self.settings.timeout
        now = time.time()
        record = FileRecord(
            token=self.tickets.token_of(upload),
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
        store = self.store
        if upload.direct is not None and store.direct is not None:
            # The bucket checks what it received; the sizes of the parts are checked here.
            done = store.direct.complete(record, upload.direct, _lengths(upload), store.lifecycle)
        else:
            done = store.uploads.complete(
                record, [c.lower() for c in crcs], upload.part_chunks, store.lifecycle
            )
        return {"upload": text, "file": self.describe(done, upload)}

    def cancel(self, upload: Handle, text: str) -> dict[str, Any]:
        """Remove what was written, unless the upload is complete: a stored file stays."""
        cancelled = self.store.uploads.cancel(upload.storage, self.tickets.token_of(upload))
        return {"upload": text, "cancelled": cancelled}

    def describe(self, record: FileRecord, upload: Handle) -> dict[str, Any]:
        return describe(self.tickets, record, self.request.route_base, upload.last_modified)


# -- helpers -------------------------------------------------------------------------------


def describe(
    tickets: Tickets, record: FileRecord, route_base: str, last_modified: float | None = None
) -> dict[str, Any]:
    """What the component puts in its ``value`` for a finished upload."""
    return {
        "name": record.filename,
        "size": record.size,
        "type": record.mime_type,
        "url": file_url(route_base, record),
        "receipt": tickets.receipt(record.token, last_modified),
        "last_modified": last_modified,
    }


def _status_of(upload: Handle, text: str, received: dict[int, str], file: Any) -> dict[str, Any]:
    return {
        "upload": text,
        "part_size": upload.part_size,
        "parts": upload.part_count,
        "received": sorted(received) if file is None else list(range(upload.part_count)),
        "crc32": {str(p): c for p, c in received.items()},
        "file": file,
    }


def _lengths(upload: Handle) -> list[int]:
    return [upload.part_length(p) for p in range(upload.part_count)]


def _part_chunks(chunk_size: int, per_session: int) -> int:
    """Chunks per part: about :data:`PART_TARGET` bytes, and no more than a quarter of what
    one browser's unfinished uploads may hold (so that small limits still allow retries)."""
    target = min(PART_TARGET, per_session // 4)
    return max(1, target // chunk_size)


def _is_crc(text: str) -> bool:
    return len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text)


def _seconds(value: Any) -> float | None:
    """A browser's ``lastModified`` (milliseconds since the epoch) in seconds, or ``None``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e15:
        return value / 1000
    return None


def _session_of(request: Request) -> str | None:
    session_id = request.cookies.get(session.COOKIE)
    return session.digest(session_id) if session_id else None


def ticket_text(request: Request) -> str:
    return request.headers.get(TICKET_HEADER, "")
