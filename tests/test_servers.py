"""Everything that holds on Flask holds on Quart and FastAPI: the file route, the upload protocol,
private and one-time files, each through the server's own test client.

Every test runs on a plain ``dash.Dash(__name__, backend=...)`` for each server, with
``files.init_app(app)`` and its file callbacks registered with ``@files.callback``; the files are
made by firing those callbacks as the renderer does (see :mod:`tests.server_clients`), against a
``FileSystemCache`` and the default store. The cases and their assertions are those of
tests/test_http.py, tests/test_upload_protocol.py and tests/test_upload_limits.py, which run on
Flask only.
"""

from __future__ import annotations

import gc
import hashlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import dash
import pytest
from cachelib import FileSystemCache, RedisCache
from dash import Input, Output, dcc, html
from werkzeug.http import http_date, parse_date

from dfc_transform import File, FileInput, FileOutput, FileServeTransform, Upload, UploadedFile
from dfc_transform.http import uploads as protocol
from dfc_transform.http.tickets import Tickets
from dfc_transform.store import ChunkStore

from .server_clients import Reply, ServerClient, TransferCut, open_client
from .servers import free_port

SERVERS = ["flask", "quart", "fastapi"]
#: A FileSystemCache given to the transform, and the default store (``FileServeTransform()``).
STORES = ["filesystem", "default"]
CHUNK = 1024
#: Upload parts of four chunks, so that a file of a few KiB has several.
PART = 4 * CHUNK
DATA = os.urandom(5 * CHUNK - 120)  # 5000 bytes: five chunks, the last one short
SAFETY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
COOKIE = "dfc_session"


def out(ident: str, prop: str) -> dict[str, Any]:
    return {"id": ident, "property": prop}


def inp(ident: str, prop: str, value: Any) -> dict[str, Any]:
    return {"id": ident, "property": prop, "value": value}


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def token_of(url: str) -> str:
    return url.rsplit("/", 2)[-2]


# -- the app on each server ----------------------------------------------------------------------

#: The app's file callbacks: the store that triggers each, the link whose href it fills, and the
#: options of its FileOutput.
MAKERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "file": ("make", "link", {}),
    "private": ("make-private", "private-link", {"private": True}),
    "once": ("make-once", "once-link", {"one_time": True}),
}


@dataclass
class Site:
    """A plain ``dash.Dash`` on one server with a ``FileServeTransform``, and its browsers.

    ``make()`` fires one of the app's file callbacks from a browser; the callback returns what
    the test put in :attr:`pending` under the key it sent.
    """

    server: str
    app: dash.Dash
    files: FileServeTransform
    pending: dict[str, Any] = field(default_factory=dict)
    clients: list[ServerClient] = field(default_factory=list)
    _keys: Iterator[int] = field(default_factory=itertools.count)

    @property
    def store(self) -> ChunkStore:
        return self.files.service.store

    def client(self) -> ServerClient:
        """A new browser that has loaded the app's page."""
        client = open_client(self.app)
        self.clients.append(client)
        return client

    @property
    def browser(self) -> ServerClient:
        """The first browser (made when first asked for)."""
        return self.clients[0] if self.clients else self.client()

    def make(self, value: Any, *, kind: str = "file", by: ServerClient | None = None, **options: Any) -> str:
        """The URL of ``value`` (a ``File`` with ``options``) as ``kind``'s callback returns it."""
        key = f"k{next(self._keys)}"
        self.pending[key] = File(value, **options) if options else value
        store_id, link, _ = MAKERS[kind]
        response = (by or self.browser).fire(out(link, "href"), [inp(store_id, "data", key)])
        return str(response[link]["href"])

    def drop_chunk(self, url: str, index: int, replace_with: bytes | None = None) -> None:
        """Remove (or overwrite) chunk ``index`` of the stored file at ``url``."""
        store = self.store
        record = store.lookup(token_of(url))
        assert record is not None and record.inline is None, url
        key = store.keys.key(*record.chunk_at(index))
        assert store.keys.get(key) is not None
        if replace_with is None:
            store.keys.delete(key)
        else:
            store.keys.set(key, replace_with, 0)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def build_site(server: str, backend: Any, **settings: Any) -> Site:
    app = dash.Dash(__name__, backend=server)
    settings.setdefault("chunk_size", CHUNK)
    files = FileServeTransform(backend, **settings)
    files.init_app(app)
    app.layout = html.Div(
        [
            *(c for store_id, link, _ in MAKERS.values() for c in (dcc.Store(id=store_id), html.A(id=link))),
            Upload(id="up", multiple=True),
            Upload(id="csv", accept=".csv,text/csv", max_size=20 * 1024),
            html.Div(id="digest"),
        ]
    )
    site = Site(server, app, files)

    for store_id, link, options in MAKERS.values():
        # A FileOutput per kind of file: plain, private=True, one_time=True.
        @files.callback(
            FileOutput(link, "href", **options), Input(store_id, "data"), prevent_initial_call=True
        )
        def make(key: str) -> Any:
            return site.pending.pop(key)

    @files.callback(Output("digest", "children"), FileInput("up", "value"), prevent_initial_call=True)
    def digest(uploaded: list[UploadedFile] | None) -> str:
        return json.dumps(
            [[f.name, f.size, hashlib.sha256(f.stream.read()).hexdigest()] for f in uploaded or []]
        )

    return site


