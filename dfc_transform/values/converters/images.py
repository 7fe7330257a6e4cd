"""Built-in converters for pictures: matplotlib and plotly figures, PIL images, numpy arrays.

Each takes ``(value, fmt)`` like any converter and returns a :class:`~.sink.Written`;
the library is used only through the value it made (a figure's own ``savefig``), so
nothing is imported here until such a value arrives.
"""

from __future__ import annotations

from typing import IO, Any

from ...exc import UnsupportedValueError
from .formats import installed, require, resolve, type_name
from .sink import Written, text_sink

__all__ = ["matplotlib_figure", "ndarray", "pil_image", "plotly_figure"]

#: Pillow's format names for the extensions it writes.
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF", "bmp": "BMP"}


_KALEIDO = (
    "kaleido, which is not installed: pip install kaleido (kaleido 1.x drives a Chrome or Chromium it "
    "finds on PATH, or at the path in the BROWSER_PATH environment variable)"
)


def _written(value: Any, write: Any, fmt: str | None, chosen: str, stem: str, **kw: Any) -> Written:
    extension = fmt or chosen
    return Written(write, name=f"{stem}.{extension}", what=f"a {type_name(value)} as {extension}", **kw)


def matplotlib_figure(fig: Any, fmt: str | None) -> Written:
    """A ``matplotlib.figure.Figure``: PNG by default; SVG, PDF, JPEG, WEBP.

    Written with the figure's own ``savefig``: pyplot and its current figure are never
    touched. Writer options go to ``savefig`` (``dpi``, ``transparent``, ``bbox_inches``).
    Written in the caller's thread (matplotlib is not thread-safe), into a spool: the
    rendering is in memory whole anyway, the file written from it mostly smaller.
    """
    chosen = resolve(fig, fmt, "png", ("png", "svg", "pdf", "jpeg", "webp"))

    def write(sink: IO[bytes], **options: Any) -> None:
        fig.savefig(sink, format=chosen, **options)

    return _written(fig, write, fmt, chosen, "figure", spool=True)


def pil_image(image: Any, fmt: str | None) -> Written:
    """A ``PIL.Image.Image``: PNG by default; JPEG, WEBP, GIF, TIFF, BMP.

    Writer options go to ``Image.save`` (``quality``, ``compress_level``, ``optimize``).
    """
    chosen = resolve(image, fmt, "png", tuple(PIL_FORMATS))

    def write(sink: IO[bytes], **options: Any) -> None:
        image.save(sink, format=PIL_FORMATS[chosen], **options)

    # TIFF's writer seeks back to write its offsets.
    return _written(image, write, fmt, chosen, "image", spool=chosen == "tiff")


def ndarray(array: Any, fmt: str | None) -> Written:
    """A ``numpy.ndarray``: NPY by default; PNG (and Pillow's other formats) for uint8 pictures.

    NPY is written without pickles (``allow_pickle=False``; a writer option can allow
    them): whoever loads a served file should not run code from it. A picture is a
    ``uint8`` array of shape ``(h, w)`` (grey), ``(h, w, 3)`` (RGB) or ``(h, w, 4)`` (RGBA).
    """
    chosen = resolve(array, fmt, "npy", ("npy", *PIL_FORMATS))
    if chosen == "npy":

        def write_npy(sink: IO[bytes], **options: Any) -> None:
            import numpy

            numpy.save(sink, array, **{"allow_pickle": False, **options})

        return _written(array, write_npy, fmt, chosen, "array")
    require(array, chosen, "PIL", package="pillow")
    shape: tuple[int, ...] = tuple(array.shape)
    if str(array.dtype) != "uint8" or not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))):
        raise UnsupportedValueError(
            f"writing a {type_name(array)} as {chosen} needs a uint8 array of shape (h, w), (h, w, 3) "
            f"or (h, w, 4); got {array.dtype} of shape {shape}: convert it, e.g. "
            f"(a * 255).clip(0, 255).astype('uint8'), or save it as .npy"
        )

    def write_picture(sink: IO[bytes], **options: Any) -> None:
        from PIL import Image

        Image.fromarray(array).save(sink, format=PIL_FORMATS[chosen], **options)

    return _written(array, write_picture, fmt, chosen, "image", spool=chosen == "tiff")


def plotly_figure(fig: Any, fmt: str | None) -> Written:
    """A plotly ``Figure``: interactive HTML by default; PNG, SVG, PDF, JPEG, WEBP through kaleido.

    The HTML is small: it loads the plotly.js the Dash app already serves for ``dcc.Graph``
    (from the CDN when the app serves its scripts from there) instead of carrying its 4.8 MB;
    outside a Dash callback, or with ``writer={"include_plotlyjs": True}``, it carries it. It is
    served with ``Content-Security-Policy: sandbox allow-scripts``: the figure's script runs,
    in an opaque origin that cannot read the app's cookies or storage (``sandbox=True`` on
    the file turns scripts off, ``sandbox=False`` lifts the sandbox). Writer options go to
    ``write_html`` or ``to_image`` (``width``, ``scale``). A dict with ``data`` and ``layout``
    is not taken for a figure: wrap it in ``Figure(d)``.
    """
    chosen = resolve(fig, fmt, "html", ("html", "png", "svg", "pdf", "jpeg", "webp"))
    if chosen == "html":
        plotlyjs = _served_plotlyjs()

        def write_html(sink: IO[bytes], **options: Any) -> None:
            with text_sink(sink, options.pop("encoding", "utf-8")) as text:
                fig.write_html(text, **{"include_plotlyjs": plotlyjs, "full_html": True, **options})

        return _written(fig, write_html, fmt, chosen, "figure", charset="utf-8", sandbox="allow-scripts")
    if not installed("kaleido"):
        raise UnsupportedValueError(f"writing a {type_name(fig)} as {chosen} needs {_KALEIDO}")

    def write_image(sink: IO[bytes], **options: Any) -> None:
        sink.write(fig.to_image(format=chosen, **options))

    # kaleido hands the picture over whole (its browser renders it): no thread of ours to stream it.
    return _written(fig, write_image, fmt, chosen, "figure", spool=True)


def _served_plotlyjs() -> str | bool:
    """Where the Dash app whose callback runs now has the plotly.js of ``dcc.Graph``; ``True``
    (carry it) outside a callback."""
    try:
        import dash

        dash.callback_context.outputs_list  # noqa: B018 - raises outside a callback
        app = dash.get_app()
    except Exception:  # no Dash callback: the HTML stands alone
        return True
    if not app.config.serve_locally:
        from plotly.offline import get_plotlyjs_version

        return f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
    return str(app.get_relative_path("/_dash-component-suites/plotly/package_data/plotly.min.js"))
