"""Zip bundles: ``File({name: value, ...}, filename="x.zip")``, every member converted as it would
be alone, written into one zip streamed into the store (``dfc_transform.values.bundles``)."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import pytest
from cachelib import FileSystemCache
from dash_extensions.enrich import DashProxy, Input, html
from flask import Flask

from dfc_transform import File, FileOutput, FileServeTransform, FileService
from dfc_transform.exc import UnsupportedValueError

from .conftest import DashClient, inp, out

matplotlib.use("Agg")
MiB = 1024 * 1024


def _service(tmp_path: Path) -> tuple[FileService, Flask]:
    service = FileService(FileSystemCache(str(tmp_path / "store"), threshold=0))
    app = Flask(__name__)
    service.init_app(app)
    return service, app


def test_every_member_round_trips_through_zipfile(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = plt.figure()
    plt.plot([1, 3, 2])
    frame = pd.DataFrame({"city": ["Zürich", "Paris"], "n": [1, 2]})
    raw = bytes(range(256)) * 100
    files = FileServeTransform(FileSystemCache(str(tmp_path / "store"), threshold=0))
    app = DashProxy(__name__, transforms=[files])
    app.layout = html.Div([html.Button(id="go"), html.A(id="a")])

    @app.callback(FileOutput("a", "href"), Input("go", "n_clicks"))
    def bundle(n: Any) -> Any:
        return File(
            {
                "data.csv": frame,
                "plot.png": figure,
                "raw.bin": raw,
                "notes/readme.txt": io.StringIO("naïve notes"),
                "made.bin": (bytes([i]) * 1000 for i in range(10)),
            },
            filename="report.zip",
        )

    client = DashClient(app)
    url = client.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"]
    assert url.endswith("/report.zip")
    r = client.http.get(url)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.data))
    assert archive.testzip() is None
    assert archive.namelist() == ["data.csv", "plot.png", "raw.bin", "notes/readme.txt", "made.bin"]
    assert pd.read_csv(io.BytesIO(archive.read("data.csv")), index_col=0).equals(frame)
    assert archive.read("plot.png").startswith(b"\x89PNG\r\n\x1a\n")
    assert archive.read("raw.bin") == raw
    assert archive.read("notes/readme.txt") == "naïve notes".encode()
    assert archive.read("made.bin") == b"".join(bytes([i]) * 1000 for i in range(10))
    # Text is deflated, pictures are stored as they are.
    assert archive.getinfo("data.csv").compress_type == zipfile.ZIP_DEFLATED
    assert archive.getinfo("plot.png").compress_type == zipfile.ZIP_STORED


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../x.txt", "'..' parts are refused"),
        ("a/../../x.txt", "'..' parts are refused"),
        ("/etc/passwd", "relative path"),
        ("C:\\x.txt", "relative path"),
        ("a\x00b.txt", "relative path"),
        ("a//b.txt", "empty"),
        (".hidden", "leading dots"),
        ("bad\x07bell.txt", "control characters"),
    ],
)
def test_hostile_member_names_are_refused_naming_them(tmp_path: Path, name: str, why: str) -> None:
    service, app = _service(tmp_path)
    with app.test_request_context(), pytest.raises(UnsupportedValueError, match=why) as caught:
        service.register(File({"fine.txt": b"ok", name: b"x"}, filename="b.zip"))
    assert repr(name) in str(caught.value)
    assert service.stats().files == 0


def test_bad_members_are_errors_naming_the_member(tmp_path: Path) -> None:
    service, app = _service(tmp_path)
    with app.test_request_context():
        with pytest.raises(
            UnsupportedValueError, match=r"zip member 'odd\.bin': cannot serve a value of type"
        ):
            service.register(File({"ok.txt": b"x", "odd.bin": object()}, filename="b.zip"))
        # A dict with no zip name: said how to bundle it.
        with pytest.raises(UnsupportedValueError, match=r"File\(\{\.\.\.\}, filename='all\.zip'\)"):
            service.register({"a.txt": b"x"}, filename="a.bin")


BIG = """
import hashlib, resource, sys, zipfile
from cachelib import FileSystemCache
from flask import Flask
from dfc_transform import File, FileService

PIECE = bytes(range(256)) * 256  # 64 KiB
COUNT = 16384  # 1 GiB a member

def member():
    for _ in range(COUNT):
        yield PIECE

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
service = FileService(FileSystemCache(sys.argv[1], threshold=0))
app = Flask("big")
service.init_app(app)
with app.test_request_context():
    url = service.register(File({"one.bin": member(), "two.bin": member()}, filename="big.zip"))
size = 0

class Reader:  # the served zip, read as it comes
    def __init__(self):
        self.response = app.test_client().get(url, buffered=False)
        self.pieces = iter(self.response.response)
        self.pending = b""
    def read(self, n=-1):
        global size
        while n < 0 or len(self.pending) < n:
            piece = next(self.pieces, None)
            if piece is None:
                break
            size += len(piece)
            self.pending += piece
        data, self.pending = (self.pending, b"") if n < 0 else (self.pending[:n], self.pending[n:])
        return data

# Checked as it streams: each member's local header, then its bytes, then the next.
expected = hashlib.sha256()
for _ in range(COUNT):
    expected.update(PIECE)
reader = Reader()
import struct
ok = []
for _ in range(2):
    header = reader.read(30)
    assert header[:4] == b"PK\\x03\\x04", header[:4]
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    name = reader.read(name_len)
    reader.read(extra_len)
    digest = hashlib.sha256()
    left = COUNT * len(PIECE)
    while left:
        data = reader.read(min(left, 1 << 20))
        digest.update(data)
        left -= len(data)
    ok.append(digest.hexdigest() == expected.hexdigest())
    reader.read(24)  # the zip64 data descriptor: signature, CRC, two 8-byte sizes
reader.read()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(size, all(ok), peak - before)
"""


def test_a_two_gigabyte_bundle_with_memory_bounded(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BIG, str(tmp_path / "store")], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    size, same, growth = done.stdout.split()
    assert int(size) > 2 * 1024**3 and same == "True"
    assert int(growth) < 64 * MiB, done.stdout
    for path in (tmp_path / "store").iterdir():  # no GiB left in pytest's kept temp dirs
        path.unlink()