Build = Callable[..., Site]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def build(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Build]:
    """``build(backend, **settings)``: a :class:`Site` on this test's server; closed at the end."""
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "default-store"))
    monkeypatch.setattr(protocol, "PART_TARGET", PART)
    sites: list[Site] = []

    def factory(backend: Any, **settings: Any) -> Site:
        sites.append(build_site(server, backend, **settings))
        return sites[-1]

    yield factory
    for site in sites:
        site.close()


@pytest.fixture(params=STORES)
def make_site(
    request: pytest.FixtureRequest, build: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Build:
    """``make_site(**settings)``: a :class:`Site` on this test's server and store."""
    count = itertools.count()

    def factory(**settings: Any) -> Site:
        n = next(count)
        if request.param == "default":
            # Each site its own directory: the default store of one is not another's.
            monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / f"default-store-{n}"))
            return build(None, **settings)
        return build(FileSystemCache(str(tmp_path / f"store-{n}"), threshold=0), **settings)

    return factory


@pytest.fixture
def site(make_site: Build) -> Site:
    return make_site()


def assert_plain_error(reply: Reply, status: int, method: str = "GET") -> None:
    assert reply.status == status, (reply.status, reply.body[:200])
    assert reply.headers["Content-Type"].startswith("text/plain")
    if method == "HEAD":
        assert reply.body == b""
    else:
        assert 0 < len(reply.body) < 200
    assert b"Traceback" not in reply.body
    for name, value in SAFETY.items():
        assert reply.headers[name] == value


def an_hour_before(date: str) -> str:
    parsed = parse_date(date)
    assert parsed is not None, date
    return http_date(parsed - timedelta(hours=1))


def lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


# -- 1. GET and HEAD -----------------------------------------------------------------------------


def test_head_sends_the_get_headers_and_no_body(site: Site) -> None:
    text = "héllo wörld ✓\n" * 300  # more bytes than characters
    url = site.make(io.StringIO(text), filename="t.txt")
    get = site.browser.get(url)
    head = site.browser.head(url)
    assert (get.status, get.body) == (200, text.encode())
    assert head.status == 200
    assert head.body == b""
    assert head.headers["Content-Length"] == str(len(text.encode())) == get.headers["Content-Length"]
    assert len(text.encode()) != len(text)
    assert lower(head.headers) == lower(get.headers)


def test_head_with_a_range_is_a_206_without_body(site: Site) -> None:
    r = site.browser.head(site.make(DATA), {"Range": "bytes=1000-2999"})
    assert (r.status, r.body) == (206, b"")
    assert r.headers["Content-Length"] == "2000"
    assert r.headers["Content-Range"] == "bytes 1000-2999/5000"


def test_a_path_served_from_disk(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    url = site.make(path)
    client = site.browser
    head = client.head(url)
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", "5000")
    whole = client.get(url)
    assert (whole.status, whole.body, whole.headers["Content-Length"]) == (200, DATA, "5000")
    assert client.get(url, {"Range": "bytes=1000-2100"}).body == DATA[1000:2101]
    tail = client.get(url, {"Range": "bytes=-10"})
    assert (tail.status, tail.body) == (206, DATA[-10:])
    assert client.get(url, {"Range": "bytes=5000-"}).status == 416


def test_a_file_of_several_mib_arrives_byte_exact(make_site: Build, tmp_path: Path) -> None:
    site = make_site(chunk_size=256 * 1024)
    data = os.urandom(2 * 1024 * 1024 + 512 * 1024 + 123)  # eleven chunks, the last one short
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    for url in (site.make(io.BytesIO(data), filename="big.bin"), site.make(path)):
        r = site.browser.get(url)
        assert r.status == 200
        assert r.headers["Content-Length"] == str(len(data))
        assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(data).hexdigest()
        ranged = site.browser.get(url, {"Range": "bytes=262000-1049000"})  # across four chunks
        assert (ranged.status, ranged.body) == (206, data[262000:1049001])


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
def test_single_range_is_a_206_with_the_exact_slice(site: Site, header: str, start: int, stop: int) -> None:
    r = site.browser.get(site.make(DATA), {"Range": header})
    assert r.status == 206
    assert r.body == DATA[start:stop]
    assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/5000"
    assert r.headers["Content-Length"] == str(stop - start)
    assert r.headers["Accept-Ranges"] == "bytes"


def test_unsatisfiable_ranges_are_a_416(site: Site) -> None:
    url = site.make(DATA)
    for header in ["bytes=5000-", "bytes=5000-6000", "bytes=99999-", "bytes=-0"]:
        r = site.browser.get(url, {"Range": header})
        assert_plain_error(r, 416)
        assert r.headers["Content-Range"] == "bytes */5000", header


def test_multi_range_and_malformed_range_give_the_whole_file(site: Site) -> None:
    url = site.make(DATA)
    for header in ["bytes=0-1,5-6", "bytes=0-1,-5", "bytes=5-2", "bytes=abc", "bytes=", "items=0-5", ""]:
        r = site.browser.get(url, {"Range": header})
        assert (r.status, r.body) == (200, DATA), header
        assert "Content-Range" not in r.headers
        assert r.headers["Accept-Ranges"] == "bytes"


def test_if_range_is_honoured(site: Site) -> None:
    url = site.make(DATA)
    first = site.browser.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]

    def get(if_range: str) -> Reply:
        return site.browser.get(url, {"Range": "bytes=10-19", "If-Range": if_range})

    assert (get(etag).status, get(etag).body) == (206, DATA[10:20])  # strong tag
    assert get(modified).status == 206  # date
    for stale in ['"another-tag"', "W/" + etag, an_hour_before(modified), "garbage"]:
        r = get(stale)  # another or a weak tag, an older date: the whole file
        assert (r.status, r.body) == (200, DATA), stale


