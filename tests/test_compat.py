"""Drop-in everywhere: every dash-extensions transform, several apps in one process, clear errors
where Dash would be cryptic, and downloads from a ``dcc.Download``.

Callbacks are fired with the Flask test client as the renderer fires them, from the app's own
``/_dash-dependencies`` (other transforms change ids, inputs and outputs), and the URLs they return
are fetched.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dash
import diskcache
import flask
import pytest
from cachelib import FileSystemCache
from dash import ALL, MATCH, DiskcacheManager, dcc, html
from dash_extensions import enrich
from dash_extensions.enrich import (
    BaseModelTransform,
    BlockingCallbackTransform,
    CallbackBlueprint,
    CycleBreakerInput,
    CycleBreakerTransform,
    DashProxy,
    DashTransform,
    DataclassTransform,
    FileSystemBackend,
    Input,
    LoadingTransform,
    MultiplexerTransform,
    Output,
    PrefixIdTransform,
    Serverside,
    ServersideOutputTransform,
    State,
    Trigger,
    TriggerTransform,
)
from pydantic import BaseModel

from dfc_transform import File, FileOutput, FileServeError, FileServeTransform

NAME = "Überblick \u2013 données 報告.csv"  # an en dash, accents, CJK and spaces


# -- a client that fires callbacks from the app's own dependencies ----------------------------


class Client:
    """The Flask test client of a Dash app, firing callbacks as the renderer would."""

    def __init__(self, app: dash.Dash, prefix: str = "/", http: Any = None) -> None:
        self.app = app
        self.prefix = prefix
        self.http = http or app.server.test_client()
        r = self.http.get(prefix + "_dash-layout")
        assert r.status_code == 200, r.get_data(as_text=True)[:2000]
        self.layout = r.get_json()
        self.deps: list[dict[str, Any]] = self.http.get(prefix + "_dash-dependencies").get_json()

    def dep(self, output: str, *, input_id: str | None = None) -> dict[str, Any]:
        """The server callback whose output names ``output`` (and an input or state ``input_id``)."""
        found = [d for d in self.deps if d["clientside_function"] is None and output in d["output"]]
        if input_id is not None:
            found = [d for d in found if any(input_id in str(i["id"]) for i in d["inputs"] + d["state"])]
        assert len(found) == 1, (output, [d["output"] for d in self.deps])
        return found[0]

    def fire(self, dep: dict[str, Any], *, outputs: Any = None, values: dict[str, Any] | None = None) -> Any:
        """POST one callback; the whole JSON answer (``response``, ``sideUpdate``)."""
        values = values or {}
        inputs = [{**i, "value": values.get(_prop_id(i))} for i in dep["inputs"]]
        state = [{**s, "value": values.get(_prop_id(s))} for s in dep["state"]]
        body = {
            "output": dep["output"],
            "outputs": outputs if outputs is not None else _outputs_of(dep["output"]),
            "inputs": inputs,
            "changedPropIds": [_prop_id(inputs[0])] if inputs else [],
            "state": state,
        }
        r = self.http.post(self.prefix + "_dash-update-component", json=body)
        assert r.status_code == 200, r.get_data(as_text=True)[:2000]
        self.last_size = len(r.data)
        return r.get_json()

    def get(self, url: str) -> Any:
        return self.http.get(url)


def _prop_id(dep: dict[str, Any]) -> str:
    ident = dep["id"]
    if isinstance(ident, dict):
        ident = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return f"{ident}.{dep['property']}"


def _outputs_of(output: str) -> Any:
    """The renderer's ``outputs`` for a callback id (``..a.b...c.d..`` for several)."""
    multi = output.startswith("..") and output.endswith("..")
    outputs = []
    for part in output[2:-2].split("...") if multi else [output]:
        ident, prop = part.rsplit(".", 1)
        outputs.append({"id": json.loads(ident) if ident.startswith("{") else ident, "property": prop})
    return outputs if multi else outputs[0]


