"""Figures, images and tables returned to a FileOutput: written in the format asked for, read back.

Every row of the README's table has a round trip here: a real callback returns the value, the test GETs
the served file and parses it with the library that reads that format (PIL opens the PNG, pandas reads
the CSV back equal, ...). Then the choice of format, writer options, register_converter(), the errors
(through a callback, with the callback and output named), the streaming writer and the lazy imports.
"""

from __future__ import annotations

import contextvars
import io
import json
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from dash_extensions.enrich import Input
from matplotlib.figure import Figure
from PIL import Image

import dfc_transform.values.converters
from dfc_transform import File, FileOutput, FileServeError, FileService, register_converter
from dfc_transform.exc import FileTooLargeError, UnsupportedValueError
from dfc_transform.values.converters.sink import PIPE_LIMIT, Written

from .conftest import DashClient, inp, out

pytestmark = [
    # pandas' to_excel through openpyxl, on Python 3.11, warns from inside openpyxl.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:openpyxl.*"),
]

FRAME = pd.DataFrame({"city": ["Köln", "Zürich", "Malmö"], "count": [3, 1, 2], "share": [0.5, 0.25, 0.125]})


def _figure(width: float = 4, height: float = 3, dpi: int = 50) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi)
    fig.subplots().plot([0, 1, 2], [2, 0, 1])
    return fig


def _image(mode: str = "RGB") -> Image.Image:
    """A 40x30 picture of four flat colours (exact through every lossless format, GIF's palette too)."""
    image = Image.new(mode, (40, 30), "white")
    for i, colour in enumerate(["red", "green", "blue", "black"]):
        image.paste(colour, (i * 10, 0, i * 10 + 10, 30))
    return image


def _grey() -> np.ndarray[Any, Any]:
    return np.arange(30 * 40, dtype=np.uint16).reshape(30, 40).astype(np.uint8)


def _open_image(body: bytes, fmt: str, size: tuple[int, int]) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    assert image.format == fmt
    assert image.size == size
    image.load()
    return image


def _same_pixels(body: bytes, fmt: str, expected: Image.Image) -> None:
    image = _open_image(body, fmt, expected.size)
    assert image.convert("RGB").tobytes() == expected.convert("RGB").tobytes()


def _svg(body: bytes) -> None:
    assert ET.fromstring(body).tag == "{http://www.w3.org/2000/svg}svg"


def _pdf(body: bytes) -> None:
    assert body.startswith(b"%PDF-") and body.rstrip().endswith(b"%%EOF")
    assert b"/Type /Page" in body


def _frame_back(read: Callable[[io.BytesIO], pd.DataFrame]) -> Callable[[bytes], None]:
    def check(body: bytes) -> None:
        pd.testing.assert_frame_equal(read(io.BytesIO(body)), FRAME)

    return check


def _polars_back(read: Callable[[io.BytesIO], pl.DataFrame]) -> Callable[[bytes], None]:
    def check(body: bytes) -> None:
        assert read(io.BytesIO(body)).equals(pl.from_pandas(FRAME))

    return check


def _html_table(body: bytes) -> None:
    (table,) = pd.read_html(io.StringIO(body.decode("utf-8")), index_col=0)
    pd.testing.assert_frame_equal(table, FRAME)


def _npy(expected: np.ndarray[Any, Any]) -> Callable[[bytes], None]:
    def check(body: bytes) -> None:
        np.testing.assert_array_equal(np.load(io.BytesIO(body), allow_pickle=False), expected)

    return check


def _picture_of(expected: np.ndarray[Any, Any]) -> Callable[[bytes], None]:
    def check(body: bytes) -> None:
        image = _open_image(body, "PNG", (expected.shape[1], expected.shape[0]))
        np.testing.assert_array_equal(np.asarray(image), expected)

    return check


_RGB = np.asarray(_image())

