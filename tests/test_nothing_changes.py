"""Nothing changes until a file is made: an app's layout and pages are as they would be without
the transform (several root kinds, with every dash-extensions transform), importing the package
changes no app on any server, and the command line and the same file both inline and as a
download behave as users expect."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash
import pytest
from cachelib import FileSystemCache
from dash import dcc, html
from dash_extensions.enrich import DashProxy, Input

from dfc_transform import FileOutput, FileServeTransform

from .test_compat import CASES

ROOTS: dict[str, Callable[[], Any]] = {
    "markdown": lambda: dcc.Markdown("# Hello"),
    "text-children": lambda: html.Div("just text", id="root"),
    "list": lambda: [html.H1("a"), html.Div(id="b")],
    "no-children": lambda: dcc.Store(id="only", data={"a": 1}),
}


def _layout_json(app: dash.Dash) -> tuple[int, bytes]:
    """The status and body of ``/_dash-layout`` (a 500 where another transform cannot take the root:
    LoadingTransform, for one, adds to the root's children, which a list or a Store has not)."""
    r = app.server.test_client().get("/_dash-layout")
    return r.status_code, bytes(r.data)


@pytest.mark.parametrize("transform", [None, *CASES])
@pytest.mark.parametrize("root", list(ROOTS))
@pytest.mark.parametrize("kind", ["static", "function"])
def test_the_layout_is_served_as_without_the_transform(
    root: str, transform: str | None, kind: str, tmp_path: Path
) -> None:
    def make(with_ours: bool) -> DashProxy:
        transforms: list[Any] = [CASES[transform].make(tmp_path)] if transform else []
        if with_ours:
            transforms.append(FileServeTransform(FileSystemCache(str(tmp_path / "store"), threshold=0)))
        app = DashProxy(__name__, transforms=transforms, suppress_callback_exceptions=True)
        app.layout = ROOTS[root] if kind == "function" else ROOTS[root]()
        # A callback making a download too: it changes no layout either.
        app.callback(FileOutput("dl", "data") if with_ours else dash.Output("dl", "data"), Input("b", "n"))(
            lambda n: None
        )
        return app

    ours, theirs = _layout_json(make(True)), _layout_json(make(False))
    assert ours == theirs
    # Alone (some of dash-extensions' transforms add to the root's children, which not every root has).
    assert ours[0] == 200 or transform is not None


def test_a_callback_reading_the_root_gets_what_the_app_put_there(tmp_path: Path) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(FileSystemCache(str(tmp_path), threshold=0))])
    app.layout = html.Div("just text", id="root")
    layout = app.server.test_client().get("/_dash-layout").get_json()
    assert layout["props"]["children"] == "just text"


IMPORT_CHANGES_NOTHING = """
import dfc_transform  # noqa: F401
import dash
from dash import html

for backend in ("flask", "quart", "fastapi"):
    app = dash.Dash(__name__, backend=backend)  # FastAPI: no FastAPIError at construction
    app.layout = html.Div("plain")
    rules = [str(getattr(r, "path", r)) for r in getattr(app.server, "routes", [])]
    rules += [str(r) for r in getattr(getattr(app.server, "url_map", None), "iter_rules", list)()]
    assert not any("_dash-files" in r for r in rules), (backend, rules)
    assert not dash.hooks.get_hooks("layout") and not dash.hooks.get_hooks("routes")
    assert not dash.hooks.get_hooks("setup") and not dash.hooks.get_hooks("websocket_connect")
flask_app = dash.Dash(__name__)
flask_app.layout = html.Div("plain")
assert getattr(flask_app.server.wsgi_app, "__func__", None) is type(flask_app.server).wsgi_app  # not wrapped
page = flask_app.server.test_client().get("/").get_data(as_text=True)
assert "dfc_transform" not in page, page  # no script of ours on its pages
print("unchanged")
"""


def test_importing_the_package_changes_no_app_on_any_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHANGES_NOTHING], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "unchanged"


def test_the_same_file_inline_and_as_a_download(tmp_path: Path) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(FileSystemCache(str(tmp_path), threshold=0))])
    app.layout = html.Div([html.Button(id="go"), html.Iframe(id="pdf")])

    @app.callback(FileOutput("pdf", "src", filename="report été.pdf"), Input("go", "n_clicks"))
    def report(n: Any) -> Any:
        return io.BytesIO(b"%PDF-1.4 fake")

    client = app.server.test_client()
    client.get("/_dash-layout")
    body = {
        "output": "pdf.src",
        "outputs": {"id": "pdf", "property": "src"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    url = client.post("/_dash-update-component", json=body).get_json()["response"]["pdf"]["src"]
    inline, saved = client.get(url), client.get(url + "?download=1")
    assert inline.headers["Content-Disposition"].startswith("inline;")
    assert saved.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''report%20%C3%A9t%C3%A9.pdf" in saved.headers["Content-Disposition"]
    assert inline.data == saved.data == b"%PDF-1.4 fake"
    # Each form has its own entity tag: a cache never answers one with the other.
    assert inline.headers["ETag"] != saved.headers["ETag"]
    assert (
        client.get(url + "?download=true", headers={"If-None-Match": saved.headers["ETag"]}).status_code
        == 304
    )
    assert client.get(url, headers={"If-None-Match": saved.headers["ETag"]}).status_code == 200
    for spelled in ("1", "true", "yes", "True"):
        assert client.get(f"{url}?download={spelled}").headers["Content-Disposition"].startswith("attachment")
    assert re.search(r"max-age=\d+, immutable", saved.headers["Cache-Control"])