def _download_url(answer: dict[str, Any], ident: Any = "dl") -> str:
    """The URL a callback gave a Download (the page's script then saves it: see
    dfc_transform.dash.downloads); the Download is the callback's own output, nothing else is."""
    key = ident if isinstance(ident, str) else json.dumps(ident, sort_keys=True, separators=(",", ":"))
    url = answer["response"][key]["data"]
    assert isinstance(url, str) and "/_dash-files/" in url, url
    assert not answer.get("sideUpdate"), answer  # no hidden component was set
    # Each answer is a new value (so that the same file twice saves twice), by its fragment.
    url, _, fragment = url.partition("#")
    assert fragment
    return url


@pytest.fixture
def store(tmp_path: Path) -> FileSystemCache:
    return FileSystemCache(str(tmp_path / "store"), threshold=0)


@pytest.fixture
def clean_globals() -> Iterator[None]:
    """Leave the global callbacks of dash and dash-extensions as they were."""
    from dash import _callback

    saved = (
        list(enrich.GLOBAL_BLUEPRINT.callbacks),
        list(enrich.GLOBAL_BLUEPRINT.clientside_callbacks),
        dict(_callback.GLOBAL_CALLBACK_MAP),
        list(_callback.GLOBAL_CALLBACK_LIST),
    )
    try:
        yield
    finally:
        enrich.GLOBAL_BLUEPRINT.callbacks[:] = saved[0]
        enrich.GLOBAL_BLUEPRINT.clientside_callbacks[:] = saved[1]
        _callback.GLOBAL_CALLBACK_MAP.clear()
        _callback.GLOBAL_CALLBACK_MAP.update(saved[2])
        _callback.GLOBAL_CALLBACK_LIST[:] = saved[3]


# -- with every transform dash-extensions ships ---------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model(BaseModel):
    name: str


@dataclasses.dataclass(frozen=True)
class Case:
    """How to use one dash-extensions transform next to ours."""

    make: Callable[[Path], DashTransform]
    #: The dependency that fires the callback.
    trigger: Callable[[str, str], Any] = Input
    #: Callback keywords that switch the transform on.
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The value returned to the plain Output, and what the browser must get for it.
    plain: Callable[[], Any] = lambda: "text"
    check: Callable[[Any], bool] = lambda value: value == "text"
    #: A second callback on the same outputs (what MultiplexerTransform is for).
    twice: bool = False


CASES: dict[str, Case] = {
    "BaseModelTransform": Case(
        lambda tmp: BaseModelTransform(),
        plain=lambda: Model(name="m"),
        check=lambda value: json.loads(value) == {"name": "m"},
    ),
    "BlockingCallbackTransform": Case(lambda tmp: BlockingCallbackTransform(), kwargs={"blocking": True}),
    "CycleBreakerTransform": Case(lambda tmp: CycleBreakerTransform(), trigger=CycleBreakerInput),
    "DataclassTransform": Case(
        lambda tmp: DataclassTransform(), plain=lambda: Point(1, 2), check=lambda v: v == {"x": 1, "y": 2}
    ),
    "LoadingTransform": Case(lambda tmp: LoadingTransform(), kwargs={"loading": True}),
    "MultiplexerTransform": Case(lambda tmp: MultiplexerTransform(), twice=True),
    "PrefixIdTransform": Case(lambda tmp: PrefixIdTransform("pre")),
    "ServersideOutputTransform": Case(
        lambda tmp: ServersideOutputTransform(backends=[FileSystemBackend(str(tmp / "serverside"))]),
        plain=lambda: Serverside({"big": "data"}),
        check=lambda value: value.startswith("SERVERSIDE_"),
    ),
    "TriggerTransform": Case(lambda tmp: TriggerTransform(), trigger=Trigger),
}
# Base classes, not transforms one would use.
_NOT_TRANSFORMS = {"DashTransform", "StatefulDashTransform", "SerializationTransform", "FileServeTransform"}


def test_every_transform_dash_extensions_ships_is_in_the_matrix() -> None:
    shipped = {
        name
        for name, value in vars(enrich).items()
        if inspect.isclass(value) and issubclass(value, DashTransform) and name not in _NOT_TRANSFORMS
    }
    assert shipped == set(CASES)


