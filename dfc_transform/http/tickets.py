"""Signed tokens of the upload protocol: tickets, upload handles and receipts.

Three kinds, each signed with itsdangerous under its own salt, so that none can
stand for another:

- the **ticket** is put in the props of every ``Upload`` component when the page (or
  the callback answer) that holds it is serialised: only a page the app served can
  upload. It names the component and carries its limits (``max_size``, ``accept``,
  ``private``) and an expiry, so that the server enforces what the browser was told;
- the **handle** names one upload in progress: where its chunks go, its name, size and
  type, its part layout and its deadline. The server keeps no other state: any worker
  (or host sharing the backend) can take any part;
- the **receipt** is given back with the finished file and comes back in the component's
  ``value``: only files that really were uploaded become ``UploadedFile`` objects.

The key is 32 random bytes kept in the backend under ``dfc:[<namespace>:]upload-key``,
made by whichever process needs it first (the backend's atomic ``add``): every process
and host that shares the store shares it, whatever the server's ``secret_key`` (DashProxy
makes up a random one per process when none is set).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import weakref
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from ..store import TOKEN_BYTES, ChunkStore

__all__ = ["Handle", "Ticket", "TicketError", "Tickets", "id_key"]

#: How long a ticket minted with a page stays good for starting uploads.
TICKET_LIFETIME = 12 * 3600
#: How long an upload may take from its start to its last part; its parts are swept after.
UPLOAD_LIFETIME = 6 * 3600

_keys: weakref.WeakKeyDictionary[ChunkStore, bytes] = weakref.WeakKeyDictionary()


class TicketError(Exception):
    """A ticket, handle or receipt that is forged, damaged, expired or for something else.

    :param reason: ``"forged"`` or ``"expired"``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def id_key(component_id: Any) -> str:
    """One string per component id (dict ids whatever the order of their keys)."""
    if isinstance(component_id, dict):
        return json.dumps(component_id, sort_keys=True, separators=(",", ":"), default=str)
    return str(component_id)


@dataclass(frozen=True)
class Ticket:
    """What a page's ``Upload`` may upload."""

    #: The component the ticket was minted for (:func:`id_key`).
    component: str
    #: Unix time after which no upload may start or go on with it.
    expires: float
    #: Largest file, in bytes; ``None``: only the service's ``max_size`` applies.
    max_size: int | None
    #: The ``accept`` entries (``.csv``, ``text/csv``, ``image/*``); ``None``: any type.
    accept: tuple[str, ...] | None
    #: Bind uploaded files to the uploading browser's session.
    private: bool
    #: Seconds an upload may take before its parts are swept (the ceiling of a slow one).
    upload_lifetime: int
    #: Seconds without a new part after which an upload is given up; ``None``: the store's default.
    idle: int | None = None


