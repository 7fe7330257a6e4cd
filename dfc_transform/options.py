"""The file options: how one file is served, in one place with their defaults.

``FileOutput``, ``File``, ``register()`` and the service's defaults all take these
options by name (``**options``) and build a :class:`FileOptions` from them; adding
an option means adding a field here (and its key to :class:`OptionArgs`, which only
tells type checkers the names; a test keeps the two alike).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypedDict

from .exc import InvalidOptionError

__all__ = ["DEFAULTS", "FileOptions", "OptionArgs", "options_from"]


@dataclass(frozen=True)
class FileOptions:
    """How one file is served. ``None`` means "not set here": the next level decides.

    The levels, most specific first: :class:`~dfc_transform.File`, then the
    ``FileOutput`` or ``register()`` call, then the service's defaults (:data:`DEFAULTS`,
    with ``private`` as the service was given).
    """

    #: Name shown in the URL and offered when saving; derived when ``None``.
    filename: str | None = None
    #: ``Content-Type``; from ``filename`` when ``None``, else ``application/octet-stream``.
    mime_type: str | None = None
    #: ``True`` for ``Content-Disposition: attachment`` (a download), else inline.
    download: bool | None = None
    #: ``True`` to remove the file after its first complete transfer.
    one_time: bool | None = None
    #: ``False`` lifts ``Content-Security-Policy: sandbox`` from types that are not known
    #: to be inert (HTML, SVG, XML, ...). Only for content you trust: script in it runs
    #: with the app's origin. ``"allow-scripts"``: script runs, in an opaque origin that
    #: cannot read the app's cookies or storage (what plotly figures as HTML get by default).
    sandbox: bool | str | None = None
    #: ``True``: the URL opens only in the browser session that caused it (see
    #: :mod:`dfc_transform.session`); to anyone else it is a 404.
    private: bool | None = None
    #: Files smaller than this many bytes go out as ``data:`` URIs, not stored (see
    #: :mod:`dfc_transform.values.inline` for where); ``0`` never. ``None``: the transform's
    #: ``inline_below``, for the ``src`` of pictures, sounds and videos only.
    inline_below: int | None = None
    #: The size of content made while it is served (a generator), when known beforehand: sent as
    #: ``Content-Length`` from the first byte, and the content must be exactly that long.
    size: int | None = None

    def over(self, defaults: FileOptions) -> FileOptions:
        """These options, with unset ones taken from ``defaults``."""
        # Field by field rather than with dataclasses.replace(), which showed in profiles of
        # small registrations: this runs for every file a callback returns.
        values = []
        for name in OPTION_NAMES:
            mine = getattr(self, name)
            values.append(getattr(defaults, name) if mine is None else mine)
        return FileOptions(*values)


OPTION_NAMES = tuple(f.name for f in fields(FileOptions))

#: What an option that nobody set means.
DEFAULTS = FileOptions(download=False, one_time=False, sandbox=True, private=False)


class OptionArgs(TypedDict, total=False):
    """The options as keyword arguments (see :class:`FileOptions` for their meaning)."""

    filename: str | None
    mime_type: str | None
    download: bool | None
    one_time: bool | None
    sandbox: bool | str | None
    private: bool | None
    inline_below: int | None
    size: int | None


def options_from(given: dict[str, Any], where: str) -> FileOptions:
    """:class:`FileOptions` from keyword arguments, refusing unknown names clearly."""
    unknown = sorted(set(given) - set(OPTION_NAMES))
    if unknown:
        raise InvalidOptionError(
            f"{where} got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"the options are {', '.join(OPTION_NAMES)}"
        )
    size = given.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidOptionError(f"{where} got size={size!r}; it takes a number of bytes >= 0")
    inline = given.get("inline_below")
    if inline is not None and (not isinstance(inline, int) or isinstance(inline, bool) or inline < 0):
        raise InvalidOptionError(f"{where} got inline_below={inline!r}; it takes a number of bytes >= 0")
    sandbox = given.get("sandbox")
    if sandbox is not None and not isinstance(sandbox, bool) and sandbox != "allow-scripts":
        raise InvalidOptionError(f"{where} got sandbox={sandbox!r}; it takes True, False or 'allow-scripts'")
    return FileOptions(**given)
