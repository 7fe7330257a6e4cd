"""Uploads in a real browser: headless Chromium sends a large generated file through ``Upload`` to gunicorn
(two gthread workers) over a TCP proxy that cuts every connection mid-upload; the upload resumes, the
callback reads the exact bytes, the progress bar moves, and the workers' memory stays bounded.

The app is :func:`make_app`, which gunicorn imports from this module (``tests.test_upload_browser:make_app()``).
"""

from __future__ import annotations

import hashlib
import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_extensions.enrich import DashProxy, Output, html
from flask import Flask
from selenium.webdriver.common.by import By

from dfc_transform import FileInput, FileServeTransform, Upload, UploadedFile

from .browser_support import (
    CHROMEDRIVER,
    RequestLog,
    loaded_example,
    missing_browser,
    serving,
    start_browser,
    wait_until,
)
from .servers import free_port

pytestmark = [pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning")]

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
#: The file of the main test. The issue asks for 1 GiB; see test_a_large_upload_... for its runtime.
SIZE = int(os.environ.get("DFC_TEST_UPLOAD_SIZE", str(1024 * MiB)))
#: What the workers may grow by, together, while the file goes through them.
MEMORY_BUDGET = 64 * MiB


def make_app() -> Flask:
    """The app gunicorn serves: an Upload whose callback hashes what it reads."""
    app = DashProxy(__name__, transforms=[FileServeTransform(timeout=600)])
    app.layout = html.Div([Upload(id="up", max_size=4 * 1024 * MiB), html.Div(id="digest")])

    @app.callback(Output("digest", "children"), FileInput("up", "value"), prevent_initial_call=True)
    def digest(upload: UploadedFile) -> str:
        sha = hashlib.sha256()
        with upload.open() as stream:
            while block := stream.read(MiB):
                sha.update(block)
        modified = "-" if upload.last_modified is None else f"{upload.last_modified:.3f}"
        return f"{upload.name} {upload.size} {sha.hexdigest()} {os.getpid()} {modified}"

    @app.server.get("/pid")
    def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app.server


# -- a TCP proxy that can cut connections ---------------------------------------------------


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; :meth:`cut` drops every connection and refuses new
    ones until :meth:`restore`. Counts the bytes sent from the browser to the server."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refusing = False
        self.sent_up = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._stopped = False
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, server = pair
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select(timeout=1):
                    data = key.fileobj.recv(1024 * 1024)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
                    if key.fileobj is client:
                        self.sent_up += len(data)
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                self._pairs.discard(pair)
            for s in pair:
                s.close()

    def cut(self) -> None:
        """Drop every connection now (both ends see a reset) and refuse new ones."""
        self.refusing = True
        self.cuts += 1
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            for s in pair:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restore(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self._stopped = True
        self.cut()
        self.cuts -= 1
        self.listener.close()


# -- gunicorn and its workers' memory ---------------------------------------------------------


class Gunicorn:
    """:func:`make_app` under gunicorn, two gthread workers, an access log with each request's worker."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.log = home / "gunicorn.log"
        self.access = home / "access.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DFC_TRANSFORM_DIR": str(home / "store")}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", "-w", "2",
                 "-k", "gthread", "--threads", "4", "--timeout", "120",
                 # A new connection per request, so that the kernel hands parts to either worker.
                 "--keep-alive", "0",
                 "--access-logfile", str(self.access), "--access-logformat", "%(p)s %(m)s %(U)s %(s)s",
                 "tests.test_upload_browser:make_app()"],
                cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._ready, timeout=60, message=lambda: "gunicorn did not start: " + self.log.read_text())
        wait_until(lambda: len(self.workers()) == 2, timeout=30, message="gunicorn has not two workers")

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"GET /pid HTTP/1.0\r\n\r\n")
                return s.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")
        except OSError:
            return False

    def workers(self) -> list[int]:
        """The worker processes (children of the master), from /proc."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry))
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def reset_peak(pid: int) -> int:
    """Reset the peak RSS of ``pid`` (VmHWM) to its current RSS; return that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid, "VmRSS:")


def peak(pid: int) -> int:
    return _status(pid, "VmHWM:")


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)
    monkeypatch.setenv("PATH", f"{Path(CHROMEDRIVER).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    chromium = start_browser(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield chromium
    finally:
        chromium.driver.quit()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Gunicorn]:
    server = Gunicorn(tmp_path)
    try:
        yield server
    finally:
        server.stop()
        # pytest keeps the last runs' temporary directories: not a GiB of store each.
        shutil.rmtree(tmp_path / "store", ignore_errors=True)


def write_file(path: Path, size: int) -> str:
    """``size`` bytes that differ in every MiB; return their SHA-256."""
    sha = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(0, size, MiB):
            piece = (i.to_bytes(8, "big") + block[8:])[: min(MiB, size - i)]
            sha.update(piece)
            f.write(piece)
    return sha.hexdigest()


def choose(driver: Any, path: Path, component: str = "up") -> None:
    """Choose ``path`` in the component's file input, as a user picking it would."""
    driver.find_element(By.CSS_SELECTOR, f"#{component} input[type=file]").send_keys(str(path))


def progress(driver: Any) -> float | None:
    bars = driver.find_elements(By.CSS_SELECTOR, "#up .dfc-upload__bar")
    return float(bars[0].get_attribute("aria-valuenow")) if bars else None


def status_text(driver: Any, component: str = "up") -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f"#{component} .dfc-upload__status")
    return str(found[0].text) if found else ""


def digest_text(driver: Any) -> str:
    return str(driver.find_element(By.ID, "digest").text)


def throttle(driver: Any, upload_bytes_per_s: int | None) -> None:
    """Slow the browser's uploads down (``None``: full speed again)."""
    if upload_bytes_per_s is None:
        driver.execute_cdp_cmd("Network.disable", {})
        return
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_s},
    )