@pytest.mark.parametrize("shape", ["single", "multi", "download"])
@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "ours-last"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_with_every_dash_extensions_transform(
    name: str, ours_first: bool, shape: str, tmp_path: Path, store: Any
) -> None:
    case = CASES[name]
    ours, theirs = FileServeTransform(store, inline_below=0), case.make(tmp_path)
    app = DashProxy(__name__, transforms=[ours, theirs] if ours_first else [theirs, ours])
    app.layout = html.Div(
        [
            html.Button(id="go"),
            html.Button(id="other"),
            html.Img(id="img"),
            html.Div(id="label"),
            dcc.Download(id="dl"),
        ]
    )
    content = f"{name} {shape}".encode()

    def outputs() -> list[Any]:
        if shape == "download":
            target = FileOutput("dl", "data", filename=NAME)
        else:
            target = FileOutput("img", "src", filename="plot.png")
        return [target] if shape == "single" else [target, Output("label", "children")]

    def produce(n: Any = None) -> Any:
        return io.BytesIO(content) if shape == "single" else (io.BytesIO(content), case.plain())

    app.callback(*outputs(), case.trigger("go", "n_clicks"), **case.kwargs)(produce)
    if case.twice:

        def produce_too(n: Any = None) -> Any:
            return b"other" if shape == "single" else (b"other", case.plain())

        app.callback(*outputs(), case.trigger("other", "n_clicks"), **case.kwargs)(produce_too)

    pid = (lambda i: f"pre-{i}") if name == "PrefixIdTransform" else (lambda i: i)
    c = Client(app)
    target = "dl.data" if shape == "download" else "img.src"
    answer = c.fire(c.dep(target, input_id="go"))
    response = answer["response"]
    if shape == "download":
        url = _download_url(answer, pid("dl"))
        assert url.endswith("/" + quote(NAME, safe=""))
        r = c.get(url + "?download=1")  # as the page's script fetches it
        assert r.headers["Content-Disposition"].startswith("attachment")
    else:
        r = c.get(response[pid("img")]["src"])
    assert r.status_code == 200 and r.data == content
    if shape != "single":
        assert case.check(response[pid("label")]["children"]), response


@pytest.mark.parametrize("params", ["n, value", "n, value=3, *, extra=None", "*args", "n: int, value: Point"])
@pytest.mark.parametrize("kind", ["def", "async def"])
def test_the_wrapper_shows_the_functions_signature(kind: str, params: str) -> None:
    namespace: dict[str, Any] = {"Point": Point}
    exec(f"{kind} func({params}):\n    return None", namespace)
    func = namespace["func"]
    callback = CallbackBlueprint(FileOutput("img", "src"), Input("go", "n_clicks"), State("v", "value"))
    callback.f = func
    FileServeTransform(FileSystemCache("/nonexistent-unused", threshold=0)).apply_serverside([callback])
    assert callback.f is not func
    assert inspect.getfullargspec(callback.f) == inspect.getfullargspec(func)
    assert inspect.iscoroutinefunction(callback.f) == (kind == "async def")


# -- several apps, one process ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["img.src", "dl.data"])
@pytest.mark.parametrize("server", ["own-servers", "one-server"])
def test_a_global_callback_stores_and_serves_through_each_apps_transform(
    server: str, target: str, tmp_path: Path, clean_globals: None
) -> None:
    component, prop = target.split(".")

    @enrich.callback(FileOutput(component, prop, filename="shared.txt"), Input("go", "n_clicks"))
    def shared(n: Any = None) -> Any:
        return io.StringIO(f"clicked {n}")

    flask_app = flask.Flask(__name__) if server == "one-server" else None
    apps = []
    for i in range(2):
        transform = FileServeTransform(FileSystemCache(str(tmp_path / f"store{i}"), threshold=0))
        kwargs: dict[str, Any] = {"server": flask_app} if flask_app else {}
        apps.append(DashProxy(__name__, transforms=[transform], url_base_pathname=f"/app{i}/", **kwargs))
        apps[-1].layout = html.Div([html.Button(id="go"), html.Img(id="img"), dcc.Download(id="dl")])
    clients = [Client(app, f"/app{i}/") for i, app in enumerate(apps)]
    urls = []
    for i, c in enumerate(clients):
        answer = c.fire(c.dep(target), values={"go.n_clicks": i})
        url = _download_url(answer) if prop == "data" else answer["response"]["img"]["src"]
        assert url.startswith(f"/app{i}/_dash-files/"), url
        assert c.get(url).data == f"clicked {i}".encode()
        urls.append(url)
    # Each stored in its own backend: the other app does not know the token.
    for i, c in enumerate(clients):
        other = urls[1 - i].replace(f"/app{1 - i}/", f"/app{i}/")
        assert c.get(other).status_code == 404