# -- 3. Validators and caching -------------------------------------------------------------------


def test_etag_is_stable_per_token_and_differs_between_files(site: Site) -> None:
    url = site.make(DATA)
    again = site.make(DATA)  # same content and options: the same URL, stored once
    other = site.make(DATA[:-1])
    renamed = site.make(DATA, filename="renamed.bin")
    tags = {site.browser.get(url).headers["ETag"] for _ in range(3)}
    assert tags == {f'"{token_of(url)}"'}
    assert again == url
    assert site.browser.get(other).headers["ETag"] not in tags
    assert site.browser.get(renamed).headers["ETag"] not in tags


def test_if_none_match_gives_304(site: Site) -> None:
    url = site.make(DATA, filename="d.bin")
    tag = site.browser.get(url).headers["ETag"]
    for form in ["{tag}", "W/{tag}", "*", '"other", {tag}', '"a","b" , {tag}']:
        r = site.browser.get(url, {"If-None-Match": form.format(tag=tag)})
        assert (r.status, r.body) == (304, b""), form
        assert r.headers["ETag"] == tag
        assert r.headers["Cache-Control"].startswith("private, max-age=")
        for name, value in SAFETY.items():
            assert r.headers[name] == value
    assert site.browser.head(url, {"If-None-Match": tag}).status == 304
    r = site.browser.get(url, {"If-None-Match": '"other", W/"another"'})
    assert (r.status, r.body) == (200, DATA)


def test_last_modified_and_if_modified_since(site: Site) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    url = site.make(DATA)
    r = site.browser.get(url)
    modified = parse_date(r.headers["Last-Modified"])
    assert modified is not None
    assert before <= modified <= datetime.now(timezone.utc)
    earlier = http_date(modified - timedelta(hours=1))
    assert site.browser.get(url, {"If-Modified-Since": r.headers["Last-Modified"]}).status == 304
    assert site.browser.get(url, {"If-Modified-Since": earlier}).body == DATA
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    both = {"If-Modified-Since": r.headers["Last-Modified"], "If-None-Match": '"other"'}
    assert site.browser.get(url, both).status == 200


def test_if_match_and_if_unmodified_since(site: Site) -> None:
    url = site.make(DATA)
    r = site.browser.get(url)
    tag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    for ok in [tag, "*", f'"other", {tag}']:
        assert site.browser.get(url, {"If-Match": ok}).body == DATA
    for failing in ['"other"', "W/" + tag]:  # If-Match compares strongly
        assert_plain_error(site.browser.get(url, {"If-Match": failing}), 412)
    assert_plain_error(site.browser.get(url, {"If-Unmodified-Since": an_hour_before(modified)}), 412)
    assert site.browser.get(url, {"If-Unmodified-Since": modified}).status == 200


