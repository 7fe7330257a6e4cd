"""Parts 4 and 5, measured in this process.

4. The transform's overhead per callback: a callback returning a 10 KiB file to a ``FileOutput``
   against the same callback returning a precomputed URL to a plain ``Output``, both fired
   through the Flask test client (``POST /_dash-update-component``), in alternating blocks.
5. The cost of ``register()``, in MiB/s, for a ``BytesIO`` and for a path, per backend.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from dash_extensions.enrich import DashProxy, Input, Output, html
from flask import Flask

from dfc_transform import FileOutput, FileServeTransform, FileService

MiB = 1024 * 1024
PAYLOAD = bytes(range(256)) * 40  # 10 KiB
PRECOMPUTED_URL = "/_dash-files/AAAAAAAAAAAAAAAAAAAAAA/plot.png"


def _overhead_app(backend: Any) -> tuple[Any, dict[str, bytes]]:
    # inline_below=0: this part measures storing a file; inlining is measured by smallfiles.
    app = DashProxy(__name__, transforms=[FileServeTransform(backend, inline_below=0)])
    app.layout = html.Div([html.Button(id="go"), html.Img(id="img"), html.A(id="link")])

    @app.callback(FileOutput("img", "src", filename="plot.png"), Input("go", "n_clicks"))
    def as_file(n: int | None) -> io.BytesIO:
        buf = io.BytesIO()
        buf.write(PAYLOAD)
        return buf

    @app.callback(Output("link", "href"), Input("go", "n_clicks"))
    def as_url(n: int | None) -> str:
        return PRECOMPUTED_URL

    client = app.server.test_client()
    assert client.get("/_dash-layout").status_code == 200
    bodies = {}
    for kind, output in (("file", ("img", "src")), ("plain", ("link", "href"))):
        bodies[kind] = json.dumps(
            {
                "output": ".".join(output),
                "outputs": {"id": output[0], "property": output[1]},
                "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
                "changedPropIds": ["go.n_clicks"],
                "state": [],
            }
        ).encode()
    for kind, body in bodies.items():
        r = client.post("/_dash-update-component", data=body, content_type="application/json")
        value = next(iter(r.get_json()["response"].values()))
        assert r.status_code == 200 and next(iter(value.values())).endswith("plot.png"), (kind, r.data[:500])
    return client, bodies


def transform_overhead(
    backends: dict[str, Callable[[], Any]], callbacks: int, rounds: int
) -> list[dict[str, Any]]:
    """Part 4: seconds per callback, file against plain, and their ratio, per backend."""
    rows = []
    block = max(1, callbacks // rounds)
    for name, make in backends.items():
        client, bodies = _overhead_app(make())
        per_call: dict[str, list[float]] = {"file": [], "plain": []}
        for kind in per_call:  # warm-up
            for _ in range(min(50, block)):
                client.post("/_dash-update-component", data=bodies[kind], content_type="application/json")
        for i in range(rounds):
            # Alternate which goes first, so that neither always follows the other.
            order = ("file", "plain") if i % 2 == 0 else ("plain", "file")
            for kind in order:
                body = bodies[kind]
                start = time.perf_counter()
                for _ in range(block):
                    client.post("/_dash-update-component", data=body, content_type="application/json")
                per_call[kind].append((time.perf_counter() - start) / block)
        file_s, plain_s = median(per_call["file"]), median(per_call["plain"])
        rows.append(
            {
                "backend": name,
                "callbacks": block * rounds,
                "file_seconds_per_callback": file_s,
                "plain_seconds_per_callback": plain_s,
                "ratio": file_s / plain_s,
                "rounds": per_call,
            }
        )
        print(
            f"  transform overhead {name}: file {file_s * 1e3:.3f} ms, plain {plain_s * 1e3:.3f} ms, "
            f"x{file_s / plain_s:.2f}",
            file=sys.stderr,
            flush=True,
        )
    return rows


def registration(
    services: dict[str, Callable[[], FileService]], files: dict[int, Path], repeats: dict[int, int]
) -> list[dict[str, Any]]:
    """Part 5: MiB/s of ``FileService.register`` for a ``BytesIO`` and a path, per backend."""
    rows: list[dict[str, Any]] = []
    for name, make in services.items():
        service = make()
        # Served by a bare Flask app, whose HEAD checks that every registration stored the whole file.
        server = Flask(__name__)
        service.init_app(server)
        client = server.test_client()
        for size, path in files.items():
            data = path.read_bytes()
            for kind in ("BytesIO", "path"):
                times = []
                for _ in range(repeats[size]):
                    value: Any
                    if kind == "BytesIO":
                        value = io.BytesIO()
                        value.write(data)
                    else:
                        value = str(path)
                    start = time.perf_counter()
                    url = service.register(value, filename=path.name)
                    times.append(time.perf_counter() - start)
                    head = client.head(url)
                    assert head.status_code == 200 and head.content_length == size, (url, head.status)
                    assert service.remove(url), url
                seconds = median(times)
                rows.append(
                    {
                        "backend": name,
                        "value": kind,
                        "stored": "reference" if kind == "path" and not service.copy_paths else "copy",
                        "size": size,
                        "seconds": times,
                        "median_seconds": seconds,
                        "mib_per_s": size / MiB / seconds,
                    }
                )
            del data
        done = [r for r in rows if r["backend"] == name]
        print(
            f"  register {name}: "
            + ", ".join(f"{r['value']} {r['size'] // MiB} MiB {r['mib_per_s']:.4g} MiB/s" for r in done),
            file=sys.stderr,
            flush=True,
        )
    return rows
