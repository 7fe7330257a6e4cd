"""Every server Dash runs on, in headless Chromium: a plain ``dash.Dash`` with ``files.init_app(app)``
and ``@files.callback`` under gunicorn (Flask, two gthread workers), uvicorn (FastAPI) and hypercorn
(Quart), the last two also with ``websocket_callbacks=True``; and a ``DashProxy`` on FastAPI.

On each: a callback's PNG is served to an ``<img>``; a CSV returned to a ``FileOutput`` on a
``dcc.Download`` is saved under its exact non-ASCII name and bytes, and nothing before the click; a
64 MiB file sent through ``Upload`` reaches a ``FileInput`` callback intact; a ``private=True``
picture loads in the browser whose callback made it and is a 404 to anyone else. With WebSocket
callbacks, every callback comes over the socket: no ``POST /_dash-update-component``, neither in the
server's access log nor in the browser's resource timing.

With WebSocket callbacks, an app whose only private files are its ``Upload``'s (private by default)
gives the page its session cookie before the socket opens: the first upload's ``FileInput`` callback,
over that socket, knows the browser.

The apps are ``tests/apps/servers_*.py``; each server runs in a subprocess on a free port of
127.0.0.1, its default store (``DFC_TRANSFORM_DIR``) in a temporary directory, and is stopped by its
process id when its tests are done.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from .apps.servers_common import CSV, CSV_NAME, MIB, PNG, PNG_WIDTH
from .browser_support import CHROMEDRIVER, missing_browser, start_browser, wait_until
from .servers import free_port

pytestmark = [
    # selenium 4.2 (dash[testing] caps it there) calls HTTPResponse.getheader(), deprecated by urllib3.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
    pytest.mark.timeout(180),
]

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_SIZE = 64 * MIB
#: How long a server may take to answer its first request (it imports Dash, pandas...).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
#: A callback over HTTP, as each server's access log writes it (gunicorn and hypercorn: our format;
#: uvicorn: its own, ``"POST /_dash-update-component HTTP/1.1" 200``).
HTTP_CALLBACK = re.compile(r"\bPOST /_dash-update-component\b")
#: A WebSocket for callbacks, accepted (uvicorn: ``"WebSocket /_dash-ws-callback" [accepted]``;
#: hypercorn: ``GET /_dash-ws-callback 101``).
SOCKET_ACCEPTED = re.compile(r'WebSocket /_dash-ws-callback" \[accepted\]|GET /_dash-ws-callback 101\b')


@dataclass(frozen=True)
class Kind:
    """One app under one server."""

    name: str
    #: The module under tests/apps/ whose ``server`` is served.
    module: str
    #: ``gunicorn``, ``uvicorn`` or ``hypercorn``.
    runner: str
    websocket: bool = False
    env: tuple[tuple[str, str], ...] = ()


KINDS = [
    Kind("gunicorn-flask", "servers_flask", "gunicorn"),
    Kind("uvicorn-fastapi", "servers_fastapi", "uvicorn"),
    Kind("hypercorn-quart", "servers_quart", "hypercorn"),
    Kind("uvicorn-fastapi-websocket", "servers_fastapi", "uvicorn", websocket=True),
    Kind("hypercorn-quart-websocket", "servers_quart", "hypercorn", websocket=True),
]
#: WebSocket callbacks in an app that makes no private file of its own: only Upload's (private by default).
UPLOAD_ONLY_PRIVATE = [
    Kind(
        f"{k.name}-no-private-output",
        k.module,
        k.runner,
        websocket=True,
        env=(("DFC_TEST_PRIVATE_OUTPUT", "0"),),
    )
    for k in KINDS
    if k.websocket
]
#: dash-extensions' DashProxy on FastAPI, with ``app.server.secret_key`` set after it is made: without
#: it, DashProxy's first request fails (``'FastAPI' object has no attribute 'secret_key'``).
PROXY = Kind(
    "uvicorn-dashproxy-fastapi",
    "servers_proxy_fastapi",
    "uvicorn",
    env=(("DFC_TEST_SECRET_KEY", "a secret shared by every process"),),
)


class AppServer:
    """``kind``'s app under its server, in a subprocess on a free port of 127.0.0.1.

    Its output and its access log go to ``home/server.log``; stopped by process id: SIGTERM, then
    SIGKILL after :data:`STOP_TIMEOUT`.
    """

    def __init__(self, kind: Kind, home: Path) -> None:
        self.kind = kind
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "server.log"
        self.store = home / "store"
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(home / "tmp"),
            "DFC_TRANSFORM_DIR": str(self.store),
            "DFC_TEST_WEBSOCKET": "1" if kind.websocket else "0",
            **dict(kind.env),
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                self.argv(), cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        atexit.register(self.stop)  # should the fixture's teardown never run
        try:
            wait_until(self._answers, timeout=START_TIMEOUT, message=lambda: f"{kind.name}: {self.output()}")
            if kind.runner == "gunicorn":
                self._warm_every_worker()
        except BaseException:
            self.stop()
            raise

    def argv(self) -> list[str]:
        app = f"tests.apps.{self.kind.module}:server"
        address = f"127.0.0.1:{self.port}"
        if self.kind.runner == "gunicorn":
            return [
                sys.executable, "-m", "gunicorn", "-b", address, "-w", "2", "-k", "gthread", "--threads", "4",
                "--timeout", "120", "--graceful-timeout", "5",
                # A new connection per request: the kernel hands requests (and upload parts) to either worker.
                "--keep-alive", "0",
                "--access-logfile", "-", "--access-logformat", "%(p)s %(m)s %(U)s %(s)s",
                app,
            ]  # fmt: skip
        if self.kind.runner == "uvicorn":
            return [
                sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port),
                "--timeout-graceful-shutdown", "5",
            ]  # fmt: skip
        assert self.kind.runner == "hypercorn", self.kind
        return [
            sys.executable, "-m", "hypercorn", "--bind", address, "--graceful-timeout", "5",
            "--access-logfile", "-", "--access-logformat", "%(m)s %(U)s %(s)s",
            app,
        ]  # fmt: skip

    def _answers(self) -> bool:
        assert self.process.poll() is None, f"{self.kind.name} exited: {self.output()}"
        try:
            with urllib.request.urlopen(self.url + "/", timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # it answers; what it answers is for the test to say
        except OSError:
            return False

    def _warm_every_worker(self, workers: int = 2) -> None:
        """Have each gunicorn worker serve the page once, alone, before the browser comes.

        Works around a race of Dash 4.4.1, not of this package: a plain ``dash.Dash`` marks its
        ``_setup_server`` done before it registers the paths of its scripts, so the browser's
        simultaneous first requests to a worker that has served nothing yet may find no library
        registered (``DependencyException: "dash" is not a registered library``, a 500 for
        ``dash_renderer.min.js``: the page never renders). ``DashProxy`` holds a lock there.
        """

        def all_warm() -> bool:
            self._answers()
            return len(set(re.findall(r"^<(\d+)> GET / 200", self.output(), re.MULTILINE))) >= workers

        wait_until(all_warm, timeout=30, message=lambda: f"not every worker served /: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def mark(self) -> int:
        """Where the server's output ends now (see :meth:`check_no_error`)."""
        return len(self.output())

    def check_no_error(self, since: int) -> None:
        """Fail at once if the server logged a traceback after ``since``: a wait would only time out."""
        tail = self.output()[since:]
        if "Traceback (most recent call last)" in tail:
            raise AssertionError(f"{self.kind.name} failed:\n{tail[-4000:]}")

    def http_callbacks(self) -> int:
        """How many callbacks came over HTTP (``POST /_dash-update-component``) so far."""
        return len(HTTP_CALLBACK.findall(self.output()))

    def sockets_accepted(self) -> int:
        return len(SOCKET_ACCEPTED.findall(self.output()))

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


