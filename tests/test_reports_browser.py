"""examples/reports.py in headless Chromium: each converter's section, clicked as a user would.

Every picture must render in the page, and every served file must read back, with the library of its
format, as the value the callback returned (the page fetches the bytes; the test parses them). The plotly
HTML must draw its chart and answer the mouse (plotly.js runs, sandboxed in an opaque origin that cannot
read the app's cookies), and weigh little (it loads the app's plotly.js); its PNG goes through kaleido.
Served like tests/test_browser.py serves the examples: imported by path, on a werkzeug server in-process.
"""

from __future__ import annotations

import base64
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from PIL import Image
from selenium.webdriver.common.by import By

from .browser_support import (
    CHROMEDRIVER,
    loaded_example,
    missing_browser,
    serving,
    start_browser,
    wait_until,
)

pytestmark = [
    # selenium 4.2 (dash[testing] caps it there) calls HTTPResponse.getheader(), deprecated by urllib3.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:openpyxl.*"),
]

FILE_URL = re.compile(r"/_dash-files/[A-Za-z0-9_-]{22}/(?P<name>[^/]+)")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)  # not a skip: a skip would hide a missing install step in CI
    monkeypatch.setenv("PATH", f"{Path(CHROMEDRIVER).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    chromium = start_browser(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield chromium
    finally:
        chromium.driver.quit()


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, str]]:
    """examples/reports.py imported afresh (temp files under tmp_path) and served: (module, base URL)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with ExitStack() as stack:
        module = stack.enter_context(loaded_example("reports"))
        url, _ = stack.enter_context(serving(module.server))
        yield module, url


# -- page helpers -------------------------------------------------------------------------------


def click(driver: Any, element_id: str) -> None:
    wait_until(lambda: driver.find_elements(By.ID, element_id))[0].click()


def attribute(driver: Any, element_id: str, name: str, *, timeout: float = 15) -> str:
    """Wait until the element has the attribute ``name``, a served file's URL; return it."""
    value = wait_until(
        lambda: driver.find_element(By.ID, element_id).get_attribute(name),
        timeout=timeout,
        message=f"#{element_id} got no {name}",
    )
    assert FILE_URL.search(value), value  # a URL of ours, not a data: URI
    return str(value)


def rendered_image(driver: Any, element_id: str, *, timeout: float = 15) -> dict[str, Any]:
    """Wait until the <img> has loaded a picture; fail if it broke."""

    def state() -> dict[str, Any] | None:
        found = driver.execute_script(
            "const i = document.getElementById(arguments[0]);"
            "return {src: i.getAttribute('src'), url: i.src, complete: i.complete,"
            " width: i.naturalWidth, height: i.naturalHeight};",
            element_id,
        )
        if not found["src"] or not found["complete"]:
            return None
        assert found["width"] > 0, f"#{element_id} did not render: {found}"
        return dict(found)

    return wait_until(state, timeout=timeout, message=f"#{element_id} never loaded")


def fetch(driver: Any, url: str) -> tuple[str, bytes]:
    """GET ``url`` from the page as its scripts would: the served name and the body."""
    driver.set_script_timeout(15)
    result = driver.execute_async_script(
        """
        const [url, done] = arguments;
        fetch(url).then(async (r) => {
            const bytes = new Uint8Array(await r.arrayBuffer());
            let binary = "";
            for (const b of bytes) binary += String.fromCharCode(b);
            done({status: r.status, body: btoa(binary)});
        }).catch((e) => done({error: String(e)}));
        """,
        url,
    )
    assert result.get("status") == 200, result
    match = FILE_URL.search(url)
    assert match is not None
    return match["name"], base64.b64decode(result["body"])


def served(driver: Any, element_id: str, name: str, prop: str = "href") -> bytes:
    """The bytes behind the element's URL, checking the file's served name."""
    shown, body = fetch(driver, attribute(driver, element_id, prop))
    assert shown == name, (element_id, shown)
    return body


def pixels(body: bytes, fmt: str) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    assert image.format == fmt
    image.load()
    return image


# -- the sections -------------------------------------------------------------------------------


def check_matplotlib(driver: Any) -> None:
    click(driver, "mpl")
    png = rendered_image(driver, "mpl-png")
    assert (png["width"], png["height"]) == (400, 250)  # figsize (4, 2.5) at 100 dpi
    assert rendered_image(driver, "mpl-svg")["width"] > 0
    name, body = fetch(driver, png["url"])
    assert name == "figure.png" and pixels(body, "PNG").size == (400, 250)
    assert served(driver, "mpl-svg", "wave.svg", "src").lstrip().startswith(b"<?xml")
    pdf = served(driver, "mpl-pdf", "wave.pdf")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")


def check_pil(driver: Any, module: ModuleType) -> None:
    click(driver, "pil")
    expected = module.badge_image(1)
    for element_id in ("pil-png", "pil-webp", "pil-jpeg"):
        assert (rendered_image(driver, element_id)["width"]) == 240
    png = pixels(served(driver, "pil-png", "image.png", "src"), "PNG")
    assert png.tobytes() == expected.tobytes()  # lossless: the very picture
    assert pixels(served(driver, "pil-webp", "image.webp", "src"), "WEBP").size == (240, 120)
    assert pixels(served(driver, "pil-jpeg", "badge.jpg", "src"), "JPEG").size == (240, 120)