# -- the tests --------------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_a_large_upload_survives_a_cut_connection_with_bounded_memory(
    browser: Any, gunicorn: Gunicorn, tmp_path: Path
) -> None:
    driver = browser.driver
    proxy = CuttingProxy(gunicorn.port)
    try:
        driver.get(f"http://127.0.0.1:{proxy.port}/")
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#up.dfc-upload"), timeout=30)
        # A small upload first: both workers have served the app and imported everything.
        small = tmp_path / "warm-up.bin"
        small_sha = write_file(small, 9 * MiB)
        choose(driver, small)
        wait_until(lambda: small_sha in digest_text(driver), timeout=60, message=lambda: digest_text(driver))

        big = tmp_path / "big.bin"
        expected = write_file(big, SIZE)
        os.utime(big, (1_600_000_000.25, 1_600_000_000.25))  # the browser's File.lastModified
        workers = gunicorn.workers()
        base = {pid: reset_peak(pid) for pid in workers}
        sent_before = proxy.sent_up
        started = time.monotonic()
        choose(driver, big)

        seen: list[float] = []
        cut_at: float | None = None
        retrying_seen = False

        def finished() -> bool:
            nonlocal cut_at, retrying_seen
            value = progress(driver)
            if value is not None and (not seen or value != seen[-1]):
                seen.append(value)
            if cut_at is None and value is not None and value >= 30:
                proxy.cut()  # mid-upload: every connection drops, new ones are refused for a while
                cut_at = time.monotonic()
            if cut_at is not None and proxy.refusing:
                retrying_seen = retrying_seen or "retrying" in status_text(driver)
                if retrying_seen or time.monotonic() - cut_at > 5:
                    proxy.restore()
            return expected in digest_text(driver)

        wait_until(finished, timeout=500, message=lambda: f"{status_text(driver)!r}, {digest_text(driver)!r}")
        elapsed = time.monotonic() - started
        growth = {pid: peak(pid) - base[pid] for pid in workers}
    finally:
        proxy.close()
        big_path = tmp_path / "big.bin"
        if big_path.exists():
            big_path.unlink()

    name, size, sha, _reader, modified = digest_text(driver).split()
    assert (name, int(size), sha, float(modified)) == ("big.bin", SIZE, expected, 1_600_000_000.25)
    print(f"\n{SIZE / MiB:.0f} MiB uploaded, cut once, resumed and hashed in {elapsed:.1f} s; "
          f"worker growth {[f'{g / MiB:.1f} MiB' for g in growth.values()]}; "
          f"{(proxy.sent_up - sent_before) / MiB:.0f} MiB sent")  # fmt: skip
    # The bar moved: many distinct values on the way up, never backwards by more than the parts in flight.
    assert len([v for v in seen if 0 < v < 100]) >= 5, seen
    assert seen[-1] == 100
    # The cut happened mid-upload, the component said it was retrying, and it resumed rather than
    # starting again: what was sent is the file plus at most the parts in flight at the cut, a few times.
    assert proxy.cuts == 1 and retrying_seen
    assert proxy.sent_up - sent_before < SIZE + 64 * MiB
    # Memory: the file went through the workers one chunk at a time.
    assert sum(growth.values()) < MEMORY_BUDGET, growth
    # Any worker takes any part: both wrote parts of the big file.
    puts = [line.split() for line in gunicorn.access.read_text().splitlines() if " PUT " in line]
    assert len({pid for pid, *_ in puts}) == 2
    assert any(method == "GET" and "/_upload/" in path for _, method, path, _ in
               (line.split() for line in gunicorn.access.read_text().splitlines()))  # fmt: skip


