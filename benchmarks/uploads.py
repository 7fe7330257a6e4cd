"""Upload throughput: ``dfc_transform.Upload`` against ``dcc.Upload`` (base64 through the callback).

``python -m benchmarks.uploads [--quick] [--output FILE]`` from the repository root. Serves one app under
gunicorn (one gthread worker, 4 threads, the default store) with both components, each feeding a callback
that hashes the file it gets (``dcc.Upload``: base64-decodes its ``contents``; ``Upload``: reads the
``UploadedFile`` stream). Headless Chromium chooses a file of random bytes in each, timed in the page from
the input's ``change`` event to the callback's answer in the DOM; the worker's peak memory growth is taken
on every run. Sizes 1, 16 and 256 MiB, medians of 7, 5 and 3 runs (``--quick``: 1 and 16 MiB, 3 runs),
then one run of each at 64 MiB, 128 MiB and 1 GiB, to see where ``dcc.Upload`` fails. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from dash import dcc
from dash_extensions.enrich import DashProxy, Input, Output, html
from flask import Flask

from dfc_transform import FileInput, FileServeTransform, Upload, UploadedFile

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
FULL = {1 * MiB: 7, 16 * MiB: 5, 256 * MiB: 3}
QUICK = {1 * MiB: 3, 16 * MiB: 3}
#: Single runs around and past the sizes above: where dcc.Upload gives up.
LIMITS = [64 * MiB, 128 * MiB, 1024 * MiB]
#: The longest one run may take before it counts as failed.
RUN_TIMEOUT = 300.0


def make_app() -> Flask:
    """Both components, each with a callback that hashes what it gets."""
    app = DashProxy(__name__, transforms=[FileServeTransform(timeout=600)])
    app.layout = html.Div(
        [Upload(id="ours", max_size=4096 * MiB), html.Div(id="ours-out"), dcc.Upload(
            html.Div("dcc.Upload"), id="theirs"), html.Div(id="theirs-out")]
    )  # fmt: skip

    @app.callback(Output("ours-out", "children"), FileInput("ours", "value"), prevent_initial_call=True)
    def ours(upload: UploadedFile) -> str:
        sha = hashlib.sha256()
        with upload.open() as stream:
            while block := stream.read(MiB):
                sha.update(block)
        return f"{upload.name} {sha.hexdigest()}"

    @app.callback(
        Output("theirs-out", "children"),
        Input("theirs", "contents"),
        Input("theirs", "filename"),
        prevent_initial_call=True,
    )
    def theirs(contents: str, filename: str) -> str:
        data = base64.b64decode(contents.split(",", 1)[1])
        return f"{filename} {hashlib.sha256(data).hexdigest()}"

    @app.server.get("/bench/mem")
    def mem() -> dict[str, int]:
        from flask import request

        if request.args.get("reset"):
            Path("/proc/self/clear_refs").write_text("5")
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        kib = {k: int(v.split()[0]) * 1024 for k, v in status.items() if k in ("VmRSS", "VmHWM")}
        return {"pid": os.getpid(), "rss": kib["VmRSS"], "hwm": kib["VmHWM"]}

    return app.server


# In the page: the time of the last `change` of a file input, and when an output shows `expected`.
WATCH_JS = """
window.__changed = null;
document.addEventListener("change", (e) => {
  if (e.target.type === "file") window.__changed = performance.now();
}, true);
"""
WAIT_JS = """
const [id, expected, done] = arguments;
const start = window.__changed;
const node = document.getElementById(id);
const check = () => node.textContent.includes(expected);
if (check()) { done(performance.now() - start); return; }
const observer = new MutationObserver(() => {
  if (check()) { observer.disconnect(); done(performance.now() - start); }
});
observer.observe(node, {childList: true, subtree: true, characterData: true});
"""


class Server:
    """:func:`make_app` under gunicorn: one gthread worker, as ``benchmarks/served.py`` runs its app."""

    def __init__(self, home: Path) -> None:
        from tests.servers import free_port

        self.port = free_port()
        self.log = home / "gunicorn.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DFC_TRANSFORM_DIR": str(home / "store")}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "4",
                 "-b", f"127.0.0.1:{self.port}", "--timeout", "900", "--log-level", "warning",
                 "benchmarks.uploads:make_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while self.get("/bench/mem") is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start: " + self.log.read_text()[-3000:])
            time.sleep(0.1)

    def get(self, path: str) -> Any:
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def write_file(path: Path, size: int) -> str:
    sha = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for start in range(0, size, MiB):
            piece = (start.to_bytes(8, "big") + block[8:])[: min(MiB, size - start)]
            sha.update(piece)
            f.write(piece)
    return sha.hexdigest()


def one_run(driver: Any, server: Server, kind: str, path: Path, sha: str) -> dict[str, Any]:
    """Choose ``path`` in component ``kind``; the seconds until the callback showed its hash, or why not."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    driver.get(f"http://127.0.0.1:{server.port}/")
    deadline = time.monotonic() + 30
    while not driver.find_elements(By.CSS_SELECTOR, "#theirs input[type=file]"):
        if time.monotonic() > deadline:
            raise RuntimeError("the page did not render")
        time.sleep(0.05)
    driver.execute_script(WATCH_JS)
    base = server.get("/bench/mem?reset=1")
    driver.find_element(By.CSS_SELECTOR, f"#{kind} input[type=file]").send_keys(str(path))
    driver.set_script_timeout(RUN_TIMEOUT)
    try:
        ms = driver.execute_async_script(WAIT_JS, f"{kind}-out", sha)
        error = None
    except TimeoutException:
        ms, error = None, f"no answer within {RUN_TIMEOUT:.0f} s"
    after = server.get("/bench/mem")
    if error is None and ms is None:
        error = "failed"
    logs = [e.get("message", "") for e in driver.get_log("browser")] if error else []
    growth = None if after is None or base is None else max(0, after["hwm"] - base["rss"])
    return {
        "seconds": None if ms is None else ms / 1000,
        "server_growth": growth,
        "error": error,
        "browser_log": logs[-5:],
    }


