"""Hostile input and hostile conditions, in one place: what an attacker or a bad day sends.

Each test here failed before the hardening it checks: forged mime types and names, pickles
planted in the store, one-time files fetched by many at once, URLs opened by another
browser session, apps sharing a store, a full disk, writers killed mid-write, a hung Redis.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cachelib import RedisCache
from flask import Flask

from dfc_transform import FileService
from dfc_transform.exc import BackendUnavailableError, InvalidOptionError
from dfc_transform.http.conditional import parse_byte_range
from dfc_transform.http.session import COOKIE
from dfc_transform.store.expiry import STALE_TEMP_AGE

from .servers import RedisServer
from .store_files import file_entries

ROOT = Path(__file__).resolve().parent.parent
#: The app gunicorn runs for these tests: tests/apps/attack_app.py.
APP = "attack_app"


@pytest.fixture(autouse=True)
def _own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's default store is its own, so that what it finds there is its doing."""
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "store"))


def _stored_files(store: Path) -> list[str]:
    return file_entries(store)


def _app(name: str, service: FileService) -> Flask:
    app = Flask(name)
    service.init_app(app)
    return app


def _register(app: Flask, service: FileService, value: Any, **options: Any) -> tuple[str, list[str]]:
    """Register in a request of ``app``; return the URL and the cookies the response would set."""
    with app.test_request_context("/"):
        url = service.register(value, **options)
        response = app.process_response(app.response_class())
    return url, response.headers.getlist("Set-Cookie")


# -- refused at registration, nothing stored -----------------------------------------------------


@pytest.mark.parametrize(
    "mime_type",
    [
        "text/plain\r\nX-Evil: 1",
        "text/html\nfoo",
        "text/plain\x00",
        "text/plain\x7f",
        "text/html,foo",
        "text/plain, text/html",
        "text",
        "/html",
        "text/ html",
        "",
    ],
)
def test_a_malformed_mime_type_is_refused_and_nothing_is_stored(tmp_path: Path, mime_type: str) -> None:
    service = FileService(timeout=60)
    with pytest.raises(InvalidOptionError, match="is not one media type"):
        service.register(b"x" * 3000, mime_type=mime_type or " ")
    assert _stored_files(tmp_path / "store") == []


@pytest.mark.parametrize(
    ("given", "sent"),
    [("TEXT/HTML ; Charset=UTF-8", "text/html; charset=UTF-8"), ("image/PNG", "image/png")],
)
def test_mime_types_are_normalised(given: str, sent: str) -> None:
    service = FileService()
    app = _app("norm", service)
    url, _ = _register(app, service, b"x", mime_type=given)
    assert app.test_client().get(url).headers["Content-Type"] == sent


def test_a_file_name_with_a_lone_surrogate_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    service = FileService(chunk_size=1024)
    with pytest.raises(InvalidOptionError, match="not valid Unicode"):
        service.register(os.urandom(5000), filename="report\udc80.csv")
    assert _stored_files(tmp_path / "store") == []


# -- active content ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime_type", "sandboxed"),
    [
        ("text/xsl", True),  # an XHTML body with an XSL type ran script in the app's origin
        ("text/x-unknown-type", True),
        ("application/vnd.example+xml", True),
        ("application/javascript", True),
        ("image/png", False),
        ("video/mp4", False),
        ("application/pdf", False),
        ("text/csv; charset=utf-8", False),
    ],
)
def test_only_known_inert_types_go_without_a_sandbox(mime_type: str, sandboxed: bool) -> None:
    service = FileService()
    app = _app("csp", service)
    url, _ = _register(app, service, b"<html xmlns='http://www.w3.org/1999/xhtml'/>", mime_type=mime_type)
    r = app.test_client().get(url)
    assert r.headers.get("Content-Security-Policy") == ("sandbox" if sandboxed else None)


