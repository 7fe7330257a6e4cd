"""What a callback may return, and how it becomes bytes.

- :mod:`.sources`: sorting a returned value into a buffer, a stream, a path or a writer;
- :mod:`.file`: ``File(...)``, a value with options of its own;
- :mod:`.converters`: figures, images and tables written in the format asked for;
- :mod:`.generated`: generators of bytes, stored as they are made;
- :mod:`.bundles`: zip bundles of several values;
- :mod:`.inline`: small files put into the output as ``data:`` URIs.
"""

from __future__ import annotations

from .converters import find_converter, register_converter
from .file import File, WithWriter
from .sources import ACCEPTED, Source, to_source

__all__ = ["ACCEPTED", "File", "Source", "WithWriter", "find_converter", "register_converter", "to_source"]
