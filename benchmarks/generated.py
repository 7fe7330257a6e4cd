"""Time to first byte of a generated CSV: served while it is made, against written whole first.

``python -m benchmarks.generated [--quick]`` from the repository root. One Dash app on the default
store, two callbacks making the same CSV of 256 MiB (``--quick``: 16 MiB) from the same generator of
rows (a batch of 10,000 rows a piece, as a query would give them):

- ``streamed``: the callback returns the generator; its URL comes at once and the GET follows the
  writer (see :mod:`dfc_transform.store.growing`);
- ``whole first``: the callback writes the generator into a temporary file and returns its path, as
  an app does without streaming: the URL comes once the file is complete.

Each is fired through Flask's test client (the callback's POST, then the GET of its URL, read as it
streams): the time from the click to the first byte of the file, and to its last; medians of 3 runs
(5 with ``--quick``), alternating. Every download is checked against the CSV's SHA-256. Prints a
markdown table with the ratio, and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from dash_extensions.enrich import DashProxy, Input, html

from dfc_transform import FileOutput, FileServeTransform

MiB = 1024 * 1024
BATCH = 10_000


def rows(size: int) -> Iterator[bytes]:
    """A CSV of about ``size`` bytes, ``BATCH`` rows a piece."""
    yield b"id,day,amount\n"
    made, index = 0, 0
    while made < size:
        piece = "".join(
            f"{i},2026-{i % 12 + 1:02d}-{i % 28 + 1:02d},{(i * 37) % 100000 / 100:.2f}\n"
            for i in range(index, index + BATCH)
        ).encode()
        made += len(piece)
        index += BATCH
        yield piece


def make_app(size: int, folder: str) -> Any:
    app = DashProxy(__name__, transforms=[FileServeTransform()])
    app.layout = html.Div(
        [html.Button(id="a"), html.Button(id="b"), html.A(id="streamed"), html.A(id="whole")]
    )

    @app.callback(FileOutput("streamed", "href", filename="export.csv"), Input("a", "n_clicks"))
    def streamed(n: int) -> Iterator[bytes]:
        return rows(size)

    @app.callback(FileOutput("whole", "href", filename="export.csv"), Input("b", "n_clicks"))
    def whole(n: int) -> str:
        path = os.path.join(folder, f"export-{n}.csv")
        with open(path, "wb") as f:
            for piece in rows(size):
                f.write(piece)
        return path

    return app


def fire(client: Any, button: str, output: str, n: int) -> tuple[float, float, str]:
    """Click ``button``; seconds to the first byte and to the last of the file, and its SHA-256."""
    body = {
        "output": f"{output}.href",
        "outputs": {"id": output, "property": "href"},
        "inputs": [{"id": button, "property": "n_clicks", "value": n}],
        "changedPropIds": [f"{button}.n_clicks"],
        "state": [],
    }
    start = time.perf_counter()
    r = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.data[:300]
    url = r.get_json()["response"][output]["href"]
    got = client.get(url, buffered=False)
    assert got.status_code == 200, got.status_code
    first = None
    sha = hashlib.sha256()
    for chunk in got.response:
        if first is None:
            first = time.perf_counter() - start
        sha.update(chunk)
    got.close()
    return first or 0.0, time.perf_counter() - start, sha.hexdigest()


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="16 MiB, 5 runs: a smoke test")
    args = parser.parse_args(argv)
    size = 16 * MiB if args.quick else 256 * MiB
    runs = 5 if args.quick else 3
    expected = hashlib.sha256(b"".join(rows(size))).hexdigest()
    print(f"benchmarks.generated: a CSV of {size // MiB} MiB, load average {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DFC_TRANSFORM_DIR"] = os.path.join(tmp, "store")
        app = make_app(size, tmp)
        client = app.server.test_client()
        assert client.get("/_dash-layout").status_code == 200
        times: dict[str, list[tuple[float, float]]] = {"streamed": [], "whole first": []}
        for n in range(1, runs + 1):
            order = [("streamed", "a", "streamed"), ("whole first", "b", "whole")]
            for kind, button, output in order if n % 2 else order[::-1]:
                first, last, sha = fire(client, button, output, n)
                assert sha == expected, f"{kind}: the download is not the CSV"
                times[kind].append((first, last))
        # A follower may read the last chunk before its writer has stored the complete record:
        # the writers finish before their store's directory is removed.
        for thread in threading.enumerate():
            if thread.name == "dfc-growing-file":
                thread.join()
    medians = {
        k: (statistics.median(f for f, _ in v), statistics.median(t for _, t in v)) for k, v in times.items()
    }
    print()
    print(f"| {size // MiB} MiB CSV | first byte (median) | last byte (median) | runs |")
    print("|---|---:|---:|---:|")
    for kind, (first, last) in medians.items():
        print(f"| {kind} | {first:.3f} s | {last:.2f} s | {runs} |")
    ratio = medians["streamed"][0] / medians["whole first"][0]
    print(
        f"\nfirst byte, streamed / whole first: {ratio:.4f}x; last byte: "
        f"{medians['streamed'][1] / medians['whole first'][1]:.2f}x (load average {_load()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
