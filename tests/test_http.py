"""The file route over HTTP, through the Flask test client: HEAD, ranges, validators and caching,
Content-Disposition, safety headers, one-time files, the size cap and clean 4xx answers."""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from cachelib import SimpleCache
from dash_extensions.enrich import Input
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import http_date, parse_date
from werkzeug.test import TestResponse

from dfc_transform import FileOutput, FileService
from dfc_transform.exc import ContentMissingError, FileTooLargeError

from .conftest import DashClient, inp, out

CHUNK = 1024
DATA = os.urandom(5 * CHUNK - 120)  # 5000 bytes: five chunks, the last one short
SAFETY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass
class Served:
    """A plain Flask app with a FileService on the test's backend."""

    service: FileService
    client: FlaskClient

    @property
    def backend(self) -> Any:
        return self.service.backend

    def register(self, value: Any, **options: Any) -> str:
        return self.service.register(value, **options)


ServeFactory = Callable[..., Served]


@pytest.fixture
def make_served(backend: Any) -> ServeFactory:
    def factory(**kwargs: Any) -> Served:
        kwargs.setdefault("chunk_size", CHUNK)
        service = FileService(kwargs.pop("backend", backend), **kwargs)
        app = Flask(__name__)
        service.init_app(app)
        return Served(service, app.test_client())

    return factory


@pytest.fixture
def served(make_served: ServeFactory) -> Served:
    return make_served()


class CountingCache(SimpleCache):
    """A SimpleCache that records every key read."""

    def __init__(self) -> None:
        super().__init__(threshold=100_000)  # SimpleCache reads threshold=0 as 500 items
        self.reads: list[str] = []

    def get(self, key: str) -> Any:
        self.reads.append(key)
        return super().get(key)

    def chunks_read(self, token: str) -> list[int]:
        prefix = f"dfc:{storage_of(self, token)}:"
        return [
            int(k[len(prefix) :]) for k in self.reads if k.startswith(prefix) and k[len(prefix) :].isdigit()
        ]


def token_of(url: str) -> str:
    return url.rsplit("/", 2)[-2]


def assert_plain_error(r: TestResponse, status: int) -> None:
    assert r.status_code == status, (r.status, r.data[:200])
    assert r.mimetype == "text/plain"
    if r.request.method == "HEAD":
        assert r.data == b""
    else:
        assert 0 < len(r.data) < 200
    assert b"Traceback" not in r.data
    for name, value in SAFETY.items():
        assert r.headers[name] == value


def an_hour_before(date: str) -> str:
    parsed = parse_date(date)
    assert parsed is not None, date
    return http_date(parsed - timedelta(hours=1))


def storage_of(backend: Any, token: str) -> str:
    """The key a file's chunks are stored under, from its record (``dfc:<token>:m``)."""
    data = SimpleCache.get(backend, f"dfc:{token}:m") if isinstance(backend, SimpleCache) else None
    if data is None:
        data = backend.get(f"dfc:{token}:m")
    return str(json.loads(data)["storage"]) if data is not None else token


def chunk_keys(backend: Any, token: str, count: int) -> list[str]:
    storage = storage_of(backend, token)
    return [k for k in (f"dfc:{storage}:{i}" for i in range(count)) if backend.get(k) is not None]


# -- 1. HEAD -------------------------------------------------------------------------------------


def test_head_sends_the_get_headers_and_no_body(served: Served) -> None:
    text = "héllo wörld ✓\n" * 300  # more bytes than characters
    url = served.register(io.StringIO(text), filename="t.txt")
    get = served.client.get(url)
    head = served.client.head(url)
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(text.encode())) == str(len(get.data))
    assert len(text.encode()) != len(text)
    assert dict(head.headers) == dict(get.headers)


def test_head_with_a_range_is_a_206_without_body(served: Served) -> None:
    url = served.register(DATA)
    r = served.client.head(url, headers={"Range": "bytes=1000-2999"})
    assert r.status_code == 206
    assert r.data == b""
    assert r.headers["Content-Length"] == "2000"
    assert r.headers["Content-Range"] == "bytes 1000-2999/5000"


def test_head_reads_at_most_one_chunk() -> None:
    backend = CountingCache()
    served = _served_on(backend)
    url = served.register(os.urandom(64 * CHUNK))
    backend.reads.clear()
    assert served.client.head(url).headers["Content-Length"] == str(64 * CHUNK)
    assert len(backend.chunks_read(token_of(url))) <= 1


