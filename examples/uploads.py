"""Uploads: drop a CSV of any size, see its first rows, download a cleaned copy.

``dfc_transform.Upload`` sends the file to the app in parts of a few MiB, straight into the
same store that serves files: no base64, no whole file in the browser's or the server's
memory, any size the store takes (here up to 2 GiB). A cut connection resumes where the
server got to. ``FileInput("upload", "value")`` hands the callback an ``UploadedFile``:
its ``open()`` is a binary stream over the stored chunks, read here line by line. The
cleaned copy (cells trimmed, blank rows dropped, the header in snake_case) is written to a
temporary file as it is read, and returned to a ``FileOutput``: a download link whose
bytes never pass through the callback's JSON either.

Run:  pip install -e ".[examples]" && python examples/uploads.py   then open http://127.0.0.1:8050
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from typing import Any

from dash_extensions.enrich import DashProxy, Output, html

from dfc_transform import File, FileInput, FileOutput, FileServeTransform, Upload, UploadedFile

PREVIEW_ROWS = 5
MAX_SIZE = 2 * 1024**3

app = DashProxy(__name__, transforms=[FileServeTransform(max_size=MAX_SIZE)])
app.title = "Uploads"
app.layout = html.Div(
    [
        html.H3("Upload a CSV file"),
        Upload(id="upload", accept=".csv,text/csv", max_size=MAX_SIZE, style={"maxWidth": "640px"}),
        html.P(id="summary"),
        html.Table(id="preview", style={"borderCollapse": "collapse"}),
        html.A("Download the cleaned copy", id="download", style={"display": "none"}),
    ],
    style={"fontFamily": "sans-serif", "margin": "24px"},
)
server = app.server


def snake_case(name: str) -> str:
    """``"Revenue (€)"`` -> ``"revenue"``: a header fit for code."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_") or "column"


def clean(upload: UploadedFile) -> tuple[list[str], list[list[str]], int, Any]:
    """Read the upload once: its header, first rows, row count and a cleaned copy on disk."""
    text = io.TextIOWrapper(upload.open(), encoding="utf-8-sig", errors="replace", newline="")
    copy = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the FileOutput, which closes it
    out = io.TextIOWrapper(copy, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(out)
    reader = csv.reader(text)
    header = [cell.strip() for cell in next(reader, [])]
    writer.writerow([snake_case(name) for name in header])
    first: list[list[str]] = []
    count = 0
    for row in reader:
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        writer.writerow(cells)
        if len(first) < PREVIEW_ROWS:
            first.append(cells)
        count += 1
    out.detach()  # keep the binary file open for the FileOutput, which reads from its position
    copy.seek(0)
    return header, first, count, copy


@app.callback(
    Output("summary", "children"),
    Output("preview", "children"),
    FileOutput("download", "href", download=True),
    Output("download", "style"),
    FileInput("upload", "value"),
    prevent_initial_call=True,
)
def show(upload: UploadedFile | None) -> tuple[Any, ...]:
    """Preview the uploaded CSV and offer its cleaned copy."""
    if upload is None:
        return "", [], None, {"display": "none"}
    header, first, count, copy = clean(upload)
    cell = {"border": "1px solid #ccc", "padding": "2px 8px"}
    table = [html.Tr([html.Th(name, style=cell) for name in header])]
    table += [html.Tr([html.Td(value, style=cell) for value in row]) for row in first]
    summary = f"{upload.name}: {upload.size:,} bytes, {count:,} rows; the first {len(first)}:"
    stem = upload.name.rsplit(".", 1)[0]
    return summary, table, File(copy, filename=f"{stem}-clean.csv"), {"display": "inline"}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
