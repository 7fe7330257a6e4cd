"""Upload throughput: ``dfc_transform.Upload`` against ``dcc.Upload``, and against a bare endpoint.

``python -m benchmarks.uploads [--quick] [--what-if] [--profile] [--output FILE]`` from the repository root.
Serves one app under gunicorn (one gthread worker, 4 threads, the default store) with both components, each
feeding a callback that hashes the file it gets (``dcc.Upload``: base64-decodes its ``contents``;
``Upload``: reads the ``UploadedFile`` stream), and a bare endpoint: Flask routes of the same app that take
the same parts (``PUT /bench/bare/<upload>/<part>``, between a start and a completion) and only write them
where they belong in one file on disk, read from the request in blocks of the store's chunk size.

Headless Chromium chooses a file of random bytes in each. The page sends it to the bare endpoint as
``transfer.js`` sends ours: parts of the size our upload used (seen in the page), ``PARALLEL`` of them in
flight (read from transfer.js; the page also counts ours), ``XMLHttpRequest`` PUTs of ``File.slice``
blobs; ``bare-crc`` also computes each part's CRC-32 with crc32.js before sending it, as transfer.js does,
which tells the page's share of the difference from the server's. Times are taken in the page from the
input's ``change`` event: to the callback's answer in the DOM (``Upload`` against ``dcc.Upload``, the first
table), and to the upload's end (ours: the component shows the file stored; bare: the completion answered;
the second table, in MB/s, with the ratio to the bare endpoint). Every run takes the worker's peak memory
growth (from before the upload to the callback's answer) and CPU time (to the upload's end) and the
browser's CPU time; the rows say the load average of their runs. The bare endpoint's file is checked
against the file's SHA-256 after each run, ours by its callback.

Full: 1, 16 and 256 MiB against ``dcc.Upload``, medians of 7, 5 and 3 runs, then one run of each at
64 MiB, 128 MiB and 1 GiB, to see where ``dcc.Upload`` fails; 256 MiB and 1 GiB against the bare endpoint,
medians of 3. ``--quick`` (CI, about 30 s): 1 and 16 MiB against ``dcc.Upload`` and 32 MiB against the
bare endpoint, 3 runs each. ``--bare-only`` and ``--bare-sizes 256x3,1024x1`` choose what runs;
``--what-if`` adds other ways of computing the CRC-32s in the page (``WHAT_IF_KINDS``). ``--profile`` then
uploads the largest bare size once each way on a worker that times the stages of every part (body read,
CRC-32, chunk write, ledger...: see :mod:`benchmarks.upload_profile`), and once more under cProfile.
Prints markdown tables, and the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from statistics import mean, median
from typing import Any

from dash import dcc
from dash_extensions.enrich import DashProxy, Input, Output, html

from dfc_transform import FileInput, FileServeTransform, Upload, UploadedFile

ROOT = Path(__file__).resolve().parent.parent
COMPONENT_SRC = ROOT / "dfc_transform" / "dash" / "component" / "src"
TRANSFER_JS = COMPONENT_SRC / "transfer.js"
CRC32_JS = COMPONENT_SRC / "crc32.js"
MiB = 1024 * 1024
MB = 1000 * 1000
#: Against dcc.Upload: runs per size.
FULL = {1 * MiB: 7, 16 * MiB: 5, 256 * MiB: 3}
QUICK = {1 * MiB: 3, 16 * MiB: 3}
#: Single runs around and past the sizes above: where dcc.Upload gives up.
LIMITS = [64 * MiB, 128 * MiB, 1024 * MiB]
#: Against the bare endpoint: runs per size.
BARE_FULL = {256 * MiB: 3, 1024 * MiB: 3}
BARE_QUICK = {32 * MiB: 3}
#: The issue's targets: ours at least this fraction of the bare endpoint's speed, and the worker's growth.
TARGET_RATIO = 0.8
TARGET_GROWTH = 64 * MiB
#: The longest one run may take before it counts as failed.
RUN_TIMEOUT = 300.0
#: What the bare endpoint reads from the request at once: the default store's chunk size.
BARE_BLOCK = 1 * MiB
#: The environment variable that turns the profiling hooks on in the server (see upload_profile).
PROFILE_ENV = "DFC_BENCH_PROFILE"
COMPONENTS = {
    "ours": "dfc_transform.Upload",
    "theirs": "dcc.Upload",
    "bare": "bare endpoint",
    "bare-crc": "bare endpoint, CRC-32s in the page",
    "bare-crc-alongside": "what if: CRC-32s while the part goes",
    "bare-crc-buffer": "what if: the bytes read for the CRC-32 sent",
}
#: What the bare comparison uploads with, in its table's order: ours, the bare endpoint, and the bare
#: endpoint with the page computing each part's CRC-32 before sending it, as transfer.js does.
BARE_KINDS = ("ours", "bare", "bare-crc")
#: With --what-if: other ways of computing the CRC-32s in the page. `alongside`: the part's PUT starts at
#: once, its checksum computed while it goes; `buffer`: the ArrayBuffer read for the checksum is the body.
WHAT_IF_KINDS = ("bare-crc-alongside", "bare-crc-buffer")
#: How each bare kind computes the checksums in the page (WATCH_JS's `crc`).
CRC_MODES = {
    "bare": "none",
    "bare-crc": "before",
    "bare-crc-alongside": "alongside",
    "bare-crc-buffer": "buffer",
}
_HANDLE = re.compile(r"[0-9a-f]{16}")


def make_app() -> Any:
    """Both components, each with a callback that hashes what it gets, and the bare endpoint."""
    from flask import abort, request

    app = DashProxy(__name__, transforms=[FileServeTransform(timeout=600)])
    app.layout = html.Div(
        [Upload(id="ours", max_size=4096 * MiB), html.Div(id="ours-out"), dcc.Upload(
            html.Div("dcc.Upload"), id="theirs"), html.Div(id="theirs-out")]
    )  # fmt: skip
    server = app.server
    profile_mode = os.environ.get(PROFILE_ENV, "")
    stage: Callable[[str], AbstractContextManager[Any]] = lambda name: nullcontext()  # noqa: E731
    if profile_mode == "stages":  # the bare endpoint's stages timed too
        from benchmarks.upload_profile import stage

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

    @server.get("/bench/mem")
    def mem() -> dict[str, Any]:
        if request.args.get("reset"):
            Path("/proc/self/clear_refs").write_text("5")
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        kib = {k: int(v.split()[0]) * 1024 for k, v in status.items() if k in ("VmRSS", "VmHWM")}
        times = os.times()
        return {
            "pid": os.getpid(),
            "rss": kib["VmRSS"],
            "hwm": kib["VmHWM"],
            "cpu": times.user + times.system,
        }

    # The bare endpoint: the same parts, written where they belong in one file, and nothing else.
    bare_dir = Path(os.environ.get("DFC_BENCH_BARE_DIR") or tempfile.mkdtemp(prefix="dfc-bench-bare-"))
    bare_dir.mkdir(parents=True, exist_ok=True)
    part_sizes: dict[str, int] = {}

    def bare_path(handle: str) -> Path:
        if not _HANDLE.fullmatch(handle) or handle not in part_sizes:
            abort(404)
        return bare_dir / f"{handle}.bin"

    @server.post("/bench/bare")
    def bare_start() -> tuple[dict[str, Any], int]:
        handle = secrets.token_hex(8)
        part_sizes[handle] = int(json.loads(request.get_data())["part_size"])
        os.close(os.open(bare_path(handle), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return {"upload": handle}, 201

    @server.put("/bench/bare/<handle>/<int:part>")
    def bare_part(handle: str, part: int) -> dict[str, Any]:
        path = bare_path(handle)
        offset = part * part_sizes[handle]
        stream = request.stream
        fd = os.open(path, os.O_WRONLY)
        try:
            while True:
                with stage("body read"):
                    data = stream.read(BARE_BLOCK)
                if not data:
                    break
                with stage("pwrite"):
                    view = memoryview(data)
                    while view:
                        written = os.pwrite(fd, view, offset)
                        offset += written
                        view = view[written:]
        finally:
            os.close(fd)
        return {"part": part}

    @server.post("/bench/bare/<handle>")
    def bare_complete(handle: str) -> dict[str, Any]:
        path = bare_path(handle)
        del part_sizes[handle]
        return {"upload": handle, "size": path.stat().st_size}

    if profile_mode:
        from benchmarks import upload_profile

        if profile_mode == "stages":
            upload_profile.install()

        @server.get("/bench/profile")
        def profile() -> dict[str, Any]:
            found = upload_profile.report()
            if request.args.get("reset"):
                upload_profile.reset()
            return found

        return upload_profile.wrap(server, profile_mode)
    return server


def transfer_parallel() -> int:
    """How many parts ``transfer.js`` keeps in flight (its ``PARALLEL``)."""
    found = re.search(r"^const PARALLEL = (\d+);", TRANSFER_JS.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no `const PARALLEL = <n>;` in {TRANSFER_JS}: update benchmarks/uploads.py")
    return int(found.group(1))


# In the page (after crc32.js's function): the time of the last `change` of a file input; the layout and
# the concurrency of our upload's requests (seen by wrapping XMLHttpRequest); an input whose file goes to
# the bare endpoint (the parts' CRC-32s computed as CRC_MODES says).
WATCH_JS = """
window.__changed = null;
document.addEventListener("change", (e) => {
  if (e.target.type === "file") window.__changed = performance.now();
}, true);

