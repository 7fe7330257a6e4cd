"""Small files as ``data:`` URIs (``inline_below``): where they are inlined, where they are not,
and that what is inlined or stored is the file, byte for byte."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import pytest
from dash_extensions.enrich import Input

from dfc_transform import File, FileOutput, FileServeTransform
from dfc_transform.exc import InvalidOptionError
from dfc_transform.settings import DEFAULT_INLINE_BELOW
from dfc_transform.values import to_source

from .conftest import DashClient, inp, out

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)


def _fire(
    make_app: Any, value: Any, prop: str = "src", *, transform: dict[str, Any] | None = None, **options: Any
) -> tuple[Any, DashClient, FileServeTransform]:
    app, files = make_app(**(transform or {"inline_below": DEFAULT_INLINE_BELOW}))

    @app.callback(FileOutput("target", prop, **options), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return value() if callable(value) else value

    client = DashClient(app)
    return client.fire(out("target", prop), [inp("go", "n_clicks", 1)])["target"][prop], client, files


def _decoded(uri: str) -> tuple[str, bytes]:
    assert uri.startswith("data:"), uri[:80]
    head, _, body = uri[len("data:") :].partition(",")
    assert head.endswith(";base64")
    return head[: -len(";base64")], base64.b64decode(body)


@pytest.mark.parametrize(
    ("filename", "mime"),
    [("plot.png", "image/png"), ("a.jpeg", "image/jpeg"), ("a.wav", "audio/wav"), ("a.webm", "video/webm")],
)
def test_a_small_picture_sound_or_video_goes_inline_and_nothing_is_stored(
    make_app: Any, filename: str, mime: str
) -> None:
    value, _, files = _fire(make_app, PNG, filename=filename)
    assert _decoded(value) == (mime, PNG)
    stats = files.service.stats()
    assert stats.files == 0 and stats.events["inlined"] == 1 and stats.events["registered"] == 0


def test_the_threshold_is_strict_and_a_bigger_file_is_stored_whole(make_app: Any) -> None:
    limit = 4096
    below, _, _ = _fire(make_app, b"x" * (limit - 1), filename="a.png", transform={"inline_below": limit})
    assert _decoded(below)[1] == b"x" * (limit - 1)
    content = os.urandom(limit)
    at, client, files = _fire(make_app, content, filename="a.png", transform={"inline_below": limit})
    assert at.startswith("/_dash-files/") and client.fetch(at).data == content
    assert files.service.stats().files == 1


@pytest.mark.parametrize("size", [4095, 4096, 4097, 100_000])
def test_a_stream_is_inlined_or_stored_without_losing_a_byte(
    make_app: Any, tmp_path: Path, size: int
) -> None:
    content = os.urandom(size)
    path = tmp_path / "stream.png"
    path.write_bytes(content)
    value, client, _ = _fire(
        make_app,
        lambda: io.BufferedReader(open(path, "rb"), 333),  # noqa: SIM115 (the transform closes it)
        transform={"inline_below": 4096},
        filename="s.png",
    )
    if size < 4096:
        assert _decoded(value) == ("image/png", content)
    else:
        assert client.fetch(value).data == content


def test_a_path_is_inlined_by_its_size(make_app: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(PNG)
    value, _, _ = _fire(make_app, path)
    assert _decoded(value) == ("image/png", PNG)


@pytest.mark.parametrize(
    ("prop", "options", "why"),
    [
        ("href", {"filename": "plot.png"}, "a link carries a file name and may be shared"),
        ("data", {"filename": "plot.png"}, "a dcc.Store's data expects the URL"),
        ("src", {"filename": "plot.png", "one_time": True}, "a one-time URL opens once"),
        ("src", {"filename": "draw.svg"}, "SVG is active content"),
        ("src", {"filename": "page.html"}, "HTML is active content"),
        ("src", {"filename": "plot.png", "inline_below": 0}, "the output turned it off"),
    ],
)
def test_where_a_file_is_not_inlined(make_app: Any, prop: str, options: dict[str, Any], why: str) -> None:
    value, client, _ = _fire(make_app, PNG, prop, **options)
    assert isinstance(value, str) and value.startswith("/_dash-files/"), why
    assert client.fetch(value.partition("#")[0]).data == PNG


def test_the_transform_can_turn_it_off(make_app: Any) -> None:
    value, _, _ = _fire(make_app, PNG, transform={"inline_below": 0}, filename="plot.png")
    assert value.startswith("/_dash-files/")


def test_a_private_file_is_inlined(make_app: Any) -> None:
    # Its bytes go to the browser whose callback made them, as the URL's would.
    value, _, files = _fire(make_app, PNG, filename="plot.png", private=True)
    assert _decoded(value)[1] == PNG and files.service.stats().files == 0


def test_asked_on_an_output_any_property_and_a_download_gets_what_send_bytes_gives(make_app: Any) -> None:
    value, _, _ = _fire(make_app, b"a,b\n1,2\n", "href", filename="t.csv", inline_below=1024)
    assert _decoded(value) == ("text/csv", b"a,b\n1,2\n")
    sent, _, _ = _fire(make_app, b"a,b\n1,2\n", "data", filename="t\u00e9.csv", inline_below=1024)
    assert sent == {
        "content": base64.b64encode(b"a,b\n1,2\n").decode(),
        "filename": "t\u00e9.csv",
        "type": "text/csv",
        "base64": True,
    }


def test_file_options_win_over_the_outputs(make_app: Any) -> None:
    stored, client, _ = _fire(make_app, File(PNG, filename="a.png", inline_below=0))
    assert client.fetch(stored).data == PNG
    inlined, _, _ = _fire(make_app, File(b"text", filename="a.txt", inline_below=100), "href", inline_below=0)
    assert _decoded(inlined) == ("text/plain", b"text")


def test_text_keeps_its_charset(make_app: Any) -> None:
    value, _, _ = _fire(make_app, io.StringIO("naïve"), "href", inline_below=100)
    assert _decoded(value) == ("text/plain;charset=utf-8", "naïve".encode())


def test_register_stores_unless_asked(make_app: Any) -> None:
    _, files = make_app(inline_below=DEFAULT_INLINE_BELOW)
    assert files.register(PNG, filename="a.png").startswith("/_dash-files/")
    assert files.register(PNG, filename="a.png", inline_below=10_000).startswith("data:image/png;base64,")


@pytest.mark.parametrize("bad", [-1, "32k", 1.5, True])
def test_bad_thresholds_are_refused_with_the_option_named(bad: Any) -> None:
    with pytest.raises(InvalidOptionError, match="inline_below"):
        FileOutput("a", "src", inline_below=bad)
    with pytest.raises((InvalidOptionError, TypeError, ValueError), match="inline_below"):
        FileServeTransform(inline_below=bad)


@pytest.mark.parametrize("size", [0, 1, 99, 100, 101, 1000])
def test_take_gives_the_content_or_a_source_with_every_byte(size: int) -> None:
    content = os.urandom(size)
    taken, source = to_source(io.BufferedReader(io.BytesIO(content), 7)).take(100)
    if size <= 100:
        assert taken == content
    else:
        assert taken is None
        assert b"".join(bytes(c) for c in source.chunks(64)) == content