def measure(repeats: dict[int, int], limits: list[int]) -> list[dict[str, Any]]:
    from tests.browser_support import start_browser

    home = Path(tempfile.mkdtemp(prefix="dfc-bench-uploads-"))
    server = Server(home)
    browsers = [start_browser(home / "profile-0", home / "downloads")]

    def run(kind: str, path: Path, sha: str) -> dict[str, Any]:
        from selenium.common.exceptions import WebDriverException

        try:
            return one_run(browsers[-1].driver, server, kind, path, sha)
        except WebDriverException as err:  # the tab crashed (out of memory): a fresh browser goes on
            browsers[-1].driver.quit()
            browsers.append(start_browser(home / f"profile-{len(browsers)}", home / "downloads"))
            message = (err.msg or type(err).__name__).splitlines()[0]
            return {
                "seconds": None,
                "server_growth": None,
                "error": f"the browser's {message}",
                "browser_log": [],
            }

    rows = []
    try:
        plan = [(size, n) for size, n in repeats.items()] + [(size, 1) for size in limits]
        for size, n in plan:
            path = home / f"file-{size // MiB}MiB.bin"
            sha = write_file(path, size)
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "theirs": []}
            for _ in range(n):
                for kind in runs:  # interleaved: a shared machine's noise falls on both alike
                    runs[kind].append(run(kind, path, sha))
            path.unlink()
            for kind, results in runs.items():
                times = [r["seconds"] for r in results if r["seconds"] is not None]
                errors = [r["error"] for r in results if r["error"]]
                logs = [line for r in results for line in r["browser_log"]]
                growth = [r["server_growth"] for r in results if r["server_growth"] is not None]
                rows.append(
                    {
                        "component": "dfc_transform.Upload" if kind == "ours" else "dcc.Upload",
                        "size": size,
                        "runs": n,
                        "seconds": median(times) if times and not errors else None,
                        "mib_per_s": size / MiB / median(times) if times and not errors else None,
                        "server_growth": max(growth) if growth else None,
                        "error": errors[0] if errors else None,
                        "browser_log": logs[-5:],
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        browsers[-1].driver.quit()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The README's table: medians per size, ours against dcc.Upload."""
    by = {(r["component"], r["size"]): r for r in rows}
    lines = [
        "| size | `Upload` (parts into the store) | `dcc.Upload` (base64 in the callback) | speed-up | "
        "server memory growth, `Upload` / `dcc.Upload` |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size in sorted({r["size"] for r in rows}):
        ours, theirs = by[("dfc_transform.Upload", size)], by[("dcc.Upload", size)]

        def cell(r: dict[str, Any]) -> str:
            if r["seconds"] is None:
                return f"fails ({r['error']})" if r["error"] else "fails"
            return f"{r['seconds']:.2f} s ({r['mib_per_s']:.0f} MiB/s)"

        ratio = (
            f"{theirs['seconds'] / ours['seconds']:.1f}x" if ours["seconds"] and theirs["seconds"] else "-"
        )
        memory = " / ".join(
            "-"
            if r["server_growth"] is None or r["seconds"] is None
            else f"{r['server_growth'] / MiB:.0f} MiB"
            for r in (ours, theirs)
        )
        label = f"{size // MiB} MiB" if size < 1024 * MiB else f"{size // (1024 * MiB)} GiB"
        lines.append(f"| {label} | {cell(ours)} | {cell(theirs)} | {ratio} | {memory} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 and 16 MiB, 3 runs each, no limit runs")
    parser.add_argument("--output", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--table", type=Path, help="print the table of rows written by --output, measure nothing"
    )
    args = parser.parse_args()
    if args.table is not None:
        print(table(json.loads(args.table.read_text())))
        return
    rows = measure(QUICK if args.quick else FULL, [] if args.quick else LIMITS)
    if args.output is not None:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