const seen = window.__seen = {puts: 0, inflight: 0, parallel: 0, largest: 0, layout: null};
const open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.open = function (method, url) {
  this.__method = method;
  this.__url = String(url);
  return open.apply(this, arguments);
};
XMLHttpRequest.prototype.send = function (body) {
  if (this.__url && this.__url.includes("/_upload")) {
    if (this.__method === "PUT") {
      seen.puts++;
      seen.inflight++;
      seen.parallel = Math.max(seen.parallel, seen.inflight);
      seen.largest = Math.max(seen.largest, body ? body.size : 0);
      this.addEventListener("loadend", () => { seen.inflight--; });
    } else if (this.__method === "POST" && !seen.layout) {
      this.addEventListener("load", () => {
        try {
          const answer = JSON.parse(this.responseText);
          if (answer.part_size) seen.layout = {part_size: answer.part_size, parts: answer.parts};
        } catch (e) {}
      });
    }
  }
  return send.apply(this, arguments);
};

const input = document.createElement("input");
input.type = "file";
input.id = "bare";
document.body.appendChild(input);
window.__bare = null;
const put = (url, body, headers) => new Promise((resolve) => {
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", url);
  for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
  xhr.onload = () => resolve(xhr.status);
  xhr.onerror = () => resolve(0);
  xhr.send(body);
});
async function bare(file, crc) {
  const {partSize, parallel} = window.__bareConfig;
  const started = await fetch("/bench/bare", {
    method: "POST", body: JSON.stringify({part_size: partSize}), headers: {"Content-Type": "text/plain"},
  });
  if (started.status !== 201) return {error: `start: HTTP ${started.status}`};
  const upload = (await started.json()).upload;
  const parts = Math.max(1, Math.ceil(file.size / partSize));
  const queue = Array.from({length: parts}, (_, i) => i);
  let failed = null;
  const worker = async () => {
    while (queue.length && !failed) {
      const part = queue.shift();
      const url = `/bench/bare/${upload}/${part}`;
      const blob = file.slice(part * partSize, (part + 1) * partSize);
      let status;
      if (crc === "before") {  // as transfer.js does: the part read for its checksum, the Blob sent
        status = await put(url, blob, {"X-Part-CRC32": crc32(await blob.arrayBuffer())});
      } else if (crc === "alongside") {
        const checked = blob.arrayBuffer().then(crc32);
        [status] = await Promise.all([put(url, blob, {}), checked]);
      } else if (crc === "buffer") {
        const bytes = await blob.arrayBuffer();
        status = await put(url, bytes, {"X-Part-CRC32": crc32(bytes)});
      } else {
        status = await put(url, blob, {});
      }
      if (status !== 200) failed = `part ${part}: HTTP ${status}`;
    }
  };
  await Promise.all(Array.from({length: Math.min(parallel, parts)}, worker));
  if (failed) return {error: failed};
  const done = await fetch(`/bench/bare/${upload}`, {method: "POST"});
  if (done.status !== 200) return {error: `complete: HTTP ${done.status}`};
  const size = (await done.json()).size;
  return {ms: performance.now() - window.__changed, upload, size, parts};
}
input.addEventListener("change", () => {
  window.__bare = bare(input.files[0], window.__bareConfig.crc).catch((err) => ({error: String(err)}));
});
"""
# ours: until the component shows the file stored (`uploaded`), or until the callback's hash shows.
WAIT_OURS_JS = """
const [until, expected, done] = arguments;
const start = window.__changed;
const check = () => {
  const stopped = document.querySelector("#ours .dfc-upload__file--refused, #ours .dfc-upload__file--paused");
  if (stopped) return {error: stopped.textContent};
  const reached = until === "uploaded"
    ? document.querySelector("#ours .dfc-upload__file--done")
    : document.getElementById("ours-out").textContent.includes(expected);
  return reached ? {[until]: performance.now() - start} : null;
};
let found = check();
if (found) { done(found); return; }
const observer = new MutationObserver(() => {
  found = check();
  if (found) { observer.disconnect(); done(found); }
});
observer.observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true});
"""
WAIT_THEIRS_JS = """
const [expected, done] = arguments;
const start = window.__changed;
const node = document.getElementById("theirs-out");
const check = () => node.textContent.includes(expected);
if (check()) { done({answered: performance.now() - start}); return; }
const observer = new MutationObserver(() => {
  if (check()) { observer.disconnect(); done({answered: performance.now() - start}); }
});
observer.observe(node, {childList: true, subtree: true, characterData: true});
"""
WAIT_BARE_JS = """
const done = arguments[arguments.length - 1];
const poll = () => {
  if (window.__bare) window.__bare.then(done);
  else setTimeout(poll, 2);
};
poll();
"""


class Server:
    """:func:`make_app` under gunicorn: one gthread worker, as ``benchmarks/served.py`` runs its app."""

    def __init__(self, home: Path, profile: str = "") -> None:
        from tests.servers import free_port

        self.port = free_port()
        self.log = home / "gunicorn.log"
        self.bare_dir = home / "bare"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DFC_TRANSFORM_DIR": str(home / "store"),
            "DFC_BENCH_BARE_DIR": str(self.bare_dir),
            PROFILE_ENV: profile,
        }
        with open(self.log, "ab") as log:
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


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            sha.update(block)
    return sha.hexdigest()


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # fields from the 3rd (state) on


def tree_cpu(root: int) -> float:
    """CPU seconds (user and system) of the live processes under ``root`` (the browser's, for its driver)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        fields = _stat(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class Bench:
    """One server and one browser (another one when a tab crashes), and the runs on them."""

    def __init__(self, home: Path, profile: str = "") -> None:
        from tests.browser_support import start_browser

        self.home = home
        self.server = Server(home, profile)
        self.start_browser = start_browser
        self.browsers = [start_browser(home / "profile-0", home / "downloads")]
        self.parallel = transfer_parallel()
        crc32 = CRC32_JS.read_text().replace("export function crc32", "function crc32")
        self.watch_js = crc32 + "\n" + WATCH_JS
        #: The part size our last upload used; the bare endpoint's parts are cut the same.
        self.part_size: int | None = None

    @property
    def driver(self) -> Any:
        return self.browsers[-1].driver

    def close(self) -> None:
        self.driver.quit()
        self.server.stop()

    def run(self, kind: str, path: Path, sha: str) -> dict[str, Any]:
        """One upload of ``path`` by ``kind``; a crashed tab gives way to a fresh browser."""
        from selenium.common.exceptions import WebDriverException

        try:
            return self.one_run(kind, path, sha)
        except WebDriverException as err:  # the tab crashed (out of memory): a fresh browser goes on
            self.driver.quit()
            n = len(self.browsers)
            self.browsers.append(self.start_browser(self.home / f"profile-{n}", self.home / "downloads"))
            message = (err.msg or type(err).__name__).splitlines()[0]
            return {"error": f"the browser's {message}", "load": os.getloadavg()[0]}

    def one_run(self, kind: str, path: Path, sha: str) -> dict[str, Any]:
        """Choose ``path`` in ``kind``'s input: its times (seconds), or why it failed."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By

        driver, server = self.driver, self.server
        driver.get(f"http://127.0.0.1:{server.port}/")
        deadline = time.monotonic() + 30
        while not driver.find_elements(By.CSS_SELECTOR, "#theirs input[type=file]"):
            if time.monotonic() > deadline:
                raise RuntimeError("the page did not render")
            time.sleep(0.05)
        driver.execute_script(self.watch_js)
        part_size = self.part_size or 4 * MiB
        config = {"partSize": part_size, "parallel": self.parallel, "crc": CRC_MODES.get(kind)}
        driver.execute_script(f"window.__bareConfig = {json.dumps(config)};")
        load = os.getloadavg()[0]
        browser_pid = driver.service.process.pid
        base = server.get("/bench/mem?reset=1")
        browser_cpu = tree_cpu(browser_pid)
        selector = "#bare" if kind.startswith("bare") else f"#{kind} input[type=file]"
        driver.find_element(By.CSS_SELECTOR, selector).send_keys(str(path))
        driver.set_script_timeout(RUN_TIMEOUT)
        # Ours: CPU times when the file is stored (the callback's hashing starts then), memory at its answer.
        waits_of: dict[str, list[tuple[str, ...]]] = {
            "ours": [(WAIT_OURS_JS, "uploaded", sha), (WAIT_OURS_JS, "answered", sha)],
            "theirs": [(WAIT_THEIRS_JS, sha)],
            **{kind: [(WAIT_BARE_JS,)] for kind in CRC_MODES},
        }
        found: dict[str, Any] = {}
        cpu_at: tuple[float, Any] | None = None
        for script, *script_args in waits_of[kind]:
            try:
                found.update(driver.execute_async_script(script, *script_args) or {"error": "failed"})
            except TimeoutException:
                found["error"] = f"no answer within {RUN_TIMEOUT:.0f} s"
            if cpu_at is None:
                cpu_at = (tree_cpu(browser_pid) - browser_cpu, server.get("/bench/mem"))
            if found.get("error"):
                break
        assert cpu_at is not None
        browser_cpu, upload_end = cpu_at
        after = server.get("/bench/mem")
        result: dict[str, Any] = {
            "answered": found["answered"] / 1000 if found.get("answered") is not None else None,
            "uploaded": found["uploaded"] / 1000 if found.get("uploaded") is not None else None,
            "error": found.get("error"),
            "load": load,
            "browser_cpu": browser_cpu,
        }
        if base is not None and after is not None and upload_end is not None:
            result["server_growth"] = max(0, after["hwm"] - base["rss"])
            result["server_cpu"] = upload_end["cpu"] - base["cpu"]
        if kind == "ours":
            seen = driver.execute_script("return window.__seen;")
            if seen.get("layout"):
                self.part_size = seen["layout"]["part_size"]
                result["part_size"], result["parts"] = self.part_size, seen["layout"]["parts"]
            result["parallel"] = seen["parallel"]
        elif kind.startswith("bare") and found.get("ms") is not None:
            result["uploaded"] = found["ms"] / 1000
            result.update(part_size=part_size, parts=found["parts"], parallel=self.parallel)
            written = server.bare_dir / f"{found['upload']}.bin"
            if sha256_of(written) != sha:
                result["error"], result["uploaded"] = "the bare endpoint wrote other bytes", None
            written.unlink()
        if result["error"]:
            result["browser_log"] = [e.get("message", "") for e in driver.get_log("browser")][-5:]
        return result


def plan_of(
    versus_dcc: dict[int, int], limits: list[int], versus_bare: dict[int, int], bare_kinds: tuple[str, ...]
) -> dict[int, dict[str, int]]:
    """Runs per size and kind: the sizes of both comparisons, a size in both run once for both."""
    plan: dict[int, dict[str, int]] = {}

    def want(size: int, kind: str, n: int) -> None:
        kinds = plan.setdefault(size, {})
        kinds[kind] = max(kinds.get(kind, 0), n)

    for size, n in versus_dcc.items():
        want(size, "ours", n)
        want(size, "theirs", n)
    for size in limits:
        want(size, "ours", 1)
        want(size, "theirs", 1)
    for size, n in versus_bare.items():
        for kind in bare_kinds:
            want(size, kind, n)
    return dict(sorted(plan.items()))


def summary(kind: str, size: int, results: list[dict[str, Any]], tables: list[str]) -> dict[str, Any]:
    """The row of ``kind`` at ``size``: medians of its runs (none if any failed)."""

    def med(key: str) -> float | None:
        values = [r[key] for r in results if r.get(key) is not None]
        return median(values) if values and not errors else None

    errors = [r["error"] for r in results if r.get("error")]
    answered, uploaded = med("answered"), med("uploaded")
    growth = [r["server_growth"] for r in results if r.get("server_growth") is not None]
    first = next((r for r in results if r.get("part_size")), {})
    return {
        "component": COMPONENTS[kind],
        "tables": tables,
        "size": size,
        "runs": len(results),
        "seconds": answered,
        "mib_per_s": size / MiB / answered if answered else None,
        "upload_seconds": uploaded,
        "mb_per_s": size / MB / uploaded if uploaded else None,
        "server_growth": max(growth) if growth else None,
        "server_cpu": med("server_cpu"),
        "browser_cpu": med("browser_cpu"),
        "load": mean(r.get("load", 0.0) for r in results),
        "part_size": first.get("part_size"),
        "parallel": max((r.get("parallel") or 0 for r in results), default=0) or None,
        "error": errors[0] if errors else None,
        "browser_log": [line for r in results for line in r.get("browser_log", [])][-5:],
    }


def measure(
    versus_dcc: dict[int, int],
    limits: list[int],
    versus_bare: dict[int, int],
    bare_kinds: tuple[str, ...] = BARE_KINDS,
) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="dfc-bench-uploads-"))
    rows = []
    try:
        bench = Bench(home)
        try:
            for size, kinds in plan_of(versus_dcc, limits, versus_bare, bare_kinds).items():
                path = home / f"file-{size // MiB}MiB.bin"
                sha = write_file(path, size)
                runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
                for i in range(max(kinds.values())):
                    for kind, n in kinds.items():  # interleaved: a shared machine's noise falls on all alike
                        if i < n:
                            runs[kind].append(bench.run(kind, path, sha))
                path.unlink()
                for kind, results in runs.items():
                    tables = [
                        name
                        for name, sizes, kinds_in in (
                            ("dcc", [*versus_dcc, *limits], ("ours", "theirs")),
                            ("bare", list(versus_bare), bare_kinds),
                        )
                        if size in sizes and kind in kinds_in
                    ]
                    rows.append(summary(kind, size, results, tables))
                    print(json.dumps(rows[-1]), file=sys.stderr)
        finally:
            bench.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return rows


def size_label(size: int) -> str:
    return f"{size // MiB} MiB" if size < 1024 * MiB else f"{size // (1024 * MiB)} GiB"


def table(rows: list[dict[str, Any]]) -> str:
    """The README's table: medians per size, ours against dcc.Upload, to the callback's answer."""
    rows = [r for r in rows if "dcc" in r.get("tables", ["dcc"])]
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
        lines.append(f"| {size_label(size)} | {cell(ours)} | {cell(theirs)} | {ratio} | {memory} |")
    return "\n".join(lines)


def bare_table(rows: list[dict[str, Any]]) -> str:
    """Ours against the bare endpoint, to the upload's end: MB/s, the ratio and the worker's growth."""
    rows = [r for r in rows if "bare" in r.get("tables", [])]
    if not rows:
        return ""
    by = {(r["component"], r["size"]): r for r in rows}
    lines = [
        f"| size | upload | MB/s (s) | / bare (target ≥ {TARGET_RATIO}) | server peak growth "
        f"(target < {TARGET_GROWTH // MiB} MiB) | server CPU | browser CPU | load (1 min) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes = set()
    for size in sorted({r["size"] for r in rows}):
        bare = by.get((COMPONENTS["bare"], size))
        for kind in ("ours", *CRC_MODES):
            r = by.get((COMPONENTS[kind], size))
            if r is None:
                continue
            if r["upload_seconds"] is None:
                speed = f"fails ({r['error']})" if r["error"] else "fails"
            else:
                speed = f"{r['mb_per_s']:.0f} ({r['upload_seconds']:.2f} s)"
            ratio = "-"
            if kind != "bare" and bare is not None and r["mb_per_s"] and bare["mb_per_s"]:
                ratio = f"{r['mb_per_s'] / bare['mb_per_s']:.2f}"
                if kind == "ours":
                    ratio += " (met)" if r["mb_per_s"] / bare["mb_per_s"] >= TARGET_RATIO else " (missed)"
            growth = "-" if r["server_growth"] is None else f"{r['server_growth'] / MiB:.1f} MiB"
            if kind == "ours" and r["server_growth"] is not None:
                growth += " (met)" if r["server_growth"] < TARGET_GROWTH else " (missed)"
            cpu = ["-" if r[key] is None else f"{r[key]:.2f} s" for key in ("server_cpu", "browser_cpu")]
            name = "`Upload` (to stored)" if kind == "ours" else r["component"]
            cells = [size_label(size), name, speed, ratio, growth, *cpu, f"{r['load']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
            if kind == "ours":
                notes.add(
                    f"{size_label(size)}: parts of {size_label(r['part_size'] or 0)}, "
                    f"{bare['parallel'] if bare else '?'} in flight (transfer.js PARALLEL; seen in the page "
                    f"for ours: {r['parallel']}), {r['runs']} runs each way, medians"
                )
    return "\n".join([*lines, "", *sorted(notes)])


def load_line(label: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {label}: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


# -- profiling ----------------------------------------------------------------------------


def profile(size: int) -> dict[str, Any]:
    """One upload of ``size`` each way on a worker timing its stages, then one of ours under cProfile."""
    home = Path(tempfile.mkdtemp(prefix="dfc-bench-upload-profile-"))
    found: dict[str, Any] = {"size": size}
    try:
        path = home / "file.bin"
        sha = write_file(path, size)
        for mode in ("stages", "cprofile"):
            bench = Bench(home, mode)
            try:
                bench.run("ours", path, sha)  # warms up (imports, first temp files), learns the part size
                bench.server.get("/bench/profile?reset=1")
                found[mode] = {kind: bench.run(kind, path, sha) for kind in ("ours", "bare")}
                found[mode]["report"] = bench.server.get("/bench/profile")
            finally:
                bench.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return found


def stages_table(found: dict[str, Any]) -> str:
    """Per kind of request: each stage's calls, wall and CPU seconds, ms per part, share of the request."""
    stages = found["stages"]["report"]["stages"]
    lines = [
        f"Stages of one {size_label(found['size'])} upload each way (wall and CPU time summed over the "
        "worker's threads; `a > b`: b inside a):",
        "",
        "| request | stage | calls | wall s | CPU s | wall ms per part | share of requests' wall |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    from benchmarks.upload_profile import REQUEST

    for kind in sorted({s[0] for s in stages}):
        mine = [s for s in stages if s[0] == kind]
        whole = next((s for s in mine if s[1] == REQUEST), None)
        parts = whole[2] if whole else 0
        total = whole[3] if whole else 0.0
        top = [s for s in mine if s[1].count(" > ") == 1]
        rows = sorted(mine, key=lambda s: s[1])
        if whole is not None:
            rows.append([kind, REQUEST + " > (framework, unaccounted)", parts, total - sum(s[3] for s in top),
                         whole[4] - sum(s[4] for s in top)])  # fmt: skip
        for _, name, calls, wall, cpu in rows:
            per = f"{1000 * wall / parts:.2f}" if parts else "-"
            share = f"{100 * wall / total:.0f}%" if total else "-"
            label = name.removeprefix(REQUEST + " > ") if name != REQUEST else name
            lines.append(f"| {kind} | {label} | {calls:.0f} | {wall:.3f} | {cpu:.3f} | {per} | {share} |")
    runs = found["stages"]
    lines.append("")
    for kind in ("ours", "bare"):
        r = runs.get(kind, {})
        lines.append(
            f"- {kind}: upload {r.get('uploaded') or 0:.2f} s, worker CPU {r.get('server_cpu') or 0:.2f} s "
            f"(whole run{', callback hashing included' if kind == 'ours' else ''}), browser CPU "
            f"{r.get('browser_cpu') or 0:.2f} s"
        )
    return "\n".join(lines)


def cprofile_text(found: dict[str, Any]) -> str:
    texts = found["cprofile"]["report"]["cprofile"]
    return "\n".join(f"### cProfile, {kind}\n\n```\n{text.strip()}\n```" for kind, text in texts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 runs each, no limit runs")
    parser.add_argument("--output", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--table", type=Path, help="print the tables of rows written by --output, measure nothing"
    )
    parser.add_argument("--bare-only", action="store_true", help="only the comparison with the bare endpoint")
    parser.add_argument(
        "--bare-sizes",
        help="sizes in MiB against the bare endpoint, with runs of each: 256x3,1024x3 (the full mode's)",
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="also upload to the bare endpoint with the CRC-32s computed in other ways (see WHAT_IF_KINDS)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="then time the stages of the largest bare size's upload"
    )
    args = parser.parse_args()
    if args.table is not None:
        rows = json.loads(args.table.read_text())
        print(table(rows))
        print()
        print(bare_table(rows))
        return
    started = time.monotonic()
    print(load_line("at the start"))
    versus_bare = BARE_QUICK if args.quick else BARE_FULL
    if args.bare_sizes:
        versus_bare = {}
        for item in args.bare_sizes.split(","):
            size, _, runs = item.partition("x")
            versus_bare[int(size) * MiB] = int(runs or 3)
    bare_kinds = BARE_KINDS + WHAT_IF_KINDS if args.what_if else BARE_KINDS
    if args.bare_only:
        rows = measure({}, [], versus_bare, bare_kinds)
    else:
        rows = measure(QUICK if args.quick else FULL, [] if args.quick else LIMITS, versus_bare, bare_kinds)
    if args.output is not None:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
    if not args.bare_only:
        print(table(rows))
        print()
    print(bare_table(rows))
    print(load_line("at the end"))
    if args.profile:
        found = profile(max(versus_bare))
        print()
        print(stages_table(found))
        print()
        print(cprofile_text(found))
    print(f"took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