def check_numpy(driver: Any, module: ModuleType) -> None:
    click(driver, "numpy")
    assert rendered_image(driver, "numpy-png")["width"] == 240
    expected = module.gradient_array(1)
    picture = pixels(served(driver, "numpy-png", "gradient.png", "src"), "PNG")
    np.testing.assert_array_equal(np.asarray(picture), expected)
    array = np.load(io.BytesIO(served(driver, "numpy-npy", "array.npy")), allow_pickle=False)
    np.testing.assert_array_equal(array, expected)


def check_pandas(driver: Any, module: ModuleType, downloads: Path) -> None:
    click(driver, "pandas")
    sales = module.SALES
    readers: dict[str, Callable[[io.BytesIO], pd.DataFrame]] = {
        "csv": pd.read_csv,
        "xlsx": lambda f: pd.read_excel(f, sheet_name="Sales"),
        "parquet": pd.read_parquet,
        "json": lambda f: pd.read_json(f, orient="records"),
        "feather": pd.read_feather,
    }
    for fmt, read in readers.items():
        body = served(driver, f"pandas-{fmt}", f"sales.{fmt}")
        pd.testing.assert_frame_equal(read(io.BytesIO(body)), sales, obj=fmt)
    (table,) = pd.read_html(io.StringIO(served(driver, "pandas-html", "sales.html", "src").decode("utf-8")))
    pd.testing.assert_frame_equal(table, sales)
    wait_until(
        lambda: driver.execute_script("return document.getElementById('pandas-html').src"),
        message="the table's iframe has no src",
    )
    # A download link is a plain <a href>: clicking it saves the file.
    click(driver, "pandas-csv")
    saved = downloads / "sales.csv"
    wait_until(
        lambda: saved.is_file() and not list(downloads.glob("*.crdownload")),
        message=lambda: f"sales.csv not downloaded: {os.listdir(downloads) if downloads.exists() else []}",
    )
    pd.testing.assert_frame_equal(pd.read_csv(saved), sales)


def check_polars(driver: Any, module: ModuleType) -> None:
    click(driver, "polars")
    expected = pl.from_pandas(module.SALES)
    readers: dict[str, Callable[[io.BytesIO], pl.DataFrame]] = {
        "csv": pl.read_csv,
        "parquet": pl.read_parquet,
        "json": pl.read_json,
    }
    for fmt, read in readers.items():
        body = served(driver, f"polars-{fmt}", f"sales.{fmt}")
        assert read(io.BytesIO(body)).equals(expected), fmt
    workbook = pd.read_excel(io.BytesIO(served(driver, "polars-xlsx", "sales.xlsx")))
    pd.testing.assert_frame_equal(workbook, module.SALES)


def check_plotly(driver: Any) -> None:
    driver.add_cookie({"name": "secret", "value": "app-only", "path": "/"})
    click(driver, "plotly")
    url = attribute(driver, "plotly-html", "src")
    name, body = fetch(driver, url)
    assert name == "figure.html" and len(body) < 50_000  # plotly.js is loaded from the app, not inlined
    assert b"/_dash-component-suites/plotly/" in body
    # The app cannot look into the frame: it is another (opaque) origin.
    assert driver.execute_script("return document.getElementById('plotly-html').contentDocument") is None
    driver.switch_to.frame(driver.find_element(By.ID, "plotly-html"))
    try:
        # plotly.js ran inside the iframe and drew the chart, which answers the mouse ...
        wait_until(
            lambda: (
                driver.execute_script("return document.querySelectorAll('.scatterlayer .trace').length") == 2
            ),
            timeout=20,
            message="the plotly chart was not drawn in its iframe",
        )
        assert driver.execute_script("return typeof Plotly.relayout") == "function"
        driver.execute_script(
            "Plotly.relayout(document.querySelector('.js-plotly-plot'), {'title.text': 'moved'})"
        )
        title = "const t = document.querySelector('.gtitle'); return t ? t.textContent : '';"
        wait_until(lambda: driver.execute_script(title) == "moved", timeout=10)
        # ... and cannot read the app's cookies or storage.
        seen = driver.execute_script(
            "try { return document.cookie; } catch (e) { return 'refused: ' + e.name; }"
        )
        assert "secret" not in seen, seen
        storage = driver.execute_script(
            "try { return String(window.localStorage.length); } catch (e) { return 'refused'; }"
        )
        assert storage == "refused", storage
    finally:
        driver.switch_to.default_content()
    click(driver, "plotly-png-button")
    state = rendered_image(driver, "plotly-png", timeout=90)  # kaleido starts a Chromium first
    assert (state["width"], state["height"]) == (600, 300)
    name, body = fetch(driver, state["url"])
    assert name == "sales.png" and pixels(body, "PNG").size == (600, 300)


def test_reports_show_every_converter(browser: Any, reports: tuple[ModuleType, str], tmp_path: Path) -> None:
    module, url = reports
    driver = browser.driver
    driver.get(url)
    wait_until(lambda: driver.find_elements(By.ID, "mpl"), message="the page never rendered")
    check_matplotlib(driver)
    check_pil(driver, module)
    check_numpy(driver, module)
    check_pandas(driver, module, tmp_path / "downloads")
    check_polars(driver, module)
    check_plotly(driver)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "reports.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
