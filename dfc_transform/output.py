"""FileOutput: the ``Output`` that marks where a callback returns files."""

from __future__ import annotations

from typing import Any

from dash import ALL, ALLSMALLER, Output

from .callbacks import has_wildcard
from .values import FileOptions

__all__ = ["FileOutput"]


class FileOutput(Output):
    """An ``Output`` whose values are files: the callback returns the file, the
    browser gets its URL.

    The options are the defaults for values returned here; ``File(...)`` overrides
    them per value. See :class:`dfc_transform.values.FileOptions` for their meaning.
    On the ``data`` of a ``dcc.Download``, the file is downloaded under its name
    (see :mod:`dfc_transform.download`).
    """

    def __init__(
        self,
        component_id: Any,
        component_property: str,
        *,
        allow_duplicate: bool = False,
        filename: str | None = None,
        mime_type: str | None = None,
        download: bool = False,
        one_time: bool = False,
        sandbox: bool = True,
    ) -> None:
        super().__init__(component_id, component_property, allow_duplicate)
        self.file_options = FileOptions(filename, mime_type, download, one_time, sandbox)
        #: Set by the FileServeTransform that takes charge of the callback. One that Dash
        #: registers unset was registered around the transform (see :func:`.apps.refuse_unhandled`).
        self.handled = False

    @property
    def is_multi(self) -> bool:
        """``True`` for ``ALL``/``ALLSMALLER`` ids, whose value is a list of files."""
        return has_wildcard(self, ALL, ALLSMALLER)