@pytest.fixture
def refusing_app(tmp_path: Path) -> Iterator[tuple[str, FileServeTransform, RequestLog]]:
    """In-process: a CSV-only Upload of at most 1 MiB, a styled one, a disabled one, and one for
    files the store's budget (40 MiB) cannot take."""
    transform = FileServeTransform(
        max_total_size=40 * MiB, max_upload_bytes=40 * MiB, max_upload_bytes_per_session=40 * MiB
    )
    app = DashProxy(__name__, transforms=[transform])
    app.layout = html.Div(
        [
            Upload(id="csv", accept=".csv", max_size=MiB),
            Upload(id="styled", style={"borderColor": "rgb(255, 0, 0)"}, className="mine"),
            Upload(id="off", disabled=True),
            Upload(id="up"),
            html.Div(id="digest"),
        ]
    )

    @app.callback(Output("digest", "children"), FileInput("up", "value"), prevent_initial_call=True)
    def show(upload: UploadedFile) -> str:
        return f"{upload.name} {upload.size} {hashlib.sha256(upload.read()).hexdigest()}"

    with serving(app.server) as (url, log):
        yield url, transform, log


def test_refusals_are_shown_cancel_removes_and_styles_can_be_overridden(
    browser: Any, refusing_app: tuple[str, FileServeTransform, RequestLog], tmp_path: Path
) -> None:
    url, transform, _ = refusing_app
    driver = browser.driver
    driver.get(url)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#up.dfc-upload"), timeout=30)

    # Refused in the browser, before anything is sent: a wrong type, then a file over max_size.
    wrong = tmp_path / "tool.exe"
    wrong.write_bytes(b"MZ")
    choose(driver, wrong, "csv")
    wait_until(
        lambda: status_text(driver, "csv") == "tool.exe is not a type this upload accepts (.csv)",
        message=lambda: status_text(driver, "csv"),
    )
    large = tmp_path / "large.csv"
    large.write_bytes(b"a,b\n" * (MiB // 4 + 1))
    choose(driver, large, "csv")
    wait_until(
        lambda: "this upload takes files up to 1.0 MiB" in status_text(driver, "csv"),
        message=lambda: status_text(driver, "csv"),
    )
    # Refused by the server, its sentence shown: the store's byte budget is smaller than the file.
    over = tmp_path / "over.bin"
    over.write_bytes(os.urandom(41 * MiB))
    choose(driver, over)
    wait_until(
        lambda: "over.bin is 41.0 MiB; this upload takes files up to 40.0 MiB" in status_text(driver),
        message=lambda: status_text(driver),
    )
    assert driver.find_elements(By.CSS_SELECTOR, "#up .dfc-upload__file--refused")
    # Refused by the server because the store is full of files, which uploads never evict (507).
    filler = transform.register(os.urandom(36 * MiB), filename="filler.bin")
    fits = tmp_path / "fits.bin"
    fits.write_bytes(os.urandom(8 * MiB))
    choose(driver, fits)
    wait_until(lambda: "the store is full" in status_text(driver), message=lambda: status_text(driver))
    assert transform.remove(filler)

    # Cancel, on a link slowed down to 4 MiB/s: the part written so far leaves the store.
    throttle(driver, 4 * MiB)
    slow = tmp_path / "slow.bin"
    slow.write_bytes(os.urandom(3 * MiB - 1))
    choose(driver, slow)
    wait_until(lambda: (progress(driver) or 0) > 5, message=lambda: status_text(driver))
    driver.find_element(By.CSS_SELECTOR, "#up .dfc-upload__cancel").click()
    wait_until(lambda: status_text(driver) == "cancelled", message=lambda: status_text(driver))
    wait_until(lambda: transform.stats().bytes == 0, message=lambda: str(transform.stats()))
    assert digest_text(driver) == ""
    throttle(driver, None)

    # The app's style wins over the default look; a disabled Upload takes nothing.
    styled = driver.find_element(By.ID, "styled")
    assert styled.value_of_css_property("border-top-color") == "rgba(255, 0, 0, 1)"
    assert styled.value_of_css_property("border-top-style") == "dashed"  # the rest of the default look
    assert (
        driver.find_element(By.ID, "up").value_of_css_property("border-top-color") == "rgba(154, 164, 177, 1)"
    )
    assert "mine" in (styled.get_attribute("class") or "").split()
    assert driver.find_element(By.CSS_SELECTOR, "#off input[type=file]").get_attribute("disabled") == "true"
    assert driver.find_element(By.ID, "off").get_attribute("aria-disabled") == "true"


def test_an_upload_resumes_after_the_page_is_reloaded(
    browser: Any, refusing_app: tuple[str, FileServeTransform, RequestLog], tmp_path: Path
) -> None:
    """Half sent, the page reloaded, the same file chosen again: only the missing parts are sent."""
    url, _, log = refusing_app
    driver = browser.driver
    driver.get(url)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#up.dfc-upload"), timeout=30)
    path = tmp_path / "resumed.bin"
    data = os.urandom(16 * MiB - 5)
    path.write_bytes(data)
    throttle(driver, 4 * MiB)
    choose(driver, path)
    # Parts 0 and 1 go first, side by side; past 60 %, both are stored and part 2 is on its way.
    wait_until(lambda: (progress(driver) or 0) > 60, timeout=30, message=lambda: status_text(driver))
    driver.refresh()
    throttle(driver, None)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#up.dfc-upload"), timeout=30)
    before = len(log.exchanges)
    choose(driver, path)
    expected = f"resumed.bin {len(data)} {hashlib.sha256(data).hexdigest()}"
    wait_until(lambda: digest_text(driver) == expected, timeout=60, message=lambda: digest_text(driver))
    after = [e for e in log.exchanges[before:] if "/_upload" in e.path]
    # Asked what the server has, then completed: never started again.
    assert [(e.method, e.path.count("/")) for e in after if e.method in ("POST", "GET")] == [
        ("GET", after[0].path.count("/")),
        ("POST", after[0].path.count("/")),
    ]
    sent = sorted(int(e.path.rsplit("/", 1)[1]) for e in after if e.method == "PUT")
    assert sent in ([2, 3], [3]), sent  # part 2 may have arrived just before the reload


def test_the_uploads_example_previews_a_csv_and_serves_a_cleaned_copy(browser: Any, tmp_path: Path) -> None:
    driver = browser.driver
    source = tmp_path / "sales.csv"
    source.write_text(
        "Region , Revenue (€)\n"
        + "".join(f" r{i} ,{i}\n" if i % 3 else f" r{i} ,{i}\n,\n" for i in range(5000)),
        encoding="utf-8",
    )
    with loaded_example("uploads") as module, serving(module.server) as (url, _):
        driver.get(url)
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#upload.dfc-upload"), timeout=30)
        choose(driver, source, "upload")
        summary = wait_until(lambda: driver.find_element(By.ID, "summary").text, timeout=30)
        assert summary == f"sales.csv: {source.stat().st_size:,} bytes, 5,000 rows; the first 5:"
        cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#preview th, #preview td")]
        assert cells[:6] == ["Region", "Revenue (€)", "r0", "0", "r1", "1"]
        link = driver.find_element(By.ID, "download").get_attribute("href")
        assert link.endswith("/sales-clean.csv")
        with urllib.request.urlopen(link) as response:
            cleaned = response.read().decode("utf-8").splitlines()
    assert cleaned[:3] == ["region,revenue", "r0,0", "r1,1"] and len(cleaned) == 5001