def test_one_transform_given_to_two_apps_is_refused_as_the_second_is_made(store: Any) -> None:
    transform = FileServeTransform(store)
    first = DashProxy(__name__, transforms=[transform], url_base_pathname="/app0/")
    first.layout = html.Div([html.Button(id="go"), html.Img(id="img")])
    first.callback(FileOutput("img", "src"), Input("go", "n_clicks"))(lambda n: b"x")
    with pytest.raises(FileServeError, match="give each app its own FileServeTransform"):
        DashProxy(__name__, transforms=[transform], url_base_pathname="/app1/")
    c = Client(first, "/app0/")
    assert c.get(c.fire(c.dep("img.src"))["response"]["img"]["src"]).data == b"x"


# -- clear errors where Dash would be cryptic -------------------------------------------------


def _exported(n: Any = None) -> Any:
    return io.BytesIO(b"never sent")


def _dash_callback_on_a_proxy(store: Any) -> dash.Dash:
    app = DashProxy(__name__, transforms=[FileServeTransform(store)])
    dash.callback(FileOutput("img", "src"), Input("go", "n_clicks"))(_exported)
    return app


def _app_callback_on_dash(store: Any) -> dash.Dash:
    app = dash.Dash(__name__)
    app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))(_exported)
    return app


def _dash_callback_on_dash(store: Any) -> dash.Dash:
    app = dash.Dash(__name__)
    dash.callback(FileOutput("img", "src"), Input("go", "n_clicks"))(_exported)
    return app


def _proxy_without_the_transform(store: Any) -> dash.Dash:
    app = DashProxy(__name__, transforms=[TriggerTransform()])
    app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))(_exported)
    return app


def _global_callback_on_a_proxy_without_the_transform(store: Any) -> dash.Dash:
    app = DashProxy(__name__)
    enrich.callback(FileOutput("img", "src"), Input("go", "n_clicks"))(_exported)
    return app


def _app_callback_after_the_first_request(store: Any) -> dash.Dash:
    app = DashProxy(__name__, transforms=[FileServeTransform(store)])
    app.layout = html.Div([html.Button(id="go"), html.Img(id="img")])
    assert app.server.test_client().get("/_dash-layout").status_code == 200
    app.callback(FileOutput("img", "src"), Input("go", "n_clicks"))(_exported)  # DashProxy passes it to Dash
    return app


_DIRECTLY = r"FileOutput img\.src was registered with Dash directly"
_PLAIN_DASH = r".*files\.init_app\(app\), then @files\.callback"


