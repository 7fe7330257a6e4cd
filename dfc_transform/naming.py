"""File names and mime types: derive them, make them safe, put them in headers."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from urllib.parse import quote

# The platform's mime table (/etc/mime.types, the Windows registry) differs from
# machine to machine; these are the types users serve most, pinned so that every
# host of one app answers alike.
_MIME_BY_EXT: dict[str, str] = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".xml": "application/xml",
    ".json": "application/json",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
    ".parquet": "application/vnd.apache.parquet",
}
_EXT_BY_MIME: dict[str, str] = {}
for _ext, _mime in _MIME_BY_EXT.items():
    _EXT_BY_MIME.setdefault(_mime, _ext)

OCTET_STREAM = "application/octet-stream"

# Types a browser renders without running script in them (images, media, text, PDF in its
# own viewer). Everything else is sandboxed when rendered: an allow-list, not a list of active
# types, so that a type nobody thought of (text/xsl, a new +xml type) is safe by default.
INERT_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/tiff",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "text/plain",
        "text/csv",
        "text/tab-separated-values",
        "application/json",
        # Chromium's PDF viewer refuses to render inside a CSP sandbox; PDF script runs in
        # the viewer's own process, not in the app's origin.
        "application/pdf",
        "application/octet-stream",
    }
)
_MEDIA_PREFIXES = ("audio/", "video/")

# RFC 9110 5.6.2 token characters; a media type is token "/" token, then parameters.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"'
_MEDIA_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*((?:;\s*{_TOKEN}=(?:{_TOKEN}|{_QUOTED})\s*)*);?\s*")
_PARAMETER = re.compile(rf";\s*({_TOKEN})=({_TOKEN}|{_QUOTED})")

# Control characters (C0, DEL, C1), line and paragraph separators, and the
# bidirectional controls that make "gpj.exe" display as "exe.jpg".
_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
MAX_NAME_LENGTH = 200


def mime_type_for(filename: str) -> str | None:
    """The mime type of ``filename`` by its extension, or ``None`` if unknown."""
    dot = filename.rfind(".")
    if dot < 0:
        return None
    ext = filename[dot:].lower()
    return _MIME_BY_EXT.get(ext) or mimetypes.guess_type("f" + ext, strict=False)[0]


def extension_for(mime_type: str) -> str:
    """An extension (with its dot) for ``mime_type``; ``.bin`` when none is known."""
    essence = mime_type.split(";", 1)[0].strip().lower()
    return _EXT_BY_MIME.get(essence) or mimetypes.guess_extension(essence, strict=False) or ".bin"


def essence(mime_type: str) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return mime_type.split(";", 1)[0].strip().lower()


def normalize_mime_type(mime_type: str) -> str:
    """``mime_type`` in canonical form (``type/subtype; name=value``), or ``ValueError``.

    Lists (``text/plain, text/html``), control characters and anything else that is
    not one RFC 9110 media type are refused: the value goes into a response header.
    """
    match = _MEDIA_TYPE.fullmatch(mime_type)
    if match is None:
        raise ValueError(
            f"mime_type {mime_type!r} is not one media type of the form 'type/subtype' "
            "(optionally followed by '; name=value' parameters)"
        )
    kind, subtype, params = match.groups()
    parts = [f"{kind.lower()}/{subtype.lower()}"]
    parts += [f"{name.lower()}={value}" for name, value in _PARAMETER.findall(params)]
    return "; ".join(parts)


def is_inert_type(mime_type: str) -> bool:
    """Tell whether a browser renders ``mime_type`` without running script in it."""
    kind = essence(mime_type)
    if kind.startswith(_MEDIA_PREFIXES):
        return not kind.endswith(("+xml", "+json"))
    return kind in INERT_TYPES


def check_filename(name: str) -> None:
    """Refuse a name that cannot travel in a URL and a header: ``ValueError``."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"filename {name!r} is not valid Unicode text ({err.reason} at position {err.start}): "
            "it cannot be put in a URL"
        ) from err


def safe_filename(name: str) -> str:
    """A file name without directories, control characters or leading dots.

    The name is only the last segment of a URL and a header value, never a
    path on disk, but it is echoed to clients and must not smuggle anything.
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip().lstrip(".")
    if len(name) > MAX_NAME_LENGTH:
        dot = name.rfind(".")
        ext = name[dot:] if dot > 0 and len(name) - dot <= 16 else ""
        name = name[: MAX_NAME_LENGTH - len(ext)] + ext
    return name


def name_and_type(
    filename: str | None, mime_type: str | None, *, hint: str | None, charset: str | None
) -> tuple[str, str]:
    """The name and type a file is served with, from what was asked and what the value tells.

    The name asked for, else the value's own (a file's name), made safe; the type asked for,
    else the name's, else text for text and bytes for the rest, with the text's charset; a file
    without a name is ``file`` with the type's extension.

    :raises ValueError: the name or the type asked for cannot be served.
    """
    name = safe_filename(filename or hint or "")
    check_filename(name)
    mime = normalize_mime_type(mime_type) if mime_type else None
    if mime is None:
        mime = mime_type_for(name) if name else None
    if mime is None:
        mime = "text/plain" if charset else OCTET_STREAM
    if charset and "charset=" not in mime:
        mime += f"; charset={charset}"
    return name or "file" + extension_for(mime), mime


def content_disposition(filename: str, *, attachment: bool) -> str:
    """A ``Content-Disposition`` value with an ASCII fallback and RFC 5987 ``filename*``."""
    kind = "attachment" if attachment else "inline"
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    # Quotes, backslashes and semicolons would end or split the quoted string; some
    # browsers percent-decode the plain filename, so "%2F" could become a slash.
    ascii_name = re.sub(r'["\\;%/\x00-\x1f\x7f]', "_", ascii_name).strip()
    if not ascii_name or ascii_name.startswith("."):
        ascii_name = "file" + ascii_name  # "日本.csv" -> "file.csv", not a hidden ".csv"
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
