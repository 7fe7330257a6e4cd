"""Small files: a FileOutput round trip against the same bytes as a base64 data URI.

``python -m benchmarks.smallfiles [--quick]`` starts gunicorn (2 workers, gthread, 4 threads
each) serving ``benchmarks.small_app`` on the default store, then 8 clients at once click
as a browser would, new content at every click, three ways:

- ``FileOutput``, as it comes: the callback's POST, then the GET of the URL it returned, unless
  the file was small enough to come inline (``inline_below``, 32 KiB by default): a ``data:`` URI,
  no GET;
- ``FileOutput(..., inline_below=0)``: always stored, the POST and the GET of its URL;
- a data URI written by hand: the POST alone (its answer holds the file).

It prints the median time per round trip of each, and their ratios to the data URI (under 1
means faster), at 10 KiB, 100 KiB and 1 MiB, with the issue's targets.

Then, in this process (Flask's test client, no network): a callback storing 10 KiB
(``inline_below=0``) against a plain callback returning a short string (the difference is what
storing costs), and the GET of a 10 KiB file against a plain Flask route returning the same bytes.
The load average is printed with each table: the machine may be shared.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import shutil
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
#: More points for the plot (full mode): around the inline threshold (32 KiB), and below.
PLOT_SIZES = {"1 KiB": 1024, "30 KiB": 30 * 1024, "300 KiB": 300 * 1024}
CLIENTS = 8
KINDS = ("file", "stored", "uri")
#: The issue's targets, FileOutput / data URI.
TARGETS = {"10 KiB": 1.1, "100 KiB": 0.8, "1 MiB": 0.25}


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
        if kind == "uri":
            _post(conn, "go-uri", "uri.src", n)
        else:
            button, output = ("go", "img.src") if kind == "file" else ("go-stored", "stored.src")
            url = _post(conn, button, output, n)
            if not url.startswith("data:"):  # inlined: the answer holds the file
                conn.request("GET", url)
                response = conn.getresponse()
                response.read()
                assert response.status == 200, (response.status, url)
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
        for kind in KINDS * 2:  # twice each, interleaved: the second counts
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


def _in_process(rounds: int) -> dict[str, float]:
    """Medians in this process: a callback storing 10 KiB and a plain one; the GET of a 10 KiB
    file and of a plain Flask route answering the same bytes."""
    import io

    from dash_extensions.enrich import DashProxy, Input, Output, html

    from dfc_transform import FileOutput, FileServeTransform

    payload = os.urandom(10 * 1024)
    app = DashProxy(__name__, transforms=[FileServeTransform(inline_below=0)])
    app.layout = html.Div()

    @app.callback(FileOutput("img", "src", filename="plot.png"), Input("go", "n_clicks"))
    def as_file(n: int) -> Any:
        return io.BytesIO(os.urandom(10 * 1024))  # new content every time: nothing deduplicated

    @app.callback(Output("txt", "children"), Input("go2", "n_clicks"))
    def plain(n: int) -> Any:
        os.urandom(10 * 1024)  # the same work, its result not returned
        return "/_dash-files/0123456789012345678901/plot.png"

    @app.server.get("/plain.png")
    def plain_route() -> Any:
        return app.server.response_class(payload, mimetype="image/png")

    client = app.server.test_client()
    client.get("/_dash-layout")

    def fire(button: str, output: str) -> tuple[float, Any]:
        ident, prop = output.split(".")
        body = {"output": output, "outputs": {"id": ident, "property": prop},
                "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
                "changedPropIds": [f"{button}.n_clicks"], "state": []}  # fmt: skip
        start = time.perf_counter()
        r = client.post("/_dash-update-component", json=body)
        took = time.perf_counter() - start
        assert r.status_code == 200
        return took, r.get_json()["response"][ident][prop]

    def get(url: str) -> float:
        start = time.perf_counter()
        r = client.get(url)
        took = time.perf_counter() - start
        assert r.status_code == 200 and len(r.data) == 10 * 1024
        return took

    url = fire("go", "img.src")[1]
    times: dict[str, list[float]] = {"store": [], "plain": [], "get": [], "route": []}
    for _ in range(rounds):  # interleaved, so that a busy moment hits all alike
        times["store"].append(fire("go", "img.src")[0])
        times["plain"].append(fire("go2", "txt.children")[0])
        times["get"].append(get(url))
        times["route"].append(get("/plain.png"))
    return {kind: statistics.median(values) for kind, values in times.items()}


def _plot(measured: dict[int, dict[str, float]], out: Path) -> None:
    """Round trip time against size, log-log: FileOutput as it comes, stored, and a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(measured)
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = {"file": "FileOutput (inline below 32 KiB)", "stored": "FileOutput, inline_below=0",
              "uri": "data URI in the callback's answer"}  # fmt: skip
    for kind, label in labels.items():
        ax.plot([s / 1024 for s in sizes], [measured[s][kind] * 1e3 for s in sizes], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("file size, KiB")
    ax.set_ylabel("round trip, ms (median)")
    ax.set_title(f"Callback to last byte, {CLIENTS} clients, gunicorn 2 gthread workers", fontsize=9)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    print(f"written: {out}")


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke test")
    parser.add_argument("--plot", metavar="PNG", help="also draw round trip time against size (log-log)")
    args = parser.parse_args(argv)
    rounds = 40 if args.quick else 400
    print(f"Round trips, {CLIENTS} clients, gunicorn 2 gthread workers (load average {_load()}):")
    print()
    print("| size | FileOutput | FileOutput, inline_below=0 | data URI | FileOutput / data URI (target) "
          "| stored / data URI |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    measured: dict[int, dict[str, float]] = {}
    sizes = SIZES if args.quick or not args.plot else {**SIZES, **PLOT_SIZES}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in sorted(sizes.items(), key=lambda item: item[1]):
            m = _served(size, rounds, Path(tmp) / label.replace(" ", ""))
            measured[size] = m
            if label not in TARGETS:
                continue
            ratio, stored = m["file"] / m["uri"], m["stored"] / m["uri"]
            met = "met" if ratio <= TARGETS[label] else "missed"
            times = " | ".join(f"{m[kind] * 1e3:.2f} ms" for kind in KINDS)
            print(f"| {label} | {times} | {ratio:.2f}x (<= {TARGETS[label]}: {met}) | {stored:.2f}x |")
    if args.plot:
        _plot(measured, Path(args.plot))
    # The in-process store outlives this function: its ledger is written once more at exit.
    overhead = tempfile.mkdtemp(prefix="dfc-bench-small-")
    atexit.register(shutil.rmtree, overhead, ignore_errors=True)  # after the ledger's (LIFO)
    os.environ["DFC_TRANSFORM_DIR"] = overhead
    m = _in_process(50 if args.quick else 500)
    print()
    print(f"In process, Flask's test client, medians (load average {_load()}):")
    print()
    print("| what | ours | plain | difference (target) |")
    print("|---|---:|---:|---:|")
    added = m["store"] - m["plain"]
    print(f"| a callback storing 10 KiB / returning a string | {m['store'] * 1e3:.3f} ms | "
          f"{m['plain'] * 1e3:.3f} ms | +{added * 1e3:.3f} ms (<= 0.15 ms: "
          f"{'met' if added <= 0.15e-3 else 'missed'}) |")  # fmt: skip
    print(f"| the GET of a 10 KiB file / a plain Flask route | {m['get'] * 1e3:.3f} ms | "
          f"{m['route'] * 1e3:.3f} ms | {m['get'] / m['route']:.2f}x (GET <= 0.25 ms: "
          f"{'met' if m['get'] <= 0.25e-3 else 'missed'}) |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
