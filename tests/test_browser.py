"""The examples in a real browser: headless Chromium clicks as a user would and checks what a user sees.

Each example app is imported from examples/ by path and served in-process by a threaded werkzeug server
on a free port of 127.0.0.1. Screenshots go to each test's tmp_path; ``DFC_WRITE_DOCS=1`` also writes
docs/demo.png (the demo app, downloads.py, after its exports were built).
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dash_extensions.enrich import DashProxy, Input, html
from selenium.webdriver.common.by import By

from dfc_transform import FileOutput, FileServeTransform
from dfc_transform.settings import DEFAULT_INLINE_BELOW

from .browser_support import (
    CHROMEDRIVER,
    RequestLog,
    loaded_example,
    missing_browser,
    serving,
    set_download_dir,
    set_viewport,
    start_browser,
    wait_until,
)

pytestmark = [
    # selenium 4.2 (dash[testing] caps it there) calls HTTPResponse.getheader(), deprecated by urllib3.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
]

DOCS_DEMO = Path(__file__).resolve().parent.parent / "docs" / "demo.png"
FILE_URL = re.compile(r"/_dash-files/[A-Za-z0-9_-]{22}/(?P<name>[^/]+)")

RunExample = Callable[[str], tuple[ModuleType, str, RequestLog]]


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """dash's selenium Browser on a headless Chromium with a fresh profile; downloads go to tmp_path."""
    # A missing browser is a failure, not a skip: a skip would hide a missing install step in CI.
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
def run_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunExample]:
    """Import an example (its temp files under tmp_path) and serve it: (module, base URL, request log)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with ExitStack() as stack:

        def run(name: str) -> tuple[ModuleType, str, RequestLog]:
            module = stack.enter_context(loaded_example(name))
            url, log = stack.enter_context(serving(module.server))
            return module, url, log

        yield run


# -- page helpers -------------------------------------------------------------------------------


def open_page(driver: Any, url: str, ready: str) -> None:
    """Go to ``url`` and wait until the element of CSS selector ``ready`` is there (Dash renders late)."""
    driver.get(url)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ready), message=f"{ready} never appeared")


def click(driver: Any, element_id: str) -> None:
    wait_until(lambda: driver.find_elements(By.ID, element_id))[0].click()


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def wait_for_text(driver: Any, element_id: str, expected: str) -> None:
    wait_until(
        lambda: text_of(driver, element_id) == expected,
        message=lambda: f"#{element_id} shows {text_of(driver, element_id)!r}, not {expected!r}",
    )


def wait_for_download(folder: Path, name: str) -> Path:
    """Wait until Chromium has saved ``name`` in ``folder`` (and no part-file is left)."""
    saved = folder / name
    wait_until(
        lambda: saved.is_file() and not list(folder.glob("*.crdownload")),
        message=lambda: f"{name} not downloaded; the folder has {os.listdir(folder)}",
    )
    return saved


def image_state(driver: Any, element_id: str) -> dict[str, Any]:
    return dict(
        driver.execute_script(
            "const i = document.getElementById(arguments[0]);"
            "return {src: i.getAttribute('src'), url: i.src, complete: i.complete,"
            " width: i.naturalWidth, height: i.naturalHeight};",
            element_id,
        )
    )


def wait_for_image(
    driver: Any, element_id: str, *, not_src: str | None = None, timeout: float = 10
) -> dict[str, Any]:
    """Wait until the <img> shows a new picture: a new src, loaded, with a width; fail if it broke."""

    def loaded() -> dict[str, Any] | None:
        state = image_state(driver, element_id)
        if not state["src"] or state["src"] == not_src or not state["complete"]:
            return None
        assert state["width"] > 0, f"#{element_id} did not render: {state}"
        return state

    return wait_until(loaded, timeout=timeout, message=lambda: str(image_state(driver, element_id)))


def fetch(driver: Any, url: str) -> dict[str, Any]:
    """GET ``url`` from the page, as its scripts would: status, headers and body bytes."""
    driver.set_script_timeout(10)
    result = driver.execute_async_script(
        """
        const [url, done] = arguments;
        fetch(url).then(async (r) => {
            const bytes = new Uint8Array(await r.arrayBuffer());
            let binary = "";
            for (const b of bytes) binary += String.fromCharCode(b);
            done({status: r.status, headers: Object.fromEntries(r.headers.entries()), body: btoa(binary)});
        }).catch((e) => done({error: String(e)}));
        """,
        url,
    )
    assert "error" not in result, result
    result["body"] = base64.b64decode(result["body"])
    return dict(result)


def screenshot(driver: Any, path: Path) -> None:
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000, f"empty screenshot {path}"


# -- the examples -------------------------------------------------------------------------------

THREE_WAYS = (("StringIO", "io.StringIO"), ("Path", "pathlib.Path"), ("BytesIO", "io.BytesIO"))


def check_three_ways(driver: Any, url: str) -> list[str]:
    """Click the three buttons of the SVG demo; each time a new, rendered image labelled with its way."""
    open_page(driver, url, "#BytesIO")
    urls: list[str] = []
    for button, kind in THREE_WAYS:
        before = image_state(driver, "image")["src"]
        click(driver, button)
        state = wait_for_image(driver, "image", not_src=before)
        wait_for_text(driver, "kind", kind)
        wait_for_text(driver, "url", state["src"])
        shown_url = state["src"]
        match = FILE_URL.fullmatch(shown_url)
        assert match and match["name"] == "picture.svg", shown_url
        served = fetch(driver, state["url"])
        assert served["status"] == 200
        assert served["headers"]["content-type"].startswith("image/svg+xml")
        assert f">{button}</text>".encode() in served["body"], served["body"][:300]
        urls.append(shown_url)
    assert len(set(urls)) == 3, urls
    return urls


def test_single_process_serves_stringio_bytesio_and_path(
    browser: Any, run_example: RunExample, tmp_path: Path
) -> None:
    _, url, _ = run_example("single_process")
    set_viewport(browser.driver, 800, 450)
    check_three_ways(browser.driver, url)
    screenshot(browser.driver, tmp_path / "single_process.png")


def test_file_cache_serves_from_the_given_directory(
    browser: Any, run_example: RunExample, tmp_path: Path
) -> None:
    module, url, _ = run_example("file_cache")
    assert Path(module.CACHE_DIR).is_relative_to(tmp_path)
    before = set(Path(module.CACHE_DIR).iterdir())
    check_three_ways(browser.driver, url)
    # Each of the three files left at least its record in the explicit directory.
    assert len(set(Path(module.CACHE_DIR).iterdir()) - before) >= 3
    screenshot(browser.driver, tmp_path / "file_cache.png")


def test_file_cache_on_redis_with_the_env_switch(
    browser: Any, run_example: RunExample, redis_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The switch gunicorn_redis.md documents: DFC_EXAMPLE_REDIS puts the example's files in Redis."""
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=15)  # a database of its own
    client.flushdb()
    monkeypatch.setenv("DFC_EXAMPLE_REDIS", f"redis://{redis_server.host}:{redis_server.port}/15")
    module, url, _ = run_example("file_cache")
    assert not Path(module.CACHE_DIR).exists()
    check_three_ways(browser.driver, url)
    assert len(list(client.scan_iter("dfc-example:*"))) >= 3
    screenshot(browser.driver, tmp_path / "file_cache_redis.png")


