"""The three-ways SVG demo as a background callback: the file is made in another process.

A DiskcacheManager runs the callback body in a job process; the job stores the file in the default store
(shared by every process on this host) and the web process serves it. While the job runs, the page shows
its progress (``progress=``) and the buttons are disabled (``running=``).

Run:  pip install -e ".[examples]" && python examples/background_callback.py
      then open http://127.0.0.1:8050 (the job queue, a diskcache, lives under the temp directory;
      under gunicorn set SECRET_KEY, see gunicorn_redis.md)
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache
from dash import DiskcacheManager, ctx
from dash_extensions.enrich import DashProxy, Input, Output, html

from dfc_transform import FileOutput, FileServeTransform

WAYS = ("StringIO", "BytesIO", "Path")
STEPS = 5
STEP_SECONDS = 0.3


def make_svg(label: str) -> str:
    """A small picture with a label, so each way shows which one it was."""
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="320" height="160" viewBox="0 0 320 160">
  <rect width="320" height="160" rx="16" fill="#2ca02c"/>
  <circle cx="80" cy="80" r="50" fill="#ff7f0e"/>
  <text x="150" y="90" font-family="sans-serif" font-size="28" fill="white">{label}</text>
</svg>
"""


TEMP = Path(tempfile.gettempdir())
SVG_PATH = TEMP / "dfc_transform_background_example.svg"
if not SVG_PATH.is_file() or SVG_PATH.read_text(encoding="utf-8") != make_svg("Path"):
    # Written once: rewriting it (say, in each gunicorn worker) would expire its URLs (410).
    SVG_PATH.write_text(make_svg("Path"), encoding="utf-8")

jobs = DiskcacheManager(diskcache.Cache(str(TEMP / "dfc_transform_example_jobs")))
app = DashProxy(
    __name__,
    transforms=[FileServeTransform()],
    background_callback_manager=jobs,
    title="dfc_transform: background callback",
)
server = app.server
# Dash signs the job handles it gives the browser with the Flask secret_key, and DashProxy makes one up per
# process when none is set: under several gunicorn workers, set SECRET_KEY so that all of them share it.
server.secret_key = os.environ.get("SECRET_KEY")

app.layout = html.Div(
    [
        html.H2("dfc_transform: one image, made in a background job"),
        html.Div([html.Button(way, id=way, n_clicks=0, style={"marginRight": "8px"}) for way in WAYS]),
        html.P(["Progress: ", html.Code(id="progress")]),
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
    background=True,
    progress=Output("progress", "children"),
    running=[(Output(way, "disabled"), True, False) for way in WAYS],
    interval=200,  # ms between the browser's polls for progress and result
    prevent_initial_call=True,
)
def load(set_progress: Callable[[str], None], *_clicks: int) -> tuple[Any, str]:
    for step in range(STEPS):
        set_progress(f"{100 * step // STEPS}%")
        time.sleep(STEP_SECONDS)  # stands in for real work
    set_progress("100%")
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
