"""What the upload protocol checks and how it reads: limits, types, and bodies a chunk at a time."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from ..naming import OCTET_STREAM, essence, mime_type_for, normalize_mime_type
from ..settings import Settings
from ..units import human_size
from .messages import Readable
from .upload_answers import Refused

__all__ = ["accepted", "check_size", "mime_type", "read_exact", "release_memory"]


def check_size(name: str, size: int, ticket_max: int | None, settings: Settings) -> None:
    limits = [m for m in (ticket_max, settings.max_size, settings.max_total_size) if m is not None]
    if limits and size > min(limits):
        raise Refused(
            413,
            f"{name} is {human_size(size)}; this upload takes files up to {human_size(min(limits))}",
            "too-large",
            limit=min(limits),
        )


def mime_type(name: str, declared: str) -> str:
    """The type the file is served as: from its name, else as the browser said, else bytes."""
    derived = mime_type_for(name)
    if derived is not None:
        return derived
    try:
        return normalize_mime_type(declared) if declared else OCTET_STREAM
    except ValueError:
        return OCTET_STREAM


def accepted(accept: tuple[str, ...], name: str, types: set[str]) -> bool:
    """Whether ``name`` or one of ``types`` matches an ``accept`` entry, as browsers match them."""
    lower = name.lower()
    types = {essence(t) for t in types if t}
    for entry in (a.strip().lower() for a in accept):
        if entry.startswith("."):
            if lower.endswith(entry):
                return True
        elif entry.endswith("/*"):
            if any(t.startswith(entry[:-1]) for t in types):
                return True
        elif entry and entry in types:
            return True
    return False


def _libc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_malloc_trim = _libc_trim()


def release_memory() -> None:
    """Give the pages freed by a part back to the system (glibc only).

    A part passes through buffers of many sizes (the server's socket reads, our chunks),
    and glibc keeps the pages of freed buffers in its arenas, one per thread: over a
    large upload a worker's memory would creep up by hundreds of KiB per part although
    no Python object outlives its request. ``malloc_trim(0)`` returns them; it takes a
    fraction of a millisecond against the milliseconds a part takes to arrive.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


def read_exact(stream: Readable, size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``: fewer only at its end."""
    pieces = []
    got = 0
    while got < size:
        piece = stream.read(size - got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