RECORD_PROGRESS_AND_BUTTONS = """
window.seen = {progress: [], disabled: []};
const progress = document.getElementById("progress");
const buttons = ["StringIO", "BytesIO", "Path"].map((id) => document.getElementById(id));
new MutationObserver(() => window.seen.progress.push(progress.textContent))
    .observe(progress, {childList: true, characterData: true, subtree: true});
new MutationObserver(() => window.seen.disabled.push(buttons.map((b) => b.disabled)))
    .observe(document.body, {attributes: true, attributeFilter: ["disabled"], subtree: true});
"""


def test_background_callback_shows_progress_and_disables_buttons(
    browser: Any, run_example: RunExample, tmp_path: Path
) -> None:
    _, url, _ = run_example("background_callback")
    driver = browser.driver
    open_page(driver, url, "#Path")
    driver.execute_script(RECORD_PROGRESS_AND_BUTTONS)
    click(driver, "BytesIO")

    state = wait_for_image(driver, "image", timeout=30)
    wait_for_text(driver, "kind", "io.BytesIO")
    assert FILE_URL.fullmatch(state["src"])
    wait_until(
        lambda: not any(driver.find_element(By.ID, b).get_property("disabled") for b, _ in THREE_WAYS),
        message="buttons stay disabled after the job",
    )
    seen = driver.execute_script("return window.seen")
    percents = [int(p[:-1]) for p in seen["progress"] if re.fullmatch(r"\d+%", p)]
    assert len(set(percents)) >= 2, f"progress did not move: {seen['progress']}"
    assert percents == sorted(percents), percents
    assert [True, True, True] in seen["disabled"], f"buttons never disabled while running: {seen['disabled']}"
    assert seen["disabled"][-1] == [False, False, False]
    assert min(percents) < 100, "no progress shown while the job ran"
    screenshot(driver, tmp_path / "background_callback.png")