@pytest.mark.parametrize(
    ("make", "when", "advice"),
    [
        (_dash_callback_on_a_proxy, "registered", _DIRECTLY + r".*dash_extensions\.enrich\.callback"),
        (_app_callback_after_the_first_request, "registered", _DIRECTLY),
        (_app_callback_on_dash, "registered", _DIRECTLY + _PLAIN_DASH),
        (_dash_callback_on_dash, "registered", _DIRECTLY + _PLAIN_DASH),
        # DashProxy registers its callbacks with Dash at its first request: refused there.
        (_proxy_without_the_transform, "first request", _DIRECTLY + r".*DashProxy\(transforms="),
        (
            _global_callback_on_a_proxy_without_the_transform,
            "first request",
            _DIRECTLY + r".*DashProxy\(transforms=",
        ),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_a_file_output_the_transform_never_sees_is_refused_where_it_is_registered(
    make: Callable[[Any], dash.Dash], when: str, advice: str, store: Any, clean_globals: None
) -> None:
    if when == "registered":
        with pytest.raises(FileServeError, match=advice):
            make(store)
        return
    app = make(store)
    app.layout = html.Div([html.Button(id="go"), html.Img(id="img")])
    app.server.testing = True
    with pytest.raises(FileServeError, match=advice):
        app.server.test_client().get("/_dash-layout")


def test_apps_without_file_outputs_are_not_refused(clean_globals: None) -> None:
    app = dash.Dash(__name__)
    app.layout = html.Div([html.Button(id="go"), html.Div(id="label")])
    app.callback(Output("label", "children"), Input("go", "n_clicks"))(lambda n: "fine")
    app.server.testing = True
    assert Client(app).fire(Client(app).dep("label.children"))["response"]["label"]["children"] == "fine"


_FILE_VALUES: dict[str, Callable[[Path], Any]] = {
    "BytesIO": lambda tmp: io.BytesIO(b"x"),
    "StringIO": lambda tmp: io.StringIO("x"),
    "bytes": lambda tmp: b"x",
    "PosixPath": lambda tmp: tmp,
    "File": lambda tmp: File(b"x", filename="x.bin"),
    "BufferedReader": lambda tmp: open(__file__, "rb"),  # noqa: SIM115 (closed by the test)
    "DataFrame": lambda tmp: __import__("pandas").DataFrame({"a": [1]}),  # a value a converter takes
}


@pytest.mark.parametrize("kind", ["no-file-output", "file-output", "async"])
@pytest.mark.parametrize("value_type", sorted(_FILE_VALUES))
def test_a_file_given_to_set_props_points_to_register(
    value_type: str, kind: str, tmp_path: Path, store: Any
) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(store)], use_async=kind == "async")
    app.layout = html.Div([html.Button(id="go"), html.Img(id="img"), html.Div(id="label")])
    value = _FILE_VALUES[value_type](tmp_path)
    output = FileOutput("label", "title") if kind == "file-output" else Output("label", "children")

    async def sets_async(n: Any = None) -> Any:
        dash.set_props("img", {"src": value})
        return "done"

    def sets(n: Any = None) -> Any:
        dash.set_props("img", {"src": value})
        return b"done" if kind == "file-output" else "done"

    app.callback(output, Input("go", "n_clicks"))(sets_async if kind == "async" else sets)
    c = Client(app)
    app.server.testing = True
    kind_name = "bytes" if value_type == "File" else value_type
    with pytest.raises(
        FileServeError,
        match=rf"callback .*sets(_async)?: set_props\('img', \{{'src': {kind_name}\}}\).*register\(",
    ):
        c.fire(c.dep("label."))
    if hasattr(value, "close"):
        value.close()


@pytest.mark.parametrize("file_output", [False, True])
def test_set_props_with_a_registered_url_and_json_values_works(file_output: bool, store: Any) -> None:
    transform = FileServeTransform(store)
    app = DashProxy(__name__, transforms=[transform])
    app.layout = html.Div([html.Button(id="go"), html.Img(id="img"), html.Div(id="label")])
    output = FileOutput("label", "title") if file_output else Output("label", "children")

    @app.callback(output, Input("go", "n_clicks"))
    def sets(n: Any = None) -> Any:
        dash.set_props("img", {"src": transform.register(io.BytesIO(b"via set_props"), filename="s.bin")})
        dash.set_props("label", {"style": {"color": "red"}})
        return b"returned" if file_output else "returned"

    c = Client(app)
    answer = c.fire(c.dep("label."))
    assert c.get(answer["sideUpdate"]["img"]["src"]).data == b"via set_props"
    assert answer["sideUpdate"]["label"] == {"style": {"color": "red"}}


# -- downloads from a button ------------------------------------------------------------------


