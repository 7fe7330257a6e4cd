"""FileOutput: the ``Output`` that marks where a callback returns files."""

from __future__ import annotations

from typing import Any, Unpack

from dash import ALL, ALLSMALLER, Output
from dash._utils import stringify_id

from ..exc import FileServeError
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

    def component_id_str(self) -> str:
        # Dash calls this as it registers a callback. A FileOutput that no transform took charge
        # of would reach the browser as JSON and fail at the first click ("not JSON
        # serializable"): refuse it now, where it is registered, saying what to do instead.
        if not self.handled:
            raise FileServeError(_unhandled(self))
        return super().component_id_str()

    def __str__(self) -> str:
        return f"{stringify_id(self.component_id)}.{self.component_property}"

    @property
    def is_multi(self) -> bool:
        """``True`` for ``ALL``/``ALLSMALLER`` ids, whose value is a list of files."""
        return has_wildcard(self, ALL, ALLSMALLER)


def _unhandled(output: FileOutput) -> str:
    """Why ``output`` cannot be registered as it is, and what to do instead."""
    return (
        f"FileOutput {output} was registered with Dash directly (the callback of a dash.Dash app, "
        "dash.callback, a DashProxy without a FileServeTransform, or a DashProxy's callback after "
        "its first request), which would send the file to the browser as JSON. Register it through "
        "the transform: files = FileServeTransform(); files.init_app(app), then @files.callback(...); "
        "or make the app a DashProxy(transforms=[FileServeTransform()]) and use @app.callback or "
        "dash_extensions.enrich.callback before its first request"
    )
