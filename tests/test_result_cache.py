"""Dash result caching keeps working: a cached result hands back a URL that still serves."""

from __future__ import annotations

import io
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import diskcache
import pytest
from dash import DiskcacheManager
from dash_extensions.enrich import DashProxy, Input, html
from flask_caching import Cache

from dfc_transform import FileOutput, FileServeTransform

from .conftest import DashClient, inp, out

runs: list[int] = []


def _background_app(tmp_path: Path, *, expire: int, timeout: int) -> DashProxy:
    manager = DiskcacheManager(
        diskcache.Cache(str(tmp_path / f"jobs-{uuid.uuid4().hex[:8]}")),
        cache_by=[lambda: "version-1"],
        expire=expire,
    )
    app = DashProxy(
        __name__, transforms=[FileServeTransform(timeout=timeout)], background_callback_manager=manager
    )
    app.layout = html.Div()

    @app.callback(
        FileOutput("img", "src", filename="cached.txt"),
        Input("go", "n_clicks"),
        background=True,
        prevent_initial_call=True,
    )
    def work(n: int) -> Any:
        time.sleep(1.0)  # a second job for the same inputs loses to the cached result
        return io.StringIO(f"result for {n}, made at {time.time()}")

    return app


def _call(c: DashClient, clicks: int) -> Any:
    """Fire the background callback and poll as the renderer does; return the URL."""
    body = {
        "output": c.output_key(),
        "outputs": out("img", "src"),
        "inputs": [inp("go", "n_clicks", clicks)],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    data = c.http.post("/_dash-update-component", json=body).get_json()
    deadline = time.monotonic() + 30
    query = f"?cacheKey={data['cacheKey']}&job={data['job']}"
    while "response" not in data:
        assert time.monotonic() < deadline, "the background job did not finish"
        # A cached result is there at the first poll (Dash then stops the job it started).
        data = c.http.post("/_dash-update-component" + query, json=body).get_json()
        time.sleep(0.02)
    return data["response"]["img"]["src"]


def test_a_cached_background_result_hands_back_a_url_that_serves(tmp_path: Path) -> None:
    c = DashClient(_background_app(tmp_path, expire=60, timeout=120))
    url = _call(c, 1)
    first = c.fetch(url).data
    assert first.startswith(b"result for 1")
    again = _call(c, 1)  # the same inputs: Dash answers from its cache, the function does not run
    assert again == url
    r = c.fetch(again)
    assert (r.status_code, r.data) == (200, first)


def test_a_manager_that_caches_longer_than_files_live_is_reported(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DashClient(_background_app(tmp_path, expire=600, timeout=60))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("caches results for 600 s" in m and "(60 s" in m for m in messages), messages
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DashClient(_background_app(tmp_path, expire=60, timeout=600))
    assert not [w for w in caught if "caches results" in str(w.message)]


@pytest.mark.parametrize("memoized", ["bytes", "url"])
def test_a_memoized_function_hands_back_a_url_that_serves(memoized: str) -> None:
    transform = FileServeTransform(timeout=120)
    app = DashProxy(__name__, transforms=[transform])
    app.layout = html.Div()
    cache = Cache(app.server, config={"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 1000})
    calls: list[int] = []

    @cache.memoize(timeout=60)  # no longer than the files live
    def report(n: int) -> Any:
        calls.append(n)
        content = f"report {n}, made at {time.time()}".encode()
        return content if memoized == "bytes" else transform.register(content, filename="report.txt")

    @app.callback(FileOutput("a", "href", filename="report.txt"), Input("go", "n_clicks"))
    def link(n: int) -> Any:
        value = report(n)
        return value if memoized == "bytes" else None

    @app.callback(FileOutput("b", "href"), Input("go2", "n_clicks"))
    def unused(n: int) -> Any:
        return None

    c = DashClient(app)
    if memoized == "bytes":
        urls = [c.fire(out("a", "href"), [inp("go", "n_clicks", 1)])["a"]["href"] for _ in range(2)]
        assert urls[0] == urls[1]  # the same content, the same URL: the browser's copy is reused
    else:
        with app.server.test_request_context():
            urls = [report(1), report(1)]
        assert urls[0] == urls[1]
    assert calls == [1]
    assert c.fetch(urls[1]).status_code == 200
