"""FileService without Dash, register() in plain routes, URL prefixes, the default store,
chunking, expiry and unknown tokens."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache, SimpleCache
from dash_extensions.enrich import DashProxy, Input, html
from flask import Flask
from flask_caching import Cache

from dfc_transform import FileOutput, FileServeTransform, FileService
from dfc_transform.store.backends import default_cache_dir

from .conftest import DashClient, inp, out


def test_pure_flask_service(backend: Any) -> None:
    flask_app = Flask(__name__)
    service = FileService(backend)
    service.init_app(flask_app)

    @flask_app.post("/report")
    def report() -> dict[str, str]:
        return {"url": service.register(io.StringIO("pure flask"), filename="report.txt")}

    client = flask_app.test_client()
    url = client.post("/report").get_json()["url"]
    assert url.startswith("/_dash-files/") and url.endswith("/report.txt")
    r = client.get(url)
    assert r.status_code == 200
    assert r.data == b"pure flask"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_pure_flask_under_script_name(backend: Any) -> None:
    flask_app = Flask(__name__)
    service = FileService(backend)
    service.init_app(flask_app, url_prefix="/files")

    @flask_app.post("/report")
    def report() -> dict[str, str]:
        return {"url": service.register(b"mounted")}

    client = flask_app.test_client()
    url = client.post("/report", base_url="http://localhost/mount").get_json()["url"]
    assert url.startswith("/mount/files/")
    # The WSGI server strips SCRIPT_NAME before the app sees the path.
    assert client.get(url.removeprefix("/mount")).data == b"mounted"


def test_transform_register_in_plain_flask_route_of_dash_app(make_app: Any) -> None:
    app, transform = make_app(url_base_pathname="/dash/")

    @app.server.route("/export")
    def export() -> dict[str, str]:
        return {"url": transform.register(b"a,b\n", filename="e.csv", download=True)}

    c = app.server.test_client()
    url = c.get("/export").get_json()["url"]
    assert url.startswith("/dash/_dash-files/")
    r = c.get(url)
    assert r.data == b"a,b\n"
    assert r.headers["Content-Disposition"].startswith("attachment")


def test_register_in_callback_with_set_props(make_app: Any) -> None:
    import dash

    app, transform = make_app()

    @app.callback(Input("go", "n_clicks"))
    def produce(n: int) -> None:
        dash.set_props("img", {"src": transform.register(b"via set_props", filename="s.bin")})

    c = DashClient(app)
    body = {
        "output": c.output_key(),
        "outputs": [],
        "inputs": [inp("go", "n_clicks", 1)],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    r = c.http.post("/_dash-update-component", json=body)
    url = r.get_json()["sideUpdate"]["img"]["src"]
    assert c.fetch(url).data == b"via set_props"


@pytest.mark.parametrize(
    ("config", "route_prefix", "url_prefix"),
    [
        ({"url_base_pathname": "/myapp/"}, "/myapp/", "/myapp/"),
        ({"requests_pathname_prefix": "/proxy/app/", "routes_pathname_prefix": "/"}, "/", "/proxy/app/"),
    ],
)
def test_url_prefix(make_app: Any, config: dict[str, str], route_prefix: str, url_prefix: str) -> None:
    app, _ = make_app(**config)

    @app.callback(FileOutput("img", "src", filename="p.png"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return b"prefixed"

    c = app.server.test_client()
    assert c.get(f"{route_prefix}_dash-layout").status_code == 200
    body = {
        "output": "img.src",
        "outputs": out("img", "src"),
        "inputs": [inp("go", "n_clicks", 1)],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    url = c.post(f"{route_prefix}_dash-update-component", json=body).get_json()["response"]["img"]["src"]
    assert url.startswith(f"{url_prefix}_dash-files/")
    # A proxy strips requests_pathname_prefix down to routes_pathname_prefix.
    assert c.get(route_prefix + url.removeprefix(url_prefix)).data == b"prefixed"


def test_first_request_of_a_fresh_worker_can_be_a_file_get(tmp_path: Path) -> None:
    """A worker that never served a page must serve a file another worker registered."""
    shared = str(tmp_path / "shared")

    def new_app() -> tuple[DashProxy, FileServeTransform]:
        transform = FileServeTransform(FileSystemCache(shared, threshold=0))
        app = DashProxy(__name__, transforms=[transform])
        app.layout = html.Div()
        return app, transform

    registering, transform = new_app()
    with registering.server.test_request_context():
        url = transform.register(b"from worker 1", filename="w.txt")
    fresh, _ = new_app()
    r = fresh.server.test_client().get(url)  # its very first request
    assert r.status_code == 200
    assert r.data == b"from worker 1"


def test_a_dash_app_without_a_transform_gets_no_file_route() -> None:
    import dash

    app = dash.Dash(__name__)  # dfc_transform is imported: it changes nothing here
    app.layout = html.Div()
    assert not any("_dash-files" in str(rule) for rule in app.server.url_map.iter_rules())
    assert app.server.test_client().get("/_dash-files/" + "a" * 22 + "/x.png").mimetype == "text/html"


@pytest.mark.parametrize(
    "path",
    [
        "/_dash-files/" + "A" * 22 + "/file.bin",  # well-formed, unknown
        "/_dash-files/short/file.bin",
        "/_dash-files/" + "A" * 200 + "/file.bin",
        "/_dash-files/" + "A" * 22,
    ],
)
def test_unknown_tokens_are_404_plain_text(make_app: Any, path: str) -> None:
    app, _ = make_app()
    c = app.server.test_client()
    r = c.get(path)
    assert r.status_code == 404
    assert r.mimetype == "text/plain"
    assert len(r.data) < 200


def test_wrong_file_name_under_a_valid_token_is_404(make_app: Any) -> None:
    app, transform = make_app()
    with app.server.test_request_context():
        url = transform.register(b"x", filename="a.png")
    c = app.server.test_client()
    assert c.get(url).status_code == 200
    assert c.get(url.replace("a.png", "a.html")).status_code == 404


def test_expired_file_is_404(backend: Any) -> None:
    service = FileService(backend, timeout=1)
    flask_app = Flask(__name__)
    service.init_app(flask_app)
    url = service.register(b"short-lived")
    client = flask_app.test_client()
    assert client.get(url).status_code == 200
    deadline = time.monotonic() + 10
    while client.get(url).status_code == 200:
        assert time.monotonic() < deadline, "file did not expire"
        time.sleep(0.2)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5])
def test_content_is_stored_in_chunks(backend: Any, size: int) -> None:
    service = FileService(backend, chunk_size=4096)
    flask_app = Flask(__name__)
    service.init_app(flask_app)
    data = os.urandom(size)
    record = service.add(data, service_options())
    for i in range(record.chunk_count):
        chunk = backend.get(f"dfc:{record.storage}:{i}")
        assert chunk == data[i * 4096 : (i + 1) * 4096]
    assert backend.get(f"dfc:{record.storage}:{record.chunk_count}") is None
    assert flask_app.test_client().get(service.url_for(record)).data == data


def service_options() -> Any:
    from dfc_transform.options import FileOptions

    return FileOptions()


def test_flask_caching_cache_is_accepted(tmp_path: Path) -> None:
    flask_app = Flask(__name__)
    cache = Cache(
        flask_app,
        config={"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "fc"), "CACHE_THRESHOLD": 0},
    )
    service = FileService(cache, chunk_size=1024)
    service.init_app(flask_app)
    data = os.urandom(5000)
    with flask_app.test_request_context():
        url = service.register(data)
    assert flask_app.test_client().get(url).data == data


def test_bad_backend_is_rejected_clearly() -> None:
    with pytest.raises(TypeError, match=r"cachelib\.BaseCache or flask_caching\.Cache"):
        FileService(object())  # type: ignore[arg-type]


def test_default_store_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DFC_TRANSFORM_DIR")
    import tempfile

    assert default_cache_dir() == Path(tempfile.gettempdir()) / f"dfc_transform-{os.getuid()}"
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path / "elsewhere"))
    service = FileService()
    assert isinstance(service.backend, FileSystemCache)
    url = service.register(b"in the default store")
    record = service.store.get(url.split("/")[2])
    assert record is not None
    assert record.inline == b"in the default store"  # a small file is kept in its record
    assert (tmp_path / "elsewhere").is_dir()
    assert (tmp_path / "elsewhere").stat().st_mode & 0o777 == 0o700


def test_default_store_is_the_same_in_every_process(tmp_path: Path) -> None:
    """Another process (a gunicorn worker, a background job) of the same app serves what this
    one registered (the app's namespace is given here: both sides are not one app module)."""
    service = FileService(namespace="one-app")
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = service.register(data, filename="big.bin")
    script = textwrap.dedent(
        f"""
        import hashlib
        from flask import Flask
        from dfc_transform import FileService
        app = Flask(__name__)
        FileService(namespace="one-app").init_app(app)
        r = app.test_client().get({url!r})
        print(r.status_code, hashlib.sha256(r.data).hexdigest())
        """
    )
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.split() == ["200", hashlib.sha256(data).hexdigest()]


def test_max_size_error_names_output_and_size(make_app: Any) -> None:
    from dfc_transform.exc import FileTooLargeError

    app, _ = make_app(max_size=1000, chunk_size=1024)
    app.server.config["PROPAGATE_EXCEPTIONS"] = True

    @app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return io.BufferedReader(io.BytesIO(b"x" * 5000))

    c = DashClient(app)
    with pytest.raises(FileTooLargeError, match=r"output img\.src.*1000 bytes"):
        c.fire(out("img", "src"), [inp("go", "n_clicks", 1)])


def test_simplecache_backend_roundtrip_many_chunks() -> None:
    service = FileService(SimpleCache(threshold=0), chunk_size=1024)
    flask_app = Flask(__name__)
    service.init_app(flask_app)
    data = os.urandom(100 * 1024 + 3)
    assert flask_app.test_client().get(service.register(data)).data == data


@pytest.mark.parametrize("path", ["/_dash-files", "/_dash-files/"])
def test_bare_route_prefix_is_a_plain_404(make_app: Any, path: str) -> None:
    app, _ = make_app()
    r = app.server.test_client().get(path)
    assert r.status_code == 404
    assert r.mimetype == "text/plain"
    flask_app = Flask(__name__)
    FileService(SimpleCache()).init_app(flask_app)
    r = flask_app.test_client().get(path)
    assert r.status_code == 404
    assert r.mimetype == "text/plain"


def test_late_bound_flask_caching_cache_is_judged_by_its_backend() -> None:
    """An app factory binds the Cache after the service was made: the backend's kind counts then."""
    cache = Cache(config={"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 100000})
    service = FileService(cache)
    assert not service.per_process  # nothing to judge by yet
    flask_app = Flask(__name__)
    cache.init_app(flask_app)
    service.init_app(flask_app)
    with flask_app.test_request_context():
        url = service.register(b"late")
    assert service.per_process
    assert service.copy_paths is False  # one process: paths are served by reference
    assert flask_app.test_client().get(url).data == b"late"
