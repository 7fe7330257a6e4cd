"""Small files put into the output as ``data:`` URIs instead of being stored and served.

Below a size, one request beats two: the callback's answer carries the file, as a bundler
inlines small assets (Vite's ``assetsInlineLimit``, webpack's ``dataUrlCondition``). A
``data:`` URI behaves as the served URL would only in some places, so a file is inlined
only where it does:

- as the ``src`` of a picture, a sound or a video (an ``html.Img``, ``html.Audio``,
  ``html.Video``...): an inert media type, which runs no script wherever it is shown;
- not as a link's ``href`` (a ``data:`` URI carries no file name and cannot be shared), nor
  at a ``data`` property (a ``dcc.Store`` there expects the URL), unless the output or the
  file asks for it with ``inline_below``: a ``data`` property then gets what
  ``dcc.send_bytes`` gives, which a ``dcc.Download`` saves under the file's name;
- never a ``one_time`` file (the point of which is a URL that opens once), nor active
  content (HTML, SVG, XML...), which would run outside the sandbox the file route gives it.

A ``private`` file may be inlined: its bytes go only to the browser session whose callback
made them, as they would with the URL.
"""

from __future__ import annotations

import base64

from ..naming import essence, is_inert_type

__all__ = ["INLINE_PROPERTIES", "data_uri", "may_inline", "send_dict"]

#: The properties where a data: URI of an inert media type behaves as a served URL does.
INLINE_PROPERTIES = frozenset({"src"})


def may_inline(mime_type: str, prop: str | None, *, asked: bool, one_time: bool) -> bool:
    """Whether a file of ``mime_type`` at property ``prop`` may go out as a ``data:`` URI.

    ``asked``: the output or the file set ``inline_below`` itself (then any property will do).
    """
    if one_time or not is_inert_type(mime_type):
        return False
    kind = essence(mime_type)
    media = kind.startswith(("image/", "audio/", "video/"))
    return asked or (media and prop in INLINE_PROPERTIES)


def data_uri(content: bytes, mime_type: str) -> str:
    """``content`` as a ``data:`` URI of ``mime_type`` (its parameters kept: ``charset``)."""
    return f"data:{mime_type.replace(' ', '')};base64,{base64.b64encode(content).decode('ascii')}"


def send_dict(content: bytes, filename: str, mime_type: str) -> dict[str, object]:
    """``content`` as ``dcc.send_bytes`` gives it to a ``dcc.Download``: saved as ``filename``."""
    return {
        "content": base64.b64encode(content).decode("ascii"),
        "filename": filename,
        "type": mime_type,
        "base64": True,
    }
