"""One SVG image, returned three ways: as an io.StringIO, as an io.BytesIO, as a path.

Each button runs one callback that returns the same picture in another shape; the page shows which type
was returned, the URL the transform put into the <img>, and the image fetched from that URL. Files go to
the default store (a FileSystemCache in the temp directory, shared by every process on this host).

Run:  pip install -e . && python examples/single_process.py   then open http://127.0.0.1:8050
      (PORT=8060 python examples/single_process.py for another port; gunicorn: see gunicorn_redis.md)
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from dash import ctx
from dash_extensions.enrich import DashProxy, Input, Output, html

from dfc_transform import FileOutput, FileServeTransform

WAYS = ("StringIO", "BytesIO", "Path")


def make_svg(label: str) -> str:
    """A small picture with a label, so each way shows which one it was."""
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="320" height="160" viewBox="0 0 320 160">
  <rect width="320" height="160" rx="16" fill="#1f77b4"/>
  <circle cx="80" cy="80" r="50" fill="#ff7f0e"/>
  <text x="150" y="90" font-family="sans-serif" font-size="28" fill="white">{label}</text>
</svg>
"""


SVG_PATH = Path(tempfile.gettempdir()) / "dfc_transform_example.svg"
if not SVG_PATH.is_file() or SVG_PATH.read_text(encoding="utf-8") != make_svg("Path"):
    # Written once: rewriting it (say, in each gunicorn worker) would expire its URLs (410).
    SVG_PATH.write_text(make_svg("Path"), encoding="utf-8")

app = DashProxy(__name__, transforms=[FileServeTransform()], title="dfc_transform demo")
server = app.server  # for gunicorn: gunicorn single_process:server

app.layout = html.Div(
    [
        html.H2("dfc_transform: one image, three ways"),
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
        buf.write(make_svg("BytesIO").encode())  # no seek(0): the transform takes the whole buffer
        return buf, "io.BytesIO"
    return SVG_PATH, "pathlib.Path"


# The <img> src is the URL; show it as text too.
app.clientside_callback("(src) => src || ''", Output("url", "children"), Input("image", "src"))

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