# -- a store an attacker can write to -----------------------------------------------------------


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_the_default_store_never_unpickles_what_it_reads(tmp_path: Path) -> None:
    service = FileService()
    app = _app("pickle", service)
    url, _ = _register(app, service, b"genuine", filename="a.txt")
    token = url.split("/")[-2]
    marker = tmp_path / "code-ran"
    # Overwrite the record and the chunk with pickles, in cachelib's own file format.
    backend: Any = service.backend
    for part in ("m", "0"):
        key = f"dfc:{service.store.namespace}:{token}:{part}"
        with open(backend._get_filename(key), "wb") as f:
            f.write(struct.pack("I", 0) + pickle.dumps(_Payload(marker)))
    r = app.test_client().get(url)
    assert r.status_code == 404
    assert not marker.exists()


# -- byte ranges: what HTTP says, not what a library release does --------------------------------


@pytest.mark.parametrize(
    ("header", "answer"),
    [
        ("bytes=-0", "unsatisfiable"),  # a suffix of length 0 selects nothing (RFC 9110 14.1.1)
        ("bytes=-5", (95, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=0-", (0, 100)),
        ("bytes=0-0", (0, 1)),
        ("bytes=99-200", (99, 100)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes= 3 - 7 ", (3, 8)),
        ("BYTES=3-7", (3, 8)),
        ("bytes=7-3", None),  # invalid: ignored, the whole file
        ("bytes=0-1,5-6", None),  # several ranges: the whole file, as 14.2 allows
        ("bytes=-", None),
        ("bytes=abc", None),
        ("bytes=\u0661-2", None),  # digits are ASCII only
        ("items=0-1", None),
        ("bytes", None),
    ],
)
def test_range_headers(header: str, answer: Any) -> None:
    assert parse_byte_range(header, 100) == answer


def test_a_zero_suffix_range_is_416_through_the_route() -> None:
    service = FileService()
    app = _app("ranges", service)
    url, _ = _register(app, service, b"0123456789")
    r = app.test_client().get(url, headers={"Range": "bytes=-0"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */10"


# -- session-bound URLs --------------------------------------------------------------------------


def test_a_private_url_opens_only_in_its_session() -> None:
    service = FileService()
    app = _app("private", service)
    url, cookies = _register(app, service, b"secret", filename="s.txt", private=True)
    assert len(cookies) == 1 and cookies[0].startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookies[0] and "SameSite=Lax" in cookies[0]
    session_id = cookies[0].split(";")[0].split("=", 1)[1]
    mine = app.test_client()
    mine.set_cookie(COOKIE, session_id)
    r = mine.get(url)
    assert (r.status_code, r.data) == (200, b"secret")
    assert r.headers["Vary"] == "Cookie"
    unknown = app.test_client().get(url.replace(url.split("/")[-2], "A" * 22))
    for other in (app.test_client(), _with_cookie(app, "another-session")):
        r = other.get(url)
        # Indistinguishable from a file that does not exist.
        assert (r.status_code, r.data, r.headers.get("Content-Type")) == (
            unknown.status_code,
            unknown.data,
            unknown.headers.get("Content-Type"),
        )


def _with_cookie(app: Flask, value: str) -> Any:
    client = app.test_client()
    client.set_cookie(COOKIE, value)
    return client


def test_private_is_a_service_default_and_a_file_option() -> None:
    service = FileService(private=True)
    app = _app("private-default", service)
    url, cookies = _register(app, service, b"mine")
    assert cookies and app.test_client().get(url).status_code == 404
    public, _ = _register(app, service, b"everyone's", private=False)
    assert app.test_client().get(public).data == b"everyone's"


def test_a_private_file_needs_a_session_outside_requests() -> None:
    service = FileService()
    with pytest.raises(Exception, match="private=True binds a file to the browser session"):
        service.register(b"x", private=True)


def test_the_page_sets_the_session_cookie_for_later_background_callbacks() -> None:
    public, private = FileService(), FileService(private=True)
    for service, sets_cookie in ((public, False), (private, True)):
        app = _app(f"page-{sets_cookie}", service)
        app.add_url_rule("/", "page", lambda: "<html></html>")
        app.add_url_rule("/data", "data", lambda: {"json": True})
        cookies = app.test_client().get("/").headers.getlist("Set-Cookie")
        # Only where private files are made, and on pages only.
        assert any(c.startswith(f"{COOKIE}=") for c in cookies) is sets_cookie
        assert app.test_client().get("/data").headers.getlist("Set-Cookie") == []
    # A service that made one private file (not by default) starts setting it too.
    app = _app("page-later", public)
    app.add_url_rule("/", "page", lambda: "<html></html>")
    _register(app, public, b"x", private=True)
    assert any(c.startswith(f"{COOKIE}=") for c in app.test_client().get("/").headers.getlist("Set-Cookie"))


def test_two_services_on_one_app_set_one_cookie() -> None:
    app = Flask("two-services")
    FileService(private=True).init_app(app)
    FileService(private=True).init_app(app, url_prefix="/other-files", endpoint="other")
    app.add_url_rule("/", view_func=lambda: "<html></html>")
    cookies = [c for c in app.test_client().get("/").headers.getlist("Set-Cookie") if c.startswith(COOKIE)]
    assert len(cookies) == 1


def test_a_private_url_opens_in_another_process_of_the_same_app(tmp_path: Path) -> None:
    service = FileService(namespace="one-app")
    app = _app("one", service)
    url, cookies = _register(app, service, b"across processes", private=True)
    session_id = cookies[0].split(";")[0].split("=", 1)[1]
    script = textwrap.dedent(
        f"""
        from flask import Flask
        from dfc_transform import FileService
        app = Flask("two")
        FileService(namespace="one-app").init_app(app)
        client = app.test_client()
        stranger = client.get({url!r}).status_code
        client.set_cookie({COOKIE!r}, {session_id!r})
        r = client.get({url!r})
        print(stranger, r.status_code, r.data.decode())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split(maxsplit=2) == ["404", "200", "across processes\n"]


# -- apps sharing the default store ---------------------------------------------------------------


def test_apps_sharing_the_default_store_do_not_serve_each_other(tmp_path: Path) -> None:
    one, two = FileService(), FileService()
    app_one, app_two = _app("app_one", one), _app("app_two", two)
    assert one.store.namespace and two.store.namespace
    assert one.store.namespace != two.store.namespace
    url, _ = _register(app_one, one, b"one's file")
    assert app_one.test_client().get(url).data == b"one's file"
    assert app_two.test_client().get(url).status_code == 404


def test_every_process_of_one_app_computes_its_namespace(start_gunicorn: Any, tmp_path: Path) -> None:
    """Web workers and any other process importing the app module (a Celery worker) agree."""
    server = start_gunicorn("ns", {"DFC_TRANSFORM_DIR": str(tmp_path / "store")}, "-w", "2", module=APP)
    _, body = server.request("GET", "/pid")
    web = json.loads(body)["namespace"]
    script = "from tests.apps.attack_app import service; print(service.store.namespace)"
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "DFC_TRANSFORM_DIR": str(tmp_path / "store")},
    ).stdout.strip()
    assert web and other == web


# -- one-time files: at most one complete copy ----------------------------------------------------


def _fetch(port: int, url: str, headers: dict[str, str]) -> tuple[int, bytes, bool]:
    """GET ``url``: the status, what arrived, and whether the body was complete."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        try:
            return response.status, response.read(), True
        except http.client.IncompleteRead as err:
            return response.status, err.partial, False
    except (ConnectionError, http.client.HTTPException):
        return 0, b"", False
    finally:
        conn.close()


def _backend_env(kind: str, redis_server: RedisServer | None, store: Path) -> dict[str, str]:
    if kind == "redis":
        assert redis_server is not None
        return {"DFC_TEST_BACKEND": f"redis://{redis_server.address}"}
    return {"DFC_TRANSFORM_DIR": str(store)}


@pytest.mark.parametrize("kind", ["default", "redis"])
def test_a_one_time_file_is_delivered_complete_at_most_once(
    kind: str, start_gunicorn: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    redis_server = request.getfixturevalue("redis_server") if kind == "redis" else None
    env = _backend_env(kind, redis_server, tmp_path / "store")
    server = start_gunicorn("once", env, "-w", "3", "-k", "gthread", "--threads", "4", module=APP)
    size = 2 * 1024 * 1024
    mixes = [{}, {"Range": "bytes=0-"}, {"Range": "bytes=100-"}, {"Range": "bytes=-10"}] * 2
    for round_ in range(3):
        status, body = server.request("POST", f"/register?size={size}&one_time=1&seed={round_}")
        assert status == 200
        registered = json.loads(body)
        with ThreadPoolExecutor(len(mixes)) as pool:
            url = registered["url"]
            results = list(pool.map(lambda h, url=url: _fetch(server.port, url, h), mixes))
        complete = [
            r
            for r in results
            if r[2] and r[0] == 200 and hashlib.sha256(r[1]).hexdigest() == registered["sha256"]
        ]
        assert len(complete) == 1, [(s, len(b), ok) for s, b, ok in results]
        # Whatever else was answered is a refusal or a cut transfer: never another whole file.
        for status_, data, ok in results:
            assert status_ in (0, 200, 410)
            assert not (ok and status_ == 200 and data != complete[0][1])
        assert _fetch(server.port, registered["url"], {})[0] == 410


def test_an_aborted_transfer_does_not_consume_a_one_time_file(start_gunicorn: Any, tmp_path: Path) -> None:
    server = start_gunicorn("abort", {"DFC_TRANSFORM_DIR": str(tmp_path / "store")}, "-w", "2", module=APP)
    # Big enough, and read slowly enough (a small receive buffer), that the server cannot have
    # handed the whole file to the kernel's socket buffers before the client goes away.
    size = 32 * 1024 * 1024
    registered = json.loads(server.request("POST", f"/register?size={size}&one_time=1")[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {registered['url']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = 0
    while received < 256 * 1024:
        received += len(sock.recv(65536))
    sock.close()  # gone after a small part of the file
    deadline = time.monotonic() + 30
    while True:
        status, data, ok = _fetch(server.port, registered["url"], {})
        if status == 200 and ok:
            break
        assert time.monotonic() < deadline, f"the file was lost with the aborted transfer: {status}"
        time.sleep(0.1)
    assert hashlib.sha256(data).hexdigest() == registered["sha256"]
    assert _fetch(server.port, registered["url"], {})[0] == 410


# -- the disk is given back -------------------------------------------------------------------------


def test_expired_files_leave_the_disk_whatever_has_reports(tmp_path: Path) -> None:
    service = FileService(timeout=1, chunk_size=4096)
    sizes = [1, 1000, 4096, 4097, 50_000, 300_000]
    for size in sizes:
        service.register(os.urandom(size))
    assert len(_stored_files(tmp_path / "store")) > len(sizes) * 2
    time.sleep(2.1)  # expired: cachelib's has() would say False for a key with a time-to-live
    assert service.purge_expired() == len(sizes)
    assert _stored_files(tmp_path / "store") == []


_WRITER = textwrap.dedent(
    """
    import sys
    from dfc_transform import FileService
    class Endless:
        def read(self, n=-1):
            sys.stdout.write("chunk\\n"); sys.stdout.flush()
            return b"x" * n
    FileService(timeout=1, chunk_size=65536).register(Endless())
    """
)


def test_writers_killed_mid_write_leave_nothing_after_the_sweep(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "DFC_TRANSFORM_DIR": str(store)}
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in writers:
        assert proc.stdout is not None
        for _ in range(20 + 7 * writers.index(proc)):
            proc.stdout.readline()
    for proc in writers:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert len(_stored_files(store)) >= 3 * 19
    time.sleep(max(1.1, STALE_TEMP_AGE + 0.1))  # past the files' timeout and any temp file's age
    # What killed writers left is swept, though not counted: no stored file was there.
    assert FileService(timeout=1).purge_expired() == 0
    assert _stored_files(store) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB file system (tmpfs), mounted for this test: a disk that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_fails_cleanly_and_leaves_nothing(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(small_disk / "store"))
    # The free-space reserve off: the disk itself refuses (tests/test_upload_limits.py has the reserve).
    service = FileService(timeout=1, chunk_size=256 * 1024, min_free_space=0)
    with pytest.raises(BackendUnavailableError, match="refused to store"):
        service.register(os.urandom(8 * 1024 * 1024))
    time.sleep(max(1.1, STALE_TEMP_AGE + 0.1))
    service.purge_expired()
    assert _stored_files(small_disk / "store") == []
    # The space is back: a file that fits is stored and served.
    app = _app("after-full", service)
    url, _ = _register(app, service, b"y" * 2_000_000)
    assert app.test_client().get(url).data == b"y" * 2_000_000


# -- a backend that hangs ----------------------------------------------------------------------------


def test_a_hung_redis_gives_503_within_the_socket_timeout(redis_server: RedisServer) -> None:
    host, port = redis_server.address.split(":")
    service = FileService(RedisCache(host=host, port=int(port), key_prefix="hang:", socket_timeout=1))
    app = _app("hang", service)
    url, _ = _register(app, service, b"x" * 1000)
    assert redis_server.pid is not None
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = app.test_client().get(url)
        waited = time.monotonic() - started
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert r.status_code == 503
    assert waited < 5


# -- slow clients: the front server sends path values -------------------------------------------------


@pytest.mark.parametrize(
    ("header", "prefix", "expected"),
    [("X-Sendfile", "", "{path}"), ("X-Accel-Redirect", "/_protected", "/_protected{path}")],
)
def test_path_values_can_be_sent_by_the_front_server(
    tmp_path: Path, header: str, prefix: str, expected: str
) -> None:
    path = tmp_path / "big file.bin"
    path.write_bytes(os.urandom(100_000))
    service = FileService(sendfile_header=header, sendfile_prefix=prefix)
    app = _app("sendfile", service)
    url, _ = _register(app, service, path)
    r = app.test_client().get(url)
    assert r.status_code == 200
    quoted = str(path).replace(" ", "%20") if prefix else str(path)
    assert r.headers[header] == expected.format(path=quoted)
    assert r.data == b""
    assert r.headers["Content-Disposition"].endswith('filename="big file.bin"')
    # Bytes registered as content are still sent by the app.
    url, _ = _register(app, service, b"in the store")
    assert header not in app.test_client().get(url).headers


@pytest.mark.parametrize("where", ["output", "transform"])
def test_a_private_file_output_opens_only_in_the_session_of_its_callback(where: str) -> None:
    from dash_extensions.enrich import DashProxy, Input, html

    from dfc_transform import FileOutput, FileServeTransform

    transform = FileServeTransform(private=where == "transform")
    app = DashProxy(__name__, transforms=[transform])
    app.layout = html.Div([html.Button(id="go"), html.Img(id="img")])

    @app.callback(FileOutput("img", "src", private=where == "output" or None), Input("go", "n_clicks"))
    def plot(n: Any) -> Any:
        return b"mine only"

    browser = app.server.test_client()
    page = browser.get("/")  # the page gives the browser its session
    assert any(c.startswith(f"{COOKIE}=") for c in page.headers.getlist("Set-Cookie"))
    body = {
        "output": "img.src",
        "outputs": {"id": "img", "property": "src"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    url = browser.post("/_dash-update-component", json=body).get_json()["response"]["img"]["src"]
    assert browser.get(url).data == b"mine only"
    assert app.server.test_client().get(url).status_code == 404


def test_clearing_one_app_leaves_the_other_apps_of_a_shared_store() -> None:
    mine, theirs = FileService(namespace="mine"), FileService(namespace="theirs")
    app_mine, app_theirs = _app("clear-mine", mine), _app("clear-theirs", theirs)
    gone, _ = _register(app_mine, mine, os.urandom(300_000))
    kept, _ = _register(app_theirs, theirs, os.urandom(300_000))
    assert mine.clear() == 1
    assert app_mine.test_client().get(gone).status_code == 404
    assert app_theirs.test_client().get(kept).status_code == 200
    assert theirs.stats().files == 1
    # Their file still leaves with its time: its journal entry was kept.
    assert theirs.store.sweep(force=True, now=time.time() + 10**6, grace=0) == 1
    assert app_theirs.test_client().get(kept).status_code == 404