def _download_layout(download_id: Any, where: str) -> Any:
    """A layout with the Download ``download_id`` placed as ``where`` says."""
    download = dcc.Download(id=download_id)
    if where == "children":
        return html.Div([html.Button(id="go"), html.Div(html.Div(download)), dcc.Store(id="store")])
    if where == "component-prop":  # not in children: in another component's property
        return html.Div(
            [html.Button(id="go"), dcc.Loading(html.Div(), custom_spinner=download), dcc.Store(id="store")]
        )
    if where == "function-layout":
        return lambda: html.Div([html.Button(id="go"), download, dcc.Store(id="store")])
    raise ValueError(where)


@pytest.mark.parametrize("where", ["children", "component-prop", "function-layout"])
@pytest.mark.parametrize("download_id", ["dl", {"type": "dl", "index": 1}], ids=["str-id", "dict-id"])
def test_a_file_output_on_a_download_starts_a_download_of_the_url(
    download_id: Any, where: str, store: Any
) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(store)])
    app.layout = _download_layout(download_id, where)

    @app.callback(FileOutput(download_id, "data", filename=NAME), Input("go", "n_clicks"))
    def export(n: Any = None) -> Any:
        return io.StringIO("a;b\n1;2\n")

    c = Client(app)
    answer = c.fire(c.dep(".data"))
    url = _download_url(answer, download_id)
    r = c.get(url + "?download=1")  # as the page's script fetches it
    assert r.data == b"a;b\n1;2\n"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{quote(NAME, safe='')}" in r.headers["Content-Disposition"]
    # Nothing was added to the layout, and no other callback: the Download is the output.
    assert [s["props"]["id"] for s in _components(c.layout) if s["type"] == "Store"] == ["store"]
    assert not any(d["clientside_function"] for d in c.deps)


def _components(layout: Any) -> Iterator[dict[str, Any]]:
    if isinstance(layout, list):
        for item in layout:
            yield from _components(item)
    elif isinstance(layout, dict) and "props" in layout:
        yield layout
        for value in layout["props"].values():
            yield from _components(value)


@pytest.mark.parametrize("prefixed", [False, True], ids=["", "PrefixIdTransform"])
@pytest.mark.parametrize("pattern", ["ALL", "MATCH"])
def test_pattern_matching_downloads(pattern: str, prefixed: bool, store: Any) -> None:
    transforms: list[Any] = [FileServeTransform(store)] + ([PrefixIdTransform("pre")] if prefixed else [])
    app = DashProxy(__name__, transforms=transforms)
    app.layout = html.Div(
        [html.Button(id={"type": "go", "index": i}) for i in range(2)]
        + [dcc.Download(id={"type": "dl", "index": i}) for i in range(2)]
    )
    wildcard = ALL if pattern == "ALL" else MATCH

    @app.callback(
        FileOutput({"type": "dl", "index": wildcard}, "data"),
        Input({"type": "go", "index": wildcard}, "n_clicks"),
    )
    def export(clicks: Any) -> Any:
        if pattern == "ALL":
            return [File(f"file {i}".encode(), filename=f"{i}.txt") for i in range(2)]
        return File(b"file 1", filename="1.txt")

    c = Client(app)
    kind = (lambda name: f"pre-{name}") if prefixed else (lambda name: name)
    indices = range(2) if pattern == "ALL" else [1]
    outs = [{"id": {"type": kind("dl"), "index": i}, "property": "data"} for i in indices]
    ins = [{"id": {"type": kind("go"), "index": i}, "property": "n_clicks", "value": 1} for i in indices]
    dep = c.dep("data")
    # The callback's one output, as the renderer sends it (a list for ALL): no companion beside it.
    assert "data" in dep["output"] and ".." not in dep["output"]
    outputs: Any = outs if pattern == "ALL" else outs[0]
    body = {
        "output": dep["output"],
        "outputs": outputs,
        "inputs": [ins] if pattern == "ALL" else [ins[0]],
        "changedPropIds": [_prop_id(ins[0])],
        "state": [],
    }
    r = c.http.post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:2000]
    answer = r.get_json()
    assert not answer.get("sideUpdate")
    answered = {json.loads(key)["index"]: value["data"] for key, value in answer["response"].items()}
    assert sorted(answered) == list(indices)
    assert [c.get(answered[i]).data for i in indices] == [f"file {i}".encode() for i in indices]


