"""A Dash app whose callback returns a generator: content made while it is served.

``GEN_PIECES`` pieces of ``GEN_PIECE`` bytes each (made from their index, see :func:`piece`),
one every ``GEN_DELAY`` seconds; with ``GEN_FAIL=k`` the generator raises after ``k`` pieces,
with ``GEN_DIE=k`` its process dies there (as a worker killed mid-export). ``/pid`` answers the
worker's pid; the access log (``%(p)s``) says which worker answered each request.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

from dash_extensions.enrich import DashProxy, Input, html

from dfc_transform import FileOutput, FileServeTransform

PIECES = int(os.environ.get("GEN_PIECES", "40"))
PIECE = int(os.environ.get("GEN_PIECE", str(256 * 1024)))
DELAY = float(os.environ.get("GEN_DELAY", "0.05"))
FAIL = int(os.environ.get("GEN_FAIL", "-1"))
DIE = int(os.environ.get("GEN_DIE", "-1"))


def piece(index: int, size: int = PIECE) -> bytes:
    """Piece ``index``: the same bytes in every process, different for every index."""
    seed = hashlib.sha256(str(index).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def content() -> bytes:
    return b"".join(piece(i) for i in range(PIECES))


app = DashProxy(__name__, transforms=[FileServeTransform(inline_below=0)])
app.layout = html.Div([html.Button(id="go"), html.A(id="a")])
server = app.server
server.secret_key = "generated-app"


@server.route("/pid")
def pid() -> str:
    return str(os.getpid())


@app.callback(FileOutput("a", "href", filename="export.bin"), Input("go", "n_clicks"))
def export(n: Any) -> Iterator[bytes]:
    def pieces() -> Iterator[bytes]:
        for index in range(PIECES):
            if index == FAIL:
                raise RuntimeError("the export failed half way")
            if index == DIE:
                os._exit(1)
            time.sleep(DELAY)
            yield piece(index)

    return pieces()
