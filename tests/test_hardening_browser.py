"""The hardening features in a real browser: session-bound URLs and sandboxed active content.

Session-bound files run under gunicorn with two workers (``tests.apps.hardening_app``, default
store) and are opened by two headless Chromium instances, each with its own new, empty profile:
a private file opens only in the profile whose page registered it, on either worker; to the other
it is a 404 that cannot be told from an unknown token. Active content (HTML, SVG, XHTML, XSL and
any type not known to be inert) is served with ``Content-Security-Policy: sandbox``: the test
registers documents whose script steals the app's readable cookie, opens them in Chromium and
checks that the script did not run; the same documents with ``sandbox=False`` show that it would.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import subprocess
import sys
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pytest
from cachelib import FileSystemCache
from selenium.webdriver.common.by import By

from dfc_transform import FileService

from .apps.hardening_app import SECRET, SECRET_COOKIE, TITLE, create_app
from .browser_support import CHROMEDRIVER, RequestLog, missing_browser, serving, start_browser, wait_until
from .servers import free_port

pytestmark = [
    # selenium 4.2 (dash[testing] caps it there) calls HTTPResponse.getheader(), deprecated by urllib3.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "dfc_session"
NOT_FOUND = "Not found: no such file, or it has expired."
PNG_WIDTH, PNG_HEIGHT = 7, 5
# Headers that differ between any two answers, whatever they answer.
PER_ANSWER_HEADERS = {"date", "x-worker-pid"}

StartChromium = Callable[[str], Any]


def make_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid truecolour PNG of one colour, written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = make_png(PNG_WIDTH, PNG_HEIGHT, (200, 30, 90))


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartChromium]:
    """Start headless Chromium instances, each with a new, empty profile of its own; all quit at the end."""
    # A missing browser is a failure, not a skip: a skip would hide a missing install step in CI.
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)
    started: list[Any] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{Path(CHROMEDRIVER).parent}{os.pathsep}{os.environ.get('PATH', '')}")

        def start(name: str) -> Any:
            home = tmp_path_factory.mktemp(f"chromium-{name}")
            browser = start_browser(home / "profile", home / "downloads")
            started.append(browser)
            return browser.driver

        try:
            yield start
        finally:
            for browser in started:
                browser.driver.quit()


@pytest.fixture(scope="module")
def profiles(chromium: StartChromium) -> tuple[Any, Any]:
    """Two browser profiles: two Chromium instances that share nothing, cookies included."""
    return chromium("a"), chromium("b")


@pytest.fixture(scope="module")
def gunicorn_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tests.apps.hardening_app`` under gunicorn, two worker processes on the default store: its base URL.

    Threaded workers: a sync worker blocks on a connection the browser opened ahead of need
    (preconnect) and left idle, and pages then hang until gunicorn's 30 s timeout. No keep-alive:
    each request is accepted anew, by either worker.
    """
    home = tmp_path_factory.mktemp("gunicorn")
    (home / "tmp").mkdir()
    png_file = home / "plot.png"
    png_file.write_bytes(PNG)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(home / "tmp"),
        "DFC_TRANSFORM_DIR": str(home / "store"),
        "DFC_HARDENING_PNG": str(png_file),
    }
    log = home / "gunicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "2", "--keep-alive", "0",
             "-b", f"127.0.0.1:{port}", "tests.apps.hardening_app:create_server()"],
            cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, "gunicorn exited: " + log.read_text()
        # Both workers must be up, or every request goes to the first one.
        if log.read_text().count("Booting worker") < 2:
            return False
        try:
            with urllib.request.urlopen(base + "/", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_until(ready, timeout=30, message=lambda: "gunicorn did not start: " + log.read_text())
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@dataclass
class InProcessApp:
    url: str
    log: RequestLog
    files: FileService


@pytest.fixture(scope="module")
def attack_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """The same app served in this process, so that the test registers files directly and sees every request."""
    store = FileSystemCache(str(tmp_path_factory.mktemp("attack-store")), threshold=0)
    app, files, _ = create_app(PNG, store)
    with serving(app) as (url, log):
        yield InProcessApp(url, log, files)


@pytest.fixture(scope="module")
def attacked(chromium: StartChromium) -> Any:
    """A profile of its own for the attacks: the app's cookies of the other tests do not mix in."""
    return chromium("attacked")


# -- page helpers ---------------------------------------------------------------------------------


def open_app(driver: Any, base: str) -> None:
    driver.get(base + "/")
    wait_until(lambda: driver.find_elements(By.ID, "private"), message="the app's page did not load")


def image_state(driver: Any) -> dict[str, Any]:
    return dict(
        driver.execute_script(
            "const i = document.getElementById('img');"
            "return {src: i.getAttribute('src') || '', complete: i.complete, width: i.naturalWidth};"
        )
    )


def register_from_page(driver: Any, kind: str) -> tuple[str, str]:
    """Click the button of ``kind``; wait until the <img> shows the file. Its URL and the registering worker."""
    before = image_state(driver)["src"]
    driver.find_element(By.ID, kind).click()

    def shown() -> dict[str, Any] | None:
        state = image_state(driver)
        return state if state["src"] and state["src"] != before and state["complete"] else None

    state = wait_until(shown, message=lambda: f"{image_state(driver)}, error: {text_of(driver, 'error')!r}")
    assert state["width"] == PNG_WIDTH, f"the registering profile could not show its own image: {state}"
    return str(state["src"]), text_of(driver, "pid")


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def fetch_many(driver: Any, url: str, count: int = 6, hold: float = 0.2) -> list[dict[str, Any]]:
    """GET ``url`` ``count`` times at once from the page, past the HTTP cache.

    Each request is held ``hold`` s by the app, so that they overlap and the workers share them.
    """
    driver.set_script_timeout(20)
    answers = driver.execute_async_script(
        """
        const [url, count, hold, done] = arguments;
        const one = () => fetch(url, {cache: "no-store", headers: {"X-Hold": String(hold)}}).then(async (r) => {
            const bytes = new Uint8Array(await r.arrayBuffer());
            let binary = "";
            for (const b of bytes) binary += String.fromCharCode(b);
            return {status: r.status, headers: Object.fromEntries(r.headers.entries()), body: btoa(binary)};
        });
        Promise.all(Array.from({length: count}, one)).then(done, (e) => done([{error: String(e)}]));
        """,
        url,
        count,
        hold,
    )
    for answer in answers:
        assert "error" not in answer, answer
        answer["body"] = base64.b64decode(answer["body"])
    return [dict(a) for a in answers]


def workers(answers: list[dict[str, Any]]) -> set[str]:
    return {a["headers"]["x-worker-pid"] for a in answers}


def fetch_from_both_workers(driver: Any, url: str, seen: set[str] | None = None) -> list[dict[str, Any]]:
    """Fetch ``url`` from the page in rounds of concurrent requests until both workers answered.

    Which worker accepts a connection is up to the kernel: a round may go to one. ``seen``:
    workers known to have taken part already (the one that registered the file).
    """
    answers: list[dict[str, Any]] = []

    def both() -> bool:
        answers.extend(fetch_many(driver, url))
        return len(workers(answers) | (seen or set())) >= 2

    wait_until(both, timeout=15, message=lambda: f"only worker {workers(answers)} answered")
    return answers


def comparable(answer: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
    """What a client can tell about an answer: status, body and headers, less those that differ each time."""
    headers = {k: v for k, v in answer["headers"].items() if k not in PER_ANSWER_HEADERS}
    return answer["status"], answer["body"], headers


def unknown_url(file_url: str) -> str:
    """The URL of a file that was never registered: another token of the same shape, same name."""
    prefix, _, name = file_url.rsplit("/", 2)
    return f"{prefix}/{secrets.token_urlsafe(16)}/{name}"


def page_text(driver: Any) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def show_in_img(driver: Any, url: str) -> dict[str, Any]:
    """Put ``url`` in the page's <img>; wait until the browser gave up or loaded it."""
    driver.execute_script("document.getElementById('img').src = arguments[0];", url)
    return wait_until(
        lambda: (state := image_state(driver))["complete"] and state["src"] == url and state,
        message=lambda: str(image_state(driver)),
    )


# -- session-bound URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "prefix"),
    [("private", "/_dash-files/"), ("default-private", "/_private-files/")],
    ids=["register-private", "service-private-default"],
)
def test_private_file_opens_only_in_the_session_that_registered_it(
    profiles: tuple[Any, Any], gunicorn_app: str, kind: str, prefix: str
) -> None:
    a, b = profiles
    open_app(a, gunicorn_app)
    path, registered_by = register_from_page(a, kind)
    assert path.startswith(prefix), path
    url = gunicorn_app + path

    # The registering profile: the exact bytes, from either worker (nothing is kept per process).
    answers = fetch_from_both_workers(a, url, {registered_by})
    assert [(x["status"], x["body"]) for x in answers] == [(200, PNG)] * len(answers)
    assert all(x["headers"]["content-type"] == "image/png" for x in answers)
    assert all(x["headers"]["vary"] == "Cookie" for x in answers), "a shared cache could hand it on"

    # Another profile, with a session of its own from the app's page: as missing as an unknown token.
    open_app(b, gunicorn_app)
    cookies_a = {c["name"]: c["value"] for c in a.get_cookies()}
    cookies_b = {c["name"]: c["value"] for c in b.get_cookies()}
    assert cookies_a[COOKIE] != cookies_b[COOKIE]
    refused = fetch_from_both_workers(b, url)
    unknown = fetch_many(b, unknown_url(url), count=2, hold=0)
    assert refused[0]["status"] == 404
    assert refused[0]["body"].decode().strip() == NOT_FOUND
    every = [*refused, *unknown]
    assert [comparable(x) for x in every] == [comparable(unknown[0])] * len(every)

    b.get(url)  # the URL pasted into the other browser's address bar
    assert page_text(b) == NOT_FOUND
    b.get(unknown_url(url))
    assert page_text(b) == NOT_FOUND
    open_app(b, gunicorn_app)
    assert show_in_img(b, path)["width"] == 0

    # The owner still opens it after the refusals.
    assert [(x["status"], x["body"]) for x in fetch_many(a, url, count=2, hold=0)] == [(200, PNG)] * 2


def test_public_file_opens_in_every_session(profiles: tuple[Any, Any], gunicorn_app: str) -> None:
    """The control: a file registered the same way without ``private`` opens in both profiles."""
    a, b = profiles
    open_app(a, gunicorn_app)
    path, _ = register_from_page(a, "public")
    open_app(b, gunicorn_app)
    for driver in (a, b):
        answers = fetch_many(driver, gunicorn_app + path, count=4, hold=0.2)
        assert [(x["status"], x["body"]) for x in answers] == [(200, PNG)] * 4
        assert "vary" not in answers[0]["headers"]
    assert show_in_img(b, path)["width"] == PNG_WIDTH


def test_session_cookie_is_httponly(profiles: tuple[Any, Any], gunicorn_app: str) -> None:
    a, _ = profiles
    open_app(a, gunicorn_app)
    seen_by_scripts = str(a.execute_script("return document.cookie;"))
    assert f"{SECRET_COOKIE}={SECRET}" in seen_by_scripts  # scripts do see the app's readable cookie
    assert COOKIE not in seen_by_scripts
    session = {c["name"]: c for c in a.get_cookies()}[COOKIE]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["path"] == "/"
    assert len(session["value"]) >= 22  # 128 random bits


def test_registering_answer_gives_a_session_to_a_browser_without_one(
    profiles: tuple[Any, Any], gunicorn_app: str
) -> None:
    """No cookie from the page (it was lost): the answer of the registering request sets it."""
    a, b = profiles
    open_app(b, gunicorn_app)
    b.delete_all_cookies()
    assert b.get_cookies() == []
    path, _ = register_from_page(b, "private")  # the <img> loads: it sent the new cookie
    assert COOKIE in {c["name"] for c in b.get_cookies()}
    assert [x["status"] for x in fetch_many(b, gunicorn_app + path, count=2, hold=0)] == [200, 200]
    open_app(a, gunicorn_app)
    assert [x["status"] for x in fetch_many(a, gunicorn_app + path, count=2, hold=0)] == [404, 404]


# -- active content -------------------------------------------------------------------------------

_STEAL = (
    'var c; try { c = document.cookie; } catch (e) { c = "threw " + e.name; }'
    ' document.getElementById("out").textContent = c; document.title = "ran: " + c;'
    # A synchronous request: if the script runs, the app has seen it before the page's load event.
    ' var x = new XMLHttpRequest(); x.open("GET", "/leak?case=CASE&c=" + encodeURIComponent(c), false);'
    " try { x.send(); } catch (e) {}"
)
_XHTML = f"""<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{TITLE}</title></head>
<body><p id="out">untouched</p>
<script>//<![CDATA[
{_STEAL}
//]]></script>
<img src="/beacon?case=CASE" alt=""/></body></html>
"""
_HTML = f"""<!doctype html>
<html><head><title>{TITLE}</title></head>
<body><p id="out">untouched</p><script>{_STEAL}</script><img src="/beacon?case=CASE" alt=""></body></html>
"""
_SVG = f"""<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40" onload="{escape(_STEAL)}">
<title>{TITLE}</title><text id="out" x="5" y="20">untouched</text>
<image href="/beacon?case=CASE" width="1" height="1"/></svg>
"""
#: Documents that run script when a browser renders them, by the mime type the caller chose.
ATTACKS = {
    "text/xsl": _XHTML,  # an XSLT type, rendered by Chromium as any XML document
    "image/svg+xml": _SVG,
    "text/html": _HTML,
    "application/xhtml+xml": _XHTML,
    # Types nobody thinks of as active, and not on the inert list: sandboxed too.
    "text/xml": _XHTML,
    "application/xml": _XHTML,
}


@dataclass
class Visit:
    """What became of one attack document opened in the browser."""

    csp: str | None
    leaks: list[str]
    title: str
    out: str


def visit_attack(driver: Any, app: InProcessApp, mime_type: str, **options: Any) -> Visit:
    """Register the attack document of ``mime_type`` and open its URL, as a user following a link would."""
    open_app(driver, app.url)  # the app sets its readable cookie, the prize
    assert f"{SECRET_COOKIE}={SECRET}" in str(driver.execute_script("return document.cookie;"))
    case = secrets.token_hex(6)
    body = ATTACKS[mime_type].replace("CASE", case)
    path = app.files.register(body.encode(), filename="report", mime_type=mime_type, **options)
    driver.get(app.url + path)  # returns after the load event: a synchronous leak is logged by then
    served = app.log.to(path)
    assert [e.status for e in served] == [200], served
    # Devtools reads the DOM even where the page's own scripts may not run.
    out = driver.execute_script("const e = document.getElementById('out'); return e ? e.textContent : null;")
    assert out is not None, f"{mime_type} was not rendered as a document: {driver.page_source[:300]!r}"
    wait_until(
        lambda: any(case in e.query for e in app.log.to("/beacon")),
        message=f"the <img> of the {mime_type} document was never fetched",
    )
    return Visit(
        csp=served[0].response_headers.get("Content-Security-Policy"),
        leaks=[e.query for e in app.log.to("/leak") if case in e.query],
        title=str(driver.title),
        out=str(out),
    )


@pytest.mark.parametrize("mime_type", ATTACKS)
def test_active_content_runs_no_script_in_the_app_origin(
    attacked: Any, attack_app: InProcessApp, mime_type: str
) -> None:
    visit = visit_attack(attacked, attack_app, mime_type)
    assert visit.leaks == [], "the script ran and sent the app's cookie"
    assert visit.title == TITLE
    assert visit.out == "untouched"
    assert visit.csp == "sandbox"


@pytest.mark.parametrize("mime_type", ATTACKS)
def test_without_the_sandbox_the_attack_works(
    attacked: Any, attack_app: InProcessApp, mime_type: str
) -> None:
    """The control: ``sandbox=False`` serves the same document without the policy, and its script steals."""
    visit = visit_attack(attacked, attack_app, mime_type, sandbox=False)
    assert visit.csp is None
    stolen = f"{SECRET_COOKIE}={SECRET}"
    assert len(visit.leaks) == 1 and stolen in urllib.parse.unquote(visit.leaks[0]), visit.leaks
    assert stolen in visit.title and visit.title.startswith("ran: "), visit.title
    assert stolen in visit.out, visit.out


#: Types on the library's inert list, served without the sandbox.
INERT = ("text/plain", "text/csv", "application/json", "image/png", "video/mp4", "application/octet-stream")


def test_types_served_without_the_sandbox_run_no_script(attacked: Any, attack_app: InProcessApp) -> None:
    """The allow-list holds in Chromium: under an inert type the attack document is shown as text,
    a broken image or video, or saved; its script never runs."""
    open_app(attacked, attack_app.url)
    for mime_type in INERT:
        case = secrets.token_hex(6)
        body = _XHTML.replace("CASE", case)
        path = attack_app.files.register(body.encode(), filename="report", mime_type=mime_type)
        attacked.get(attack_app.url + path)
        served = attack_app.log.to(path)
        assert [e.status for e in served] == [200], (mime_type, served)
        assert "Content-Security-Policy" not in served[0].response_headers, mime_type
        assert [e.query for e in attack_app.log.to("/leak") if case in e.query] == [], mime_type
        assert not str(attacked.title).startswith("ran:"), (mime_type, attacked.title)