def test_head_of_a_path_served_from_disk(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    url = served.register(path)
    r = served.client.head(url)
    assert (r.status_code, r.data, r.headers["Content-Length"]) == (200, b"", "5000")


# -- 2. Ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=0-1023", 0, 1024),  # exactly the first chunk
        ("bytes=1024-2047", 1024, 2048),  # exactly the second
        ("bytes=1000-2100", 1000, 2101),  # across a chunk boundary
        ("bytes=100-4900", 100, 4901),  # across all chunks
        ("bytes=4000-", 4000, 5000),
        ("bytes=4999-", 4999, 5000),
        ("bytes=-1", 4999, 5000),
        ("bytes=-1500", 3500, 5000),
        ("bytes=-5000", 0, 5000),
        ("bytes=-99999", 0, 5000),  # a suffix longer than the file is the whole file (RFC 9110 14.1.3)
        ("bytes=100-99999", 100, 5000),  # the last position is clamped
        ("bytes=0-", 0, 5000),
        ("BYTES = 10-19", 10, 20),
    ],
)
def test_single_range_is_a_206_with_the_exact_slice(
    served: Served, header: str, start: int, stop: int
) -> None:
    url = served.register(DATA)
    r = served.client.get(url, headers={"Range": header})
    assert r.status_code == 206
    assert r.data == DATA[start:stop]
    assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/5000"
    assert r.headers["Content-Length"] == str(stop - start)
    assert r.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes=5000-", "bytes=5000-6000", "bytes=99999-", "bytes=-0"])
def test_unsatisfiable_range_is_a_416(served: Served, header: str) -> None:
    url = served.register(DATA)
    r = served.client.get(url, headers={"Range": header})
    assert_plain_error(r, 416)
    assert r.headers["Content-Range"] == "bytes */5000"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-6",  # multi-range: the whole file
        "bytes=0-1,-5",
        "bytes=5-2",  # malformed: ignored, as RFC 9110 14.2 says
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=1-2-3",
        "bytes=0x10-20",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits
        "items=0-5",
        "0-5",
        "",
    ],
)
def test_multi_range_and_malformed_range_give_the_whole_file(served: Served, header: str) -> None:
    url = served.register(DATA)
    r = served.client.get(url, headers={"Range": header})
    assert r.status_code == 200
    assert r.data == DATA
    assert "Content-Range" not in r.headers
    assert r.headers["Accept-Ranges"] == "bytes"


def test_range_on_a_path_served_from_disk(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    url = served.register(path)
    assert served.client.get(url, headers={"Range": "bytes=1000-2100"}).data == DATA[1000:2101]
    tail = served.client.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.data) == (206, DATA[-10:])
    assert served.client.get(url, headers={"Range": "bytes=5000-"}).status_code == 416


@pytest.mark.parametrize(
    ("header", "chunks"),
    [
        ("bytes=-100", [63]),
        ("bytes=65535-", [63]),
        ("bytes=64500-65000", [62, 63]),
        ("bytes=2000-3000", [1, 2]),
        ("bytes=0-0", [0]),
    ],
)
def test_a_range_reads_only_the_chunks_it_needs(header: str, chunks: list[int]) -> None:
    backend = CountingCache()
    served = _served_on(backend)
    data = os.urandom(64 * CHUNK)
    url = served.register(data)
    backend.reads.clear()
    r = served.client.get(url, headers={"Range": header})
    assert r.status_code == 206
    assert len(r.data) == int(r.headers["Content-Length"])
    assert backend.chunks_read(token_of(url)) == chunks


def test_the_whole_file_reads_every_chunk_once_in_order() -> None:
    backend = CountingCache()
    served = _served_on(backend)
    data = os.urandom(64 * CHUNK)
    url = served.register(data)
    backend.reads.clear()
    assert served.client.get(url).data == data
    assert backend.chunks_read(token_of(url)) == list(range(64))


def test_if_range_is_honoured(served: Served) -> None:
    url = served.register(DATA)
    first = served.client.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    older = an_hour_before(modified)

    def get(if_range: str) -> TestResponse:
        return served.client.get(url, headers={"Range": "bytes=10-19", "If-Range": if_range})

    assert (get(etag).status_code, get(etag).data) == (206, DATA[10:20])
    assert get(modified).status_code == 206
    for stale in ['"another-tag"', "W/" + etag, older, "garbage"]:
        r = get(stale)
        assert (r.status_code, r.data) == (200, DATA), stale


