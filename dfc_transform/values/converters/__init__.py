"""Converters: what a callback returns that is not yet a file (a figure, an image, a table).

A converter is ``function(value, fmt)``: it gets the value and the format asked for (the
file name's extension without its dot, e.g. ``"csv"``, else the mime type's, else
``None``) and returns anything a ``FileOutput`` accepts (bytes, a buffer, a file object,
a path). :func:`register_converter` adds one::

    def write_geojson(frame, fmt):
        return io.StringIO(frame.to_json())

    register_converter(geopandas.GeoDataFrame, write_geojson)

Converters are found by the value's type, walking ``type(value).__mro__`` and matching
each class's qualified name (``module.qualname``): the built-ins are registered by
name (``"matplotlib.figure.Figure"``), so no library is imported until one of its values
arrives. The built-ins return a :class:`~.sink.Written`, which writes into the store as
the library writes, with the value's ``writer`` options (see :mod:`.sink`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .formats import choose_format, type_name
from .images import matplotlib_figure, ndarray, pil_image, plotly_figure
from .sink import Written
from .tables import pandas_object, polars_frame

__all__ = ["Converter", "Written", "choose_format", "find_converter", "register_converter", "type_name"]

#: ``function(value, fmt)`` returning anything a ``FileOutput`` accepts.
Converter = Callable[[Any, str | None], Any]
C = TypeVar("C", bound=Converter)

# One registry for the built-ins and the user's, keyed by qualified class name.
_REGISTRY: dict[str, Converter] = {}


def register_converter(cls: type | str, function: C) -> C:
    """Make ``function(value, fmt)`` the converter of ``cls`` and its subclasses.

    ``cls`` is a class or its qualified name (``"mypackage.models.Report"``), which
    registers it without importing it. A later registration of the same class replaces
    the earlier one, a built-in's too; a subclass's converter wins over its base's.
    ``fmt`` is the extension asked for without its dot (``"csv"``), or ``None`` when
    neither the file name nor the mime type says; ``function`` returns anything a
    ``FileOutput`` accepts, and raises :class:`~dfc_transform.exc.UnsupportedValueError`
    for a format it cannot write. Returns ``function``.
    """
    if not callable(function):
        raise TypeError(f"register_converter() needs a function(value, fmt), got {function!r}")
    if isinstance(cls, str):
        name = cls
    elif isinstance(cls, type):
        name = f"{cls.__module__}.{cls.__qualname__}"
    else:
        raise TypeError(f"register_converter() needs a class or its qualified name, got {cls!r}")
    _REGISTRY[name] = function
    return function


def find_converter(value: Any) -> Converter | None:
    """The converter of ``value``'s type or of its nearest base class that has one."""
    for cls in type(value).__mro__:
        function = _REGISTRY.get(f"{cls.__module__}.{cls.__qualname__}")
        if function is not None:
            return function
    return None


# The built-ins, by the names of the classes that define the writers we call. pandas'
# NDFrame is the base of DataFrame and Series, whatever module pandas shows them in;
# plotly's BaseFigure is that of Figure and FigureWidget.
for _name, _function in (
    ("matplotlib.figure.Figure", matplotlib_figure),
    ("PIL.Image.Image", pil_image),
    ("numpy.ndarray", ndarray),
    ("plotly.basedatatypes.BaseFigure", plotly_figure),
    ("pandas.core.generic.NDFrame", pandas_object),
    ("polars.dataframe.frame.DataFrame", polars_frame),
):
    register_converter(_name, _function)
