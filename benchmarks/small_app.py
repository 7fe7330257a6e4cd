"""The server of ``benchmarks.smallfiles``: one Dash app with three callbacks that return the
same N bytes: to a ``FileOutput`` as it comes (small files go inline, see ``inline_below``), to
a ``FileOutput`` that always stores (``inline_below=0``: a URL, then its GET), and as a base64
``data:`` URI written by hand."""

from __future__ import annotations

import base64
import io
import os
import random
from typing import Any

from dash_extensions.enrich import DashProxy, Input, Output, html

from dfc_transform import FileOutput, FileServeTransform

app = DashProxy(__name__, transforms=[FileServeTransform()])
app.layout = html.Div(
    [
        html.Button(id="go"),
        html.Img(id="img"),
        html.Button(id="go-stored"),
        html.Img(id="stored"),
        html.Button(id="go-uri"),
        html.Img(id="uri"),
    ]
)
server = app.server
server.secret_key = os.environ.get("BENCH_SECRET", "bench")


def _content(n: int, size: int) -> bytes:
    # New content for every click, as a new plot is: no request is answered from a cache.
    return random.Random(n).randbytes(size)


@app.callback(
    FileOutput("img", "src", filename="plot.png"), Input("go", "n_clicks"), prevent_initial_call=True
)
def as_file(n: int) -> Any:
    return io.BytesIO(_content(n, int(os.environ["BENCH_SIZE"])))


@app.callback(
    FileOutput("stored", "src", filename="plot.png", inline_below=0),
    Input("go-stored", "n_clicks"),
    prevent_initial_call=True,
)
def as_stored_file(n: int) -> Any:
    return io.BytesIO(_content(n, int(os.environ["BENCH_SIZE"])))


@app.callback(Output("uri", "src"), Input("go-uri", "n_clicks"), prevent_initial_call=True)
def as_data_uri(n: int) -> Any:
    return "data:image/png;base64," + base64.b64encode(_content(n, int(os.environ["BENCH_SIZE"]))).decode()
