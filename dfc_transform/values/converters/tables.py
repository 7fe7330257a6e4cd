"""Built-in converters for tables: pandas DataFrame and Series, polars DataFrame.

CSV by default, as UTF-8. Writer options go to the library's own writer (``to_csv``,
``to_excel``, ``write_parquet``...), so its documentation is ours: ``File(df,
filename="x.xlsx", writer={"index": False, "sheet_name": "Data"})``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from .formats import require, resolve, type_name
from .sink import Written, text_sink

__all__ = ["pandas_object", "polars_frame"]

#: Writers that seek, or that build the whole file in memory when they cannot (a zip
#: archive, Arrow's IPC file): written to a spool on disk, then stored.
_SPOOLED = frozenset({"xlsx", "feather"})
_TEXT = frozenset({"csv", "html"})

PANDAS_FORMATS = ("csv", "xlsx", "parquet", "json", "feather", "html")
POLARS_FORMATS = ("csv", "xlsx", "parquet", "json")


def _written(value: Any, write: Callable[..., object], fmt: str | None, chosen: str) -> Written:
    extension = fmt or chosen
    return Written(
        write,
        name=f"data.{extension}",
        what=f"a {type_name(value)} as {extension}",
        spool=chosen in _SPOOLED,
        charset="utf-8" if chosen in _TEXT else None,
    )


def pandas_object(data: Any, fmt: str | None) -> Written:
    """A pandas ``DataFrame`` or ``Series``: CSV by default; XLSX, Parquet, JSON, Feather, HTML.

    The writers are pandas' own, with pandas' defaults (the index is written unless
    ``writer={"index": False}``). CSV and HTML honour an ``encoding`` writer option
    (``"utf-8-sig"`` puts the byte order mark Excel looks for). XLSX needs openpyxl (or
    XlsxWriter), Parquet and Feather pyarrow.
    """
    chosen = resolve(data, fmt, "csv", PANDAS_FORMATS)
    if chosen == "xlsx":
        require(data, chosen, "openpyxl", "xlsxwriter")
    elif chosen == "parquet":
        require(data, chosen, "pyarrow", "fastparquet")
    elif chosen == "feather":
        require(data, chosen, "pyarrow")
    # A Series has no to_parquet, to_feather or to_html: those write it as a one-column frame.
    frame = data.to_frame() if chosen in ("parquet", "feather", "html") and data.ndim == 1 else data

    def write(sink: IO[bytes], **options: Any) -> None:
        if chosen == "csv":
            frame.to_csv(sink, **{"encoding": "utf-8", **options})
        elif chosen == "html":
            with text_sink(sink, options.pop("encoding", "utf-8")) as text:
                frame.to_html(text, **options)
        else:
            getattr(frame, f"to_{'excel' if chosen == 'xlsx' else chosen}")(sink, **options)

    return _written(data, write, fmt, chosen)


def polars_frame(frame: Any, fmt: str | None) -> Written:
    """A polars ``DataFrame``: CSV by default; XLSX (needs XlsxWriter), Parquet, JSON.

    The writers are polars' own (``write_csv``, ``write_excel``, ``write_parquet``,
    ``write_json``), with their defaults and the value's writer options.
    """
    chosen = resolve(frame, fmt, "csv", POLARS_FORMATS)
    if chosen == "xlsx":
        require(frame, chosen, "xlsxwriter")

    def write(sink: IO[bytes], **options: Any) -> None:
        getattr(frame, f"write_{'excel' if chosen == 'xlsx' else chosen}")(sink, **options)

    return _written(frame, write, fmt, chosen)
