"""Background callbacks (DiskcacheManager): the file is registered in the job's process
and served by the web process; progress, running and cancel work; SimpleCache is reported."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import diskcache
import pytest
from cachelib import SimpleCache
from dash import DiskcacheManager
from dash_extensions.enrich import DashProxy, Input, Output, html

from dfc_transform import FileOutput, FileServeTransform
from dfc_transform.exc import FileServeError
from dfc_transform.store.expiry import BUCKET_SECONDS

from .conftest import DashClient, inp, out
from .store_files import file_entries


def _app(tmp_path: Path, backend: Any = None, *, steps: int = 3, pause: float = 0.1) -> DashProxy:
    manager = DiskcacheManager(diskcache.Cache(str(tmp_path / "jobs")))
    app = DashProxy(
        __name__,
        transforms=[FileServeTransform(backend, timeout=30, chunk_size=1024)],
        background_callback_manager=manager,
    )
    app.layout = html.Div()

    @app.callback(
        FileOutput("img", "src", filename="made-in-job.txt"),
        Input("go", "n_clicks"),
        background=True,
        progress=Output("progress", "children"),
        running=[(Output("go", "disabled"), True, False)],
        cancel=Input("cancel", "n_clicks"),
        prevent_initial_call=True,
    )
    def work(set_progress: Any, n: int) -> Any:
        for i in range(steps):
            set_progress(f"{100 * i // steps}%")
            time.sleep(pause)
        if n == 99:  # a long file, written slowly, to be cancelled midway

            class Slow:
                def read(self, size: int = -1) -> bytes:
                    time.sleep(0.05)
                    return b"s" * size

            return Slow()
        return io.StringIO(f"made in process {os.getpid()}")

    return app


def _start(c: DashClient, clicks: int) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {
        "output": c.output_key(),
        "outputs": out("img", "src"),
        "inputs": [inp("go", "n_clicks", clicks)],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    handles = c.http.post("/_dash-update-component", json=body).get_json()
    assert "cacheKey" in handles and "job" in handles, handles
    return body, handles


def _poll(
    c: DashClient, body: dict[str, Any], handles: dict[str, Any], *, deadline: float = 30
) -> tuple[Any, list[str]]:
    """Poll as the renderer does until the result comes; return it and the progress seen."""
    progress: list[str] = []
    end = time.monotonic() + deadline
    query = f"?cacheKey={handles['cacheKey']}&job={handles['job']}"
    while time.monotonic() < end:
        r = c.http.post("/_dash-update-component" + query, json=body)
        assert r.status_code == 200, r.get_data(as_text=True)[:2000]
        data = r.get_json()
        if "progress" in data:
            progress.append(data["progress"]["progress.children"])
        if "response" in data:
            return data["response"], progress
        time.sleep(0.05)
    raise AssertionError("the background job did not finish in time")


def test_background_file_is_served_by_the_web_process(tmp_path: Path) -> None:
    c = DashClient(_app(tmp_path))
    running = c.deps[0]["running"]
    assert running["running"] == {"go.disabled": True} and running["runningOff"] == {"go.disabled": False}
    body, handles = _start(c, 1)
    job_pid = int(handles["job"].split("~")[0])
    assert job_pid != os.getpid()
    result, progress = _poll(c, body, handles)
    assert progress and all(p.endswith("%") for p in progress)
    r = c.fetch(result["img"]["src"])
    assert r.status_code == 200
    assert r.data == f"made in process {job_pid}".encode()


def test_cancelled_job_leaves_no_orphans_after_its_lifetime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(store))
    app = _app(tmp_path, steps=1, pause=0)
    c = DashClient(app)
    _, handles = _start(c, 99)
    end = time.monotonic() + 30
    while len(file_entries(store)) < 5:  # the job is writing chunks
        assert time.monotonic() < end, "the job wrote nothing"
        time.sleep(0.05)
    cancel = next(i for i, d in enumerate(c.deps) if d["output"] == "cancel.id")
    cancel_body = {
        "output": "cancel.id",
        "outputs": out("cancel", "id"),
        "inputs": [inp("cancel", "n_clicks", 1)],
        "changedPropIds": ["cancel.n_clicks"],
        "state": [],
    }
    assert c.deps[cancel]["output"] == "cancel.id"
    r = c.http.post(f"/_dash-update-component?cancelJob={handles['job']}", json=cancel_body)
    assert r.status_code in (200, 204)
    job_pid = int(handles["job"].split("~")[0])
    end = time.monotonic() + 30
    while _alive(job_pid):
        assert time.monotonic() < end, "the cancelled job is still running"
        time.sleep(0.05)
    orphans = file_entries(store)
    assert orphans, "expected the cancelled job's chunks on disk until their time-to-live"
    transform = app.blueprint.transforms[0]
    assert transform.service.store.journal is not None
    transform.service.store.sweep(now=time.time() + 3 * BUCKET_SECONDS, force=True)
    # The store's own state (token key, ledger) stays.
    assert file_entries(store, transform.service.store.namespace) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_simplecache_with_background_callbacks_is_reported(tmp_path: Path) -> None:
    app = _app(tmp_path, SimpleCache(threshold=0), steps=1, pause=0)
    app.server.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.warns(RuntimeWarning, match=r"background callback.*RedisCache"):
        c = DashClient(app)
    body, handles = _start(c, 1)
    with pytest.raises(Exception, match=r"private to one process.*FileSystemCache") as info:
        _poll(c, body, handles)
    assert "made-in-job" not in str(info.value)


def test_simplecache_under_several_workers_fails_loudly() -> None:
    from flask import Flask

    from dfc_transform import FileService

    app = Flask(__name__)
    service = FileService(SimpleCache(threshold=0))
    service.init_app(app)

    @app.post("/register")
    def register() -> str:
        return service.register(b"x")

    app.config["PROPAGATE_EXCEPTIONS"] = True
    client = app.test_client()
    assert client.post("/register").status_code == 200  # one process: fine
    with pytest.raises(FileServeError, match=r"several worker processes.*RedisCache"):
        client.post("/register", environ_overrides={"wsgi.multiprocess": True})


def test_several_workers_without_a_shared_secret_are_warned(tmp_path: Path) -> None:
    app = _app(tmp_path, steps=1, pause=0)
    client = app.server.test_client()
    with pytest.warns(RuntimeWarning, match=r"several worker processes, but no secret_key"):
        client.get("/_dash-layout", environ_overrides={"wsgi.multiprocess": True})


def test_a_shared_secret_silences_the_warning(tmp_path: Path) -> None:
    import warnings

    app = _app(tmp_path, steps=1, pause=0)
    app.server.secret_key = "shared"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert (
            app.server.test_client()
            .get("/_dash-layout", environ_overrides={"wsgi.multiprocess": True})
            .status_code
            == 200
        )