def test_downloads_save_the_returned_table_under_non_ascii_names(
    browser: Any, run_example: RunExample, tmp_path: Path
) -> None:
    module, url, log = run_example("downloads")
    set_viewport(browser.driver, 1000, 600)
    driver = browser.driver
    downloads = tmp_path / "downloads"
    set_download_dir(driver, downloads)
    open_page(driver, url, "#build")
    click(driver, "build")
    wait_until(
        lambda: all(driver.find_element(By.ID, i).get_attribute("href") for i in ("csv-link", "xlsx-link"))
    )

    expected = {"csv-link": "Übersicht März.csv", "xlsx-link": "Übersicht März.xlsx"}
    for link, name in expected.items():
        click(driver, link)
        saved = wait_for_download(downloads, name)
        assert saved.stat().st_size > 0
        answers = [e for e in log.to(f"/{name}") if e.status == 200]
        assert answers and answers[-1].response_headers["Content-Disposition"].startswith("attachment;")
    assert sorted(os.listdir(downloads)) == sorted(expected.values())

    # What a user opens: the CSV reads back as the table (BOM and umlauts intact), the workbook too.
    assert (downloads / "Übersicht März.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    text = (downloads / "Übersicht März.csv").read_text(encoding="utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == [
        list(module.HEADER),
        *([str(c) for c in r] for r in module.ROWS),
    ]
    from openpyxl import load_workbook

    sheet = load_workbook(downloads / "Übersicht März.xlsx").active
    assert [tuple(row) for row in sheet.iter_rows(values_only=True)] == [module.HEADER, *module.ROWS]

    # The PDF opens inline in the iframe (Chromium's PDF viewer), and is not downloaded.
    wait_until(
        lambda: driver.execute_script(
            "const d = document.getElementById('report').contentDocument;"
            "return d && d.readyState === 'complete' && d.contentType === 'application/pdf';"
        ),
        message="the iframe shows no PDF",
    )
    pdf_url = driver.find_element(By.ID, "report").get_attribute("src")
    served = fetch(driver, pdf_url)
    assert served["body"] == module.make_pdf() and served["body"].startswith(b"%PDF-")
    assert served["headers"]["content-disposition"].startswith("inline")
    assert not (downloads / "report.pdf").exists()
    assert [e.status for e in log.to("/report.pdf")][:1] == [200]
    screenshot(driver, tmp_path / "downloads.png")
    if os.environ.get("DFC_WRITE_DOCS") == "1":  # the README's picture of the demo app
        DOCS_DEMO.parent.mkdir(exist_ok=True)
        screenshot(driver, DOCS_DEMO)


def test_media_audio_has_its_duration_and_seeks(
    browser: Any, run_example: RunExample, tmp_path: Path
) -> None:
    module, url, log = run_example("media")
    driver = browser.driver
    open_page(driver, url, "#make")
    click(driver, "make")
    duration = wait_until(
        lambda: driver.execute_script(
            "const a = document.getElementById('player'); return a.src && a.readyState >= 1 && a.duration;"
        ),
        message="the audio never loaded its metadata",
    )
    assert abs(duration - module.DURATION) <= 0.05, duration

    target = module.DURATION - 0.8
    driver.execute_script("document.getElementById('player').currentTime = arguments[0];", target)
    position = wait_until(
        lambda: driver.execute_script(
            "const a = document.getElementById('player');"
            "const ranges = Array.from({length: a.seekable.length},"
            " (_, i) => [a.seekable.start(i), a.seekable.end(i)]);"
            "return !a.seeking && a.readyState >= 2 && {time: a.currentTime, ranges: ranges};"
        ),
        message="the seek never finished",
    )
    assert abs(position["time"] - target) < 0.01, position
    assert any(start <= target <= end for start, end in position["ranges"]), position
    # Seeking works because the file route answers the browser's range requests.
    wav_requests = log.to("/tones.wav")
    assert any("Range" in e.headers and e.status == 206 for e in wav_requests), wav_requests
    screenshot(driver, tmp_path / "media.png")


def test_plots_png_and_svg_render(browser: Any, run_example: RunExample, tmp_path: Path) -> None:
    _, url, _ = run_example("plots")
    driver = browser.driver
    open_page(driver, url, "#plot")
    previous: dict[str, str | None] = {"png": None, "svg": None}
    for _ in range(2):  # every click serves a new picture
        click(driver, "plot")
        png = wait_for_image(driver, "png", not_src=previous["png"])
        svg = wait_for_image(driver, "svg", not_src=previous["svg"])
        assert (png["width"], png["height"]) == (400, 300)  # figsize (4, 3) at 100 dpi
        assert svg["width"] > 0 and svg["height"] > 0
        for state, name in ((png, "plot.png"), (svg, "plot.svg")):
            body = fetch(driver, state["url"])["body"]
            if name.endswith(".png") and len(body) < DEFAULT_INLINE_BELOW:
                # A small picture goes into the page as a data: URI (inline_below); its size
                # depends on matplotlib's release.
                assert state["src"].startswith("data:image/png;base64,"), state["src"][:100]
            else:
                match = FILE_URL.fullmatch(state["src"])
                assert match and match["name"] == name, state["src"][:100]  # a URL
        assert fetch(driver, png["url"])["body"].startswith(b"\x89PNG\r\n")
        assert b"<svg" in fetch(driver, svg["url"])["body"][:500]
        previous = {"png": png["src"], "svg": svg["src"]}
    screenshot(driver, tmp_path / "plots.png")


def test_flask_service_post_then_get_shows_the_text(
    browser: Any, run_example: RunExample, tmp_path: Path
) -> None:
    _, url, log = run_example("flask_service")
    driver = browser.driver
    note = "Grüße aus Köln ✓ 2 + 3 €"
    open_page(driver, url, "textarea[name=text]")
    area = driver.find_element(By.NAME, "text")
    area.clear()
    area.send_keys(note)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    match = wait_until(lambda: FILE_URL.search(driver.current_url), message=lambda: driver.current_url)
    assert match["name"] == "note.txt"
    wait_until(lambda: driver.find_element(By.TAG_NAME, "body").text == note)
    post = log.to("/notes")[0]
    assert (post.method, post.status) == ("POST", 303)
    file_get = log.to("/note.txt")[-1]
    assert post.response_headers["Location"] == file_get.path
    assert file_get.response_headers["Content-Type"] == "text/plain; charset=utf-8"
    screenshot(driver, tmp_path / "flask_service.png")


# -- safety: script in an SVG ---------------------------------------------------------------------

SCRIPTED_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
  <title>untouched</title>
  <rect width="200" height="100" fill="#d62728"/>
  <script>
    document.title = "script ran";
    window.scriptRan = true;
    fetch("/beacon?from=" + location.pathname.split("/")[2]);
  </script>
</svg>
"""


def scripted_svg_app() -> DashProxy:
    """One scripted SVG twice: served with the default sandbox, and with ``sandbox=False`` as a control."""
    app = DashProxy(__name__, transforms=[FileServeTransform()], title="svg safety")
    app.layout = html.Div([html.Button("Load", id="load"), html.Img(id="sandboxed"), html.Img(id="trusted")])

    @app.callback(
        FileOutput("sandboxed", "src", filename="scripted.svg"),
        FileOutput("trusted", "src", filename="scripted.svg", sandbox=False),
        Input("load", "n_clicks"),
        prevent_initial_call=True,
    )
    def load(_clicks: int) -> tuple[io.StringIO, io.StringIO]:
        return io.StringIO(SCRIPTED_SVG), io.StringIO(SCRIPTED_SVG)

    @app.server.get("/beacon")
    def beacon() -> tuple[str, int]:
        return "", 204

    return app


def test_svg_script_runs_neither_in_img_nor_opened_directly(browser: Any, tmp_path: Path) -> None:
    driver = browser.driver
    with serving(scripted_svg_app().server) as (url, log):
        open_page(driver, url, "#load")
        click(driver, "load")
        sandboxed = wait_for_image(driver, "sandboxed")
        trusted = wait_for_image(driver, "trusted")
        assert sandboxed["width"] == trusted["width"] == 200
        assert driver.execute_script("return [document.title, window.scriptRan === undefined]") == [
            "svg safety",
            True,
        ]
        screenshot(driver, tmp_path / "svg_in_img.png")

        # Opened as a document: the script would set the title at once; the sandbox stops it.
        driver.get(sandboxed["url"])
        wait_until(lambda: driver.execute_script("return document.readyState") == "complete")
        assert driver.title == "untouched"
        assert driver.execute_script("return window.scriptRan === undefined")
        file_answer = log.to("/scripted.svg")
        assert any(e.response_headers.get("Content-Security-Policy") == "sandbox" for e in file_answer)

        # Control: the same file without the sandbox does run its script, so the check above can fail.
        driver.get(trusted["url"])
        wait_until(lambda: driver.title == "script ran", message="the control's script did not run")
        wait_until(lambda: log.to("/beacon"), message="the control's beacon never came")
        screenshot(driver, tmp_path / "svg_document.png")
    # One beacon, from the control opened as a document: none from either <img>, none from the sandbox.
    trusted_token = trusted["src"].split("/")[2]
    assert [e.query for e in log.to("/beacon")] == [f"from={trusted_token}"]


def test_export_everything_starts_downloading_before_the_zip_is_made(
    browser: Any, run_example: RunExample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 batches of 10,000 rows, 0.1 s apart: the ledger takes 4 s at least to make.
    monkeypatch.setenv("EXPORT_ROWS", "400000")
    monkeypatch.setenv("EXPORT_PAUSE", "0.1")
    module, url, log = run_example("export_everything")
    driver = browser.driver
    downloads = tmp_path / "downloads"
    set_download_dir(driver, downloads)
    open_page(driver, url, "#export-all")
    wait_for_image(driver, "chart")
    clicked = time.monotonic()
    click(driver, "export-all")
    # Chromium's part-file appears with the first bytes of the answer.
    wait_until(lambda: list(downloads.iterdir()), timeout=30, message="the download never started")
    started = time.monotonic()
    saved = wait_for_download(downloads, "report.zip")
    ledger = ("id,date,amount\n" + "".join(module.ledger_row(i) for i in range(400000))).encode()
    assert module.FINISHED, "the ledger was never made"
    assert started < module.FINISHED[-1] - 1.0, (clicked, started, module.FINISHED)
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["chart.png", "data/ledger.csv", "readme.txt", "sales.csv"]
        assert archive.read("data/ledger.csv") == ledger
        assert archive.read("chart.png").startswith(b"\x89PNG\r\n\x1a\n")
        assert archive.read("sales.csv").decode() == module.sales().to_csv()
        assert archive.read("readme.txt").startswith(b"Quarterly report, export 1")
    answers = [e for e in log.to("/report.zip") if e.status == 200]
    assert answers and "Content-Length" not in answers[0].response_headers  # streamed as it was made
    assert answers[0].response_headers["Content-Disposition"].startswith("attachment;")

    # The ledger alone: a CSV streamed as it is made, saved whole.
    click(driver, "export-ledger")
    saved = wait_for_download(downloads, "ledger.csv")
    assert saved.read_bytes() == ledger
    assert sorted(os.listdir(downloads)) == ["ledger.csv", "report.zip"]
