"""The upload protocol through Flask's test client, FileInput in callbacks, and the shipped bundle.

Parts are made small here (4 KiB of 1 KiB chunks) so that a file of a few KiB has several parts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
from cachelib import FileSystemCache, RedisCache, SimpleCache
from dash_extensions.enrich import DashProxy, Input, Output, html
from flask import Flask

from dfc_transform import (
    FileInput,
    FileServeError,
    FileServeTransform,
    FileService,
    FileState,
    Upload,
    UploadedFile,
)
from dfc_transform.dash.component import BUNDLE
from dfc_transform.http import uploads as protocol
from dfc_transform.http.tickets import Tickets

from .conftest import LOCAL_BACKENDS, inp, out
from .servers import RedisServer

CHUNK = 1024
PART = 4 * CHUNK
COMPONENT_DIR = Path(__file__).resolve().parent.parent / "dfc_transform" / "dash" / "component"


@pytest.fixture(autouse=True)
def _small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "PART_TARGET", PART)


class Uploader:
    """A browser's side of the protocol: the app's page, its ticket, and requests with it."""

    def __init__(self, app: DashProxy, component: str = "up") -> None:
        self.app = app
        self.http = app.server.test_client()
        layout = self.http.get("/_dash-layout").get_json()
        self.ticket = find_props(layout, component)["ticket"]
        self.endpoint = self.ticket["endpoint"]
        self.headers = {"X-Upload-Ticket": self.ticket["token"]}
        self.sent: dict[str, dict[int, str]] = {}

    def start(self, name: str, size: int, type_: str = "", expect: int = 201, **more: Any) -> dict[str, Any]:
        """Start an upload; ``more`` goes into the start's body as it is (e.g. ``lastModified``)."""
        r = self.http.post(
            self.endpoint, json={"name": name, "size": size, "type": type_, **more}, headers=self.headers
        )
        assert r.status_code == expect, r.get_data(as_text=True)
        return dict(r.get_json())

    def put(self, upload: str, part: int, data: bytes, *, complete: bool = False, expect: int = 200) -> Any:
        """Send one part (and, with ``complete``, complete the upload naming every part sent)."""
        r = self.http.put(
            f"{self.endpoint}/{upload}/{part}", data=data, headers={**self.headers, "X-Part-CRC32": crc(data)}
        )
        assert r.status_code == expect, r.get_data(as_text=True)
        if expect == 200:
            self.sent.setdefault(upload, {})[part] = crc(data)
        if complete and expect == 200:
            return self.complete(upload)
        return r.get_json()

    def complete(self, upload: str, crcs: list[str] | None = None, expect: int = 200) -> Any:
        """Complete ``upload`` naming ``crcs`` (default: those of the parts this client sent)."""
        if crcs is None:
            sent = self.sent.get(upload, {})
            crcs = [sent.get(p, "00000000") for p in range(max(sent, default=-1) + 1)]
        r = self.http.post(
            f"{self.endpoint}/{upload}", data=json.dumps({"parts": crcs}), headers=self.headers
        )
        assert r.status_code == expect, r.get_data(as_text=True)
        return r.get_json()

    def put_raw(self, upload: str, part: int, body: bytes, *, content_length: int | None) -> Any:
        """A part whose Content-Length is ``content_length`` (``None``: none, the body ends the request)."""
        environ: dict[str, Any] = {"wsgi.input_terminated": content_length is None}
        headers = dict(self.headers)
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        return self.http.put(
            f"{self.endpoint}/{upload}/{part}",
            input_stream=io.BytesIO(body),
            headers=headers,
            environ_overrides=environ,
        )

    def status(self, upload: str, expect: int = 200) -> Any:
        r = self.http.get(f"{self.endpoint}/{upload}", headers=self.headers)
        assert r.status_code == expect, r.get_data(as_text=True)
        return r.get_json()

    def upload(self, name: str, data: bytes, order: list[int] | None = None, **more: Any) -> dict[str, Any]:
        """Send ``data`` whole (parts in ``order``, the last one completing); return the file."""
        started = self.start(name, len(data), **more)
        parts = list(range(started["parts"])) if order is None else order
        answer: Any = None
        size = started["part_size"]
        for i, part in enumerate(parts):
            chunk = data[part * size : (part + 1) * size]
            answer = self.put(started["upload"], part, chunk, complete=i == len(parts) - 1)
        return dict(answer["file"])


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def make_backend(kind: str, tmp_path: Path) -> Any:
    if kind == "simple":
        return SimpleCache(threshold=1_000_000)  # no count-based pruning in these tests
    return FileSystemCache(str(tmp_path / "store"), threshold=0)