@pytest.mark.parametrize("layout", ["static", "function"])
def test_the_data_of_other_components_gets_the_url(layout: str, store: Any) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(store)])

    def make() -> Any:
        return html.Div([html.Button(id="go"), dcc.Store(id="store"), dcc.Download(id="dl")])

    app.layout = make if layout == "function" else make()

    @app.callback(
        FileOutput("store", "data", filename="kept.json"),
        FileOutput("dl", "data", filename="saved.json"),
        Input("go", "n_clicks"),
    )
    def both(n: Any = None) -> Any:
        return b"{}", b"[]"

    c = Client(app)
    answer = c.fire(c.dep("store.data"))
    url, _, fragment = answer["response"]["store"]["data"].partition("#")
    assert fragment  # a new value at each answer, as at a Download's data
    assert url.endswith("/kept.json") and c.get(url).data == b"{}"
    assert c.get(url).headers["Content-Disposition"].startswith("inline")
    assert c.get(_download_url(answer)).data == b"[]"


@pytest.mark.parametrize(
    "ident", ["made-later", {"type": "made-later", "index": 0}], ids=["str-id", "dict-id"]
)
def test_components_the_server_has_not_seen_get_the_url_too(ident: Any, store: Any) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(store)])
    app.layout = html.Div([html.Button(id="go"), html.Div(id="later")])  # a callback fills it

    @app.callback(FileOutput(ident, "data", filename="x.csv"), Input("go", "n_clicks"))
    def export(n: Any = None) -> Any:
        return b"x"

    c = Client(app)
    url = _download_url(c.fire(c.dep(".data")), ident)
    assert c.get(url).headers["Content-Disposition"].startswith("inline")  # as FileOutput said


def test_a_large_download_answers_with_a_small_callback_response(store: Any) -> None:
    app = DashProxy(__name__, transforms=[FileServeTransform(store)])
    app.layout = html.Div([html.Button(id="go"), dcc.Download(id="dl")])
    content = bytes(range(256)) * (3 * 4096)  # 3 MiB

    @app.callback(FileOutput("dl", "data", filename="big.bin"), Input("go", "n_clicks"))
    def export(n: Any = None) -> Any:
        return io.BytesIO(content)

    c = Client(app)
    answer = c.fire(c.dep("dl.data"))
    assert c.last_size < 4096
    assert c.get(_download_url(answer)).data == content


@pytest.mark.parametrize("target", ["dl.data", "store.data"])
def test_a_download_from_a_background_callback(target: str, tmp_path: Path, store: Any) -> None:
    manager = DiskcacheManager(diskcache.Cache(str(tmp_path / "jobs")))
    app = DashProxy(__name__, transforms=[FileServeTransform(store)], background_callback_manager=manager)
    app.layout = html.Div([html.Button(id="go"), dcc.Download(id="dl"), dcc.Store(id="store")])
    component, prop = target.split(".")

    @app.callback(
        FileOutput(component, prop, filename="job.txt"),
        Input("go", "n_clicks"),
        background=True,
        prevent_initial_call=True,
    )
    def job(n: Any) -> Any:
        dash.set_props("go", {"title": "set in the job"})
        return io.StringIO("made in the job")

    c = Client(app)
    dep = c.dep(target)
    body = {
        "output": dep["output"],
        "outputs": _outputs_of(dep["output"]),
        "inputs": [{**dep["inputs"][0], "value": 1}],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    handles = c.http.post("/_dash-update-component", json=body).get_json()
    query = f"?cacheKey={handles['cacheKey']}&job={handles['job']}"
    deadline, side = time.monotonic() + 30, {}
    while True:  # poll as the renderer does; set_props values come with whichever poll sees them
        answer = c.http.post("/_dash-update-component" + query, json=body).get_json()
        side.update(answer.get("sideUpdate", {}))
        if "response" in answer:
            break
        assert time.monotonic() < deadline, "the background job did not finish in time"
        time.sleep(0.05)
    assert side == {"go": {"title": "set in the job"}}  # the app's own set_props, and only it
    assert c.get(answer["response"][component][prop]).data == b"made in the job"