@dataclass(frozen=True)
class Handle:
    """One upload in progress; every field comes from the server, signed."""

    storage: str
    component: str
    name: str
    size: int
    mime_type: str
    chunk_size: int
    #: Chunks per part: a part is ``chunk_size * part_chunks`` bytes, the last one less.
    part_chunks: int
    expires: float
    owner: str | None
    #: The file's modification time as the browser said (seconds since the epoch), or ``None``.
    last_modified: float | None = None
    #: The id of the bucket's multipart upload the parts go straight to; ``None``: they come
    #: to the app (see :mod:`dfc_transform.store.direct_parts`).
    direct: str | None = None

    @property
    def part_size(self) -> int:
        return self.chunk_size * self.part_chunks

    @property
    def chunk_count(self) -> int:
        return -(-self.size // self.chunk_size)

    @property
    def part_count(self) -> int:
        """Parts of the upload; an empty file has one, empty, part."""
        return max(1, -(-self.size // self.part_size))

    def part_span(self, part: int) -> tuple[int, int]:
        """``(first chunk, stop chunk)`` of ``part``."""
        first = part * self.part_chunks
        return first, min(first + self.part_chunks, self.chunk_count)

    def part_length(self, part: int) -> int:
        start = part * self.part_size
        return max(0, min(self.size, start + self.part_size) - start)


class Tickets:
    """Signs and checks the protocol's tokens with the key shared through ``store``'s backend."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store
        key = _keys.get(store)
        if key is None:
            key = _keys[store] = _shared_key(store)
        self._key = key
        self._tickets = URLSafeSerializer(key, salt="dfc_transform.upload.ticket")
        self._handles = URLSafeSerializer(key, salt="dfc_transform.upload.handle")
        self._receipts = URLSafeSerializer(key, salt="dfc_transform.upload.receipt")

    # -- tickets -------------------------------------------------------------------------

    def issue(
        self,
        component_id: Any,
        *,
        max_size: int | None = None,
        accept: tuple[str, ...] | None = None,
        private: bool = True,
        lifetime: float = TICKET_LIFETIME,
        upload_lifetime: int = UPLOAD_LIFETIME,
        idle: int | None = None,
    ) -> str:
        """A ticket for the component ``component_id``, good for ``lifetime`` seconds."""
        payload = {
            "i": id_key(component_id),
            "e": round(time.time() + lifetime, 3),
            "m": max_size,
            "a": list(accept) if accept is not None else None,
            "p": private,
            "l": upload_lifetime,
            "d": idle,
        }
        return str(self._tickets.dumps(payload))

    def ticket(self, text: str | None) -> Ticket:
        """The ticket ``text``, checked. :raises TicketError: forged, damaged or expired."""
        data = self._load(self._tickets, text, "upload ticket")
        try:
            ticket = Ticket(
                component=str(data["i"]),
                expires=float(data["e"]),
                max_size=None if data["m"] is None else int(data["m"]),
                accept=None if data["a"] is None else tuple(str(a) for a in data["a"]),
                private=bool(data["p"]),
                upload_lifetime=int(data["l"]),
                idle=None if data.get("d") is None else int(data["d"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise TicketError("the upload ticket is damaged", "forged") from err
        if ticket.expires < time.time():
            raise TicketError(
                "the upload ticket of this page has expired: reload the page to upload", "expired"
            )
        return ticket

    # -- handles -------------------------------------------------------------------------

    def dump_handle(self, handle: Handle) -> str:
        payload = [
            handle.storage,
            handle.component,
            handle.name,
            handle.size,
            handle.mime_type,
            handle.chunk_size,
            handle.part_chunks,
            handle.expires,
            handle.owner,
            handle.last_modified,
            handle.direct,
        ]
        return str(self._handles.dumps(payload))

    def handle(self, text: str | None) -> Handle:
        """The upload handle ``text``, checked. :raises TicketError: forged or expired."""
        data = self._load(self._handles, text, "upload handle")
        try:
            handle = Handle(*data)
        except TypeError as err:
            raise TicketError("the upload handle is damaged", "forged") from err
        if handle.expires < time.time():
            raise TicketError("this upload took too long and was given up: start it again", "expired")
        return handle

    def token_of(self, handle: Handle) -> str:
        """The token the finished upload gets: derived from its storage key, so that a
        completion answered twice (a retry, two workers) gives the same file and URL."""
        mac = hmac.new(self._key, b"token\0" + handle.storage.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:TOKEN_BYTES]).rstrip(b"=").decode("ascii")

    # -- receipts ------------------------------------------------------------------------

    def receipt(self, token: str, last_modified: float | None = None) -> str:
        """The receipt of the finished upload ``token`` (with the file's time as the browser said)."""
        return str(self._receipts.dumps([token, last_modified]))

    def token_of_receipt(self, text: Any) -> tuple[str, float | None]:
        """The token a receipt stands for, and the file's time. :raises TicketError: not one of ours."""
        data = self._load(self._receipts, text if isinstance(text, str) else None, "upload receipt")
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not isinstance(data[0], str)
            or not isinstance(data[1], (int, float, type(None)))
        ):
            raise TicketError("the upload receipt is damaged", "forged")
        return data[0], None if data[1] is None else float(data[1])

    @staticmethod
    def _load(serializer: URLSafeSerializer, text: str | None, what: str) -> Any:
        if not text or len(text) > 8192:
            raise TicketError(f"no valid {what} was sent", "forged")
        try:
            return serializer.loads(text)
        except BadSignature as err:
            raise TicketError(f"the {what} is not one this app signed", "forged") from err


def _shared_key(store: ChunkStore) -> bytes:
    """The key of the protocol, kept in the backend; made by the first process that asks."""
    return store.keys.shared_secret("upload-key", store.ledger.exclusive())
