"""Downloads from a button, in headless Chromium: a ``FileOutput`` on a ``dcc.Download`` saves the
served file under its exact (non-ASCII) name and bytes, while the callback's response carries only
its URL; a component the server never saw is looked up by the browser; a ``dcc.Store``'s ``data``
gets the URL.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache
from dash import dcc, html
from dash_extensions.enrich import DashProxy, Input, Output
from selenium.webdriver.common.by import By

from dfc_transform import FileOutput, FileServeTransform

from .browser_support import (
    CHROMEDRIVER,
    RequestLog,
    missing_browser,
    serving,
    start_browser,
    wait_until,
)

pytestmark = [
    # selenium 4.2 (dash[testing] caps it there) calls HTTPResponse.getheader(), deprecated by urllib3.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
]

NAME = "Überblick \u2013 données 報告.csv"  # an en dash, accents, CJK and spaces
LATER_NAME = "später \u2013 後で.txt"
CONTENT = bytes(range(256)) * (3 * 4096)  # 3 MiB, every byte value


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """dash's selenium Browser on a headless Chromium; downloads go to tmp_path/downloads."""
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)  # a skip would hide a missing install step in CI
    monkeypatch.setenv("PATH", f"{Path(CHROMEDRIVER).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    chromium = start_browser(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield chromium
    finally:
        chromium.driver.quit()


def _app(tmp_path: Path) -> DashProxy:
    app = DashProxy(
        __name__,
        transforms=[FileServeTransform(FileSystemCache(str(tmp_path / "store"), threshold=0))],
        suppress_callback_exceptions=True,  # "dl-later" is made by a callback
    )
    app.layout = html.Div(
        [
            html.Button("Export", id="export"),
            dcc.Download(id="dl"),
            html.Button("Make a Download", id="make"),
            html.Div(id="later"),
            html.Button("Export to it", id="export-later"),
            html.Button("Keep", id="keep"),
            dcc.Store(id="store"),
            html.Div(id="store-url"),
        ]
    )

    @app.callback(
        FileOutput("dl", "data", filename=NAME), Input("export", "n_clicks"), prevent_initial_call=True
    )
    def export(n: int) -> Any:
        return io.BytesIO(CONTENT)

    @app.callback(Output("later", "children"), Input("make", "n_clicks"), prevent_initial_call=True)
    def make(n: int) -> Any:
        return [dcc.Download(id="dl-later"), html.Span("made", id="made")]

    @app.callback(
        FileOutput("dl-later", "data", filename=LATER_NAME),
        Input("export-later", "n_clicks"),
        prevent_initial_call=True,
    )
    def export_later(n: int) -> Any:
        return io.StringIO("made after the layout")

    @app.callback(
        FileOutput("store", "data", filename="kept.txt"), Input("keep", "n_clicks"), prevent_initial_call=True
    )
    def keep(n: int) -> Any:
        return b"kept"

    @app.callback(Output("store-url", "children"), Input("store", "data"), prevent_initial_call=True)
    def show(url: str) -> str:
        return url

    return app


def _open(driver: Any, url: str) -> None:
    driver.get(url)
    wait_until(lambda: driver.find_elements(By.ID, "export"), message="the page never rendered")


def _click(driver: Any, element_id: str) -> None:
    wait_until(lambda: driver.find_elements(By.ID, element_id))[0].click()


def _saved(folder: Path, name: str) -> bytes:
    """The content of ``name`` once Chromium has finished saving it in ``folder``."""
    saved = folder / name
    wait_until(
        lambda: saved.is_file() and not list(folder.glob("*.crdownload")),
        timeout=20,
        message=lambda: f"{name!r} not downloaded; the folder has {os.listdir(folder)}",
    )
    return saved.read_bytes()


def _callback_sizes(log: RequestLog) -> list[int]:
    return [int(e.response_headers["Content-Length"]) for e in log.to("_dash-update-component")]


def test_a_download_saves_the_served_file_under_its_name(browser: Any, tmp_path: Path) -> None:
    driver = browser.driver
    with serving(_app(tmp_path).server) as (url, log):
        _open(driver, url)
        _click(driver, "export")
        assert _saved(tmp_path / "downloads", NAME) == CONTENT
        sizes = _callback_sizes(log)
        assert sizes and max(sizes) < 4096, sizes  # a URL went through the callback, not 3 MiB
        [get] = [e for e in log.to("/_dash-files/") if e.method == "GET"]
        assert get.status == 200 and get.response_headers["Content-Disposition"].startswith("attachment")
        # No link was left on the page.
        assert driver.execute_script("return document.querySelectorAll('a').length") == 0


def test_a_download_made_by_a_callback_is_found_by_the_browser(browser: Any, tmp_path: Path) -> None:
    driver = browser.driver
    with serving(_app(tmp_path).server) as (url, _):
        _open(driver, url)
        _click(driver, "make")
        wait_until(lambda: driver.find_elements(By.ID, "made"), message="the Download was not made")
        _click(driver, "export-later")
        assert _saved(tmp_path / "downloads", LATER_NAME) == b"made after the layout"


def test_a_store_gets_the_url_and_nothing_is_downloaded(browser: Any, tmp_path: Path) -> None:
    driver = browser.driver
    with serving(_app(tmp_path).server) as (url, log):
        _open(driver, url)
        _click(driver, "keep")
        shown = wait_until(
            lambda: driver.find_element(By.ID, "store-url").text, message="the store's URL was not shown"
        )
        # A `data` property gets the URL with a fragment of its own per answer (a dcc.Download saves
        # only when its data changes): the browser never sends it, the file's URL is the rest.
        path, _, fragment = shown.partition("#")
        assert path.startswith("/_dash-files/") and path.endswith("/kept.txt"), shown
        assert re.fullmatch(r"[0-9a-f]{8}", fragment), shown
        assert not [e for e in log.to("/_dash-files/") if e.method == "GET"]  # nothing fetched it
        assert not list((tmp_path / "downloads").iterdir())
