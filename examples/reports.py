"""What a callback can return: figures, images, arrays and tables, each written in the format asked for.

Every section's callback returns the library's own object: a matplotlib ``Figure``, a PIL ``Image``, a numpy
array, a pandas or polars ``DataFrame``, a plotly ``Figure``. The format comes from the ``FileOutput``'s file
name or mime type (``filename="wave.svg"``, ``mime_type="image/webp"``), else each type's default
(``figure.png``, ``data.csv``, ``array.npy``, ``figure.html``); ``File(value, writer={...})`` passes options
to the library's writer (``savefig``, ``Image.save``, ``to_excel``...). Nothing is written into a BytesIO
first: the writer streams into the store.

The plotly figure's HTML is small (it loads the plotly.js the app serves for ``dcc.Graph``) and interactive:
its script runs in an opaque origin (``Content-Security-Policy: sandbox allow-scripts``), which cannot read
the app's cookies or storage. Its PNG goes through kaleido, which drives a
Chrome or Chromium (found on PATH, or set ``BROWSER_PATH``); it has a button of its own because the first
export starts that browser, which takes a few seconds.

Run:  pip install -e ".[examples]" && python examples/reports.py   then open http://127.0.0.1:8050
"""

from __future__ import annotations

import math
import os
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import polars as pl
from dash_extensions.enrich import DashProxy, Input, html
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from dfc_transform import File, FileOutput, FileServeTransform

matplotlib.use("Agg")  # no GUI: a server has no display

MONTHS = ["Jan", "Feb", "Mär", "Apr", "Mai", "Jun"]
SALES = pd.DataFrame(
    {
        "month": MONTHS,
        "Köln": [120, 135, 160, 150, 170, 190],
        "Zürich": [90, 95, 110, 130, 125, 140],
    }
)


def wave_figure(clicks: int) -> Figure:
    xs = [i / 20 for i in range(201)]
    fig = Figure(figsize=(4, 2.5), dpi=100, layout="tight")
    ax = fig.subplots()
    ax.plot(xs, [math.exp(-x / 6) * math.sin(x + clicks / 2) for x in xs])
    ax.set(title=f"matplotlib, click {clicks}", xlabel="t")
    return fig


def badge_image(clicks: int) -> Image.Image:
    image = Image.new("RGB", (240, 120), (31, 119, 180))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, 100, 100), fill=(255, 127, 14))
    draw.text((120, 50), f"PIL, click {clicks}", fill="white")
    return image


