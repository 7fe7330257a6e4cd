"""Which format a converted value is written in, and what it needs to be written.

The format is the file name's extension; without one, the mime type's; without
either, the converter's default. ``File(df, filename="x.xlsx")``, ``FileOutput(...,
filename="plot.svg")`` and ``register(fig, mime_type="application/pdf")`` all say it
the same way, at the level where the file's options are set.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from ...exc import UnsupportedValueError
from ...naming import OCTET_STREAM, essence, extension_for

__all__ = ["choose_format", "require", "resolve", "type_name"]

#: Extensions that name the same format; converters see the canonical one.
ALIASES = {"jpg": "jpeg", "tif": "tiff", "htm": "html"}

# Types whose extension neither our table (naming.py) nor Python's mimetypes knows.
_FORMAT_BY_MIME = {
    "application/vnd.apache.arrow.file": "feather",
    "application/x-feather": "feather",
    "application/x-npy": "npy",
    "application/vnd.ms-excel.sheet": "xlsx",
}


def choose_format(filename: str | None, mime_type: str | None) -> str | None:
    """The format asked for: ``"csv"`` for ``data.CSV``, ``"svg"`` for ``image/svg+xml``.

    ``None`` when neither says (no extension, no mime type, or ``application/octet-stream``):
    the converter's default then.
    """
    if filename:
        name = filename.replace("\\", "/").rsplit("/", 1)[-1]
        dot = name.rfind(".")
        if 0 < dot < len(name) - 1:
            return name[dot + 1 :].lower()
    if not mime_type or essence(mime_type) == OCTET_STREAM:
        return None
    kind = essence(mime_type)
    if kind in _FORMAT_BY_MIME:
        return _FORMAT_BY_MIME[kind]
    extension = extension_for(kind)
    if extension == ".bin":
        raise UnsupportedValueError(
            f"no file format is known for the mime type {mime_type!r}: give the file a name with "
            "its extension (filename='report.xlsx')"
        )
    return extension[1:]


def resolve(value: Any, fmt: str | None, default: str, formats: tuple[str, ...]) -> str:
    """The canonical format among ``formats`` (``default`` for ``None``), or a clear error."""
    if fmt is None:
        return default
    canonical = ALIASES.get(fmt, fmt)
    if canonical in formats:
        return canonical
    raise UnsupportedValueError(
        f"cannot write a {type_name(value)} as {fmt!r}: its converter writes "
        f"{', '.join(formats)} ({default} by default); give the file name one of these extensions "
        f"or set its mime_type, or register_converter({type(value).__name__}, function) for {fmt!r}"
    )


def require(value: Any, fmt: str, *modules: str, package: str | None = None) -> None:
    """Refuse ``fmt`` unless one of ``modules`` can be imported (checked, not imported).

    ``package`` is what to ``pip install`` (the first module by default).
    """
    if any(installed(module) for module in modules):
        return
    name = package or modules[0]
    others = f" (or {', '.join(modules[1:])})" if len(modules) > 1 else ""
    raise UnsupportedValueError(
        f"writing a {type_name(value)} as {fmt} needs {name}{others}, which is not installed: "
        f"pip install {name}"
    )


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it.

    A module set to ``None`` in ``sys.modules`` is one that imports refuse (how tests
    and some deployments hide a package): it counts as missing.
    """
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def type_name(value: Any) -> str:
    """The value's type as ``module.qualname``, e.g. ``matplotlib.figure.Figure``."""
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"
