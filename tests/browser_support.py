"""Helpers for the browser tests: headless Chromium, example apps served in-process, request logs.

Chromium runs through dash's own selenium wrapper (``dash.testing.browser.Browser``, what the ``dash_duo``
fixture is made of), configured here rather than through a ``pytest_setup_options`` hook in conftest.py.
It starts the first ``chromedriver`` on PATH: the browser fixture puts ``CHROMEDRIVER``'s folder first.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from werkzeug.serving import make_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DFC_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

T = TypeVar("T")
_module_ids = itertools.count()


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or ``None`` if they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found: install Debian's chromium and chromium-driver (bash .ci/run does)"
    return None


def start_browser(profile_dir: Path, download_dir: Path) -> Any:
    """A headless Chromium with a fresh profile, downloading into ``download_dir``."""
    from dash.testing.browser import Browser
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    browser = Browser(
        "chrome", headless=True, options=[options], download_path=str(download_dir), percy_run=False
    )
    browser.driver.implicitly_wait(0)  # we poll with deadlines; dash's 2 s implicit wait only slows misses
    set_download_dir(browser.driver, download_dir)
    set_viewport(browser.driver, 1024, 720)
    return browser


def set_download_dir(driver: Any, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(path)})


def set_viewport(driver: Any, width: int, height: int) -> None:
    """Make the page exactly ``width`` x ``height`` CSS pixels (screenshots are then that size)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def wait_until(
    condition: Callable[[], T | None], *, timeout: float = 10, message: str | Callable[[], str] = ""
) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``message`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"not within {timeout} s: {text or condition}")
        time.sleep(0.05)


@contextmanager
def loaded_example(name: str) -> Iterator[ModuleType]:
    """Import ``examples/<name>.py`` by path as a fresh module (a new app each time)."""
    module_name = f"dfc_example_{name}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # Dash looks its module up to find the assets folder
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)


@dataclass
class Exchange:
    """One request the server answered."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int
    response_headers: dict[str, str]


@dataclass
class RequestLog:
    """WSGI middleware that keeps every request and the status and headers of its answer."""

    app: Any
    exchanges: list[Exchange] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_headers = {
            k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")

        def record(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            self.exchanges.append(
                Exchange(
                    environ["REQUEST_METHOD"],
                    path,
                    environ.get("QUERY_STRING", ""),
                    request_headers,
                    int(status[:3]),
                    dict(headers),
                )
            )
            return start_response(status, headers, *args)

        return self.app(environ, record)

    def to(self, fragment: str) -> list[Exchange]:
        return [e for e in list(self.exchanges) if fragment in e.path]


@contextmanager
def serving(wsgi_app: Any) -> Iterator[tuple[str, RequestLog]]:
    """Serve ``wsgi_app`` from a threaded werkzeug server on a free port of 127.0.0.1."""
    log = RequestLog(wsgi_app)
    server = make_server("127.0.0.1", 0, log, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="example-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
