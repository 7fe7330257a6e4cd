"""A plain ``dash.Dash`` with ``files.init_app(app)`` whose files live in an S3 bucket, run by gunicorn
(two gthread workers) for tests/test_s3_browser.py.

The store is ``S3Store(DFC_TEST_S3_BUCKET, endpoint_url=DFC_TEST_S3_ENDPOINT)`` with its defaults
(redirects to presigned URLs, uploads straight to the bucket); the credentials come from the usual
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_DEFAULT_REGION``, as in a deployment.

- ``#plot`` -> ``#img``: :data:`PNG` (:data:`PNG_WIDTH` px wide, some 230 KB of noise: stored as an
  object, not put into the page as a ``data:`` URI);
- ``#export`` -> ``#dl`` (a ``dcc.Download``): :data:`CSV` (some 5 MiB) saved as :data:`CSV_NAME`;
- ``#up`` (an ``Upload``) -> ``#digest``: ``"<name> <size> <sha256> <pid>"`` of the uploaded file, as
  a ``FileInput`` callback reads it back from the bucket.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import zlib
from typing import Any

MIB = 1024 * 1024
#: The name the download is saved under: an en dash, accents, CJK and spaces.
CSV_NAME = "Überblick \u2013 données 報告 S3.csv"
#: The download's bytes: UTF-8 text with non-ASCII cells, some 5 MiB (a multipart object of the bucket).
CSV = (
    "id,name,value\n" + "".join(f"{i},Größe\u2013報告 {i:07d},{i * 7 % 1000}\n" for i in range(180_000))
).encode()
PNG_WIDTH, PNG_HEIGHT = 320, 240
#: What the Upload may take.
UPLOAD_MAX = 512 * MIB


def _png(width: int, height: int) -> bytes:
    """An RGB picture of noise as a PNG file (it does not compress), made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    noise = random.Random(1)
    rows = b"".join(b"\x00" + noise.randbytes(3 * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png(PNG_WIDTH, PNG_HEIGHT)


def _build() -> Any:
    # Imported here: the test imports this module for its constants, and neither needs Dash's app
    # nor an S3 client (made from variables only the server has).
    import dash
    from dash import Input, Output, dcc, html

    from dfc_transform import FileInput, FileOutput, FileServeTransform, S3Store, Upload, UploadedFile

    app = dash.Dash(__name__)
    files = FileServeTransform(
        S3Store(os.environ["DFC_TEST_S3_BUCKET"], endpoint_url=os.environ["DFC_TEST_S3_ENDPOINT"]),
        timeout=600,
    )
    files.init_app(app)
    app.layout = html.Div(
        [
            html.Button("Plot", id="plot"),
            html.Img(id="img"),
            html.Button("Export", id="export"),
            dcc.Download(id="dl"),
            Upload(id="up", max_size=UPLOAD_MAX),
            html.Div(id="digest"),
        ]
    )

    @files.callback(
        FileOutput("img", "src", filename="plot.png"), Input("plot", "n_clicks"), prevent_initial_call=True
    )
    def plot(n: int) -> Any:
        return io.BytesIO(PNG)

    @files.callback(
        FileOutput("dl", "data", filename=CSV_NAME), Input("export", "n_clicks"), prevent_initial_call=True
    )
    def export(n: int) -> Any:
        return io.BytesIO(CSV)

    @files.callback(Output("digest", "children"), FileInput("up", "value"), prevent_initial_call=True)
    def digest(upload: UploadedFile) -> str:
        sha = hashlib.sha256()
        with upload.open() as stream:
            while block := stream.read(MIB):
                sha.update(block)
        return f"{upload.name} {upload.size} {sha.hexdigest()} {os.getpid()}"

    return app.server


if os.environ.get("DFC_TEST_S3_BUCKET"):
    server = _build()