# -- 3. Validators and caching -------------------------------------------------------------------


def test_etag_is_stable_per_token_and_differs_between_files(served: Served) -> None:
    url = served.register(DATA)
    again = served.register(DATA)  # same content and options: the same URL, stored once
    other = served.register(DATA[:-1])  # other content
    renamed = served.register(DATA, filename="renamed.bin")  # other options
    tags = {served.client.get(url).headers["ETag"] for _ in range(3)}
    assert tags == {f'"{token_of(url)}"'}
    assert again == url
    assert served.client.get(other).headers["ETag"] not in tags
    assert served.client.get(renamed).headers["ETag"] not in tags


@pytest.mark.parametrize("form", ["{tag}", "W/{tag}", "*", '"other", {tag}', '"a","b" , {tag}'])
def test_if_none_match_gives_304(served: Served, form: str) -> None:
    url = served.register(DATA, filename="d.bin")
    tag = served.client.get(url).headers["ETag"]
    r = served.client.get(url, headers={"If-None-Match": form.format(tag=tag)})
    assert r.status_code == 304
    assert r.data == b""
    assert r.headers["ETag"] == tag
    assert r.headers["Cache-Control"].startswith("private, max-age=")
    for name, value in SAFETY.items():
        assert r.headers[name] == value
    assert served.client.head(url, headers={"If-None-Match": tag}).status_code == 304


def test_if_none_match_with_other_tags_serves_the_file(served: Served) -> None:
    url = served.register(DATA)
    r = served.client.get(url, headers={"If-None-Match": '"other", W/"another"'})
    assert (r.status_code, r.data) == (200, DATA)


def test_last_modified_and_if_modified_since(served: Served) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    url = served.register(DATA)
    r = served.client.get(url)
    modified = parse_date(r.headers["Last-Modified"])
    assert modified is not None
    assert before <= modified <= datetime.now(timezone.utc)
    earlier = http_date(modified - timedelta(hours=1))
    assert (
        served.client.get(url, headers={"If-Modified-Since": r.headers["Last-Modified"]}).status_code == 304
    )
    assert served.client.get(url, headers={"If-Modified-Since": earlier}).data == DATA
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    both = {"If-Modified-Since": r.headers["Last-Modified"], "If-None-Match": '"other"'}
    assert served.client.get(url, headers=both).status_code == 200


def test_if_match_and_if_unmodified_since(served: Served) -> None:
    url = served.register(DATA)
    r = served.client.get(url)
    tag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    for ok in [tag, "*", f'"other", {tag}']:
        assert served.client.get(url, headers={"If-Match": ok}).data == DATA
    for failing in ['"other"', "W/" + tag]:  # If-Match compares strongly
        assert_plain_error(served.client.get(url, headers={"If-Match": failing}), 412)
    earlier = an_hour_before(modified)
    assert_plain_error(served.client.get(url, headers={"If-Unmodified-Since": earlier}), 412)
    assert served.client.get(url, headers={"If-Unmodified-Since": modified}).status_code == 200


