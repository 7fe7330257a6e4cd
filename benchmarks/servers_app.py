"""The app of ``benchmarks.servers``: a plain ``dash.Dash`` on the backend ``BENCH_BACKEND`` (flask,
quart or fastapi) with ``files.init_app(app)`` on the default store. At start it registers one file of
random bytes per size in ``BENCH_SIZES`` (comma-separated bytes, each made from its size, the same in
every process) and writes ``{size: url}`` as JSON to ``BENCH_URLS``."""

from __future__ import annotations

import json
import os

import dash
from dash import html

from benchmarks.servers import content
from dfc_transform import FileServeTransform

app = dash.Dash(__name__, backend=os.environ.get("BENCH_BACKEND", "flask"))
files = FileServeTransform(inline_below=0)
files.init_app(app)
app.layout = html.Div("servers benchmark")
server = app.server

_sizes = os.environ["BENCH_SIZES"].split(",")
_urls = {size: files.register(content(int(size)), filename=f"{size}.bin") for size in _sizes}
with open(os.environ["BENCH_URLS"] + ".part", "w") as out:
    json.dump(_urls, out)
os.replace(os.environ["BENCH_URLS"] + ".part", os.environ["BENCH_URLS"])
