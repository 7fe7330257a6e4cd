"""How the upload protocol answers: JSON bodies, and every error as a status and a sentence.

Each refusal carries ``{error, reason}``: ``error`` a sentence the ``Upload`` component shows
as it is, ``reason`` a word it acts on (``busy`` and ``backend`` are sent again after a pause,
``expired`` asks for a new page, the others stop the file). :func:`refusal` maps each of the
store's errors to its answer in one place, so that the same failure gets the same status
whatever step of the protocol met it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..exc import (
    BackendUnavailableError,
    ContentMissingError,
    FileServeError,
    FileTooLargeError,
    PartsMismatchError,
    StoreFullError,
    UploadGoneError,
    UploadLimitError,
)
from ..store import ChunkStore
from .messages import Response
from .tickets import TicketError

__all__ = ["Refused", "json_answer", "refusal", "refuse"]

logger = logging.getLogger(__name__)

_NO_STORE = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


class Refused(Exception):
    """A request the protocol answers with ``status`` and a sentence for the user."""

    def __init__(self, status: int, message: str, reason: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.extra = extra


def refusal(err: Exception) -> Refused:
    """The answer to an error: a status and a sentence the component shows.

    Retryable ones (the component sends again after a pause): 503 (too many uploads now,
    the store unreachable), 429 (this browser's own unfinished uploads).
    """
    if isinstance(err, Refused):
        return err
    if isinstance(err, TicketError):
        return Refused(410 if err.reason == "expired" else 403, str(err), err.reason)
    if isinstance(err, UploadGoneError):
        return Refused(410, err.message, err.reason)
    if isinstance(err, UploadLimitError):
        status = {"size": 413, "session": 429}.get(err.kind, 503)
        return Refused(status, err.message, "too-large" if err.kind == "size" else "busy", limit=err.limit)
    if isinstance(err, StoreFullError):
        return Refused(507, err.message, "full")
    if isinstance(err, PartsMismatchError):
        reason = "missing" if err.missing and not err.mismatched else "mismatch"
        return Refused(409, err.message, reason, missing=err.missing, mismatched=err.mismatched)
    if isinstance(err, FileTooLargeError):
        return Refused(413, err.message, "too-large")
    if isinstance(err, ContentMissingError):
        return Refused(409, str(err), "missing")
    if isinstance(err, BackendUnavailableError):
        logger.warning("upload failed: %s", err)
        return Refused(503, "the file store cannot be reached; try again", "backend")
    if isinstance(err, FileServeError):  # a name that cannot be served
        return Refused(400, str(err), "refused")
    raise err


def json_answer(status: int, body: dict[str, Any]) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json"), *_NO_STORE]
    if status == 503:
        headers.append(("Retry-After", "10"))
    return Response(status, headers, data)


def refuse(store: ChunkStore, err: Refused) -> Response:
    # What is left of a refused request's body is drained by the server (gunicorn, werkzeug)
    # before the connection takes the next request.
    store.events.emit("failed", detail=f"upload refused ({err.status}): {err}")
    return json_answer(err.status, {"error": str(err), "reason": err.reason, **err.extra})