#: id -> (value factory, FileOutput options, served name, Content-Type, check of the served bytes)
ROUND_TRIPS: dict[str, tuple[Callable[[], Any], dict[str, Any], str, str, Callable[[bytes], object]]] = {
    "matplotlib png by default": (
        _figure,
        {},
        "figure.png",
        "image/png",
        lambda b: _open_image(b, "PNG", (200, 150)),
    ),
    "matplotlib svg": (_figure, {"filename": "plot.svg"}, "plot.svg", "image/svg+xml", _svg),
    "matplotlib pdf by mime type": (
        _figure,
        {"mime_type": "application/pdf"},
        "figure.pdf",
        "application/pdf",
        _pdf,
    ),
    "matplotlib jpeg": (
        _figure,
        {"filename": "plot.jpg"},
        "plot.jpg",
        "image/jpeg",
        lambda b: _open_image(b, "JPEG", (200, 150)),
    ),
    "matplotlib webp": (
        _figure,
        {"filename": "plot.webp"},
        "plot.webp",
        "image/webp",
        lambda b: _open_image(b, "WEBP", (200, 150)),
    ),
    "PIL png by default": (_image, {}, "image.png", "image/png", lambda b: _same_pixels(b, "PNG", _image())),
    "PIL jpeg": (
        _image,
        {"filename": "p.jpeg"},
        "p.jpeg",
        "image/jpeg",
        lambda b: _open_image(b, "JPEG", (40, 30)),
    ),
    "PIL webp lossless": (
        lambda: File(_image(), writer={"lossless": True}),
        {"filename": "p.webp"},
        "p.webp",
        "image/webp",
        lambda b: _same_pixels(b, "WEBP", _image()),
    ),
    "PIL gif": (
        _image,
        {"filename": "p.gif"},
        "p.gif",
        "image/gif",
        lambda b: _same_pixels(b, "GIF", _image()),
    ),
    "PIL tiff": (
        _image,
        {"filename": "p.tif"},
        "p.tif",
        "image/tiff",
        lambda b: _same_pixels(b, "TIFF", _image()),
    ),
    "PIL bmp": (
        _image,
        {"filename": "p.bmp"},
        "p.bmp",
        "image/bmp",
        lambda b: _same_pixels(b, "BMP", _image()),
    ),
    "pandas csv by default": (
        lambda: FRAME,
        {},
        "data.csv",
        "text/csv; charset=utf-8",
        _frame_back(lambda f: pd.read_csv(f, index_col=0)),
    ),
    "pandas xlsx": (
        lambda: FRAME,
        {"filename": "t.xlsx"},
        "t.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _frame_back(lambda f: pd.read_excel(f, index_col=0)),
    ),
    "pandas parquet": (
        lambda: FRAME,
        {"filename": "t.parquet"},
        "t.parquet",
        "application/vnd.apache.parquet",
        _frame_back(pd.read_parquet),
    ),
    "pandas json": (
        lambda: FRAME,
        {"filename": "t.json"},
        "t.json",
        "application/json",
        _frame_back(pd.read_json),
    ),
    "pandas feather": (
        lambda: FRAME,
        {"filename": "t.feather"},
        "t.feather",
        "application/octet-stream",
        _frame_back(pd.read_feather),
    ),
    "pandas html": (lambda: FRAME, {"filename": "t.html"}, "t.html", "text/html; charset=utf-8", _html_table),
    "pandas Series csv": (
        lambda: FRAME["count"],
        {},
        "data.csv",
        "text/csv; charset=utf-8",
        lambda b: pd.testing.assert_series_equal(
            pd.read_csv(io.BytesIO(b), index_col=0)["count"], FRAME["count"]
        ),
    ),
    "polars csv by default": (
        lambda: pl.from_pandas(FRAME),
        {},
        "data.csv",
        "text/csv; charset=utf-8",
        _polars_back(pl.read_csv),
    ),
    "polars xlsx": (
        lambda: pl.from_pandas(FRAME),
        {"filename": "t.xlsx"},
        "t.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _frame_back(pd.read_excel),
    ),
    "polars parquet": (
        lambda: pl.from_pandas(FRAME),
        {"filename": "t.parquet"},
        "t.parquet",
        "application/vnd.apache.parquet",
        _polars_back(pl.read_parquet),
    ),
    "polars json": (
        lambda: pl.from_pandas(FRAME),
        {"filename": "t.json"},
        "t.json",
        "application/json",
        _polars_back(pl.read_json),
    ),
    "numpy npy by default": (
        lambda: np.arange(12.0).reshape(3, 4),
        {},
        "array.npy",
        "application/octet-stream",
        _npy(np.arange(12.0).reshape(3, 4)),
    ),
    "numpy 2-D uint8 png": (_grey, {"filename": "g.png"}, "g.png", "image/png", _picture_of(_grey())),
    "numpy 3-D uint8 png": (lambda: _RGB, {"filename": "c.png"}, "c.png", "image/png", _picture_of(_RGB)),
}


