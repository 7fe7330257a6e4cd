"""A matplotlib figure served as PNG and as SVG: the callback returns the figure itself.

Each ``FileOutput``'s file name says the format (``plot.png``, ``plot.svg``); the transform writes the
figure with its own ``savefig`` straight into the store: no BytesIO, no seek(0), no base64. (Without a
file name it would be ``figure.png``.) The figure is a ``matplotlib.figure.Figure`` rather than pyplot's,
as matplotlib recommends for web servers (no global state shared between requests), on the Agg backend.

Run:  pip install -e ".[examples]" && python examples/plots.py   then open http://127.0.0.1:8050
"""

from __future__ import annotations

import math
import os

import matplotlib
from dash_extensions.enrich import DashProxy, Input, html
from matplotlib.figure import Figure

from dfc_transform import FileOutput, FileServeTransform

matplotlib.use("Agg")  # no GUI: a server has no display


def make_figure(shift: int) -> Figure:
    """A damped wave, shifted a little on each click so that every click shows a new picture."""
    xs = [i / 20 for i in range(201)]
    ys = [math.exp(-x / 6) * math.sin(x + shift / 2) for x in xs]
    fig = Figure(figsize=(4, 3), dpi=100, layout="tight")
    ax = fig.subplots()
    ax.plot(xs, ys, color="#1f77b4")
    ax.set(title=f"click {shift}", xlabel="t", ylabel="amplitude")
    ax.grid(alpha=0.3)
    return fig


app = DashProxy(__name__, transforms=[FileServeTransform()], title="dfc_transform: matplotlib")
server = app.server

app.layout = html.Div(
    [
        html.H2("dfc_transform: matplotlib as PNG and SVG"),
        html.Button("Plot", id="plot", n_clicks=0),
        html.Div(
            [
                html.Figure([html.Img(id="png", alt="PNG plot"), html.Figcaption("PNG")]),
                html.Figure([html.Img(id="svg", alt="SVG plot"), html.Figcaption("SVG")]),
            ],
            style={"display": "flex"},
        ),
    ],
    style={"fontFamily": "sans-serif", "margin": "24px"},
)


@app.callback(
    FileOutput("png", "src", filename="plot.png"),
    FileOutput("svg", "src", filename="plot.svg"),
    Input("plot", "n_clicks"),
    prevent_initial_call=True,
)
def plot(clicks: int) -> tuple[Figure, Figure]:
    fig = make_figure(clicks)
    return fig, fig  # written as plot.png and plot.svg


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
