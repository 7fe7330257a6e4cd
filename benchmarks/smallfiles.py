"""Small files: a FileOutput round trip against the same bytes as a base64 data URI.

``python -m benchmarks.smallfiles [--quick]`` starts gunicorn (2 workers, gthread, 4 threads
each) serving ``benchmarks.small_app`` on the default store, then 8 clients at once click
as a browser would: for a ``FileOutput`` the callback's POST and the GET of the URL it
returned; for a data URI the POST alone (its answer holds the file). Both make new content
at every click. It prints the median time per round trip of each, and the ratio
(FileOutput / data URI: under 1 means faster), at 10 KiB, 100 KiB and 1 MiB.

Then, in this process, the transform's overhead: a callback returning 10 KiB to a
``FileOutput`` on the default store against a plain callback returning a short string,
through Flask's test client (no network), as a ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"10 KiB": 10 * 1024, "100 KiB": 100 * 1024, "1 MiB": 1024 * 1024}
CLIENTS = 8


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(conn: http.client.HTTPConnection, button: str, output: str, n: int) -> Any:
    ident, prop = output.split(".")
    body = {
        "output": output,
        "outputs": {"id": ident, "property": prop},
        "inputs": [{"id": button, "property": "n_clicks", "value": n}],
        "changedPropIds": [f"{button}.n_clicks"],
        "state": [],
    }
    conn.request("POST", "/_dash-update-component", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    assert response.status == 200, data[:200]
    return json.loads(data)["response"][ident][prop]


def _round_trip(port: int, kind: str, n: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        start = time.perf_counter()
        if kind == "file":
            url = _post(conn, "go", "img.src", n)
            conn.request("GET", url)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        else:
            _post(conn, "go-uri", "uri.src", n)
        return time.perf_counter() - start
    finally:
        conn.close()


def _served(size: int, rounds: int, store: Path) -> dict[str, float]:
    port = _free_port()
    env = {**os.environ, "BENCH_SIZE": str(size), "DFC_TRANSFORM_DIR": str(store), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", "-k", "gthread",
            "--threads", "4", "benchmarks.small_app:server"]  # fmt: skip
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=5).request("GET", "/_dash-layout")
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.1)
        results: dict[str, float] = {}
        counter = iter(range(1, 10**9))
        for kind in ("file", "uri", "file", "uri"):  # twice each, interleaved: the second counts
            for _ in range(CLIENTS):  # warm every thread of every worker
                _round_trip(port, kind, next(counter))
            with ThreadPoolExecutor(CLIENTS) as pool:
                times = list(
                    pool.map(
                        lambda n, k=kind: _round_trip(port, k, n), [next(counter) for _ in range(rounds)]
                    )
                )
            results[kind] = statistics.median(times)
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


def _overhead(rounds: int) -> tuple[float, float]:
    """Median seconds of a 10 KiB FileOutput callback and of a plain one, in process."""
    import io

    from dash_extensions.enrich import DashProxy, Input, Output, html

    from dfc_transform import FileOutput, FileServeTransform

    app = DashProxy(__name__, transforms=[FileServeTransform()])
    app.layout = html.Div()

    @app.callback(FileOutput("img", "src", filename="plot.png"), Input("go", "n_clicks"))
    def as_file(n: int) -> Any:
        return io.BytesIO(os.urandom(10 * 1024))

    @app.callback(Output("txt", "children"), Input("go2", "n_clicks"))
    def plain(n: int) -> Any:
        os.urandom(10 * 1024)  # the same work, its result not returned
        return "/_dash-files/0123456789012345678901/plot.png"

    client = app.server.test_client()
    client.get("/_dash-layout")

    def fire(button: str, output: str) -> float:
        ident, prop = output.split(".")
        body = {"output": output, "outputs": {"id": ident, "property": prop},
                "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
                "changedPropIds": [f"{button}.n_clicks"], "state": []}  # fmt: skip
        start = time.perf_counter()
        assert client.post("/_dash-update-component", json=body).status_code == 200
        return time.perf_counter() - start

    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(fire("go", "img.src"))
        theirs.append(fire("go2", "txt.children"))
    return statistics.median(ours), statistics.median(theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke test")
    args = parser.parse_args(argv)
    rounds = 40 if args.quick else 400
    print("| size | FileOutput (POST + GET) | data URI (POST) | ratio |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in SIZES.items():
            medians = _served(size, rounds, Path(tmp) / label.replace(" ", ""))
            ratio = medians["file"] / medians["uri"]
            print(
                f"| {label} | {medians['file'] * 1e3:.2f} ms | {medians['uri'] * 1e3:.2f} ms | {ratio:.2f}x |"
            )
        os.environ["DFC_TRANSFORM_DIR"] = str(Path(tmp) / "overhead")
        ours, plain = _overhead(50 if args.quick else 500)
    print()
    print(f"transform overhead, 10 KiB on the default store: {ours * 1e6:.0f} us against a plain callback's "
          f"{plain * 1e6:.0f} us: {ours / plain:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
