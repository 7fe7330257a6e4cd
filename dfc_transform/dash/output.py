"""FileOutput: the ``Output`` that marks where a callback returns files."""

from __future__ import annotations

from typing import Any, Unpack

from dash import ALL, ALLSMALLER, Output

from ..options import OptionArgs, options_from
from .callbacks import has_wildcard

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
        **options: Unpack[OptionArgs],
    ) -> None:
        super().__init__(component_id, component_property, allow_duplicate)
        self.file_options = options_from(
            dict(options), f"FileOutput({component_id!r}, {component_property!r})"
        )
        #: Set by the FileServeTransform that takes charge of the callback. One that Dash
        #: registers unset was registered around the transform (see :func:`.apps.refuse_unhandled`).
        self.handled = False

    @property
    def is_multi(self) -> bool:
        """``True`` for ``ALL``/``ALLSMALLER`` ids, whose value is a list of files."""
        return has_wildcard(self, ALL, ALLSMALLER)
