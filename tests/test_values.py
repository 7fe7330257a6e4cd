"""Every value a callback may return to a FileOutput, through a real callback and a GET."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import dash
import pytest
from dash.exceptions import PreventUpdate
from dash_extensions.enrich import Input

from dfc_transform import File, FileOutput
from dfc_transform.exc import MissingPathError, UnsupportedValueError

from .conftest import DashClient, inp, out

PAYLOAD = bytes(range(256)) * 40 + b"tail"  # 10244 bytes, every byte value


class Reader:
    """A binary stream that is not an io class and hands out odd-sized reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        n = min(n, 777) if n > 0 else 777
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


def _bytesio_at_end() -> io.BytesIO:
    buf = io.BytesIO()
    buf.write(PAYLOAD)  # position left at the end, as savefig leaves it
    return buf


def _stream_midway() -> io.BufferedReader[io.BytesIO]:
    raw = io.BufferedReader(io.BytesIO(b"SKIP" + PAYLOAD))
    raw.read(4)
    return raw


CASES: dict[str, tuple[Any, bytes]] = {
    "bytes": (PAYLOAD, PAYLOAD),
    "bytearray": (bytearray(PAYLOAD), PAYLOAD),
    "memoryview": (memoryview(PAYLOAD), PAYLOAD),
    "BytesIO at end": (_bytesio_at_end, PAYLOAD),
    "BytesIO at start": (lambda: io.BytesIO(PAYLOAD), PAYLOAD),
    "StringIO": (lambda: io.StringIO("héllo wörld ✓\n" * 100), ("héllo wörld ✓\n" * 100).encode()),
    "binary stream from its position": (_stream_midway, PAYLOAD),
    "custom reader": (lambda: Reader(PAYLOAD), PAYLOAD),
    "File(bytes)": (lambda: File(PAYLOAD, filename="x.bin"), PAYLOAD),
}