def _single_app(make_app: Any, value: Any, **output_options: Any) -> DashClient:
    app, _ = make_app()

    @app.callback(FileOutput("img", "src", **output_options), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return value() if callable(value) else value

    return DashClient(app)


def _serve(make_app: Any, value: Any, **output_options: Any) -> tuple[str, Any]:
    client = _single_app(make_app, value, **output_options)
    url = str(client.fire(out("img", "src"), [inp("go", "n_clicks", 1)])["img"]["src"])
    response = client.fetch(url)
    assert response.status_code == 200, response.data[:300]
    return url, response


def _error_of(make_app: Any, value: Any, **output_options: Any) -> Exception:
    """What the callback raises, the way the Dash app raises it (with the callback and output)."""
    client = _single_app(make_app, value, **output_options)
    client.app.server.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(Exception) as info:
        client.fire(out("img", "src"), [inp("go", "n_clicks", 1)])
    return info.value


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Converters registered by a test are gone after it."""
    monkeypatch.setattr(
        dfc_transform.values.converters, "_REGISTRY", dict(dfc_transform.values.converters._REGISTRY)
    )


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_round_trip(make_app: Any, case: str) -> None:
    value, options, name, mime, check = ROUND_TRIPS[case]
    url, response = _serve(make_app, value, **options)
    assert url.rsplit("/", 1)[1] == name
    assert response.headers["Content-Type"] == mime
    check(response.data)


@pytest.fixture(scope="module")
def kaleido_server() -> Iterator[None]:
    """One Chromium for every kaleido export of this module (kaleido starts one per export otherwise)."""
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)
    try:
        yield
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def _plotly_figure() -> Any:
    import plotly.graph_objects as go

    return go.Figure(
        go.Scatter(x=[1, 2, 3], y=[30, 10, 20], name="zig"), layout={"title": {"text": "zigzag"}}
    )


def test_plotly_figure_is_standalone_html_by_default(tmp_path: Any) -> None:
    service = FileService()
    client = _flask_client(service)
    # In a context of its own: a test before may have left Dash's callback context set in this
    # thread (Dash sets it, and not always back), which would make this look like a callback.
    url = contextvars.Context().run(service.register, _plotly_figure())
    assert url.endswith("/figure.html")
    response = client.get(url)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    text = response.data.decode("utf-8")
    assert text.lstrip().lower().startswith("<html") or text.lstrip().lower().startswith("<!doctype html")
    # Registered outside a Dash callback: plotly.js is inside, it works offline.
    assert '<script src="https://cdn' not in text
    assert "Plotly.newPlot" in text and len(response.data) > 1_000_000
    start = text.index("Plotly.newPlot(")
    data = json.JSONDecoder().raw_decode(text, text.index("[", start))[0]
    assert data[0]["x"] == [1, 2, 3] and data[0]["y"] == [30, 10, 20]
    # Its script runs, sandboxed in an opaque origin.
    assert response.headers["Content-Security-Policy"] == "sandbox allow-scripts"


# plotly passes kaleido options that a running kaleido server does not take, and says so.
@pytest.mark.filterwarnings("ignore:The kopts argument is ignored:UserWarning")
@pytest.mark.parametrize(
    ("filename", "check"),
    [
        ("zig.png", lambda b: _open_image(b, "PNG", (300, 200))),
        ("zig.svg", _svg),
        ("zig.pdf", _pdf),
        ("zig.jpg", lambda b: _open_image(b, "JPEG", (300, 200))),
    ],
)
def test_plotly_figure_through_kaleido(
    kaleido_server: None, filename: str, check: Callable[[bytes], Any]
) -> None:
    service = FileService()
    client = _flask_client(service)
    url = service.register(File(_plotly_figure(), writer={"width": 300, "height": 200}), filename=filename)
    response = client.get(url)
    assert response.status_code == 200
    check(response.data)


def _flask_client(service: FileService) -> Any:
    """A Flask app serving ``service``'s route (before registering: the app sets the namespace)."""
    from flask import Flask

    app = Flask(__name__)
    service.init_app(app)
    return app.test_client()


def test_plotly_png_without_kaleido_names_kaleido(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kaleido", None)  # how an import is made to fail
    err = _error_of(make_app, _plotly_figure, filename="chart.png")
    assert isinstance(err, UnsupportedValueError)
    text = str(err)
    assert "tests.test_converters._single_app.<locals>.produce" in text
    assert "output img.src" in text
    assert "plotly.graph_objs._figure.Figure" in text and " as png " in text
    assert "pip install kaleido" in text


def test_dict_with_data_and_layout_is_not_guessed(make_app: Any) -> None:
    err = _error_of(make_app, {"data": [{"type": "scatter", "x": [1]}], "layout": {}})
    assert isinstance(err, UnsupportedValueError)
    assert "plotly.graph_objects.Figure(value)" in str(err)
    assert "output img.src" in str(err)


def test_pyplot_current_figure_is_never_touched(make_app: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    current = pyplot.figure()
    numbers = pyplot.get_fignums()
    try:
        _, response = _serve(make_app, _figure)
        assert response.data.startswith(b"\x89PNG")
        assert pyplot.gcf() is current
        assert pyplot.get_fignums() == numbers
        # A pyplot figure is written through its own savefig too, and stays open.
        other = pyplot.figure(figsize=(2, 1), dpi=50)
        pyplot.figure(current.number)
        _, response = _serve(make_app, other)
        _open_image(response.data, "PNG", (100, 50))
        assert pyplot.gcf() is current and pyplot.fignum_exists(other.number)
    finally:
        pyplot.close("all")


def test_numpy_picture_must_be_uint8(make_app: Any) -> None:
    err = _error_of(make_app, lambda: np.zeros((3, 4)), filename="f.png")
    assert isinstance(err, UnsupportedValueError)
    assert "uint8" in str(err) and "float64" in str(err) and "output img.src" in str(err)


def test_numpy_npy_refuses_pickles(make_app: Any) -> None:
    err = _error_of(make_app, lambda: np.array([{"a": 1}], dtype=object))
    assert isinstance(err, FileServeError)
    assert "writing a numpy.ndarray as npy failed" in str(err) and "allow_pickle" in str(err)


# -- choosing the format ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name", "mime", "start"),
    [
        ({"filename": "PLOT.PNG"}, "PLOT.PNG", "image/png", b"\x89PNG"),
        ({"mime_type": "image/svg+xml"}, "figure.svg", "image/svg+xml", b"<?xml"),
        ({"mime_type": "image/jpeg"}, "figure.jpg", "image/jpeg", b"\xff\xd8"),
        ({"mime_type": "application/octet-stream"}, "figure.png", "application/octet-stream", b"\x89PNG"),
        ({"filename": "plot"}, "plot", "application/octet-stream", b"\x89PNG"),
        ({"filename": "plot.svg", "mime_type": "image/svg+xml"}, "plot.svg", "image/svg+xml", b"<?xml"),
    ],
)
def test_format_from_file_name_then_mime_type(
    make_app: Any, options: dict[str, str], name: str, mime: str, start: bytes
) -> None:
    url, response = _serve(make_app, _figure, **options)
    assert url.rsplit("/", 1)[1] == name
    assert response.headers["Content-Type"] == mime
    assert response.data.startswith(start)


def test_file_name_of_file_wins_over_the_outputs(make_app: Any) -> None:
    url, response = _serve(make_app, lambda: File(FRAME, filename="t.json"), filename="t.csv")
    assert url.endswith("/t.json")
    pd.testing.assert_frame_equal(pd.read_json(io.BytesIO(response.data)), FRAME)


def test_unknown_extension_names_callback_output_type_and_formats(make_app: Any) -> None:
    err = _error_of(make_app, lambda: FRAME, filename="report.docx")
    assert isinstance(err, UnsupportedValueError)
    text = str(err)
    assert "tests.test_converters._single_app.<locals>.produce" in text and "output img.src" in text
    assert "DataFrame as 'docx'" in text
    assert "csv, xlsx, parquet, json, feather, html" in text


def test_unknown_mime_type_asks_for_a_file_name(make_app: Any) -> None:
    err = _error_of(make_app, _image, mime_type="application/x-unheard-of")
    assert isinstance(err, UnsupportedValueError)
    assert "application/x-unheard-of" in str(err) and "filename=" in str(err)


def test_xlsx_without_openpyxl_says_what_to_install(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    monkeypatch.setitem(sys.modules, "xlsxwriter", None)
    err = _error_of(make_app, lambda: FRAME, filename="t.xlsx")
    assert isinstance(err, UnsupportedValueError)
    text = str(err)
    assert "output img.src" in text and "DataFrame as xlsx" in text and "pip install openpyxl" in text


def test_polars_xlsx_needs_xlsxwriter(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xlsxwriter", None)
    err = _error_of(make_app, lambda: pl.from_pandas(FRAME), filename="t.xlsx")
    assert isinstance(err, UnsupportedValueError) and "pip install xlsxwriter" in str(err)


# -- writer options -----------------------------------------------------------------------------


def test_writer_options_go_to_the_writer(make_app: Any) -> None:
    value = File(FRAME, filename="x.xlsx", writer={"index": False, "sheet_name": "Data"})
    _, response = _serve(make_app, value)
    book = pd.read_excel(io.BytesIO(response.data), sheet_name=None)
    assert list(book) == ["Data"]
    pd.testing.assert_frame_equal(book["Data"], FRAME)


def test_csv_encoding_option_sets_bom_and_charset(make_app: Any) -> None:
    value = File(FRAME, writer={"encoding": "utf-8-sig", "index": False, "sep": ";"})
    _, response = _serve(make_app, value)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.data.startswith(b"\xef\xbb\xbfcity;count;share\r\n") or response.data.startswith(
        b"\xef\xbb\xbfcity;count;share\n"
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(io.BytesIO(response.data), sep=";", encoding="utf-8-sig"), FRAME
    )


def test_savefig_options(make_app: Any) -> None:
    _, response = _serve(make_app, lambda: File(_figure(), writer={"dpi": 20}))
    _open_image(response.data, "PNG", (80, 60))


def test_writer_options_for_plain_bytes_are_refused(make_app: Any) -> None:
    err = _error_of(make_app, lambda: File(b"data", writer={"index": False}))
    assert isinstance(err, UnsupportedValueError)
    assert (
        "writer options (index)" in str(err) and "builtins.bytes" in str(err) and "output img.src" in str(err)
    )


def test_writer_must_be_a_dict() -> None:
    with pytest.raises(UnsupportedValueError, match=r"dict of keyword arguments"):
        File(FRAME, writer=["index"])  # type: ignore[arg-type]


def test_file_keeps_its_writer() -> None:
    value = File(FRAME, filename="x.csv", writer={"index": False})
    assert value.writer == {"index": False}
    assert value.options.filename == "x.csv"


# -- register_converter -------------------------------------------------------------------------


class Report:
    def __init__(self, title: str) -> None:
        self.title = title


class MonthlyReport(Report):
    pass


def test_registered_converter_gets_value_and_format(make_app: Any, registry: None) -> None:
    calls: list[tuple[Any, str | None]] = []

    def convert(report: Report, fmt: str | None) -> Any:
        calls.append((report, fmt))
        return io.StringIO(f"{fmt or 'txt'}: {report.title}")

    assert register_converter(Report, convert) is convert
    report = Report("März")
    _, response = _serve(make_app, report, filename="r.csv")
    assert response.data == "csv: März".encode()
    assert calls == [(report, "csv")]
    _, response = _serve(make_app, MonthlyReport("April"))  # found through the class's bases
    assert response.data == b"txt: April"
    assert calls[-1][1] is None
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_subclass_converter_wins_and_names_register_without_import(make_app: Any, registry: None) -> None:
    register_converter(Report, lambda r, fmt: b"base")
    register_converter(f"{__name__}.MonthlyReport", lambda r, fmt: File(b"monthly", filename="monthly.txt"))
    url, response = _serve(make_app, MonthlyReport("x"))
    assert response.data == b"monthly"
    assert url.endswith("/monthly.txt")  # the name a converter gives says the type
    assert _serve(make_app, Report("x"))[1].data == b"base"


def test_registered_converter_replaces_a_builtin(make_app: Any, registry: None) -> None:
    register_converter(pd.DataFrame, lambda df, fmt: df.to_string().encode())
    _, response = _serve(make_app, lambda: FRAME)
    assert response.data == FRAME.to_string().encode()


def test_failing_converter_is_reported_with_its_cause(make_app: Any, registry: None) -> None:
    def broken(report: Report, fmt: str | None) -> Any:
        raise KeyError("no title")

    register_converter(Report, broken)
    err = _error_of(make_app, Report("x"))
    assert isinstance(err, FileServeError)
    assert "output img.src" in str(err) and "KeyError" in str(err) and "broken" in str(err)
    assert isinstance(err.__cause__, KeyError)


@pytest.mark.parametrize(
    "result", [None, Report("again"), File(b"x", download=True)], ids=["None", "itself", "serving options"]
)
def test_converter_results_that_are_refused(make_app: Any, registry: None, result: Any) -> None:
    register_converter(Report, lambda r, fmt: result)
    err = _error_of(make_app, Report("x"))
    assert isinstance(err, UnsupportedValueError) and "output img.src" in str(err)


def test_writer_options_with_a_users_converter_are_refused(make_app: Any, registry: None) -> None:
    register_converter(Report, lambda r, fmt: b"x")
    err = _error_of(make_app, lambda: File(Report("x"), writer={"dpi": 10}))
    assert isinstance(err, UnsupportedValueError) and "only the built-in converters" in str(err)


def test_register_converter_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="function"):
        register_converter(Report, "not callable")  # type: ignore[type-var]
    with pytest.raises(TypeError, match="class or its qualified name"):
        register_converter(Report("x"), lambda r, fmt: b"")  # type: ignore[arg-type]


# -- streaming ---------------------------------------------------------------------------------


def _writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dfc-writer"]


def _no_writer_left(deadline: float = 10) -> None:
    import time

    end = time.monotonic() + deadline
    while _writers():
        assert time.monotonic() < end, f"writer threads still running: {_writers()}"
        for thread in _writers():
            thread.join(0.05)


def test_writer_error_is_raised_at_the_reading_side_and_nothing_is_kept(backend: Any) -> None:
    service = FileService(backend)

    def write(sink: Any) -> None:
        sink.write(b"x" * (3 * PIPE_LIMIT))  # some chunks are stored before it fails
        raise ValueError("the disk of the database is gone")

    with pytest.raises(FileServeError, match=r"writing a test value failed: ValueError: the disk") as info:
        service.register(Written(write, name="v.bin", what="a test value"))
    assert isinstance(info.value.__cause__, ValueError)
    assert service.stats().files == 0
    _no_writer_left()


def test_pil_rgba_as_jpeg_fails_clearly(make_app: Any) -> None:
    err = _error_of(make_app, lambda: _image("RGBA"), filename="p.jpg")
    assert isinstance(err, FileServeError)
    text = str(err)
    assert "output img.src" in text and "writing a PIL.Image.Image as jpg failed" in text and "RGBA" in text


def test_size_cap_stops_the_writer(backend: Any) -> None:
    service = FileService(backend, max_size=2 * 1024 * 1024)
    big = pd.DataFrame({"n": np.arange(1_000_000)})  # about 14 MB of CSV
    with pytest.raises(FileTooLargeError):
        service.register(big)
    _no_writer_left()  # told to stop: its next write raised BrokenPipeError
    assert service.stats().files == 0


def test_pipe_holds_at_most_its_limit_ahead_of_the_reader() -> None:
    piece = 64 * 1024
    written = [0]

    def write(sink: Any) -> None:
        for _ in range(64):  # 4 MiB
            sink.write(b"z" * piece)
            written[0] += piece

    stream = Written(write, name="z.bin", what="zeds")
    read = 0
    try:
        while data := stream.read(256 * 1024):
            read += len(data)
            # The writer is never more than the pipe's limit and one write ahead.
            assert written[0] - read <= PIPE_LIMIT + piece
    finally:
        stream.close()
    assert read == 64 * piece


def test_a_large_write_enters_the_pipe_in_pieces() -> None:
    block = bytes(range(256)) * (16 * 4096)  # 16 MiB in one write, as numpy.save writes
    stream = Written(lambda sink: sink.write(block), name="b.bin", what="a block")
    try:
        first = stream.read(len(block))
        assert len(first) == PIPE_LIMIT  # the pipe never held more than its limit
        assert first + stream.read(-1) == block
    finally:
        stream.close()


def test_closing_before_reading_starts_nothing() -> None:
    ran = []
    stream = Written(lambda sink: ran.append(1), name="n.bin", what="nothing")
    stream.close()
    assert ran == [] and not _writers()


# -- imports -----------------------------------------------------------------------------------

LAZY = textwrap.dedent(
    """
    import io, json, sys
    import dash, dash_extensions.enrich, flask  # what a Dash app imports anyway (dash brings plotly, PIL)
    before = set(sys.modules)
    from cachelib import SimpleCache
    from dfc_transform import FileService, FileServeTransform, register_converter
    service = FileService(SimpleCache())
    service.register(b"bytes"), service.register(io.StringIO("text"))
    libraries = ("pandas", "polars", "matplotlib", "numpy", "pyarrow", "kaleido", "openpyxl", "xlsxwriter")
    print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in libraries)))
    """
)


def test_no_converter_library_is_imported_until_its_value_arrives() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LAZY], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
