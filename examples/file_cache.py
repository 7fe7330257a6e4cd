"""The three-ways SVG demo on an explicit cachelib backend: a FileSystemCache in a directory you choose.

``threshold=0`` turns off cachelib's count-based pruning, which could drop single chunks of a file; files
leave by their time-to-live (``timeout``, here ten minutes) instead. Every process that opens the same
directory (gunicorn workers, background jobs) serves the same files.

Any other cachelib backend plugs in the same way: with ``DFC_EXAMPLE_REDIS=redis://host:port/db`` set, this
app keeps its files in Redis instead, so that several hosts can serve them (see gunicorn_redis.md).

Run:  pip install -e . && python examples/file_cache.py   then open http://127.0.0.1:8050
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from cachelib import BaseCache, FileSystemCache, RedisCache
from dash import ctx
from dash_extensions.enrich import DashProxy, Input, Output, html

from dfc_transform import FileOutput, FileServeTransform

WAYS = ("StringIO", "BytesIO", "Path")
CACHE_DIR = Path(tempfile.gettempdir()) / "dfc_transform_example_cache"


def _redis_client(url: str) -> Any:
    """A Redis client that gives up after 5 s: a hung Redis then answers 503, not a hung page."""
    import redis  # pip install "dfc-transform[redis]"

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def make_svg(label: str) -> str:
    """A small picture with a label, so each way shows which one it was."""
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="320" height="160" viewBox="0 0 320 160">
  <rect width="320" height="160" rx="16" fill="#9467bd"/>
  <circle cx="80" cy="80" r="50" fill="#ff7f0e"/>
  <text x="150" y="90" font-family="sans-serif" font-size="28" fill="white">{label}</text>
</svg>
"""


SVG_PATH = Path(tempfile.gettempdir()) / "dfc_transform_file_cache_example.svg"
if not SVG_PATH.is_file() or SVG_PATH.read_text(encoding="utf-8") != make_svg("Path"):
    # Written once: rewriting it (say, in each gunicorn worker) would expire its URLs (410).
    SVG_PATH.write_text(make_svg("Path"), encoding="utf-8")


def make_backend() -> tuple[BaseCache, str]:
    """The cache backend, and where it keeps files (for the page)."""
    redis_url = os.environ.get("DFC_EXAMPLE_REDIS")
    if redis_url:
        return RedisCache(host=_redis_client(redis_url), key_prefix="dfc-example:"), "Redis"
    return FileSystemCache(str(CACHE_DIR), threshold=0), str(CACHE_DIR)


backend, where = make_backend()
app = DashProxy(
    __name__, transforms=[FileServeTransform(backend, timeout=600)], title="dfc_transform: explicit backend"
)
server = app.server

app.layout = html.Div(
    [
        html.H2("dfc_transform: one image, three ways, in a backend you choose"),
        html.P(["Files are kept in ", html.Code(where)]),
        html.Div([html.Button(way, id=way, n_clicks=0, style={"marginRight": "8px"}) for way in WAYS]),
        html.P(["Returned type: ", html.Code(id="kind")]),
        html.P(["URL: ", html.Code(id="url")]),
        html.Img(id="image", alt="the served picture", style={"border": "1px solid #ccc"}),
    ],
    style={"fontFamily": "sans-serif", "margin": "24px"},
)


@app.callback(
    FileOutput("image", "src", filename="picture.svg"),
    Output("kind", "children"),
    *(Input(way, "n_clicks") for way in WAYS),
    prevent_initial_call=True,
)
def load(*_clicks: int) -> tuple[Any, str]:
    if ctx.triggered_id == "StringIO":
        return io.StringIO(make_svg("StringIO")), "io.StringIO"
    if ctx.triggered_id == "BytesIO":
        buf = io.BytesIO()
        buf.write(make_svg("BytesIO").encode())  # no seek(0)
        return buf, "io.BytesIO"
    return SVG_PATH, "pathlib.Path"


app.clientside_callback("(src) => src || ''", Output("url", "children"), Input("image", "src"))

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
