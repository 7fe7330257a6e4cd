"""Conditional and range requests (RFC 9110 13 and 14), decided from a request's headers.

Parsed with ``werkzeug.http``'s header helpers where they answer as the RFC does, and by
hand for ``Range``, so that no dependency release changes which ranges are served.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from werkzeug.http import parse_date, parse_etags, parse_if_range_header

from .messages import Headers

__all__ = ["not_modified", "parse_byte_range", "precondition_failed", "requested_span"]

# One byte-range-spec or suffix-range (RFC 9110 14.1.1); digits in ASCII only.
_BYTE_RANGE = re.compile(r"[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")

Span = tuple[int, int] | Literal["unsatisfiable"] | None


def precondition_failed(headers: Headers, etag: str, last_modified: datetime) -> bool:
    """RFC 9110 13.2.2 steps 1-2: ``If-Match`` (strong), else ``If-Unmodified-Since``."""
    if "If-Match" in headers:
        return not parse_etags(headers["If-Match"]).contains(etag)
    since = parse_date(headers.get("If-Unmodified-Since"))
    return since is not None and last_modified > since


def not_modified(headers: Headers, etag: str, last_modified: datetime) -> bool:
    """RFC 9110 13.2.2 steps 3-4: ``If-None-Match`` (weak), else ``If-Modified-Since``.

    Not werkzeug's ``is_resource_modified``: it answers a failed ``If-Match`` with 304.
    """
    if "If-None-Match" in headers:
        return parse_etags(headers["If-None-Match"]).contains_weak(etag)
    since = parse_date(headers.get("If-Modified-Since"))
    return since is not None and last_modified <= since


def requested_span(headers: Headers, size: int, etag: str, last_modified: datetime) -> Span:
    """``(start, stop)`` for a satisfiable single range, ``"unsatisfiable"``, or ``None`` for all.

    ``etag`` is unquoted. An ``If-Range`` that does not match (strongly) asks for the whole file.
    """
    header = headers.get("Range")
    if header is None or size == 0:
        return None
    if_range = headers.get("If-Range")
    if if_range is not None:
        parsed = parse_if_range_header(if_range)
        if parsed.etag is not None:
            # A strong comparison (RFC 9110 13.1.5): a weak tag never matches.
            if parsed.etag != etag or if_range.lstrip().startswith("W/"):
                return None
        elif parsed.date is None or parsed.date != last_modified:
            return None
    return parse_byte_range(header, size)


def parse_byte_range(header: str, size: int) -> Span:
    """One ``Range: bytes=...`` header against a representation of ``size`` bytes (RFC 9110 14.1).

    ``(start, stop)`` for one satisfiable range; ``"unsatisfiable"`` (416) for one range
    that selects nothing: a first byte at or past the end, or a suffix of length 0
    (``bytes=-0``); ``None`` (ignore the header, send the whole file, as 14.2 allows) for
    anything malformed, another unit, or several ranges.
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