def gradient_array(clicks: int) -> np.ndarray[Any, Any]:
    """A 120 x 240 RGB picture as a uint8 array (what scikit-image or OpenCV hand back)."""
    y, x = np.mgrid[0:120, 0:240]
    red = (x * 255 // 239).astype(np.uint8)
    green = (y * 255 // 119).astype(np.uint8)
    blue = np.full_like(red, (clicks * 40) % 256)
    return np.dstack([red, green, blue])


def sales_chart() -> go.Figure:
    fig = go.Figure(layout={"title": {"text": "plotly: sales"}, "height": 300, "margin": {"t": 40, "b": 30}})
    for city in ("Köln", "Zürich"):
        fig.add_scatter(x=MONTHS, y=SALES[city], name=city)
    return fig


def _section(title: str, button: str, body: list[Any]) -> html.Section:
    return html.Section(
        [html.H3(title), html.Button(f"Make {title}", id=button, n_clicks=0), *body],
        style={
            "border": "1px solid #ccc",
            "borderRadius": "6px",
            "padding": "0 12px 12px",
            "display": "flex",
            "flexDirection": "column",
            "alignItems": "flex-start",
            "gap": "6px",
        },
    )


def _picture(element_id: str, caption: str, **style: str) -> html.Figure:
    return html.Figure(
        [
            html.Img(id=element_id, alt=caption, style=style),
            html.Figcaption(caption, style={"fontSize": "small"}),
        ],
        style={"margin": "0"},
    )


def _links(prefix: str, names: list[str]) -> html.Ul:
    return html.Ul(
        [html.Li(html.A(name, id=f"{prefix}-{name.split('.')[1]}", target="_blank")) for name in names]
    )


# inline_below=0: every file is stored and served by its URL, even a small picture, so that each
# converter's output can be opened (and saved) under its name; by default pictures under 32 KiB
# would go into the page as data: URIs.
app = DashProxy(__name__, transforms=[FileServeTransform(inline_below=0)], title="dfc_transform: reports")
server = app.server

app.layout = html.Div(
    [
        html.H2("dfc_transform: what a callback can return"),
        html.Div(
            [
                _section(
                    "matplotlib",
                    "mpl",
                    [
                        _picture("mpl-png", "PNG (the default)"),
                        _picture("mpl-svg", "wave.svg", width="200px"),
                        _links("mpl", ["wave.pdf"]),
                    ],
                ),
                _section(
                    "PIL",
                    "pil",
                    [
                        _picture("pil-png", "PNG (the default)"),
                        _picture("pil-webp", "mime_type image/webp"),
                        _picture("pil-jpeg", "badge.jpg, quality 70"),
                    ],
                ),
                _section(
                    "numpy",
                    "numpy",
                    [_picture("numpy-png", "gradient.png, a uint8 array"), _links("numpy", ["array.npy"])],
                ),
                _section(
                    "pandas",
                    "pandas",
                    [
                        html.Iframe(
                            id="pandas-html", title="pandas HTML", style={"width": "260px", "height": "180px"}
                        ),
                        _links(
                            "pandas",
                            ["sales.csv", "sales.xlsx", "sales.parquet", "sales.json", "sales.feather"],
                        ),
                    ],
                ),
                _section(
                    "polars",
                    "polars",
                    [_links("polars", ["sales.csv", "sales.xlsx", "sales.parquet", "sales.json"])],
                ),
                _section(
                    "plotly",
                    "plotly",
                    [
                        html.Iframe(
                            id="plotly-html", title="plotly HTML", style={"width": "100%", "height": "320px"}
                        ),
                        html.Button("Make the PNG (kaleido)", id="plotly-png-button", n_clicks=0),
                        _picture("plotly-png", "sales.png, through kaleido"),
                    ],
                ),
            ],
            style={"display": "flex", "flexWrap": "wrap", "gap": "12px"},
        ),
    ],
    style={"fontFamily": "sans-serif", "margin": "24px"},
)


@app.callback(
    FileOutput("mpl-png", "src"),  # no name, no type: the default, figure.png
    FileOutput("mpl-svg", "src", filename="wave.svg"),
    FileOutput("mpl-pdf", "href", filename="wave.pdf"),
    Input("mpl", "n_clicks"),
    prevent_initial_call=True,
)
def matplotlib_figure(clicks: int) -> tuple[Figure, Figure, Figure]:
    fig = wave_figure(clicks)
    return fig, fig, fig


@app.callback(
    FileOutput("pil-png", "src"),
    FileOutput("pil-webp", "src", mime_type="image/webp"),
    FileOutput("pil-jpeg", "src", filename="badge.jpg"),
    Input("pil", "n_clicks"),
    prevent_initial_call=True,
)
def pil_image(clicks: int) -> tuple[Image.Image, Image.Image, File]:
    image = badge_image(clicks)
    return image, image, File(image, writer={"quality": 70})


@app.callback(
    FileOutput("numpy-png", "src", filename="gradient.png"),
    FileOutput("numpy-npy", "href", download=True),
    Input("numpy", "n_clicks"),
    prevent_initial_call=True,
)
def numpy_array(clicks: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    array = gradient_array(clicks)
    return array, array


@app.callback(
    FileOutput("pandas-html", "src", filename="sales.html"),
    FileOutput("pandas-csv", "href", filename="sales.csv", download=True),
    FileOutput("pandas-xlsx", "href", filename="sales.xlsx", download=True),
    FileOutput("pandas-parquet", "href", filename="sales.parquet", download=True),
    FileOutput("pandas-json", "href", filename="sales.json", download=True),
    FileOutput("pandas-feather", "href", filename="sales.feather", download=True),
    Input("pandas", "n_clicks"),
    prevent_initial_call=True,
)
def pandas_frame(_clicks: int) -> tuple[Any, ...]:
    return (
        File(SALES, writer={"index": False, "border": 0}),
        File(SALES, writer={"index": False}),
        File(SALES, writer={"index": False, "sheet_name": "Sales"}),
        SALES,
        File(SALES, writer={"orient": "records", "force_ascii": False}),
        SALES,
    )


@app.callback(
    FileOutput("polars-csv", "href", filename="sales.csv", download=True),
    FileOutput("polars-xlsx", "href", filename="sales.xlsx", download=True),
    FileOutput("polars-parquet", "href", filename="sales.parquet", download=True),
    FileOutput("polars-json", "href", filename="sales.json", download=True),
    Input("polars", "n_clicks"),
    prevent_initial_call=True,
)
def polars_frame(_clicks: int) -> tuple[pl.DataFrame, ...]:
    frame = pl.from_pandas(SALES)
    return frame, frame, frame, frame


@app.callback(
    FileOutput("plotly-html", "src"),  # interactive, isolated: see the module's docstring
    Input("plotly", "n_clicks"),
    prevent_initial_call=True,
)
def plotly_html(_clicks: int) -> go.Figure:
    return sales_chart()


@app.callback(
    FileOutput("plotly-png", "src", filename="sales.png"),
    Input("plotly-png-button", "n_clicks"),
    prevent_initial_call=True,
)
def plotly_png(_clicks: int) -> File:
    return File(sales_chart(), writer={"width": 600, "height": 300})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
