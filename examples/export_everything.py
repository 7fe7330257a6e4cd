"""A report page whose exports stream while they are made: one zip of everything, and a long CSV.

"Export everything" returns a dict of files named as a zip, ``File({"sales.csv": table,
"chart.png": figure, "readme.txt": ..., "ledger.csv": rows()}, filename="report.zip")``: each member
is converted as it would be alone (the DataFrame by its ``.csv`` name, the matplotlib figure as
PNG), and one member is a generator that makes a long CSV a batch of rows at a time. The callback
answers at once with the zip's URL, the zip is written into the store while it is made, and the
browser's download starts with the first bytes, not once the last row is written.

"Export the full ledger" returns the generator alone, to a ``FileOutput`` on a second
``dcc.Download``: a CSV streamed as it is made.

``EXPORT_ROWS`` sets the ledger's rows (200,000 by default) and ``EXPORT_PAUSE`` a pause in seconds
after each batch of 10,000 (0.1 by default: a database that answers slowly).

Run:  pip install -e ".[examples]" && python examples/export_everything.py   then open http://127.0.0.1:8050
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
from dash import dcc
from dash_extensions.enrich import DashProxy, Input, html
from matplotlib.figure import Figure

from dfc_transform import File, FileOutput, FileServeTransform

ROWS = int(os.environ.get("EXPORT_ROWS", "200000"))
PAUSE = float(os.environ.get("EXPORT_PAUSE", "0.1"))
BATCH = 10_000
#: When each ledger the app made was complete (time.monotonic()): the tests compare it with when
#: the browser's download started.
FINISHED: list[float] = []


def sales() -> pd.DataFrame:
    """The report's table."""
    return pd.DataFrame(
        {"month": ["Jan", "Feb", "Mar", "Apr"], "region": ["North", "South", "North", "South"],
         "revenue": [1200.0, 950.5, 1430.25, 1010.0]}
    )  # fmt: skip


def chart(table: pd.DataFrame) -> Figure:
    """Revenue by month, as a matplotlib figure (not pyplot: nothing stays open)."""
    figure = Figure(figsize=(5, 3))
    axes = figure.subplots()
    axes.bar(table["month"], table["revenue"])
    axes.set_ylabel("revenue")
    return figure


def ledger_row(index: int) -> str:
    """Row ``index`` of the ledger, the same every time (the tests rebuild the file from it)."""
    return f"{index},2026-{index % 12 + 1:02d}-{index % 28 + 1:02d},{(index * 37) % 1000 / 10:.2f}\n"


def ledger(rows: int = ROWS) -> Iterator[bytes]:
    """The ledger as CSV, a batch of rows at a time, as a slow query would give them."""
    yield b"id,date,amount\n"
    for start in range(0, rows, BATCH):
        yield "".join(ledger_row(i) for i in range(start, min(start + BATCH, rows))).encode()
        time.sleep(PAUSE)
    FINISHED.append(time.monotonic())


app = DashProxy(__name__, transforms=[FileServeTransform()], title="dfc_transform: export everything")
server = app.server

app.layout = html.Div(
    [
        html.H2("Quarterly report"),
        html.Img(id="chart", alt="revenue by month"),
        html.Div(
            [
                html.Button("Export everything (zip)", id="export-all"),
                html.Button("Export the full ledger (CSV)", id="export-ledger"),
            ]
        ),
        html.P(id="note"),
        dcc.Download(id="download-all"),
        dcc.Download(id="download-ledger"),
    ]
)


@app.callback(FileOutput("chart", "src", filename="chart.png"), Input("chart", "id"))
def show_chart(_: Any) -> Figure:
    return chart(sales())


@app.callback(
    FileOutput("download-all", "data", filename="report.zip"),
    Input("export-all", "n_clicks"),
    prevent_initial_call=True,
)
def export_everything(n_clicks: int) -> File:
    table = sales()
    readme = io.StringIO(f"Quarterly report, export {n_clicks}: the table, its chart and the ledger.\n")
    return File(
        {"sales.csv": table, "chart.png": chart(table), "readme.txt": readme, "data/ledger.csv": ledger()},
        filename="report.zip",
    )


@app.callback(
    FileOutput("download-ledger", "data", filename="ledger.csv"),
    Input("export-ledger", "n_clicks"),
    prevent_initial_call=True,
)
def export_ledger(n_clicks: int) -> Iterator[bytes]:
    return ledger()


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8050")))
