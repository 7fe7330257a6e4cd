"""Shared fixtures: backends, Dash apps with the transform, and a callback client."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache, SimpleCache
from dash_extensions.enrich import DashProxy, html
from flask.testing import FlaskClient

from dfc_transform import FileServeTransform

from .servers import Gunicorn, MemcachedServer, RedisServer, SeaweedServer

#: The backends every core test runs on; the backend contract suite adds servers.
LOCAL_BACKENDS = ["simple", "filesystem"]


def make_backend(kind: str, tmp_path: Path) -> Any:
    if kind == "simple":
        # cachelib reads threshold=0 as its default of 500 items (unlike FileSystemCache, where
        # 0 means no limit): enough for these tests, whose files have far fewer chunks.
        return SimpleCache(threshold=0)
    if kind == "filesystem":
        return FileSystemCache(str(tmp_path / "store"), threshold=0)
    raise ValueError(kind)


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return make_backend(request.param, tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _tools_of_this_interpreter() -> Iterator[None]:
    """Put the folder of ``sys.executable`` first on PATH for the whole session.

    The suite may run from a virtual environment that was never activated (``.venv/bin/python -m
    pytest``): a tool found on PATH by name (``celery``, ``gunicorn``) would then be another
    interpreter's, importing another copy of the package. Tests start tools as
    ``[sys.executable, "-m", name]`` (:func:`tests.servers.python_tool`); this covers the rest.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
        yield


@pytest.fixture(autouse=True)
def _default_store_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the default store of every test inside pytest's temporary directory."""
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path_factory.getbasetemp() / "default-store"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free port of 127.0.0.1 for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServer]:
    """A real memcached (1 MB item limit, 256 MB) on a free port of 127.0.0.1 for the whole session."""
    server = MemcachedServer(tmp_path_factory.mktemp("memcached"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A real S3 store (SeaweedFS's ``weed mini``) on free ports of 127.0.0.1 for the session."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(seaweed_server: SeaweedServer) -> str:
    """A fresh bucket of the session's S3 store, for one test."""
    return seaweed_server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")


class DashClient:
    """A Flask test client that fires Dash callbacks as the renderer would."""

    def __init__(self, app: DashProxy) -> None:
        self.app = app
        self.http: FlaskClient = app.server.test_client()
        # The first request applies the transforms (DashProxy does it lazily).
        assert self.http.get("/_dash-layout").status_code == 200
        self.deps = self.http.get("/_dash-dependencies").json

    def output_key(self, index: int = 0) -> str:
        return str(self.deps[index]["output"])

    def fire(
        self,
        outputs: Any,
        inputs: list[dict[str, Any]],
        *,
        state: list[dict[str, Any]] | None = None,
        index: int = 0,
        expect: int = 200,
    ) -> Any:
        """POST one callback; return the ``response`` part of the JSON."""
        body = {
            "output": self.output_key(index),
            "outputs": outputs,
            "inputs": inputs,
            "changedPropIds": [_prop_id(inputs[0])] if inputs else [],
            "state": state or [],
        }
        r = self.http.post("/_dash-update-component", json=body)
        assert r.status_code == expect, r.get_data(as_text=True)[:2000]
        if expect != 200:
            return r
        return r.get_json()["response"]

    def fetch(self, url: str, **kwargs: Any) -> Any:
        return self.http.get(url, **kwargs)


def _prop_id(dep: dict[str, Any]) -> str:
    ident = dep["id"]
    if isinstance(ident, dict):
        ident = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return f"{ident}.{dep['property']}"


def out(ident: Any, prop: str) -> dict[str, Any]:
    return {"id": ident, "property": prop}


def inp(ident: Any, prop: str, value: Any) -> dict[str, Any]:
    return {"id": ident, "property": prop, "value": value}


@pytest.fixture
def make_app(backend: Any) -> Iterator[Callable[..., tuple[DashProxy, FileServeTransform]]]:
    """Build a DashProxy with a FileServeTransform on the parametrised backend.

    Small files are stored, not inlined (``inline_below=0``), unless a test asks: these
    tests are about what is stored and served."""

    def factory(**kwargs: Any) -> tuple[DashProxy, FileServeTransform]:
        transform_kwargs = {
            k: kwargs.pop(k)
            for k in ("timeout", "max_size", "chunk_size", "copy_paths", "inline_below")
            if k in kwargs
        }
        transform_kwargs.setdefault("inline_below", 0)
        transform = FileServeTransform(kwargs.pop("backend", backend), **transform_kwargs)
        app = DashProxy(__name__, transforms=[transform], **kwargs)
        app.layout = html.Div()
        return app, transform

    yield factory


@pytest.fixture
def start_gunicorn(tmp_path: Path) -> Iterator[Any]:
    started: list[Gunicorn] = []

    def start(name: str, env: dict[str, str], *args: str, module: str = "deploy_app") -> Gunicorn:
        server = Gunicorn(tmp_path / name, env, *args, module=module)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