def find_props(layout: Any, component_id: str) -> dict[str, Any]:
    stack = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == component_id:
                return dict(props)
            stack.append(props.get("children"))
    raise AssertionError(f"no component {component_id!r} in the layout")


Seen = list[Any]


def upload_app(backend: Any, **settings: Any) -> tuple[DashProxy, FileServeTransform, Seen]:
    """An app with two Uploads: ``up`` (any type) and ``csv`` (``.csv`` only, 20 KiB at most)."""
    transform = FileServeTransform(backend, chunk_size=CHUNK, **settings)
    app = DashProxy(__name__, transforms=[transform])
    app.layout = html.Div(
        [
            Upload(id="up", multiple=True),
            Upload(id="csv", accept=".csv,text/csv", max_size=20 * 1024),
            Upload(id="open", private=False),
            html.Div(id="out"),
            html.Div(id="json"),
            html.Div(id="state"),
        ]
    )
    seen: Seen = []

    @app.callback(Output("out", "children"), FileInput("up", "value"), prevent_initial_call=True)
    def read(files: list[UploadedFile] | None) -> str:
        seen.append(files)
        return json.dumps(
            [[f.name, f.size, f.mime_type, hashlib.sha256(f.stream.read()).hexdigest()] for f in files or []]
        )

    @app.callback(Output("json", "children"), Input("csv", "value"), prevent_initial_call=True)
    def plain(value: Any) -> str:
        seen.append(value)
        return json.dumps(value)

    @app.callback(
        Output("state", "children"),
        Input("out", "children"),
        FileState("open", "value"),
        prevent_initial_call=True,
    )
    def state(_: Any, file: UploadedFile | None) -> str:
        seen.append(file)
        return file.read().decode() if file else "none"

    return app, transform, seen