def _serve(kind: Kind, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(kind, tmp_path_factory.mktemp(kind.name))
    try:
        yield server
    finally:
        server.stop()
        # pytest keeps the last runs' temporary directories: not a store of uploads each.
        shutil.rmtree(server.store, ignore_errors=True)


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    yield from _serve(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=UPLOAD_ONLY_PRIVATE, ids=[k.name for k in UPLOAD_ONLY_PRIVATE])
def upload_only_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    yield from _serve(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def proxy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    yield from _serve(PROXY, tmp_path_factory)


@pytest.fixture
def browsers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """Start headless Chromiums, each with its own profile and download folder (``tmp_path/<name>``);
    all quit at the end of the test."""
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)  # a skip would hide a missing install step in CI
    monkeypatch.setenv("PATH", f"{Path(CHROMEDRIVER).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    started: list[Any] = []

    def start(name: str) -> Any:
        chromium = start_browser(tmp_path / name / "profile", tmp_path / name / "downloads")
        started.append(chromium)
        return chromium.driver

    try:
        yield start
    finally:
        for chromium in started:
            chromium.driver.quit()


@pytest.fixture
def driver(browsers: Callable[[str], Any]) -> Any:
    return browsers("first")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A 64 MiB file that differs in every MiB, and its SHA-256."""
    path = tmp_path_factory.mktemp("upload") / "big upload.bin"
    sha = hashlib.sha256()
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(0, UPLOAD_SIZE, MIB):
            piece = i.to_bytes(8, "big") + block[8:]
            sha.update(piece)
            f.write(piece)
    yield path, sha.hexdigest()
    path.unlink()


# -- helpers ----------------------------------------------------------------------------------------


def _open(driver: Any, server: AppServer) -> None:
    driver.get(server.url + "/")
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#up.dfc-upload"),
        timeout=30,
        message=lambda: f"the page never rendered; the server said: {server.output()[-3000:]}",
    )


def _click(driver: Any, element_id: str) -> None:
    driver.find_element(By.ID, element_id).click()


def _loaded_picture(driver: Any, element_id: str, server: AppServer, since: int) -> tuple[str, int]:
    """The ``src`` attribute of the ``<img>`` and its natural width, once it has loaded."""

    def loaded() -> Any:
        server.check_no_error(since)
        return driver.execute_script(
            "const img = document.getElementById(arguments[0]);"
            "return img && img.getAttribute('src') && img.complete"
            " ? [img.getAttribute('src'), img.naturalWidth] : null;",
            element_id,
        )

    found = wait_until(
        loaded,
        timeout=20,
        message=lambda: f"#{element_id} never loaded; the server said: {server.output()[-3000:]}",
    )
    return str(found[0]), int(found[1])


def _browser_fetch(driver: Any, url: str) -> int:
    """The status of ``fetch(url)`` in the page of ``driver`` (with its cookies)."""
    return int(
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => done(r.status), e => done(String(e)));",
            url,
        )
    )


def _plain_get(url: str) -> tuple[int, bytes]:
    """A GET with no cookie at all."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _http_callbacks_seen_by_browser(driver: Any) -> int:
    return int(
        driver.execute_script(
            "return performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/_dash-update-component')).length;"
        )
    )


def _check_transport(server: AppServer, driver: Any) -> None:
    """Callbacks came over the WebSocket when the app asks for it, over HTTP otherwise."""
    in_browser = _http_callbacks_seen_by_browser(driver)
    if server.kind.websocket:
        assert server.http_callbacks() == 0 and in_browser == 0, server.output()[-3000:]
        assert server.sockets_accepted() >= 1, server.output()[-3000:]
    else:
        assert server.http_callbacks() >= 1 and in_browser >= 1, server.output()[-3000:]


# -- the tests --------------------------------------------------------------------------------------


def _shows_a_served_png(driver: Any, server: AppServer) -> None:
    since = server.mark()
    _open(driver, server)
    _click(driver, "plot")
    src, width = _loaded_picture(driver, "img", server, since)
    assert src.startswith("/_dash-files/") and src.endswith("/plot.png"), src
    assert width == PNG_WIDTH
    assert _plain_get(server.url + src) == (200, PNG)
    _check_transport(server, driver)


def test_a_callback_shows_a_served_png(driver: Any, server: AppServer) -> None:
    _shows_a_served_png(driver, server)


def test_a_download_is_saved_under_its_exact_name_only_after_the_click(
    driver: Any, server: AppServer, tmp_path: Path
) -> None:
    folder = tmp_path / "first" / "downloads"
    since = server.mark()
    _open(driver, server)
    # The page has rendered and settled: nothing was saved, and nothing is within a second either.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert not list(folder.iterdir()), os.listdir(folder)
        time.sleep(0.1)
    _click(driver, "export")
    saved = folder / CSV_NAME

    def finished() -> bool:
        server.check_no_error(since)
        return saved.is_file() and not list(folder.glob("*.crdownload"))

    wait_until(
        finished,
        timeout=30,
        message=lambda: (
            f"{CSV_NAME!r} not saved; the folder has {os.listdir(folder)}; {server.output()[-2000:]}"
        ),
    )
    assert saved.read_bytes() == CSV
    assert os.listdir(folder) == [CSV_NAME]
    _check_transport(server, driver)


def _uploads(driver: Any, server: AppServer, path: Path, sha: str, since: int) -> None:
    """Send ``path`` through the Upload; its callback shows its name, size and SHA-256."""
    driver.find_element(By.CSS_SELECTOR, "#up input[type=file]").send_keys(str(path))
    expected = f"{path.name} {path.stat().st_size} {sha}"

    def digest() -> str:
        return str(driver.find_element(By.ID, "digest").text)

    def status() -> str:
        found = driver.find_elements(By.CSS_SELECTOR, "#up .dfc-upload__status")
        return str(found[0].text) if found else ""

    def done() -> bool:
        server.check_no_error(since)
        return digest() == expected

    wait_until(
        done,
        timeout=120,
        message=lambda: f"digest {digest()!r}, status {status()!r}; {server.output()[-3000:]}",
    )


def test_a_64_mib_upload_reaches_the_callback_intact(
    driver: Any, server: AppServer, big_file: tuple[Path, str]
) -> None:
    path, sha = big_file
    assert path.stat().st_size == UPLOAD_SIZE
    since = server.mark()
    _open(driver, server)
    _uploads(driver, server, path, sha, since)
    _check_transport(server, driver)


def test_a_private_png_opens_only_in_the_browser_that_made_it(
    browsers: Callable[[str], Any], server: AppServer
) -> None:
    driver = browsers("first")
    since = server.mark()
    _open(driver, server)
    # The page gave this browser its session: the app makes private files.
    assert any(c["name"] == "dfc_session" for c in driver.get_cookies()), driver.get_cookies()
    _click(driver, "private")
    src, width = _loaded_picture(driver, "private-img", server, since)
    assert src.startswith("/_dash-files/") and src.endswith("/private.png"), src
    assert width == PNG_WIDTH
    assert _browser_fetch(driver, src) == 200
    _check_transport(server, driver)
    # Anyone else: a client without the cookie, and another browser with a session of its own.
    assert _plain_get(server.url + src)[0] == 404
    other = browsers("second")
    _open(other, server)
    assert any(c["name"] == "dfc_session" for c in other.get_cookies())
    assert _browser_fetch(other, src) == 404


def test_a_private_upload_reaches_a_callback_over_the_websocket_of_a_fresh_page(
    driver: Any, upload_only_server: AppServer, tmp_path: Path
) -> None:
    """An app whose only private files are its Upload's (private by default), with WebSocket
    callbacks: the first upload of a browser that has no session yet reaches its callback."""
    path = tmp_path / "small.bin"
    path.write_bytes(os.urandom(MIB))
    since = upload_only_server.mark()
    _open(driver, upload_only_server)
    _uploads(driver, upload_only_server, path, hashlib.sha256(path.read_bytes()).hexdigest(), since)
    _check_transport(upload_only_server, driver)


def test_dashproxy_on_fastapi_serves_with_a_secret_key_set_after_it_is_made(
    driver: Any, proxy_server: AppServer
) -> None:
    _shows_a_served_png(driver, proxy_server)
