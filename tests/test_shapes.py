"""Every callback shape: only FileOutput positions are touched."""

from __future__ import annotations

import io
import json
from typing import Any

import dash
import pytest
from dash import ALL, MATCH
from dash_extensions.enrich import DashBlueprint, DashProxy, Input, Output, State, html

from dfc_transform import File, FileOutput, FileServeTransform

from .conftest import DashClient, inp, out


def _sid(ident: dict[str, Any]) -> str:
    return json.dumps(ident, sort_keys=True, separators=(",", ":"))


def _png(tag: str) -> io.BytesIO:
    buf = io.BytesIO()
    buf.write(b"\x89PNG-" + tag.encode())
    return buf


def test_multi_output_mixed_with_plain_outputs(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(
        FileOutput("img", "src", filename="a.png"),
        Output("label", "children"),
        FileOutput("link", "href", download=True),
        Input("go", "n_clicks"),
    )
    def produce(n: int) -> Any:
        return _png("a"), "/not/a/file/just/text", io.StringIO("csv,data")

    c = DashClient(app)
    resp = c.fire(
        [out("img", "src"), out("label", "children"), out("link", "href")], [inp("go", "n_clicks", 1)]
    )
    assert resp["label"]["children"] == "/not/a/file/just/text"  # plain Output: untouched
    assert c.fetch(resp["img"]["src"]).data == b"\x89PNG-a"
    link = c.fetch(resp["link"]["href"])
    assert link.data == b"csv,data"
    assert link.headers["Content-Disposition"].startswith("attachment")


def test_dict_style_output_and_inputs(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(
        output={"picture": FileOutput("img", "src"), "caption": Output("label", "children")},
        inputs={"clicks": Input("go", "n_clicks"), "name": State("name", "value")},
    )
    def produce(clicks: int, name: str) -> dict[str, Any]:
        return {"picture": File(_png(name), filename=f"{name}.png"), "caption": name}

    c = DashClient(app)
    resp = c.fire(
        [out("img", "src"), out("label", "children")],  # the renderer sends them flat
        [inp("go", "n_clicks", 1)],
        state=[inp("name", "value", "cat")],
    )
    assert resp["label"]["children"] == "cat"
    assert resp["img"]["src"].endswith("/cat.png")
    assert c.fetch(resp["img"]["src"]).data == b"\x89PNG-cat"


def test_match_output(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(
        FileOutput({"type": "img", "index": MATCH}, "src"),
        Input({"type": "btn", "index": MATCH}, "n_clicks"),
    )
    def produce(n: int) -> Any:
        return _png(f"match-{dash.ctx.triggered_id['index']}")

    c = DashClient(app)
    resp = c.fire(out({"type": "img", "index": 7}, "src"), [inp({"type": "btn", "index": 7}, "n_clicks", 1)])
    url = resp[_sid({"type": "img", "index": 7})]["src"]
    assert c.fetch(url).data == b"\x89PNG-match-7"


def test_all_output_takes_a_list_with_none_entries(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(FileOutput({"type": "img", "index": ALL}, "src"), Input("go", "n_clicks"))
    def produce(n: int) -> list[Any]:
        return [_png("0"), None, b"two"]

    c = DashClient(app)
    outs = [out({"type": "img", "index": i}, "src") for i in range(3)]
    resp = c.fire(outs, [inp("go", "n_clicks", 1)])
    urls = [resp[_sid({"type": "img", "index": i})]["src"] for i in range(3)]
    assert urls[1] is None
    assert c.fetch(urls[0]).data == b"\x89PNG-0"
    assert c.fetch(urls[2]).data == b"two"


def test_all_output_nested_in_multi_output(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(
        FileOutput({"type": "img", "index": ALL}, "src", filename="p.png"),
        Output("label", "children"),
        Input("go", "n_clicks"),
    )
    def produce(n: int) -> Any:
        return [_png("x"), _png("y")], "two images"

    c = DashClient(app)
    outs = [[out({"type": "img", "index": i}, "src") for i in range(2)], out("label", "children")]
    resp = c.fire(outs, [inp("go", "n_clicks", 1)])
    assert resp["label"]["children"] == "two images"
    urls = [resp[_sid({"type": "img", "index": i})]["src"] for i in range(2)]
    assert [c.fetch(u).data for u in urls] == [b"\x89PNG-x", b"\x89PNG-y"]
    assert urls[0] != urls[1]


def test_allow_duplicate_outputs(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(
        FileOutput("img", "src", allow_duplicate=True), Input("a", "n_clicks"), prevent_initial_call=True
    )
    def from_a(n: int) -> Any:
        return b"from a"

    @app.callback(
        FileOutput("img", "src", allow_duplicate=True), Input("b", "n_clicks"), prevent_initial_call=True
    )
    def from_b(n: int) -> Any:
        return b"from b"

    c = DashClient(app)
    index_a = next(i for i, d in enumerate(c.deps) if d["inputs"][0]["id"] == "a")
    index_b = 1 - index_a
    ra = c.fire(out("img", "src"), [inp("a", "n_clicks", 1)], index=index_a)
    rb = c.fire(out("img", "src"), [inp("b", "n_clicks", 1)], index=index_b)
    assert c.fetch(ra["img"]["src"]).data == b"from a"
    assert c.fetch(rb["img"]["src"]).data == b"from b"


def test_star_args_callback(make_app: Any) -> None:
    app, _ = make_app()

    @app.callback(FileOutput("img", "src"), Input("a", "value"), Input("b", "value"))
    def produce(*args: str) -> Any:
        return "-".join(args).encode()

    c = DashClient(app)
    resp = c.fire(out("img", "src"), [inp("a", "value", "x"), inp("b", "value", "y")])
    assert c.fetch(resp["img"]["src"]).data == b"x-y"


def test_async_callback(backend: Any) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(backend)], use_async=True)
    app.layout = html.Div()

    @app.callback(FileOutput("img", "src", filename="async.txt"), Input("go", "n_clicks"))
    async def produce(n: int) -> Any:
        return io.StringIO(f"async {n}")

    c = DashClient(app)
    resp = c.fire(out("img", "src"), [inp("go", "n_clicks", 3)])
    assert c.fetch(resp["img"]["src"]).data == b"async 3"


def test_global_enrich_callback_used_by_pages(backend: Any) -> None:
    from dash_extensions import enrich

    saved = list(enrich.GLOBAL_BLUEPRINT.callbacks)
    try:

        @enrich.callback(FileOutput("page-img", "src", filename="g.bin"), Input("page-go", "n_clicks"))
        def page_callback(n: int) -> Any:
            return b"global callback"

        app = DashProxy(__name__, transforms=[FileServeTransform(backend)])
        app.layout = html.Div()
        c = DashClient(app)
        index = next(i for i, d in enumerate(c.deps) if d["output"] == "page-img.src")
        resp = c.fire(out("page-img", "src"), [inp("page-go", "n_clicks", 1)], index=index)
        assert c.fetch(resp["page-img"]["src"]).data == b"global callback"
    finally:
        enrich.GLOBAL_BLUEPRINT.callbacks[:] = saved


def test_blueprint_callbacks(make_app: Any) -> None:
    app, _ = make_app()
    bp = DashBlueprint()

    @bp.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
    def produce(n: int) -> Any:
        return b"from blueprint"

    bp.register_callbacks(app)
    c = DashClient(app)
    resp = c.fire(out("img", "src"), [inp("go", "n_clicks", 1)])
    assert c.fetch(resp["img"]["src"]).data == b"from blueprint"


def test_callbacks_without_file_outputs_are_not_wrapped(make_app: Any) -> None:
    app, _ = make_app()

    def plain(n: int) -> str:
        return "/some/path/that/does/not/exist.png"

    app.callback(Output("label", "children"), Input("go", "n_clicks"))(plain)
    c = DashClient(app)
    resp = c.fire(out("label", "children"), [inp("go", "n_clicks", 1)])
    assert resp["label"]["children"] == "/some/path/that/does/not/exist.png"


@pytest.mark.parametrize("n_apps", [2])
def test_several_apps_in_one_process_each_with_its_transform(tmp_path: Any, n_apps: int) -> None:
    from cachelib import FileSystemCache

    clients = []
    for i in range(n_apps):
        backend = FileSystemCache(str(tmp_path / f"store{i}"), threshold=0)
        app = DashProxy(__name__, transforms=[FileServeTransform(backend)], url_base_pathname=f"/app{i}/")
        app.layout = html.Div()

        @app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))
        def produce(n: int, i: int = i) -> Any:
            return f"app {i}".encode()

        clients.append(DashClient.__new__(DashClient))
        c = clients[-1]
        c.app, c.http = app, app.server.test_client()
        assert c.http.get(f"/app{i}/_dash-layout").status_code == 200
        c.deps = c.http.get(f"/app{i}/_dash-dependencies").json
    urls = []
    for i, c in enumerate(clients):
        body = {
            "output": "img.src",
            "outputs": out("img", "src"),
            "inputs": [inp("go", "n_clicks", 1)],
            "changedPropIds": ["go.n_clicks"],
            "state": [],
        }
        r = c.http.post(f"/app{i}/_dash-update-component", json=body)
        urls.append(r.get_json()["response"]["img"]["src"])
    for i, (c, url) in enumerate(zip(clients, urls)):
        assert url.startswith(f"/app{i}/_dash-files/")
        assert c.http.get(url).data == f"app {i}".encode()
    # Each app serves its own files only.
    assert clients[0].http.get(urls[1].replace("/app1/", "/app0/")).status_code == 404