@pytest.fixture(params=LOCAL_BACKENDS)
def made(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[DashProxy, FileServeTransform, Seen]:
    return upload_app(make_backend(request.param, tmp_path))


def fire_read(uploader: Uploader, value: Any, expect: int = 200) -> Any:
    body = {
        "output": "out.children",
        "outputs": out("out", "children"),
        "inputs": [inp("up", "value", value)],
        "changedPropIds": ["up.value"],
        "state": [],
    }
    r = uploader.http.post("/_dash-update-component", json=body)
    assert r.status_code == expect, r.get_data(as_text=True)[:2000]
    return r.get_json()["response"]["out"]["children"] if expect == 200 else r


# -- the round trip ---------------------------------------------------------------------------


def test_parts_in_any_order_make_a_stored_file_with_a_url(made: Any) -> None:
    app, transform, _ = made
    client = Uploader(app)
    data = os.urandom(5 * PART + 123)
    file = client.upload("report.pdf", data, order=[3, 0, 5, 1, 4, 2])
    assert file["name"] == "report.pdf" and file["size"] == len(data) and file["type"] == "application/pdf"
    assert file["url"].startswith("/_dash-files/") and file["url"].endswith("/report.pdf")
    got = client.http.get(file["url"])
    assert got.status_code == 200 and got.data == data
    assert transform.stats().files == 1 and transform.stats().bytes == len(data)


def test_an_empty_file_is_one_empty_part(made: Any) -> None:
    client = Uploader(made[0])
    started = client.start("empty.txt", 0)
    assert started["parts"] == 1 and started["received"] == []
    file = client.put(started["upload"], 0, b"", complete=True)["file"]
    assert file["size"] == 0 and client.http.get(file["url"]).data == b""


def test_repeated_parts_are_stored_once_and_counted_once(made: Any) -> None:
    app, transform, _ = made
    client = Uploader(app)
    data = os.urandom(3 * PART)
    started = client.start("a.bin", len(data))
    for part in (0, 0, 1, 1, 0):
        client.put(started["upload"], part, data[part * PART : (part + 1) * PART])
    assert client.status(started["upload"])["received"] == [0, 1]
    last = client.put(started["upload"], 2, data[2 * PART :], complete=True)
    # The answer lost, the last part is sent again: the same file, the same URL.
    again = client.put(started["upload"], 2, data[2 * PART :], complete=True)
    assert again["file"]["url"] == last["file"]["url"]
    assert client.http.get(last["file"]["url"]).data == data
    assert transform.stats().bytes == len(data) and transform.stats().files == 1
    status = client.status(started["upload"])
    assert status["received"] == [0, 1, 2] and status["file"]["url"] == last["file"]["url"]


def test_missing_parts_are_named_and_the_upload_resumes(made: Any) -> None:
    client = Uploader(made[0])
    data = os.urandom(4 * PART - 7)
    started = client.start("a.bin", len(data))
    upload = started["upload"]
    client.put(upload, 1, data[PART : 2 * PART])
    client.put(upload, 3, data[3 * PART :])
    every = [crc(data[p * PART : (p + 1) * PART]) for p in range(4)]
    refused = client.complete(upload, every, expect=409)
    assert refused["missing"] == [0, 2] and "never arrived" in refused["error"]
    # A client that lost everything asks what the server has, and sends only the rest.
    status = client.status(upload)
    assert status["received"] == [1, 3] and status["part_size"] == PART and status["parts"] == 4
    client.put(upload, 0, data[:PART])
    client.put(upload, 2, data[2 * PART : 3 * PART])
    file = client.put(upload, 3, data[3 * PART :], complete=True)["file"]
    assert client.http.get(file["url"]).data == data


def test_a_part_cut_short_is_refused_and_sent_again(made: Any) -> None:
    client = Uploader(made[0])
    data = os.urandom(2 * PART)
    started = client.start("a.bin", len(data))
    # A body shorter than its Content-Length (a connection cut mid-part).
    r = client.put_raw(started["upload"], 0, data[: CHUNK + 10], content_length=PART)
    assert r.status_code == 400 and r.get_json()["reason"] == "short"
    assert client.status(started["upload"])["received"] == []
    client.put(started["upload"], 0, data[:PART])
    file = client.put(started["upload"], 1, data[PART:], complete=True)["file"]
    assert client.http.get(file["url"]).data == data


def test_the_body_is_read_from_the_stream_never_whole(made: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("request.get_data() read a whole body into memory")

    monkeypatch.setattr(flask.Request, "get_data", refuse)
    client = Uploader(made[0])
    data = os.urandom(2 * PART + 5)
    file = client.upload("a.bin", data)
    assert client.http.get(file["url"]).data == data


# -- refusals -------------------------------------------------------------------------------


def test_oversized_parts_and_files_are_refused(made: Any) -> None:
    app, transform, _ = made
    client = Uploader(app)
    data = os.urandom(PART + 1)
    started = client.start("a.bin", len(data))
    too_long = client.put(started["upload"], 0, data[:PART] + b"x", expect=413)
    assert too_long["reason"] == "too-large" and f"part 0 is {PART} bytes" in too_long["error"]
    short = client.put(started["upload"], 1, b"", expect=400)
    assert short["reason"] == "short"
    # Without a Content-Length, the bytes past the part are found by reading.
    r = client.put_raw(started["upload"], 1, b"ab", content_length=None)
    assert r.status_code == 413
    # The component's max_size, enforced by the server whatever the browser says.
    csv = Uploader(app, "csv")
    refused = csv.start("big.csv", 20 * 1024 + 1, expect=413)
    assert refused["error"] == "big.csv is 20.0 KiB; this upload takes files up to 20.0 KiB"
    assert transform.stats().bytes == 0


def test_the_services_caps_apply_to_uploads(tmp_path: Path) -> None:
    app, transform, _ = upload_app(make_backend("filesystem", tmp_path), max_size=10_000)
    client = Uploader(app)
    assert "up to 9.8 KiB" in client.start("a.bin", 10_001, expect=413)["error"]
    app, transform, _ = upload_app(
        make_backend("filesystem", tmp_path / "2"),
        max_total_size=3 * PART,
        max_upload_bytes=3 * PART,
        max_upload_bytes_per_session=3 * PART,
    )
    client = Uploader(app)
    client.start("a.bin", 3 * PART + 1, expect=413)
    # An upload counts against the budget, and never evicts a stored file: a second one that
    # does not fit beside the first is refused until the first is gone.
    first = client.upload("first.bin", os.urandom(2 * PART))
    full = client.start("second.bin", 2 * PART, expect=507)
    assert full["reason"] == "full" and "the store is full" in full["error"]
    assert client.http.get(first["url"]).status_code == 200
    assert transform.remove(first["url"])
    second = client.upload("second.bin", os.urandom(2 * PART))
    assert client.http.get(second["url"]).status_code == 200
    assert transform.stats().bytes <= 3 * PART


def test_types_are_enforced_by_the_server(made: Any) -> None:
    client = Uploader(made[0], "csv")
    refused = client.start("tool.exe", 10, "application/x-msdownload", expect=415)
    assert refused["error"] == "tool.exe is not a type this upload accepts (it accepts .csv, text/csv)"
    client.start("DATA.CSV", 10)  # by extension, whatever the case
    client.start("export", 10, "text/csv")  # by the type the browser gives


@pytest.mark.parametrize("ticket", [None, "", "forged", "eyJpIjoidXAifQ.AAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_requests_without_a_valid_ticket_are_refused(made: Any, ticket: str | None) -> None:
    client = Uploader(made[0])
    headers = {} if ticket is None else {"X-Upload-Ticket": ticket}
    r = client.http.post(client.endpoint, json={"name": "a.bin", "size": 1}, headers=headers)
    assert r.status_code == 403 and r.get_json()["reason"] == "forged"
    started = client.start("a.bin", 1)
    r = client.http.put(f"{client.endpoint}/{started['upload']}/0", data=b"x", headers=headers)
    assert r.status_code == 403  # checked on every part, not only at the start


def test_expired_tickets_and_uploads_are_refused(made: Any) -> None:
    app, transform, _ = made
    client = Uploader(app)
    tickets = Tickets(transform.service.store)
    expired = {"X-Upload-Ticket": tickets.issue("up", lifetime=-1)}
    r = client.http.post(client.endpoint, json={"name": "a.bin", "size": 1}, headers=expired)
    assert r.status_code == 410 and "reload the page" in r.get_json()["error"]
    started = client.start("a.bin", 1)
    r = client.http.put(f"{client.endpoint}/{started['upload']}/0", data=b"x", headers=expired)
    assert r.status_code == 410
    # An upload past its deadline (the ticket's upload_lifetime) is given up.
    late = {"X-Upload-Ticket": tickets.issue("up", upload_lifetime=-1)}
    r = client.http.post(client.endpoint, json={"name": "a.bin", "size": 1}, headers=late)
    upload = r.get_json()["upload"]
    r = client.http.put(f"{client.endpoint}/{upload}/0", data=b"x", headers=late)
    assert r.status_code == 410 and "start it again" in r.get_json()["error"]


def test_a_part_for_the_wrong_upload_is_refused(made: Any, tmp_path: Path) -> None:
    app = made[0]
    up, csv = Uploader(app, "up"), Uploader(app, "csv")
    started = up.start("a.bin", 10)
    # The handle of an upload of "up" with the ticket of "csv": another component's upload.
    r = csv.http.put(f"{csv.endpoint}/{started['upload']}/0", data=b"x" * 10, headers=csv.headers)
    assert r.status_code == 403 and r.get_json()["reason"] == "wrong-upload"
    assert up.put(started["upload"], 1, b"x", expect=404)["reason"] == "part"
    assert up.put(started["upload"], -1, b"x", expect=404)["reason"] == "part"
    forged = started["upload"][:-3] + ("AAA" if not started["upload"].endswith("AAA") else "BBB")
    assert up.put(forged, 0, b"x" * 10, expect=403)["reason"] == "forged"
    # Another app (another store, another key) signed it: not ours.
    other, _, _ = upload_app(make_backend("filesystem", tmp_path / "other"))
    foreign = Uploader(other).start("a.bin", 10)["upload"]
    assert up.put(foreign, 0, b"x" * 10, expect=403)["reason"] == "forged"
    assert up.http.delete(f"{up.endpoint}/{started['upload']}/0", headers=up.headers).status_code == 405
    assert up.http.get(f"{up.endpoint}/a/b/c", headers=up.headers).status_code == 404


def test_bad_starts_are_refused(made: Any) -> None:
    client = Uploader(made[0])
    for body in (
        {"name": 5, "size": 1},
        {"name": ["a"], "size": 1},
        {"name": "a"},
        {"name": "a", "size": -1},
        {"name": "a", "size": "1"},
        {"name": "a", "size": True},
    ):
        r = client.http.post(client.endpoint, json=body, headers=client.headers)
        assert r.status_code == 400, body
    r = client.http.post(client.endpoint, data=b"x" * 20_000, headers=client.headers)
    assert r.status_code == 413
    # Names are made safe as for any stored file: no directories, no hidden files.
    started = client.start("../../etc/.passwd", 1)
    assert client.put(started["upload"], 0, b"x", complete=True)["file"]["name"] == "passwd"
    # No name (missing or null) is the name "file", never "None".
    nameless: list[dict[str, Any]] = [{"size": 1}, {"name": None, "size": 1}, {"name": "", "size": 1}]
    for start in nameless:
        r = client.http.post(client.endpoint, json=start, headers=client.headers)
        assert r.status_code == 201, start
        assert client.put(r.get_json()["upload"], 0, b"y", complete=True)["file"]["name"] == "file"


def test_cancel_removes_what_was_written(made: Any) -> None:
    app, transform, _ = made
    client = Uploader(app)
    data = os.urandom(3 * PART)
    started = client.start("a.bin", len(data))
    client.put(started["upload"], 0, data[:PART])
    client.put(started["upload"], 2, data[2 * PART :])
    r = client.http.delete(f"{client.endpoint}/{started['upload']}", headers=client.headers)
    assert r.status_code == 200 and r.get_json()["cancelled"] is True
    assert client.status(started["upload"], expect=410)["reason"] == "cancelled"
    assert transform.stats().bytes == 0 and transform.stats().upload_bytes == 0
    # A finished upload is a stored file: cancelling it removes nothing.
    file = client.upload("b.bin", data)
    started = client.start("b.bin", len(data))
    done = client.upload("c.bin", b"xyz")
    r = client.http.delete(f"{client.endpoint}/{started['upload']}", headers=client.headers)
    assert r.get_json()["cancelled"] is True
    assert client.http.get(file["url"]).data == data and client.http.get(done["url"]).data == b"xyz"


def test_unfinished_uploads_are_swept_and_finished_ones_live_their_timeout(tmp_path: Path) -> None:
    app, transform, _ = upload_app(make_backend("filesystem", tmp_path), timeout=7200)
    client = Uploader(app)
    store = transform.service.store
    tickets = Tickets(store)
    client.headers = {"X-Upload-Ticket": tickets.issue("up", upload_lifetime=60, idle=3600)}
    data = os.urandom(2 * PART)
    unfinished = client.start("u.bin", len(data))["upload"]
    client.put(unfinished, 0, data[:PART])
    storage = tickets.handle(unfinished).storage
    assert store.uploads.received(storage, 2) == {0: crc(data[:PART])}
    assert stored_keys(tmp_path / "store") > 0
    file = client.upload("f.bin", data)
    # Past the uploads' deadline: the unfinished one goes, the finished one stays.
    store.sweep(force=True, now=time.time() + 3 * 60, grace=0)
    assert client.status(unfinished, expect=410)["reason"] in ("unknown", "idle")
    assert client.http.get(file["url"]).data == data
    assert transform.stats().uploads == 0
    # Past the file's own timeout it goes too, and nothing of either is left.
    store.sweep(force=True, now=time.time() + 7200 + 3 * 60, grace=0)
    assert transform.remove(file["url"]) is False
    assert stored_keys(tmp_path / "store") == 0


def stored_keys(directory: Path) -> int:
    """How many of our keys a FileSystemCache directory holds (not the ledger's or the keys')."""
    cache = FileSystemCache(str(directory), threshold=0)
    return sum(1 for _ in directory.iterdir()) - sum(
        1 for name in ("dfc:ledger", "dfc:upload-key", "dfc:hmac-key") if cache.has(name)
    )


def handle_text(response: Any) -> str:
    return str(response.get_json()["upload"])


# -- FileInput, FileState and a plain Input --------------------------------------------------


def test_file_input_gives_uploaded_files_and_a_plain_input_the_description(made: Any) -> None:
    app, _, seen = made
    client = Uploader(app)
    one, two = os.urandom(3 * PART + 1), b"col\n1\n"
    files = [client.upload("one.bin", one), client.upload("two.csv", two)]
    answer = json.loads(fire_read(client, files))
    assert answer == [
        ["one.bin", len(one), "application/octet-stream", hashlib.sha256(one).hexdigest()],
        ["two.csv", len(two), "text/csv", hashlib.sha256(two).hexdigest()],
    ]
    uploaded = seen[-1][0]
    assert isinstance(uploaded, UploadedFile) and uploaded.url == files[0]["url"] and uploaded.path is None
    with uploaded.open() as f:  # seekable, one chunk at a time
        f.seek(PART + 10)
        assert f.read(5) == one[PART + 10 : PART + 15]
        f.seek(-3, os.SEEK_END)
        assert f.read() == one[-3:]
    assert fire_read(client, None) == "[]" and seen[-1] is None
    # A plain Input on the value gets the JSON description as it is.
    csv = Uploader(app, "csv")
    description = csv.upload("t.csv", b"a,b\n")
    body = {
        "output": "json.children",
        "outputs": out("json", "children"),
        "inputs": [inp("csv", "value", description)],
        "changedPropIds": ["csv.value"],
    }
    r = csv.http.post("/_dash-update-component", json=body)
    assert json.loads(r.get_json()["response"]["json"]["children"]) == description
    # FileState too.
    state_file = Uploader(app, "open").upload("s.txt", b"state")
    body = {
        "output": "state.children",
        "outputs": out("state", "children"),
        "inputs": [inp("out", "children", "x")],
        "changedPropIds": ["out.children"],
        "state": [inp("open", "value", state_file)],
    }
    r = client.http.post("/_dash-update-component", json=body)
    assert r.get_json()["response"]["state"]["children"] == "state"


def test_uploaded_files_carry_the_browsers_last_modified(made: Any) -> None:
    app, _, seen = made
    client = Uploader(app)
    # As dcc.Upload's last_modified: the browser's File.lastModified (milliseconds), in seconds.
    dated = client.upload("a.txt", b"a", lastModified=1_700_000_000_123)
    assert dated["last_modified"] == 1_700_000_000.123
    undated = client.upload("b.txt", b"b")
    odd = [client.upload(f"{i}.txt", b"c", lastModified=v) for i, v in enumerate(["1", True, -1, 1e20])]
    fire_read(client, [dated, undated, *odd])
    assert [f.last_modified for f in seen[-1]] == [1_700_000_000.123, None, None, None, None, None]
    # The time is signed into the receipt with the file: a description that says otherwise changes nothing.
    forged = {**dated, "last_modified": 0}
    fire_read(client, [forged])
    assert seen[-1][0].last_modified == 1_700_000_000.123


def test_descriptions_not_made_by_the_app_are_refused(made: Any) -> None:
    client = Uploader(made[0])
    client.app.server.testing = True  # the callback's error propagates here instead of a 500
    file = client.upload("a.bin", b"abc")
    for value, match in [
        ({**file, "receipt": "forged"}, "was not made by this app's upload route"),
        ({"name": "a.bin"}, "was not made by this app's upload route"),
        ("a string", "use FileInput only on the value of a dfc_transform.Upload"),
    ]:
        with pytest.raises(FileServeError, match=match) as caught:
            fire_read(client, [value])
        assert (
            caught.value.where
            == "callback tests.test_upload_protocol.upload_app.<locals>.read, input up.value"
        )


def test_private_uploads_are_read_only_in_their_browser_session(made: Any) -> None:
    app = made[0]
    owner = Uploader(app)
    file = owner.upload("a.bin", b"secret")
    stranger = Uploader(app)
    assert stranger.http.get(file["url"]).status_code == 404
    app.server.testing = True
    with pytest.raises(FileServeError, match="belongs to another browser session"):
        fire_read(stranger, [file])
    assert json.loads(fire_read(owner, [file]))[0][1] == 6
    public = Uploader(app, "open").upload("p.bin", b"public")
    assert stranger.http.get(public["url"]).data == b"public"


def test_every_page_gets_its_own_ticket(made: Any) -> None:
    app = made[0]
    first, second = Uploader(app), Uploader(app)
    assert first.ticket["token"] != second.ticket["token"]
    assert first.ticket["endpoint"] == "/_dash-files/_upload"
    # Outside any app (no request), no ticket: the component says uploads are not available.
    assert Upload(id="x").to_plotly_json()["props"]["ticket"] is None


def test_the_ticket_follows_the_url_prefix(tmp_path: Path) -> None:
    transform = FileServeTransform(make_backend("filesystem", tmp_path), chunk_size=CHUNK)
    app = DashProxy(
        __name__, transforms=[transform], requests_pathname_prefix="/sub/", routes_pathname_prefix="/sub/"
    )
    app.layout = html.Div([Upload(id="up")])
    http = app.server.test_client()
    ticket = find_props(http.get("/sub/_dash-layout").get_json(), "up")["ticket"]
    assert ticket["endpoint"] == "/sub/_dash-files/_upload"
    r = http.post(
        ticket["endpoint"], json={"name": "a.txt", "size": 2}, headers={"X-Upload-Ticket": ticket["token"]}
    )
    upload = r.get_json()["upload"]
    headers = {"X-Upload-Ticket": ticket["token"]}
    http.put(f"{ticket['endpoint']}/{upload}/0", data=b"hi", headers=headers)
    r = http.post(f"{ticket['endpoint']}/{upload}", data=json.dumps({"parts": [crc(b"hi")]}), headers=headers)
    url = r.get_json()["file"]["url"]
    assert url.startswith("/sub/_dash-files/") and http.get(url).data == b"hi"


def test_a_plain_flask_app_speaks_the_protocol(tmp_path: Path) -> None:
    server = Flask(__name__)
    service = FileService(make_backend("filesystem", tmp_path), chunk_size=CHUNK)
    service.init_app(server)
    http = server.test_client()
    headers = {"X-Upload-Ticket": Tickets(service.store).issue("any", private=False)}
    r = http.post("/_dash-files/_upload", json={"name": "a.txt", "size": 3}, headers=headers)
    assert r.status_code == 201
    upload = r.get_json()["upload"]
    assert http.put(f"/_dash-files/_upload/{upload}/0", data=b"abc", headers=headers).status_code == 200
    r = http.post(
        f"/_dash-files/_upload/{upload}", data=json.dumps({"parts": [crc(b"abc")]}), headers=headers
    )
    assert http.get(r.get_json()["file"]["url"]).data == b"abc"


def test_uploads_into_redis(redis_server: RedisServer) -> None:
    backend = RedisCache(host=redis_server.host, port=redis_server.port, key_prefix="uploads:")
    app = upload_app(backend)[0]
    client = Uploader(app)
    data = os.urandom(3 * PART + 17)
    file = client.upload("r.bin", data, order=[2, 1, 0, 3])
    assert client.http.get(file["url"]).data == data
    assert json.loads(fire_read(client, [file]))[0][3] == hashlib.sha256(data).hexdigest()


# -- the component's bundle ------------------------------------------------------------------


def test_the_shipped_bundle_is_built_from_the_sources(tmp_path: Path) -> None:
    """``npm ci`` and esbuild in a copy of dfc_transform/dash/component; the result must be the shipped file."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found: install node 20 and npm to check the component's bundle")
    work = tmp_path / "component"
    work.mkdir()
    for name in ("package.json", "package-lock.json", "build.mjs"):
        shutil.copy(COMPONENT_DIR / name, work / name)
    shutil.copytree(COMPONENT_DIR / "src", work / "src")
    run: Callable[..., Any] = subprocess.run
    run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True, timeout=240)
    run(["node", "build.mjs", "--outfile", str(work / "built.js")], cwd=work, check=True, timeout=120)
    shipped = (COMPONENT_DIR.parent.parent / BUNDLE).read_bytes()
    assert (work / "built.js").read_bytes() == shipped, (
        "dfc_transform/dash/component/dfc_upload.min.js is not what its sources build: run "
        "`npm ci && npm run build` in dfc_transform/dash/component and commit the result"
    )
