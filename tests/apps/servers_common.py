"""What the apps of tests/test_servers_browser.py share: the layout and the file callbacks.

Each ``servers_*.py`` module makes a Dash app on one server (Flask, FastAPI, Quart; a plain
``dash.Dash`` with ``files.init_app(app)``, or a ``DashProxy``) and calls :func:`build`; the test
runs it under a real server (gunicorn, uvicorn, hypercorn) in a subprocess. The store is the
default one (``DFC_TRANSFORM_DIR``). ``DFC_TEST_WEBSOCKET=1`` turns on Dash's WebSocket
callbacks (Quart and FastAPI only).

- ``#plot`` -> ``#img``: a PNG (:data:`PNG`, :data:`PNG_WIDTH` px wide) through a ``FileOutput``;
- ``#private`` -> ``#private-img``: the same PNG, ``private=True`` (not with
  ``DFC_TEST_PRIVATE_OUTPUT=0``: then the app makes no private file, only ``Upload`` private ones);
- ``#export`` -> ``#dl`` (a ``dcc.Download``): :data:`CSV` saved as :data:`CSV_NAME`;
- ``#up`` (an ``Upload``) -> ``#digest``: ``"<name> <size> <sha256>"`` of the uploaded file.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

from dash import Input, Output, dcc, html

from dfc_transform import FileInput, FileOutput, UploadedFile

MIB = 1024 * 1024
#: The name the download is saved under: an en dash, accents, CJK and spaces.
CSV_NAME = "Überblick \u2013 données 報告.csv"
#: The download's bytes: UTF-8 text with non-ASCII cells, some 2 MiB (several chunks).
CSV = (
    "id,name,value\n" + "".join(f"{i},Größe\u2013報告 {i},{i * 7 % 1000}\n" for i in range(80_000))
).encode()
#: The picture's size: its noise does not compress, so that the PNG (some 120 KB) is served from
#: the store rather than put into the page as a ``data:`` URI (small pictures may be).
PNG_WIDTH, PNG_HEIGHT = 256, 160


def _png(width: int, height: int) -> bytes:
    """An RGB picture of noise as a PNG file, made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    noise = random.Random(0)
    rows = b"".join(b"\x00" + noise.randbytes(3 * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png(PNG_WIDTH, PNG_HEIGHT)


def websocket_callbacks() -> bool:
    """Whether this server's app answers its callbacks over a WebSocket (``DFC_TEST_WEBSOCKET=1``)."""
    return os.environ.get("DFC_TEST_WEBSOCKET") == "1"


def layout() -> Any:
    # Imported here: the Upload class, once made, puts its script on every Dash page of the process,
    # and the test imports this module for its constants.
    from dfc_transform import Upload

    return html.Div(
        [
            html.Button("Plot", id="plot"),
            html.Img(id="img"),
            html.Button("Private plot", id="private"),
            html.Img(id="private-img"),
            html.Button("Export", id="export"),
            dcc.Download(id="dl"),
            Upload(id="up", max_size=256 * MIB),
            html.Div(id="digest"),
        ]
    )


def build(callback: Callable[..., Callable[[Callable[..., Any]], Any]]) -> None:
    """Register the app's callbacks with ``callback``: ``files.callback`` for a plain ``dash.Dash``,
    ``app.callback`` for a ``DashProxy``."""

    @callback(
        FileOutput("img", "src", filename="plot.png"), Input("plot", "n_clicks"), prevent_initial_call=True
    )
    def plot(n: int) -> Any:
        return io.BytesIO(PNG)

    if os.environ.get("DFC_TEST_PRIVATE_OUTPUT", "1") == "1":

        @callback(
            FileOutput("private-img", "src", filename="private.png", private=True),
            Input("private", "n_clicks"),
            prevent_initial_call=True,
        )
        def private_plot(n: int) -> Any:
            return io.BytesIO(PNG)

    @callback(
        FileOutput("dl", "data", filename=CSV_NAME), Input("export", "n_clicks"), prevent_initial_call=True
    )
    def export(n: int) -> Any:
        return io.BytesIO(CSV)

    @callback(Output("digest", "children"), FileInput("up", "value"), prevent_initial_call=True)
    def digest(upload: UploadedFile) -> str:
        sha = hashlib.sha256()
        with upload.open() as stream:
            while block := stream.read(MIB):
                sha.update(block)
        return f"{upload.name} {upload.size} {sha.hexdigest()}"
