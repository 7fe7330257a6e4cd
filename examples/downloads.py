"""Exports: a DataFrame as CSV and as an Excel workbook behind download links, and a PDF report inline.

``FileOutput(..., download=True)`` serves a file as an attachment, so a plain ``html.A`` with that URL as
``href`` is a download link: no ``dcc.Download``, no base64 in the callback response. The callback returns
the pandas DataFrame itself; each output's file name says the format (``.csv``, ``.xlsx``), and
``File(table, writer={...})`` passes options to pandas' own ``to_csv`` / ``to_excel``. The file names are
not ASCII ("Übersicht März.csv"); they reach the browser intact (RFC 5987 ``filename*``). The PDF is served
inline and opens in an ``html.Iframe``; it is written by hand below, so it needs no PDF library.

Why two spreadsheet files: a ``.csv`` is what every tool reads; it is written as UTF-8 *with a byte order
mark* (``encoding="utf-8-sig"``), without which Excel reads "März" as "MÃ¤rz". The ``.xlsx`` (pandas
writes it with openpyxl) is what Excel users expect: it opens without an import dialog and keeps types.

Run:  pip install -e ".[examples]" && python examples/downloads.py   then open http://127.0.0.1:8050
"""

from __future__ import annotations

import os

import pandas as pd
from dash_extensions.enrich import DashProxy, Input, html

from dfc_transform import File, FileOutput, FileServeTransform

BASENAME = "Übersicht März"
HEADER = ("Region", "Month", "Revenue (€)")
ROWS = [("Köln", "März", 1234.5), ("Zürich", "März", 987.25), ("Malmö", "März", 1500.0)]


def make_table() -> pd.DataFrame:
    """The table to export."""
    return pd.DataFrame(ROWS, columns=list(HEADER))


def make_pdf() -> bytes:
    """A one-page PDF report: five objects, a cross-reference table, and the standard Helvetica font."""
    lines = [f"{region}: {revenue:,.2f} €" for region, _, revenue in ROWS]
    text = "".join(f"({_pdf_string(line)}) '\n" for line in lines)
    content = f"BT /F1 20 Tf 56 780 Td ({_pdf_string(BASENAME)}) Tj /F1 12 Tf 18 TL T*\n{text}ET\n"
    stream = content.encode("cp1252")  # WinAnsiEncoding, which the standard fonts use
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 5 0 R"
        b" /Resources << /Font << /F1 4 0 R >> >> >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    pdf = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(pdf)


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


app = DashProxy(__name__, transforms=[FileServeTransform()], title="dfc_transform: downloads")
server = app.server

app.layout = html.Div(
    [
        html.H2("dfc_transform: exports"),
        html.Button("Build the exports", id="build", n_clicks=0),
        html.Ul(
            [
                html.Li([html.A(f"{BASENAME}.csv", id="csv-link"), " (CSV, UTF-8 for Excel)"]),
                html.Li([html.A(f"{BASENAME}.xlsx", id="xlsx-link"), " (Excel workbook)"]),
            ]
        ),
        html.Iframe(id="report", title="PDF report", style={"width": "100%", "height": "420px"}),
    ],
    style={"fontFamily": "sans-serif", "margin": "24px"},
)


@app.callback(
    FileOutput("csv-link", "href", filename=f"{BASENAME}.csv", download=True),
    FileOutput("xlsx-link", "href", filename=f"{BASENAME}.xlsx", download=True),
    FileOutput("report", "src", filename="report.pdf"),
    Input("build", "n_clicks"),
    prevent_initial_call=True,
)
def build(_clicks: int) -> tuple[File, File, bytes]:
    table = make_table()
    return (
        File(table, writer={"index": False, "encoding": "utf-8-sig"}),  # the BOM Excel looks for
        File(table, writer={"index": False, "sheet_name": "März"}),
        make_pdf(),
    )


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