def test_cache_control_is_private_with_the_remaining_lifetime(
    make_served: ServeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = make_served(timeout=600)
    now = time.time()
    url = served.register(DATA)
    assert served.client.get(url).headers["Cache-Control"] in {
        "private, max-age=600, immutable",
        "private, max-age=599, immutable",
    }
    monkeypatch.setattr(time, "time", lambda: now + 100)
    assert served.client.get(url).headers["Cache-Control"] == "private, max-age=500, immutable"
    partial = served.client.get(url, headers={"Range": "bytes=0-9"})
    assert partial.headers["Cache-Control"] == "private, max-age=500, immutable"


def test_cache_control_without_expiry_and_for_one_time_files(make_served: ServeFactory) -> None:
    served = make_served(timeout=0)
    assert served.client.get(served.register(DATA)).headers["Cache-Control"] == (
        "private, max-age=31536000, immutable"
    )
    once = served.register(DATA, one_time=True)
    assert served.client.get(once).headers["Cache-Control"] == "private, no-store"


# -- 4. Content-Disposition ----------------------------------------------------------------------

_DISPOSITION = re.compile(
    r"""(inline|attachment); filename="([^"\\;%/\x00-\x1f\x7f]*)"(?:; filename\*=UTF-8''([A-Za-z0-9%._~-]+))?"""
)


def parse_disposition(value: str) -> tuple[str, str, str | None]:
    """(kind, ASCII fallback, decoded filename* or None); fails on anything else."""
    match = _DISPOSITION.fullmatch(value)
    assert match, value
    kind, fallback, star = match.groups()
    assert fallback.isascii() and fallback and not fallback.startswith(".")
    return kind, fallback, unquote(star, errors="strict") if star else None


def test_inline_by_default_and_attachment_with_download(served: Served) -> None:
    inline = served.client.get(served.register(DATA, filename="plot.png"))
    assert inline.headers["Content-Disposition"] == 'inline; filename="plot.png"'
    download = served.client.get(served.register(DATA, filename="plot.png", download=True))
    assert download.headers["Content-Disposition"] == 'attachment; filename="plot.png"'


def test_non_ascii_name_gets_an_ascii_fallback_and_rfc5987_filename(served: Served) -> None:
    name = "Überblick 2024 \u2013 café.csv"  # with an en dash
    url = served.register(b"a,b\n", filename=name, download=True)
    assert unquote(url.rsplit("/", 1)[1]) == name
    r = served.client.get(url)
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == (
        'attachment; filename="Uberblick 2024  cafe.csv"; '
        "filename*=UTF-8''%C3%9Cberblick%202024%20%E2%80%93%20caf%C3%A9.csv"
    )
    assert parse_disposition(r.headers["Content-Disposition"]) == (
        "attachment",
        "Uberblick 2024  cafe.csv",
        name,
    )


@pytest.mark.parametrize(
    ("given", "served_as", "fallback"),
    [
        ('say "hi".txt', 'say "hi".txt', "say _hi_.txt"),
        ("a;b=c.txt", "a;b=c.txt", "a_b=c.txt"),
        ("reports/2024/q1.csv", "q1.csv", "q1.csv"),
        ("..\\..\\boot.ini", "boot.ini", "boot.ini"),
        ("a\r\nSet-Cookie: x=1.txt", "a__Set-Cookie: x=1.txt", "a__Set-Cookie: x=1.txt"),
        ("nul\x00byte.txt", "nul_byte.txt", "nul_byte.txt"),
        ("tab\there\x85.txt", "tab_here_.txt", "tab_here_.txt"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe", "invoice_fdp.exe"),  # no right-to-left override
        ("100%25 ok%2F..%2Fx.txt", "100%25 ok%2F..%2Fx.txt", "100_25 ok_2F.._2Fx.txt"),
        ("日本.csv", "日本.csv", "file.csv"),
        ("a\uff0fb.txt", "a\uff0fb.txt", "a_b.txt"),  # fullwidth solidus: NFKD makes it a "/"
        (".hidden", "hidden", "hidden"),
    ],
)
def test_dangerous_file_names_are_made_safe(
    served: Served, given: str, served_as: str, fallback: str
) -> None:
    url = served.register(DATA, filename=given, download=True)
    assert unquote(url.rsplit("/", 1)[1]) == served_as
    r = served.client.get(url)
    assert r.status_code == 200
    value = r.headers["Content-Disposition"]
    assert not re.search(r"[\x00-\x1f\x7f]", value)
    kind, ascii_name, star = parse_disposition(value)
    assert (kind, ascii_name) == ("attachment", fallback)
    assert (star or ascii_name) == served_as
    assert "\r" not in "".join(f"{k}: {v}" for k, v in r.headers.items())
    assert "Set-Cookie" not in r.headers


# -- 5. Safety headers ---------------------------------------------------------------------------


def test_safety_headers_on_every_file_response(served: Served) -> None:
    url = served.register(DATA)
    tag = served.client.get(url).headers["ETag"]
    responses = [
        served.client.get(url),
        served.client.head(url),
        served.client.get(url, headers={"Range": "bytes=0-9"}),
        served.client.get(url, headers={"If-None-Match": tag}),
        served.client.get(url, headers={"Range": "bytes=9999-"}),
        served.client.get(url, headers={"If-Match": '"x"'}),
        served.client.get(url.replace(token_of(url), "A" * 22)),
        served.client.get(url + "x"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 206, 304, 416, 412, 404, 404]
    for r in responses:
        for name, value in SAFETY.items():
            assert r.headers[name] == value, (r.status, name)


@pytest.mark.parametrize(
    ("options", "sandboxed"),
    [
        ({"filename": "chart.svg"}, True),
        ({"filename": "page.html"}, True),
        ({"filename": "page.htm"}, True),
        ({"filename": "page.xhtml"}, True),
        ({"filename": "data.xml"}, True),
        ({"mime_type": "text/xml"}, True),
        ({"mime_type": "image/svg+xml; charset=utf-8"}, True),
        ({"mime_type": "TEXT/HTML"}, True),
        ({"mime_type": "application/rss+xml"}, True),
        ({"filename": "page.html", "sandbox": False}, False),  # trusted HTML opts out
        ({"filename": "chart.svg", "download": True}, False),  # an attachment is not rendered
        ({"filename": "plot.png"}, False),
        ({"filename": "doc.pdf"}, False),  # a CSP sandbox would stop the browser's PDF viewer
        ({"filename": "table.csv"}, False),
        ({"filename": "data.json"}, False),
    ],
)
def test_active_types_served_inline_are_sandboxed(
    served: Served, options: dict[str, Any], sandboxed: bool
) -> None:
    r = served.client.get(served.register(b"<svg onload='alert(1)'/>", **options))
    assert r.status_code == 200
    assert r.headers.get("Content-Security-Policy") == ("sandbox" if sandboxed else None)
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_output_options_reach_the_headers_through_dash(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(
        FileOutput("frame", "src", filename="report.html", sandbox=False),
        FileOutput("img", "src", filename="chart.svg"),
        FileOutput("link", "href", filename="Übersicht.csv", download=True),
        Input("go", "n_clicks"),
    )
    def produce(n: int) -> Any:
        return b"<h1>trusted</h1>", b"<svg/>", io.StringIO("a,b\n")

    client = DashClient(app)
    resp = client.fire(
        [out("frame", "src"), out("img", "src"), out("link", "href")], [inp("go", "n_clicks", 1)]
    )
    frame = client.fetch(resp["frame"]["src"])
    assert frame.headers["Content-Type"] == "text/html"
    assert "Content-Security-Policy" not in frame.headers
    assert frame.headers["Content-Disposition"] == 'inline; filename="report.html"'
    img = client.fetch(resp["img"]["src"])
    assert img.headers["Content-Security-Policy"] == "sandbox"
    link = client.fetch(resp["link"]["href"])
    assert link.data == b"a,b\n"
    assert parse_disposition(link.headers["Content-Disposition"]) == (
        "attachment",
        "Ubersicht.csv",
        "Übersicht.csv",
    )
    for r in (frame, img, link):
        for name, value in SAFETY.items():
            assert r.headers[name] == value


# -- 6. One-time files ---------------------------------------------------------------------------


def test_one_time_file_is_gone_after_a_complete_transfer(served: Served) -> None:
    url = served.register(DATA, one_time=True)
    assert served.client.get(url).data == DATA
    assert_plain_error(served.client.get(url), 410)
    assert_plain_error(served.client.head(url), 410)
    assert chunk_keys(served.backend, token_of(url), 5) == []


def test_aborted_transfer_does_not_consume_a_one_time_file(served: Served) -> None:
    url = served.register(DATA, one_time=True)
    r = served.client.get(url, buffered=False)
    assert r.status_code == 200
    first = next(iter(r.response))
    assert 0 < len(first) < len(DATA)
    r.close()  # the client went away after the first chunk
    assert served.client.get(url).data == DATA
    assert served.client.get(url).status_code == 410


def test_heads_and_304s_do_not_consume_a_one_time_file(served: Served) -> None:
    url = served.register(DATA, one_time=True)
    tag = f'"{token_of(url)}"'
    head = served.client.head(url)
    assert head.status_code == 200
    assert head.headers["Accept-Ranges"] == "none"
    assert served.client.get(url, headers={"If-None-Match": tag}).status_code == 304
    assert served.client.get(url).data == DATA
    assert served.client.get(url).status_code == 410


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=-10", "bytes=5-9"])
def test_a_range_on_a_one_time_file_gets_the_whole_file_once(served: Served, header: str) -> None:
    # The rule: one-time files are served whole only, so that "one complete copy" has a meaning.
    url = served.register(DATA, one_time=True)
    r = served.client.get(url, headers={"Range": header})
    assert (r.status_code, r.data) == (200, DATA)
    assert "Content-Range" not in r.headers
    assert_plain_error(served.client.get(url, headers={"Range": header}), 410)


def test_one_time_path_leaves_the_file_on_disk(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "keep.bin"
    path.write_bytes(DATA)
    url = served.register(path, one_time=True)
    assert served.client.get(url).data == DATA
    assert_plain_error(served.client.get(url), 410)
    assert path.read_bytes() == DATA


# -- 7. Size cap ---------------------------------------------------------------------------------


def record_sets(backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wrap ``backend.set`` to record every key written."""
    keys: list[str] = []
    original = backend.set

    def recording(key: str, *args: Any, **kwargs: Any) -> Any:
        keys.append(key)
        return original(key, *args, **kwargs)

    monkeypatch.setattr(backend, "set", recording)
    return keys


def assert_nothing_left(backend: Any, keys: list[str]) -> None:
    """None of ``keys`` is left but the store's own state (its token key and its ledger)."""
    files = [k for k in keys if not k.endswith((":hmac-key", ":ledger"))]
    left = [k for k in files if backend.get(k) is not None or backend.has(k)]
    assert left == []


class TrackedReader(io.BufferedReader):
    """Remembers how far it was read when it was closed."""

    read_when_closed = -1

    def close(self) -> None:
        if not self.closed:
            self.read_when_closed = self.tell()
        super().close()


def test_size_cap_stops_a_stream_and_leaves_nothing(
    make_served: ServeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = make_served(max_size=3000)
    keys = record_sets(served.backend, monkeypatch)
    stream = TrackedReader(io.BytesIO(DATA))
    with pytest.raises(
        FileTooLargeError, match=r"size cap of 2.9 KiB \(max_size=3000; read 3072 bytes so far\)"
    ):
        served.register(stream)
    assert stream.closed  # the value was given to us: closed, as a stored one is
    assert 0 < stream.read_when_closed <= 4 * CHUNK  # reading stopped at the cap, not at the end
    written = [k for k in keys if re.fullmatch(r"dfc:(\w+:)?[\w-]{22}:\d+", k)]
    assert len(written) >= 2  # chunks were written before the cap was hit...
    assert_nothing_left(served.backend, keys)  # ...and removed after it


def test_size_cap_on_buffers_and_paths(
    make_served: ServeFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    for copy_paths in (True, False):
        served = make_served(max_size=3000, copy_paths=copy_paths)
        keys = record_sets(served.backend, monkeypatch)
        for value in (DATA, path):
            with pytest.raises(FileTooLargeError, match="max_size=3000"):
                served.register(value)
        assert_nothing_left(served.backend, keys)
    exactly = make_served(max_size=5000)
    assert exactly.client.get(exactly.register(DATA)).data == DATA


def test_size_cap_error_names_the_output_and_leaves_nothing(
    make_app: Any, backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = make_app(max_size=3000, chunk_size=CHUNK)
    app.server.config["PROPAGATE_EXCEPTIONS"] = True

    @app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return io.BufferedReader(io.BytesIO(DATA))

    client = DashClient(app)
    keys = record_sets(backend, monkeypatch)
    with pytest.raises(FileTooLargeError, match=r"produce, output img\.src: .*max_size=3000"):
        client.fire(out("img", "src"), [inp("go", "n_clicks", 1)])
    assert any(re.fullmatch(r"dfc:[\w-]{22}:1", k) for k in keys)
    assert_nothing_left(backend, keys)


# -- 8. Clean 4xx answers ------------------------------------------------------------------------


def _flip_last(token: str) -> str:
    return token[:-1] + ("B" if token[-1] != "B" else "C")


@pytest.mark.parametrize(
    "make_path",
    [
        lambda url: url.replace(token_of(url), "A" * 22),  # well-formed, unknown
        lambda url: url.replace(token_of(url), _flip_last(token_of(url))),  # forged: one character off
        lambda url: url.replace(token_of(url), token_of(url) + "A"),  # over-long
        lambda url: url.replace(token_of(url), "A" * 10_000),
        lambda url: url.replace(token_of(url), token_of(url)[:-1]),
        lambda url: url.replace(token_of(url), token_of(url) + "%00"),
        lambda url: url.replace("plot.png", "plot.html"),  # another name under a valid token
        lambda url: url.replace("plot.png", "PLOT.png"),
        lambda url: url.replace("plot.png", ""),
        lambda url: url.rsplit("/", 1)[0],
        lambda url: url + "/extra",
    ],
)
def test_unknown_and_forged_tokens_are_404(served: Served, make_path: Callable[[str], str]) -> None:
    url = served.register(DATA, filename="plot.png")
    path = make_path(url)
    assert path != url
    assert_plain_error(served.client.get(path), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/_dash-files/../../etc/passwd",
        "/_dash-files/%2e%2e/%2e%2e/etc/passwd",
        "/_dash-files/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/_dash-files/%252e%252e%252fetc%252fpasswd",
        "/_dash-files/..%5c..%5cwindows%5cwin.ini",
        "/_dash-files/C:%5cWindows%5cwin.ini",
        "/_dash-files//etc/passwd",
        "/_dash-files/%2fetc%2fpasswd",
        "/_dash-files/%00/x",
        "/_dash-files/{token}/../../../etc/passwd",
        "/_dash-files/{token}/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/_dash-files/{token}//etc/passwd",
        "/_dash-files/{token}/%2Fetc%2Fpasswd",
        "/_dash-files/{token}/plot.png%00.html",
        "/_dash-files/{token}%00/plot.png",
        "/_dash-files/{token}/..%2fplot.png",
        "/_dash-files/{token}/" + "%2e" * 300,
    ],
)
def test_traversal_attempts_are_404(served: Served, path: str) -> None:
    url = served.register(DATA, filename="plot.png")
    r = served.client.get(path.format(token=token_of(url)), follow_redirects=True)
    assert_plain_error(r, 404)
    assert b"root:" not in r.data


def test_expired_file_is_404(make_served: ServeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    served = make_served(timeout=60)
    now = time.time()
    url = served.register(DATA)
    assert served.client.get(url).status_code == 200
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert_plain_error(served.client.get(url), 404)
    assert_plain_error(served.client.head(url), 404)


def _drop_chunk(served: Served, url: str, index: int) -> None:
    key = f"dfc:{storage_of(served.backend, token_of(url))}:{index}"
    assert served.backend.get(key) is not None
    served.backend.delete(key)


def test_first_chunk_missing_is_a_410_before_any_header(served: Served) -> None:
    url = served.register(DATA)
    _drop_chunk(served, url, 0)
    assert_plain_error(served.client.get(url), 410)
    assert_plain_error(served.client.head(url), 410)
    assert_plain_error(served.client.get(url, headers={"Range": "bytes=10-20"}), 410)
    # A range that needs only chunks still there is served.
    assert served.client.get(url, headers={"Range": "bytes=2048-"}).data == DATA[2048:]


def test_chunk_missing_mid_stream_aborts_the_transfer(served: Served) -> None:
    url = served.register(DATA)
    _drop_chunk(served, url, 2)
    r = served.client.get(url)
    assert r.status_code == 200  # the headers went out before chunk 2 was needed...
    with pytest.raises(ContentMissingError, match=r"chunk 2 of 5 of file .* is missing"):
        r.get_data()  # ...so the transfer fails instead of coming out short
    ranged = served.client.get(url, headers={"Range": "bytes=1000-3000"})
    with pytest.raises(ContentMissingError, match="chunk 2 of 5"):
        ranged.get_data()
    assert_plain_error(served.client.get(url, headers={"Range": "bytes=2100-2200"}), 410)


def test_truncated_chunk_is_never_served(served: Served) -> None:
    url = served.register(DATA)
    served.backend.set(f"dfc:{storage_of(served.backend, token_of(url))}:3", DATA[3 * CHUNK : 3 * CHUNK + 10])
    with pytest.raises(ContentMissingError, match="chunk 3 of 5"):
        served.client.get(url).get_data()
    assert_plain_error(served.client.get(url, headers={"Range": "bytes=-1000"}), 410)  # starts in chunk 3
    assert served.client.get(url, headers={"Range": "bytes=-50"}).data == DATA[-50:]  # chunk 4 only


def test_flushed_backend_gives_404(served: Served) -> None:
    url = served.register(DATA)
    served.backend.clear()
    assert_plain_error(served.client.get(url), 404)


def test_unreachable_backend_gives_503() -> None:
    class Down(SimpleCache):
        down = False

        def get(self, key: str) -> Any:
            if self.down:
                raise ConnectionError("connection refused")
            return super().get(key)

    backend = Down(threshold=100_000)
    served = _served_on(backend)
    url = served.register(DATA)
    backend.down = True
    assert_plain_error(served.client.get(url), 503)


def _served_on(backend: Any) -> Served:
    service = FileService(backend, chunk_size=CHUNK)
    app = Flask(__name__)
    service.init_app(app)
    return Served(service, app.test_client())
