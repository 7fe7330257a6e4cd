"""A Dash app for the deployment tests, run by gunicorn in a subprocess.

``DFC_TEST_BACKEND`` picks the backend: ``default`` (the default store),
``redis://HOST:PORT`` or ``fs:DIR:THRESHOLD`` (a FileSystemCache with a count threshold).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cachelib import FileSystemCache, RedisCache
from dash_extensions.enrich import DashProxy, Input, State, html
from flask import request

from dfc_transform import FileOutput, FileServeTransform


def _backend() -> Any:
    spec = os.environ.get("DFC_TEST_BACKEND", "default")
    if spec == "default":
        return None
    if spec.startswith("redis://"):
        host, port = spec.removeprefix("redis://").split(":")
        return RedisCache(host=host, port=int(port), key_prefix="deploy:", default_timeout=0)
    if spec.startswith("fs:"):
        _, directory, threshold = spec.split(":")
        return FileSystemCache(directory, threshold=int(threshold))
    raise ValueError(spec)


transform = FileServeTransform(_backend(), chunk_size=int(os.environ.get("DFC_TEST_CHUNK", 1024 * 1024)))
app = DashProxy(__name__, transforms=[transform])
app.layout = html.Div([html.Button(id="go"), html.Img(id="img"), html.Div(id="text")])
server = app.server


@app.callback(
    FileOutput("img", "src", filename="pair.bin"), Input("go", "n_clicks"), State("text", "children")
)
def make_file(n: int, text: str) -> Any:
    """Returns a path when asked for one, else bytes that depend on the input."""
    if text and text.startswith("path:"):
        return Path(text.removeprefix("path:"))
    return f"file {n} ".encode() * 100


@server.post("/register")
def register() -> dict[str, Any]:
    """Register ``size`` random-looking bytes; answer the URL and the pid."""
    size = int(request.args.get("size", "1000"))
    data = (request.args.get("seed", "x") * (size // max(1, len(request.args.get("seed", "x"))) + 1))[:size]
    return {"url": transform.register(data.encode(), filename="r.bin"), "pid": os.getpid()}


@server.get("/pid")
def pid() -> dict[str, int]:
    """This worker's pid; ``?sleep=`` keeps it busy so that concurrent requests spread."""
    time.sleep(float(request.args.get("sleep", "0")))
    return {"pid": os.getpid()}