def test_cache_control_is_private_with_the_remaining_lifetime(
    make_site: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(timeout=600)
    now = time.time()
    url = site.make(DATA)
    assert site.browser.get(url).headers["Cache-Control"] in {
        "private, max-age=600, immutable",
        "private, max-age=599, immutable",
    }
    monkeypatch.setattr(time, "time", lambda: now + 100)
    assert site.browser.get(url).headers["Cache-Control"] == "private, max-age=500, immutable"
    partial = site.browser.get(url, {"Range": "bytes=0-9"})
    assert partial.headers["Cache-Control"] == "private, max-age=500, immutable"


def test_cache_control_without_expiry_and_for_one_time_files(make_site: Build) -> None:
    site = make_site(timeout=0)
    assert (
        site.browser.get(site.make(DATA)).headers["Cache-Control"] == "private, max-age=31536000, immutable"
    )
    once = site.make(DATA, kind="once")
    assert site.browser.get(once).headers["Cache-Control"] == "private, no-store"


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


def test_inline_by_default_and_attachment_with_download(site: Site) -> None:
    inline = site.browser.get(site.make(DATA, filename="plot.png"))
    assert inline.headers["Content-Disposition"] == 'inline; filename="plot.png"'
    download = site.browser.get(site.make(DATA, filename="plot.png", download=True))
    assert download.headers["Content-Disposition"] == 'attachment; filename="plot.png"'


def test_non_ascii_name_gets_an_ascii_fallback_and_rfc5987_filename(site: Site) -> None:
    name = "Überblick 2024 \u2013 café.csv"  # with an en dash
    url = site.make(b"a,b\n", filename=name, download=True)
    assert unquote(url.rsplit("/", 1)[1]) == name
    r = site.browser.get(url)
    assert (r.status, r.body) == (200, b"a,b\n")
    assert r.headers["Content-Disposition"] == (
        'attachment; filename="Uberblick 2024  cafe.csv"; '
        "filename*=UTF-8''%C3%9Cberblick%202024%20%E2%80%93%20caf%C3%A9.csv"
    )
    assert parse_disposition(r.headers["Content-Disposition"]) == (
        "attachment",
        "Uberblick 2024  cafe.csv",
        name,
    )


def test_dangerous_file_names_are_made_safe(site: Site) -> None:
    for given, served_as, fallback in [
        ('say "hi".txt', 'say "hi".txt', "say _hi_.txt"),
        ("a;b=c.txt", "a;b=c.txt", "a_b=c.txt"),
        ("reports/2024/q1.csv", "q1.csv", "q1.csv"),
        ("a\r\nSet-Cookie: x=1.txt", "a__Set-Cookie: x=1.txt", "a__Set-Cookie: x=1.txt"),
        ("nul\x00byte.txt", "nul_byte.txt", "nul_byte.txt"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe", "invoice_fdp.exe"),  # no right-to-left override
        ("100%25 ok%2F..%2Fx.txt", "100%25 ok%2F..%2Fx.txt", "100_25 ok_2F.._2Fx.txt"),
        ("日本.csv", "日本.csv", "file.csv"),
    ]:
        url = site.make(DATA, filename=given, download=True)
        assert unquote(url.rsplit("/", 1)[1]) == served_as
        r = site.browser.get(url)
        assert r.status == 200, given
        value = r.headers["Content-Disposition"]
        assert not re.search(r"[\x00-\x1f\x7f]", value)
        kind, ascii_name, star = parse_disposition(value)
        assert (kind, ascii_name) == ("attachment", fallback)
        assert (star or ascii_name) == served_as
        assert "\r" not in "".join(f"{k}: {v}" for k, v in r.headers.items())
        assert "Set-Cookie" not in r.headers


def test_the_same_file_inline_and_with_download_1(site: Site) -> None:
    url = site.make(b"%PDF-1.4 fake", filename="report été.pdf")
    inline, saved = site.browser.get(url), site.browser.get(url + "?download=1")
    assert inline.headers["Content-Disposition"].startswith("inline;")
    assert saved.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''report%20%C3%A9t%C3%A9.pdf" in saved.headers["Content-Disposition"]
    assert inline.body == saved.body == b"%PDF-1.4 fake"
    # Each form has its own entity tag: a cache never answers one with the other.
    assert inline.headers["ETag"] != saved.headers["ETag"]
    assert site.browser.get(url + "?download=true", {"If-None-Match": saved.headers["ETag"]}).status == 304
    assert site.browser.get(url, {"If-None-Match": saved.headers["ETag"]}).status == 200
    for spelled in ("1", "true", "yes", "True"):
        assert (
            site.browser.get(f"{url}?download={spelled}")
            .headers["Content-Disposition"]
            .startswith("attachment")
        )


# -- 5. Safety headers ---------------------------------------------------------------------------


def test_safety_headers_on_every_file_response(site: Site) -> None:
    url = site.make(DATA)
    client = site.browser
    tag = client.get(url).headers["ETag"]
    responses = [
        client.get(url),
        client.head(url),
        client.get(url, {"Range": "bytes=0-9"}),
        client.get(url, {"If-None-Match": tag}),
        client.get(url, {"Range": "bytes=9999-"}),
        client.get(url, {"If-Match": '"x"'}),
        client.get(url.replace(token_of(url), "A" * 22)),
        client.get(url + "x"),
    ]
    assert [r.status for r in responses] == [200, 200, 206, 304, 416, 412, 404, 404]
    for r in responses:
        for name, value in SAFETY.items():
            assert r.headers[name] == value, (r.status, name)


def test_active_types_served_inline_are_sandboxed(site: Site) -> None:
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"filename": "chart.svg"}, True),
        ({"filename": "page.html"}, True),
        ({"filename": "page.xhtml"}, True),
        ({"filename": "data.xml"}, True),
        ({"mime_type": "image/svg+xml; charset=utf-8"}, True),
        ({"mime_type": "TEXT/HTML"}, True),
        ({"filename": "page.html", "sandbox": False}, False),  # trusted HTML opts out
        ({"filename": "chart.svg", "download": True}, False),  # an attachment is not rendered
        ({"filename": "plot.png"}, False),
        ({"filename": "doc.pdf"}, False),  # a CSP sandbox would stop the browser's PDF viewer
        ({"filename": "table.csv"}, False),
    ]
    for options, sandboxed in cases:
        r = site.browser.get(site.make(b"<svg onload='alert(1)'/>", **options))
        assert r.status == 200
        assert r.headers.get("Content-Security-Policy") == ("sandbox" if sandboxed else None), options
        assert r.headers["X-Content-Type-Options"] == "nosniff"


# -- 6. Missing, expired, forged, gone -----------------------------------------------------------


def _flip_last(token: str) -> str:
    return token[:-1] + ("B" if token[-1] != "B" else "C")


def test_unknown_and_forged_tokens_are_404(site: Site) -> None:
    url = site.make(DATA, filename="plot.png")
    token = token_of(url)
    for path in [
        url.replace(token, "A" * 22),  # well-formed, unknown
        url.replace(token, _flip_last(token)),  # forged: one character off
        url.replace(token, token + "A"),  # over-long
        url.replace(token, "A" * 10_000),
        url.replace(token, token[:-1]),
        url.replace(token, token + "%00"),
        url.replace("plot.png", "plot.html"),  # another name under a valid token
        url.replace("plot.png", "PLOT.png"),
        url.replace("plot.png", ""),
        url.rsplit("/", 1)[0],
        url + "/extra",
        f"/_dash-files/{token}/..%2fplot.png",
        f"/_dash-files/{token}/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        f"/_dash-files/{token}/plot.png%00.html",
        "/_dash-files/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/_dash-files/..%5c..%5cwindows%5cwin.ini",
    ]:
        assert path != url
        r = site.browser.get(path)
        assert_plain_error(r, 404)
        assert b"root:" not in r.body


