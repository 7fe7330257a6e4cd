"""Properties of the file route: any Range header on any file size gives the exact slice or a
correct 416/200, and random paths and headers never give a 500."""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from cachelib import FileSystemCache, SimpleCache
from dash_extensions.enrich import DashProxy, html
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.http import http_date, parse_content_range_header
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from dfc_transform import FileServeTransform, FileService

CHUNK = 1024
MAX_SIZE = 5 * CHUNK + 7

# Moderate example counts keep the file well under a minute on two cores; deadline=None because a
# shared CI runner can stall any single example.
PROPERTY = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Site:
    """One app serving files of every size, each registered on first use."""

    service: FileService
    client: FlaskClient
    files: dict[int, tuple[str, bytes]] = field(default_factory=dict)

    def file(self, size: int) -> tuple[str, bytes]:
        if size not in self.files:
            data = os.urandom(size)
            self.files[size] = (self.service.register(data), data)
        return self.files[size]


@pytest.fixture(scope="module", params=["simple", "filesystem"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Site:
    if request.param == "simple":
        backend: Any = SimpleCache(threshold=1_000_000)  # threshold=0 would mean 500 items
    else:
        backend = FileSystemCache(str(tmp_path_factory.mktemp("http-properties")), threshold=0)
    service = FileService(backend, chunk_size=CHUNK)
    app = Flask(__name__)
    service.init_app(app)
    return Site(service, app.test_client())


def token_of(url: str) -> str:
    return url.rsplit("/", 2)[-2]


# -- Ranges --------------------------------------------------------------------------------------

positions = st.integers(0, 2 * MAX_SIZE)


@dataclass(frozen=True)
class Spec:
    """One well-formed byte-range-spec: ``a-b``, ``a-`` or ``-n``."""

    first: int | None
    last: int | None

    def __str__(self) -> str:
        return f"{'' if self.first is None else self.first}-{'' if self.last is None else self.last}"

    def span(self, size: int) -> tuple[int, int] | None:
        """``(start, stop)`` per RFC 9110 14.1.2, or ``None`` if unsatisfiable."""
        if self.first is None:  # suffix: the last n bytes, all of them if the file is shorter
            n = self.last or 0
            return (max(0, size - n), size) if n > 0 and size > 0 else None
        if self.first >= size:
            return None
        return self.first, size if self.last is None else min(self.last + 1, size)


specs = st.one_of(
    st.builds(Spec, positions, positions),
    st.builds(Spec, positions, st.none()),
    st.builds(Spec, st.none(), positions),
)
unit = st.sampled_from(["bytes", "BYTES", "Bytes", " bytes "])


def expected(spec: Spec, size: int) -> tuple[int, tuple[int, int] | None]:
    """The status a single range must get, and the slice for a 206."""
    if spec.first is not None and spec.last is not None and spec.last < spec.first:
        return 200, None  # an invalid range-spec: the Range header is ignored
    span = spec.span(size)
    return (206, span) if span else (416, None)


def check_consistent(r: TestResponse, data: bytes, *, head: bool = False) -> None:
    """A 200 with all of ``data``, a 206 with exactly the slice it announces, or a 416."""
    size = len(data)
    assert r.status_code == 416 or r.headers["Accept-Ranges"] == "bytes"
    if r.status_code == 200:
        assert r.headers["Content-Length"] == str(size)
        assert "Content-Range" not in r.headers
        assert r.data == (b"" if head else data)
    elif r.status_code == 206:
        content_range = parse_content_range_header(r.headers["Content-Range"])
        assert content_range is not None and content_range.units == "bytes"
        start, stop = content_range.start, content_range.stop
        assert start is not None and stop is not None
        assert content_range.length == size
        assert 0 <= start < stop <= size
        assert r.headers["Content-Length"] == str(stop - start)
        assert r.data == (b"" if head else data[start:stop])
    elif r.status_code == 416:
        assert r.headers["Content-Range"] == f"bytes */{size}"
        assert r.mimetype == "text/plain"
    else:
        pytest.fail(f"status {r.status} for Range {r.request.headers.get('Range')!r}")


@PROPERTY
@given(size=st.integers(0, MAX_SIZE), spec=specs, unit=unit, method=st.sampled_from(["GET", "HEAD"]))
def test_any_single_range_gives_the_exact_slice_or_416(
    site: Site, size: int, spec: Spec, unit: str, method: str
) -> None:
    url, data = site.file(size)
    r = site.client.open(url, method=method, headers={"Range": f"{unit}={spec}"})
    check_consistent(r, data, head=method == "HEAD")
    status, span = expected(spec, size)
    if size == 0:
        # Nothing to slice: ignoring the Range (200) and refusing it (416) are both correct.
        assert r.status_code in (200, 416)
        return
    assert r.status_code == status
    if span is not None:
        assert r.headers["Content-Range"] == f"bytes {span[0]}-{span[1] - 1}/{size}"


@PROPERTY
@given(
    size=st.integers(1, MAX_SIZE), spec=specs, validator=st.sampled_from(["etag", "date", "weak", "other"])
)
def test_if_range_decides_between_the_slice_and_the_whole_file(
    site: Site, size: int, spec: Spec, validator: str
) -> None:
    url, data = site.file(size)
    tag = f'"{token_of(url)}"'
    if_range = {
        "etag": tag,
        "date": site.client.head(url).headers["Last-Modified"],
        "weak": "W/" + tag,
        "other": '"not-this-file"',
    }[validator]
    r = site.client.get(url, headers={"Range": f"bytes={spec}", "If-Range": if_range})
    check_consistent(r, data)
    status, _ = expected(spec, size)
    assert r.status_code == (status if validator in ("etag", "date") else 200)


@PROPERTY
@given(size=st.integers(0, MAX_SIZE), parts=st.lists(specs, min_size=2, max_size=4))
def test_multi_range_gives_the_whole_file(site: Site, size: int, parts: list[Spec]) -> None:
    url, data = site.file(size)
    r = site.client.get(url, headers={"Range": "bytes=" + ",".join(map(str, parts))})
    check_consistent(r, data)
    assert r.status_code == 200


latin1 = st.characters(codec="latin-1", exclude_characters="\r\n")
range_noise = st.one_of(
    st.text(latin1, max_size=40),
    st.text(latin1, max_size=40).map(lambda t: "bytes=" + t),
    st.lists(st.one_of(st.text("0123456789-, =", max_size=12), specs.map(str)), max_size=4).map(
        lambda items: "bytes=" + "".join(items)
    ),
)


@PROPERTY
@given(size=st.integers(0, MAX_SIZE), header=range_noise, method=st.sampled_from(["GET", "HEAD"]))
def test_any_range_header_gives_a_consistent_answer(site: Site, size: int, header: str, method: str) -> None:
    url, data = site.file(size)
    r = site.client.open(url, method=method, headers={"Range": header})
    check_consistent(r, data, head=method == "HEAD")


# -- Fuzz: random paths and headers never give a 500 ---------------------------------------------

FUZZ_DATA = os.urandom(3 * CHUNK + 5)


@dataclass
class Target:
    client: FlaskClient
    url: str
    dash: bool


@pytest.fixture(scope="module", params=["flask", "dash"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    backend = FileSystemCache(str(tmp_path_factory.mktemp("http-fuzz")), threshold=0)
    if request.param == "flask":
        service = FileService(backend, chunk_size=CHUNK)
        app = Flask(__name__)
        service.init_app(app)
        yield Target(app.test_client(), service.register(FUZZ_DATA, filename="plot.png"), dash=False)
        return
    transform = FileServeTransform(backend, chunk_size=CHUNK)
    dash_app = DashProxy(__name__, transforms=[transform])
    dash_app.layout = html.Div()
    client = dash_app.server.test_client()
    assert client.get("/_dash-layout").status_code == 200
    with dash_app.server.test_request_context():
        url = transform.register(FUZZ_DATA, filename="plot.png")
    yield Target(client, url, dash=True)


def _segments(token: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [
                "..",
                ".",
                "",
                "%2e%2e",
                "%2e%2e%2f",
                "..%2f",
                "%2f",
                "%2F",
                "%5c",
                "\\",
                "%00",
                "%25",
                "%",
                "%zz",
                "%ff",
                "%c0%ae%c0%ae",
                "~",
                ";",
                "?",
                "#",
                "etc",
                "passwd",
                "C:",
                token,
                token + "%00",
                "A" * 22,
                "plot.png",
                "plot.png%00.html",
                "%252e%252e%252f",
                "-" * 22,
                "_" * 300,
            ]
        ),
        st.text(string.ascii_letters + string.digits + "-_.~", max_size=30),
        st.text(max_size=12).map(lambda t: quote(t, safe="")),
        st.binary(max_size=8).map(lambda b: "".join(f"%{x:02x}" for x in b)),
    )


def _paths(url: str) -> st.SearchStrategy[str]:
    token = token_of(url)
    prefixes = st.sampled_from(
        ["/_dash-files/", f"/_dash-files/{token}/", "/_dash-files", "//_dash-files/", "/", url, url + "/"]
    )
    rest = st.lists(_segments(token), max_size=6).map("/".join)
    # The file's own URL often, so that the headers meet a real file.
    return st.one_of(st.just(url), st.builds(lambda p, r: p + r, prefixes, rest))


dates = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: http_date(d.replace(tzinfo=timezone.utc))
    ),
    st.sampled_from(
        [
            "Mon, 01 Jan 99999 00:00:00 GMT",
            "Thu, 31 Dec 9999 23:59:60 GMT",
            "Sun, 06 Nov 1994 08:49:37 +9999",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "0",
            "-1",
            "",
            "Mon, 32 Foo 0 99:99:99",
        ]
    ),
)


def _headers(url: str) -> st.SearchStrategy[dict[str, str]]:
    """Any subset of the conditional and range headers, with values well-formed or not."""
    tag = f'"{token_of(url)}"'
    pieces = [tag, '"x"', "W/", "*", ",", '"', " ", 'W/"', "tag"]
    etags = st.one_of(
        st.text(latin1, max_size=30), st.lists(st.sampled_from(pieces), max_size=6).map("".join)
    )
    since = st.one_of(dates, st.text(latin1, max_size=30))
    values = {
        "Range": range_noise,
        "If-Range": st.one_of(etags, dates),
        "If-None-Match": etags,
        "If-Match": etags,
        "If-Modified-Since": since,
        "If-Unmodified-Since": since,
    }
    return st.fixed_dictionaries({}, optional=values)


def raw_request(path: str, method: str, headers: dict[str, str]) -> Request:
    """A request for ``path`` exactly as a WSGI server passes it on: percent-decoded, as latin-1.

    Not ``client.get(path)``: the test client reads ``//x`` as a host name and tidies paths.
    """
    environ = EnvironBuilder(path="/", method=method, headers=list(headers.items())).get_environ()
    raw_path, _, query = path.partition("?")
    environ["PATH_INFO"] = unquote_to_bytes(raw_path).decode("latin-1")
    environ["QUERY_STRING"] = query
    environ["REQUEST_URI"] = environ["RAW_URI"] = path
    return Request(environ)


@FUZZ
@given(data=st.data(), method=st.sampled_from(["GET", "HEAD"]))
def test_random_paths_and_headers_never_give_a_500(target: Target, data: st.DataObject, method: str) -> None:
    path = data.draw(_paths(target.url), label="path")
    header = data.draw(_headers(target.url), label="headers")
    r = target.client.open(raw_request(path, method, header))
    assert r.status_code < 500, (r.status, r.data[:300])
    if r.mimetype == "text/plain":
        assert len(r.data) < 200
        assert b"Traceback" not in r.data
    if r.headers.get("ETag") == f'"{token_of(target.url)}"' and r.status_code != 304:
        # Whatever was asked, a file response is this file (or an exact slice of it), never anything else.
        check_consistent(r, FUZZ_DATA, head=method == "HEAD")
    assert b"root:" not in r.data
