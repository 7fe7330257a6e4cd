"""Uploads: files sent by the ``Upload`` component in parts, straight into the store.

- :mod:`.tickets`: the signed ticket, upload handle and receipt;
- :mod:`.protocol`: the HTTP protocol under the file route (start, parts, status, cancel);
- :mod:`.pages`: the ticket put in each ``Upload`` the app sends to a browser;
- :mod:`.inputs`: ``FileInput``/``FileState`` and the conversion of a callback's arguments;
- :mod:`.files`: ``UploadedFile`` and its stream over the chunks.
"""

from __future__ import annotations

from .files import UploadedFile
from .inputs import MARK, FileInput, FileState, has_file_inputs, to_uploaded, wrap_inputs
from .protocol import METHODS, ROUTE, add_routes, handle_request

__all__ = [
    "MARK",
    "METHODS",
    "ROUTE",
    "FileInput",
    "FileState",
    "UploadedFile",
    "add_routes",
    "handle_request",
    "has_file_inputs",
    "to_uploaded",
    "wrap_inputs",
]
