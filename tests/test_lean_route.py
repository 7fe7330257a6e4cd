"""The GETs of files answered before Flask (see ``dfc_transform.http.adapters.wsgi``): the same
answers as through Flask, and through Flask again whenever someone else's request hooks want
to run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flask
import pytest
from cachelib import FileSystemCache
from dash_extensions.enrich import DashProxy, html

from dfc_transform import FileServeTransform

CONTENT = os.urandom(300_000)


@pytest.fixture
def site(tmp_path: Path) -> tuple[DashProxy, FileServeTransform, str]:
    files = FileServeTransform(FileSystemCache(str(tmp_path), threshold=0), chunk_size=64 * 1024)
    app = DashProxy(__name__, transforms=[files])
    app.layout = html.Div()
    with app.server.test_request_context():  # no request yet: tests may still add hooks
        url = files.register(CONTENT, filename="données été.bin")
    return app, files, url


def _flask_runs(app: DashProxy) -> list[str]:
    """Paths of the requests that went through Flask's dispatch, from now on."""
    seen: list[str] = []

    def started(sender: Any, **extra: Any) -> None:
        seen.append(flask.request.path)

    flask.request_started.connect(started, app.server, weak=False)
    return seen


def test_a_file_is_answered_before_flask_with_every_header_and_byte(site: Any) -> None:
    app, _, url = site
    through_flask = _flask_runs(app)
    client = app.server.test_client()
    r = client.get(url)
    assert r.status_code == 200 and r.data == CONTENT
    assert r.headers["Content-Length"] == str(len(CONTENT))
    assert r.headers["X-Content-Type-Options"] == "nosniff" and "ETag" in r.headers
    part = client.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.data == CONTENT[1000:2000]
    head = client.head(url)
    assert (
        head.status_code == 200 and head.data == b"" and head.headers["Content-Length"] == str(len(CONTENT))
    )
    again = client.get(url, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    saved = client.get(url + "?download=1")
    assert saved.headers["Content-Disposition"].startswith("attachment")
    assert client.get(url.replace("/_dash-files/", "/_dash-files/AAAA")).status_code == 404
    assert through_flask == []
    # Everything else still goes through Flask: the page, the upload protocol, callbacks.
    client.get("/")
    client.post("/_dash-files/_upload", data=b"{}", content_type="text/plain")
    assert through_flask == ["/", "/_dash-files/_upload"]


@pytest.mark.parametrize("kind", ["before", "after"])
def test_someone_elses_hooks_run_for_files_too(site: Any, kind: str) -> None:
    app, _, url = site
    server = app.server
    if kind == "before":  # an authentication layer, added after the transform

        @server.before_request
        def guard() -> Any:
            if flask.request.headers.get("Authorization") != "Bearer ok":
                return flask.Response("who are you?", status=401)
            return None

        client = server.test_client()
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer ok"}).data == CONTENT
    else:  # security headers

        @server.after_request
        def stamp(response: flask.Response) -> flask.Response:
            response.headers["X-Frame-Options"] = "DENY"
            return response

        r = server.test_client().get(url)
        assert r.data == CONTENT and r.headers["X-Frame-Options"] == "DENY"


def test_a_plain_flask_app_under_a_prefix(tmp_path: Path) -> None:
    from dfc_transform import FileService

    app = flask.Flask(__name__)
    files = FileService(FileSystemCache(str(tmp_path), threshold=0))
    files.init_app(app)
    with app.test_request_context("/", base_url="http://localhost/tools/"):
        url = files.register(b"hello", filename="a.txt")
    assert url.startswith("/tools/_dash-files/")
    through_flask: list[str] = []
    flask.request_started.connect(lambda sender, **extra: through_flask.append("x"), app, weak=False)
    r = app.test_client().get(url[len("/tools") :], base_url="http://localhost/tools/")
    assert r.status_code == 200 and r.data == b"hello" and through_flask == []