def _single_app(make_app: Any, value: Any, **output_options: Any) -> DashClient:
    app, _ = make_app()

    @app.callback(FileOutput("img", "src", **output_options), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return value() if callable(value) else value

    return DashClient(app)


def _run(client: DashClient) -> str:
    response = client.fire(out("img", "src"), [inp("go", "n_clicks", 1)])
    return str(response["img"]["src"])


@pytest.mark.parametrize("case", list(CASES))
def test_value_round_trip(make_app: Any, case: str) -> None:
    value, expected = CASES[case]
    client = _single_app(make_app, value)
    url = _run(client)
    assert re.fullmatch(r"/_dash-files/[A-Za-z0-9_-]{22}/[^/]+", url), url
    r = client.fetch(url)
    assert r.status_code == 200
    assert r.data == expected
    assert r.headers["Content-Length"] == str(len(expected))


def test_stringio_is_utf8_text(make_app: Any) -> None:
    client = _single_app(make_app, lambda: io.StringIO("naïve"))
    url = _run(client)
    assert url.endswith("/file.txt")
    r = client.fetch(url)
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.data.decode("utf-8") == "naïve"


def test_stream_is_read_in_chunks(make_app: Any, tmp_path: Path) -> None:
    reader = Reader(PAYLOAD)
    client = _single_app(make_app, reader)
    assert client.fetch(_run(client)).data == PAYLOAD
    assert reader.reads > 10  # read piece by piece (777 bytes each), never in one call


@pytest.mark.parametrize("kind", ["str", "Path"])
def test_path_values(make_app: Any, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    client = _single_app(make_app, str(path) if kind == "str" else path)
    url = _run(client)
    assert url.endswith("/report.csv")
    r = client.fetch(url)
    assert r.data == b"a,b\n1,2\n"
    assert r.headers["Content-Type"] == "text/csv"


def test_path_changed_after_registration_is_not_served_under_old_token(make_app: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"old contents")
    client = _single_app(make_app, path, filename="data.txt")
    url = _run(client)
    path.write_bytes(b"new contents, longer")
    r = client.fetch(url)
    assert r.status_code == 410
    assert b"new contents" not in r.data


def test_copied_path_survives_deletion(make_app: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"kept in the backend")
    app, _ = make_app(copy_paths=True)

    @app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return path

    client = DashClient(app)
    url = _run(client)
    path.unlink()
    assert client.fetch(url).data == b"kept in the backend"


def test_file_options_override_output_options(make_app: Any) -> None:
    client = _single_app(
        make_app, lambda: File(b"<svg/>", filename="pic.svg", download=True), filename="ignored.bin"
    )
    url = _run(client)
    assert url.endswith("/pic.svg")
    r = client.fetch(url)
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert r.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize(
    ("options", "name", "mime"),
    [
        ({"filename": "plot.png"}, "plot.png", "image/png"),
        ({"mime_type": "image/svg+xml"}, "file.svg", "image/svg+xml"),
        ({"mime_type": "application/pdf"}, "file.pdf", "application/pdf"),
        ({}, "file.bin", "application/octet-stream"),
        ({"filename": "noext"}, "noext", "application/octet-stream"),
        ({"filename": "a.jpeg"}, "a.jpeg", "image/jpeg"),
        ({"filename": "a.csv"}, "a.csv", "text/csv"),
        ({"filename": "a.html"}, "a.html", "text/html"),
        ({"filename": "a.json"}, "a.json", "application/json"),
        ({"filename": "a.wav"}, "a.wav", "audio/wav"),
        ({"filename": "a.mp4"}, "a.mp4", "video/mp4"),
        ({"filename": "a.webm"}, "a.webm", "video/webm"),
        ({"filename": "a.PDF"}, "a.PDF", "application/pdf"),
    ],
)
def test_mime_type_and_file_name(make_app: Any, options: dict[str, str], name: str, mime: str) -> None:
    client = _single_app(make_app, b"data", **options)
    url = _run(client)
    assert url.rsplit("/", 1)[1] == name
    assert client.fetch(url).headers["Content-Type"] == mime


def test_none_clears_and_no_update_passes(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return None if n == 1 else dash.no_update

    client = DashClient(app)
    assert client.fire(out("img", "src"), [inp("go", "n_clicks", 1)]) == {"img": {"src": None}}
    # Dash answers a callback whose only output is no_update with nothing to update.
    assert client.fire(out("img", "src"), [inp("go", "n_clicks", 2)]) == {}


def test_prevent_update_passes(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        raise PreventUpdate

    client = DashClient(app)
    client.fire(out("img", "src"), [inp("go", "n_clicks", 1)], expect=204)


def _error_of(make_app: Any, value: Any) -> Exception:
    app, _ = make_app()

    @app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return value

    app.server.config["PROPAGATE_EXCEPTIONS"] = True  # let the test client raise it
    client = DashClient(app)
    with pytest.raises(Exception) as info:
        client.fire(out("img", "src"), [inp("go", "n_clicks", 1)])
    return info.value


@pytest.mark.parametrize("value", [42, 3.5, {"a": 1}, ["x"], object()])
def test_unsupported_value_names_callback_output_and_type(make_app: Any, value: Any) -> None:
    err = _error_of(make_app, value)
    assert isinstance(err, UnsupportedValueError)
    text = str(err)
    assert "tests.test_values._error_of.<locals>.produce" in text
    assert "output img.src" in text
    assert type(value).__name__ in text
    assert "io.BytesIO" in text  # lists what is accepted


def test_missing_path_names_path_and_suggests_stringio(make_app: Any, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.png")
    err = _error_of(make_app, missing)
    assert isinstance(err, MissingPathError)
    assert missing in str(err)
    assert "io.StringIO" in str(err)
    assert "output img.src" in str(err)


def test_text_mode_file_object_is_rejected_clearly(tmp_path: Path) -> None:
    from dfc_transform import FileService

    service = FileService()
    path = tmp_path / "t.txt"
    path.write_text("text")

    class TextReader:
        def read(self, n: int = -1) -> str:
            return "text"

    with pytest.raises(UnsupportedValueError, match=r"open files in binary mode"):
        service.register(TextReader())