def test_expired_file_is_404(make_site: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(timeout=60)
    now = time.time()
    url = site.make(DATA)
    assert site.browser.get(url).status == 200
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert_plain_error(site.browser.get(url), 404)
    assert_plain_error(site.browser.head(url), 404, "HEAD")


def test_flushed_store_gives_404(site: Site) -> None:
    url = site.make(DATA)
    backend: Any = site.files.service.backend
    backend.clear()
    assert_plain_error(site.browser.get(url), 404)


def test_first_chunk_missing_is_a_410_before_any_header(site: Site) -> None:
    url = site.make(DATA)
    site.drop_chunk(url, 0)
    assert_plain_error(site.browser.get(url), 410)
    assert_plain_error(site.browser.head(url), 410, "HEAD")
    assert_plain_error(site.browser.get(url, {"Range": "bytes=10-20"}), 410)
    # A range that needs only chunks still there is served.
    assert site.browser.get(url, {"Range": "bytes=2048-"}).body == DATA[2048:]


def test_chunk_missing_mid_stream_cuts_the_transfer(site: Site) -> None:
    url = site.make(DATA)
    site.drop_chunk(url, 2)
    # The headers went out before chunk 2 was needed: the transfer fails, never a short 200.
    with pytest.raises(TransferCut) as cut:
        site.browser.get(url)
    assert cut.value.status == 200
    with pytest.raises(TransferCut):
        site.browser.get(url, {"Range": "bytes=1000-3000"})
    assert_plain_error(site.browser.get(url, {"Range": "bytes=2100-2200"}), 410)


def test_truncated_chunk_is_never_served(site: Site) -> None:
    url = site.make(DATA)
    site.drop_chunk(url, 3, replace_with=DATA[3 * CHUNK : 3 * CHUNK + 10])
    with pytest.raises(TransferCut):
        site.browser.get(url)
    assert_plain_error(site.browser.get(url, {"Range": "bytes=-1000"}), 410)  # starts in chunk 3
    assert site.browser.get(url, {"Range": "bytes=-50"}).body == DATA[-50:]  # chunk 4 only


def test_a_store_that_is_down_gives_503(build: Build) -> None:
    # Nothing listens on the port: every call to the store fails at once.
    site = build(RedisCache(host="127.0.0.1", port=free_port(), socket_timeout=1, key_prefix="down:"))
    client = site.browser
    path = f"/_dash-files/{'A' * 22}/a.bin"
    assert_plain_error(client.get(path), 503)
    assert_plain_error(client.head(path), 503, "HEAD")
    # The page's Upload got no ticket (the store holds its key); the protocol answers 503 too.
    started = client.post_json(
        "/_dash-files/_upload", {"name": "a.bin", "size": 1}, {"X-Upload-Ticket": "x"}, "text/plain"
    )
    assert started.status == 503 and started.json()["reason"] == "backend"


# -- 7. One-time files ---------------------------------------------------------------------------


def test_one_time_file_is_gone_after_a_complete_transfer(site: Site) -> None:
    url = site.make(DATA, kind="once")
    record = site.store.lookup(token_of(url))
    assert record is not None
    assert site.browser.get(url).body == DATA
    assert_plain_error(site.browser.get(url), 410)
    assert_plain_error(site.browser.head(url), 410, "HEAD")
    keys = site.store.keys
    assert [i for i in range(record.chunk_count) if keys.get(keys.key(*record.chunk_at(i))) is not None] == []


def test_an_aborted_transfer_does_not_consume_a_one_time_file(site: Site) -> None:
    data = os.urandom(64 * CHUNK)  # many chunks: the client goes away well before the end
    url = site.make(data, kind="once")
    status, headers, first, received = site.browser.first_piece_then_abort(url)
    assert (status, headers["Content-Length"]) == (200, str(len(data)))
    assert 0 < len(first) <= received < len(data)  # the transfer did end mid-body
    assert first == data[: len(first)]
    again = site.client()  # another browser, or the same one trying again
    assert again.get(url).body == data
    assert_plain_error(again.get(url), 410)
    assert_plain_error(site.browser.get(url), 410)


def test_heads_and_304s_do_not_consume_a_one_time_file(site: Site) -> None:
    url = site.make(DATA, kind="once")
    head = site.browser.head(url)
    assert (head.status, head.headers["Accept-Ranges"]) == (200, "none")
    assert site.browser.get(url, {"If-None-Match": f'"{token_of(url)}"'}).status == 304
    assert site.browser.get(url).body == DATA
    assert site.browser.get(url).status == 410


def test_a_range_on_a_one_time_file_gets_the_whole_file_once(site: Site) -> None:
    for header in ["bytes=0-", "bytes=-10", "bytes=5-9"]:
        url = site.make(DATA + header.encode(), kind="once")
        r = site.browser.get(url, {"Range": header})
        assert (r.status, r.body) == (200, DATA + header.encode())
        assert "Content-Range" not in r.headers
        assert_plain_error(site.browser.get(url, {"Range": header}), 410)


# -- 8. Private files ----------------------------------------------------------------------------


def test_a_private_file_opens_only_in_the_browser_that_made_it(site: Site) -> None:
    owner, stranger = site.client(), site.client()
    assert owner.cookie(COOKIE) is None
    url = site.make(DATA, kind="private", by=owner)
    assert owner.cookie(COOKIE)  # the callback's answer gave the browser its session
    r = owner.get(url)
    assert (r.status, r.body) == (200, DATA)
    assert r.headers["Vary"] == "Cookie"
    assert_plain_error(stranger.get(url), 404)
    assert_plain_error(stranger.head(url), 404, "HEAD")
    # The stranger's own session is no key either, nor a forged one.
    site.make(b"mine", kind="private", by=stranger)
    assert stranger.cookie(COOKIE) not in (None, owner.cookie(COOKIE))
    assert_plain_error(stranger.get(url), 404)
    assert_plain_error(site.client().get(url, {"Cookie": f"{COOKIE}=forged"}), 404)
    # The owner's next private file is bound to the same session.
    assert owner.get(site.make(b"again", kind="private", by=owner)).body == b"again"


def test_a_page_of_an_app_with_private_files_sets_the_session_cookie(site: Site) -> None:
    page = site.browser.get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    [cookie] = [c for c in page.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    # That session is the one a private file made from this browser is bound to.
    session = site.browser.cookie(COOKIE)
    url = site.make(DATA, kind="private")
    assert site.browser.cookie(COOKIE) == session
    assert site.browser.get(url).body == DATA


# -- 9. The upload protocol ----------------------------------------------------------------------


def find_props(layout: Any, component_id: str) -> dict[str, Any]:
    stack = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == component_id:
                return dict(props)
            stack.append(props.get("children"))
    raise AssertionError(f"no component {component_id!r} in the layout")


#: The tickets of the page's ``Upload`` components, as the page issues them (see build_site).
TICKETS: dict[str, dict[str, Any]] = {
    "up": {},
    "csv": {"accept": (".csv", "text/csv"), "max_size": 20 * 1024},
}


class Uploader:
    """A browser's side of the protocol: a ticket for one ``Upload``, and requests with it.

    The ticket is the one the page's component carries (``from_page``), else one issued with the
    component's limits as the page would (as tests/test_upload_limits.py does): the protocol is then
    tested apart from how a page finds its app, which fails on FastAPI with several apps in the
    process (see test_two_apps_in_one_process_each_serve_their_uploads).
    """

    def __init__(
        self,
        site: Site,
        component: str = "up",
        client: ServerClient | None = None,
        *,
        from_page: bool = False,
    ) -> None:
        self.http = client or site.client()
        if from_page:
            ticket = find_props(self.http.layout, component)["ticket"]
            assert ticket is not None, f"the page's Upload {component!r} got no ticket"
            self.endpoint: str = ticket["endpoint"]
            token = ticket["token"]
        else:
            self.endpoint = "/_dash-files/_upload"
            token = Tickets(site.store).issue(component, **TICKETS[component])
        self.headers = {"X-Upload-Ticket": token}
        self.sent: dict[str, dict[int, str]] = {}

    def start(self, name: str, size: int, type_: str = "", expect: int = 201) -> dict[str, Any]:
        r = self.post({"name": name, "size": size, "type": type_}, self.headers)
        assert r.status == expect, r.text
        return dict(r.json())

    def post(
        self, body: Any, headers: dict[str, str], content_type: str = "text/plain;charset=UTF-8"
    ) -> Reply:
        """POST a start as the component does: JSON labelled ``text/plain`` (see transfer.js)."""
        return self.http.post_json(self.endpoint, body, headers, content_type)

    def put(self, upload: str, part: int | str, data: bytes, expect: int = 200) -> Any:
        r = self.http.put(
            f"{self.endpoint}/{upload}/{part}", data, {**self.headers, "X-Part-CRC32": crc(data)}
        )
        assert r.status == expect, r.text
        if expect == 200:
            self.sent.setdefault(upload, {})[int(part)] = crc(data)
        return r.json()

    def complete(self, upload: str, crcs: list[str] | None = None, expect: int = 200) -> Any:
        """Complete ``upload`` naming ``crcs`` (default: those of the parts this client sent)."""
        if crcs is None:
            sent = self.sent.get(upload, {})
            crcs = [sent.get(p, "00000000") for p in range(max(sent, default=-1) + 1)]
        r = self.http.post(f"{self.endpoint}/{upload}", json.dumps({"parts": crcs}).encode(), self.headers)
        assert r.status == expect, r.text
        return r.json()

    def status(self, upload: str, expect: int = 200) -> Any:
        r = self.http.get(f"{self.endpoint}/{upload}", self.headers)
        assert r.status == expect, r.text
        return r.json()

    def upload(self, name: str, data: bytes, order: list[int] | None = None) -> dict[str, Any]:
        """Send ``data`` whole (parts in ``order``), complete it, and return the file."""
        started = self.start(name, len(data))
        size = started["part_size"]
        for part in range(started["parts"]) if order is None else order:
            self.put(started["upload"], part, data[part * size : (part + 1) * size])
        return dict(self.complete(started["upload"])["file"])


def test_parts_in_any_order_make_a_stored_file_with_a_url(site: Site) -> None:
    client = Uploader(site)
    data = os.urandom(5 * PART + 123)
    file = client.upload("report.pdf", data, order=[3, 0, 5, 1, 4, 2])
    assert (file["name"], file["size"], file["type"]) == ("report.pdf", len(data), "application/pdf")
    assert file["url"].startswith("/_dash-files/") and file["url"].endswith("/report.pdf")
    got = client.http.get(file["url"])
    assert (got.status, got.body) == (200, data)
    assert site.files.stats().files == 1 and site.files.stats().bytes == len(data)


def test_missing_parts_are_named_and_the_upload_resumes(site: Site) -> None:
    client = Uploader(site)
    data = os.urandom(4 * PART - 7)
    upload = client.start("a.bin", len(data))["upload"]
    client.put(upload, 1, data[PART : 2 * PART])
    client.put(upload, 3, data[3 * PART :])
    every = [crc(data[p * PART : (p + 1) * PART]) for p in range(4)]
    refused = client.complete(upload, every, expect=409)
    assert refused["missing"] == [0, 2] and "never arrived" in refused["error"]
    # A client that lost everything asks what the server has, and sends only the rest.
    status = client.status(upload)
    assert (status["received"], status["part_size"], status["parts"]) == ([1, 3], PART, 4)
    assert status["file"] is None
    client.put(upload, 0, data[:PART])
    client.put(upload, 2, data[2 * PART : 3 * PART])
    file = client.complete(upload, every)["file"]
    assert client.http.get(file["url"]).body == data
    assert client.status(upload)["file"]["url"] == file["url"]


def test_a_completion_naming_other_bytes_is_a_409(site: Site) -> None:
    a = Uploader(site)
    b = Uploader(site, client=a.http)  # two tabs of one page: one browser, one handle
    upload = a.start("u.bin", CHUNK)["upload"]
    mine, theirs = os.urandom(CHUNK), os.urandom(CHUNK)
    a.put(upload, 0, mine)
    b.put(upload, 0, theirs)  # the last complete sender of a part wins
    refused = a.complete(upload, [crc(mine)], expect=409)
    assert refused["mismatched"] == [0] and refused["reason"] == "mismatch"
    assert a.status(upload)["crc32"] == {"0": crc(theirs)}
    done = b.complete(upload, [crc(theirs)])
    assert b.http.get(done["file"]["url"]).body == theirs


def test_oversized_parts_and_files_are_413(make_site: Build) -> None:
    site = make_site(max_size=30_000)
    client = Uploader(site)
    data = os.urandom(PART + 1)
    upload = client.start("a.bin", len(data))["upload"]
    too_long = client.put(upload, 0, data[:PART] + b"x", expect=413)
    assert too_long["reason"] == "too-large" and f"part 0 is {PART} bytes" in too_long["error"]
    assert client.put(upload, 1, b"", expect=400)["reason"] == "short"
    assert client.status(upload)["received"] == []
    # The component's max_size and the service's, enforced whatever the browser says.
    refused = Uploader(site, "csv").start("big.csv", 20 * 1024 + 1, expect=413)
    assert refused["error"] == "big.csv is 20.0 KiB; this upload takes files up to 20.0 KiB"
    assert "up to 29.3 KiB" in client.start("a.bin", 30_001, expect=413)["error"]
    assert site.files.stats().bytes == 0


def test_a_part_index_that_is_not_ascii_digits_is_a_404(site: Site) -> None:
    client = Uploader(site)
    upload = client.start("u.bin", 2 * PART)["upload"]
    for index in ["2", "-1", "%C2%B2", "%D9%A3", "1e3", "0x1", "%201", "9" * 30]:
        r = client.http.put(f"{client.endpoint}/{upload}/{index}", b"x", client.headers)
        assert r.status == 404, index
        assert r.json()["reason"] == "part"


@pytest.mark.parametrize("ticket", [None, "", "forged", "eyJpIjoidXAifQ.AAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_requests_without_a_valid_ticket_are_403(site: Site, ticket: str | None) -> None:
    client = Uploader(site)
    headers = {} if ticket is None else {"X-Upload-Ticket": ticket}
    r = client.post({"name": "a.bin", "size": 1}, headers)
    assert r.status == 403 and r.json()["reason"] == "forged"
    upload = client.start("a.bin", 1)["upload"]
    # Checked on every request, not only at the start.
    assert client.http.put(f"{client.endpoint}/{upload}/0", b"x", headers).status == 403
    assert client.http.get(f"{client.endpoint}/{upload}", headers).status == 403


def test_a_handle_of_another_upload_or_app_is_403(site: Site, build: Build, tmp_path: Path) -> None:
    up, csv = Uploader(site, "up"), Uploader(site, "csv")
    upload = up.start("a.bin", 10)["upload"]
    # The handle of an upload of "up" with the ticket of "csv": another component's upload.
    r = csv.http.put(f"{csv.endpoint}/{upload}/0", b"x" * 10, csv.headers)
    assert r.status == 403 and r.json()["reason"] == "wrong-upload"
    forged = upload[:-3] + ("AAA" if not upload.endswith("AAA") else "BBB")
    assert up.put(forged, 0, b"x" * 10, expect=403)["reason"] == "forged"
    # Another app (another store, another key) signed it: not ours.
    other = build(FileSystemCache(str(tmp_path / "other"), threshold=0))
    foreign = Uploader(other).start("a.bin", 10)["upload"]
    assert up.put(foreign, 0, b"x" * 10, expect=403)["reason"] == "forged"
    assert up.http.delete(f"{up.endpoint}/{upload}/0", up.headers).status == 405
    assert up.http.get(f"{up.endpoint}/a/b/c", up.headers).status == 404


def test_expired_tickets_and_uploads_are_410(site: Site) -> None:
    client = Uploader(site)
    tickets = Tickets(site.store)
    expired = {"X-Upload-Ticket": tickets.issue("up", lifetime=-1)}
    r = client.post({"name": "a.bin", "size": 1}, expired)
    assert r.status == 410 and "reload the page" in r.json()["error"]
    upload = client.start("a.bin", 1)["upload"]
    assert client.http.put(f"{client.endpoint}/{upload}/0", b"x", expired).status == 410
    # An upload past its deadline (the ticket's upload_lifetime) is given up.
    late = {"X-Upload-Ticket": tickets.issue("up", upload_lifetime=-1)}
    upload = client.post({"name": "a.bin", "size": 1}, late).json()["upload"]
    r = client.http.put(f"{client.endpoint}/{upload}/0", b"x", late)
    assert r.status == 410 and "start it again" in r.json()["error"]


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", "application/json", None])
def test_the_start_is_json_whatever_its_label_and_bad_starts_are_refused(
    site: Site, content_type: str | None
) -> None:
    # On FastAPI, Dash's middleware reads the JSON body of every /_dash-* request before us.
    client = Uploader(site)
    body = json.dumps({"name": "t.txt", "size": 3}).encode()
    r = client.http.post(
        client.endpoint, body, {**client.headers, **({"Content-Type": content_type} if content_type else {})}
    )
    assert r.status == 201, r.text
    upload = r.json()["upload"]
    client.put(upload, 0, b"abc")
    assert client.http.get(client.complete(upload)["file"]["url"]).body == b"abc"
    for bad in (
        {"name": 5, "size": 1},
        {"name": "a"},
        {"name": "a", "size": -1},
        {"name": "a", "size": True},
    ):
        assert client.post(bad, client.headers).status == 400, bad
    assert client.http.post(client.endpoint, b"x" * 20_000, client.headers).status == 413


def test_cancel_removes_what_was_written(site: Site) -> None:
    client = Uploader(site)
    data = os.urandom(3 * PART)
    upload = client.start("a.bin", len(data))["upload"]
    client.put(upload, 0, data[:PART])
    client.put(upload, 2, data[2 * PART :])
    r = client.http.delete(f"{client.endpoint}/{upload}", client.headers)
    assert r.status == 200 and r.json()["cancelled"] is True
    assert client.status(upload, expect=410)["reason"] == "cancelled"
    assert site.files.stats().bytes == 0 and site.files.stats().upload_bytes == 0
    # A finished upload is a stored file: cancelling it removes nothing, nor another's cancel.
    upload = client.start("b.bin", 3)["upload"]
    client.put(upload, 0, b"xyz")
    file = client.complete(upload)["file"]
    other = client.start("c.bin", len(data))["upload"]
    assert client.http.delete(f"{client.endpoint}/{other}", client.headers).json()["cancelled"] is True
    r = client.http.delete(f"{client.endpoint}/{upload}", client.headers)
    assert r.status == 200 and r.json()["cancelled"] is False
    assert client.http.get(file["url"]).body == b"xyz"
    assert client.status(upload)["file"]["url"] == file["url"]


def test_a_file_input_callback_reads_the_upload(site: Site) -> None:
    client = Uploader(site)
    one, two = os.urandom(3 * PART + 1), b"col\n1\n"
    files = [client.upload("one.bin", one), client.upload("two.csv", two)]
    answer = client.http.fire(out("digest", "children"), [inp("up", "value", files)])
    assert json.loads(answer["digest"]["children"]) == [
        ["one.bin", len(one), hashlib.sha256(one).hexdigest()],
        ["two.csv", len(two), hashlib.sha256(two).hexdigest()],
    ]
    # The upload is private to the browser session that sent it.
    stranger = site.client()
    assert_plain_error(stranger.get(files[0]["url"]), 404)
    assert client.http.get(files[0]["url"]).body == one


def test_two_apps_in_one_process_each_serve_their_uploads(
    build: Build, server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each page's Upload carries its app's ticket, which its app's protocol takes."""
    sites = [build(FileSystemCache(str(tmp_path / name), threshold=0)) for name in ("one", "two")]
    for site in sites:
        client = Uploader(site, from_page=True)
        assert client.endpoint == "/_dash-files/_upload"
        file = client.upload("a.txt", site.server.encode())
        assert client.http.get(file["url"]).body == site.server.encode()
        assert site.files.stats().files == 1


@pytest.mark.parametrize("server", ["flask", "quart"])
def test_an_app_no_longer_used_is_freed(server: str, tmp_path: Path) -> None:
    # Not on FastAPI: FastAPI itself keeps every app (a bound method in fastapi.dependencies.models'
    # lru_cache), whatever we do.

    def use(name: str) -> weakref.ref[dash.Dash]:
        site = build_site(server, FileSystemCache(str(tmp_path / name), threshold=0))
        assert site.browser.get(site.make(DATA)).body == DATA
        site.close()
        return weakref.ref(site.app)

    dropped = use("dropped")
    latest = build_site(
        server, FileSystemCache(str(tmp_path / "latest"), threshold=0)
    )  # dash.get_app()'s now
    gc.collect()
    assert latest.app is not None and dropped() is None


# -- 10. Importing changes nothing ---------------------------------------------------------------

IMPORT_CHANGES_NOTHING = """
import sys
import dfc_transform  # noqa: F401
import dash
from dash import html
from tests.server_clients import open_client

app = dash.Dash(__name__, backend=sys.argv[1])  # FastAPI: no FastAPIError at construction
app.layout = html.Div("plain")
rules = [str(getattr(r, "path", r)) for r in getattr(app.server, "routes", [])]
rules += [str(r) for r in getattr(getattr(app.server, "url_map", None), "iter_rules", list)()]
assert rules and not any("_dash-files" in r for r in rules), rules
assert not dash.hooks.get_hooks("layout") and not dash.hooks.get_hooks("routes")
assert not dash.hooks.get_hooks("setup") and not dash.hooks.get_hooks("websocket_connect")
client = open_client(app)
page = client.get("/")
assert page.status == 200 and "dfc_transform" not in page.text, page.text  # no script of ours
assert "Set-Cookie" not in page.headers
assert client.get("/_dash-files/AAAAAAAAAAAAAAAAAAAAAA/a.bin").status in (404, 200)  # Dash's, not ours
assert b"Not found: no such file" not in client.get("/_dash-files/AAAAAAAAAAAAAAAAAAAAAA/a.bin").body
client.close()
print("unchanged")
"""


def test_importing_the_package_changes_no_app(server: str) -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHANGES_NOTHING, server],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "unchanged"
