"""Files in an S3 bucket, in headless Chromium: a plain ``dash.Dash`` with ``files.init_app(app)`` and
``S3Store`` under gunicorn (two gthread workers), on SeaweedFS.

- a callback's PNG shown in an ``<img>``: the page's request for it is answered by a 307 to a
  presigned URL of the bucket, which the browser follows (the picture loads, the bytes are equal);
- a CSV of some 5 MiB returned to a ``FileOutput`` on a ``dcc.Download`` is saved under its exact
  non-ASCII name and bytes after a click, through a redirect to the bucket too;
- a 256 MiB file sent through ``Upload`` goes straight into the bucket: its parts are PUT to
  presigned URLs of the bucket, none to the app (its access log has no part), and a ``FileInput``
  callback reads the file back intact, while the workers' memory does not grow by the file.

The bucket has the CORS rule a deployment gives it for direct uploads: PUT and GET from the app's
origin (SeaweedFS, as AWS, allows no origin otherwise). The app is :mod:`tests.apps.s3_app`, run as
the apps of tests/test_servers_browser.py are (:class:`~tests.test_servers_browser.AppServer`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.by import By

from .apps.s3_app import CSV, CSV_NAME, MIB, PNG, PNG_WIDTH
from .browser_support import CHROMEDRIVER, missing_browser, start_browser, wait_until
from .servers import SeaweedServer
from .test_servers_browser import AppServer, Kind

pytestmark = [
    # selenium 4.2 (dash[testing] caps it there) calls HTTPResponse.getheader(), deprecated by urllib3.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
    pytest.mark.timeout(180),
]

UPLOAD_SIZE = 256 * MIB
#: What the two workers may grow by, together, while the upload is sent and read back.
MEMORY_BUDGET = 64 * MIB
#: One line of the access log: ``<worker pid> <method> <path> <status>``.
ACCESS_LINE = re.compile(r"^<(\d+)> ([A-Z]+) (/.*) (\d{3})$", re.MULTILINE)


@dataclass
class Site:
    """The app on its bucket."""

    server: AppServer
    seaweed: SeaweedServer
    bucket: str

    @property
    def bucket_url(self) -> str:
        """Where the bucket's objects are (path-style URLs)."""
        return f"{self.seaweed.endpoint_url}/{self.bucket}/"

    def requests(self, since: int) -> list[tuple[int, str, str, int]]:
        """The requests the app answered after ``since`` (see ``AppServer.mark``)."""
        tail = self.server.output()[since:]
        return [(int(p), m, path, int(s)) for p, m, path, s in ACCESS_LINE.findall(tail)]

    def workers(self) -> list[int]:
        """gunicorn's worker processes: the children of its master, from /proc."""
        master = self.server.process.pid
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                    found.append(int(entry))
        return found


@pytest.fixture(scope="module")
def site(seaweed_server: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    bucket = seaweed_server.make_bucket(f"b-{uuid.uuid4().hex[:16]}")
    kind = Kind(
        "gunicorn-s3",
        "s3_app",
        "gunicorn",
        env=(
            ("DFC_TEST_S3_BUCKET", bucket),
            ("DFC_TEST_S3_ENDPOINT", seaweed_server.endpoint_url),
            ("AWS_ACCESS_KEY_ID", seaweed_server.access_key),
            ("AWS_SECRET_ACCESS_KEY", seaweed_server.secret_key),
            ("AWS_DEFAULT_REGION", seaweed_server.region),
        ),
    )
    server = AppServer(kind, tmp_path_factory.mktemp(kind.name))
    try:
        # What a deployment does once for direct uploads: let the app's pages PUT parts (and GET).
        seaweed_server.client().put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [server.url],
                        "AllowedMethods": ["GET", "PUT"],
                        "AllowedHeaders": ["*"],
                        "MaxAgeSeconds": 600,
                    }
                ]
            },
        )
        yield Site(server, seaweed_server, bucket)
    finally:
        server.stop()
        shutil.rmtree(server.store, ignore_errors=True)


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium; its downloads go to ``tmp_path/downloads``."""
    problem = missing_browser()
    if problem is not None:
        pytest.fail(problem)  # a skip would hide a missing install step in CI
    monkeypatch.setenv("PATH", f"{Path(CHROMEDRIVER).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    chromium = start_browser(tmp_path / "profile", tmp_path / "downloads")
    try:
        yield chromium.driver
    finally:
        chromium.driver.quit()


# -- helpers ----------------------------------------------------------------------------------------


def _open(driver: Any, site: Site) -> None:
    driver.get(site.server.url + "/")
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#up.dfc-upload"),
        timeout=30,
        message=lambda: f"the page never rendered; the server said: {site.server.output()[-3000:]}",
    )


def _click(driver: Any, element_id: str) -> None:
    driver.find_element(By.ID, element_id).click()


def _file_gets(site: Site, since: int) -> list[tuple[int, str, str, int]]:
    """The GETs of files (not of the upload protocol) the app answered after ``since``."""
    return [
        r
        for r in site.requests(since)
        if r[1] == "GET" and r[2].startswith("/_dash-files/") and not r[2].startswith("/_dash-files/_upload")
    ]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.status, answer.read()


def _redirect_of(site: Site, path: str) -> str:
    """Where the app sends a GET of ``path``: its 307's ``Location``."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(site.server.url + path, timeout=30)
    except urllib.error.HTTPError as err:
        assert err.code == 307, err.code
        return str(err.headers["Location"])
    raise AssertionError(f"{path} was not redirected")


def _page_fetch(driver: Any, url: str) -> dict[str, Any]:
    """``fetch(url)`` in the page: its status, whether it was redirected, its final URL, the SHA-256."""
    return dict(
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(async r => {"
            "  const body = await r.arrayBuffer();"
            "  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));"
            "  done({status: r.status, redirected: r.redirected, url: r.url,"
            "        sha256: Array.from(digest, b => b.toString(16).padStart(2, '0')).join('')});"
            "}, e => done({error: String(e)}));",
            url,
        )
    )


def _write_file(path: Path, size: int) -> str:
    """``size`` bytes that differ in every MiB; their SHA-256."""
    sha = hashlib.sha256()
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(0, size, MIB):
            piece = i.to_bytes(8, "big") + block[8:]
            sha.update(piece)
            f.write(piece)
    return sha.hexdigest()


def _reset_peak(pid: int) -> int:
    """Reset the peak RSS of ``pid`` (VmHWM) to its current RSS; return that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid, "VmRSS:")


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


# -- the tests --------------------------------------------------------------------------------------


def test_a_picture_is_redirected_to_the_bucket_and_shown(driver: Any, site: Site) -> None:
    since = site.server.mark()
    _open(driver, site)
    _click(driver, "plot")

    def loaded() -> Any:
        site.server.check_no_error(since)
        return driver.execute_script(
            "const img = document.getElementById('img');"
            "return img.getAttribute('src') && img.complete ? [img.getAttribute('src'), img.naturalWidth] : null;"
        )

    src, width = wait_until(loaded, timeout=30, message=lambda: site.server.output()[-3000:])
    # Stored, not put into the page; and shown: the browser decoded the bucket's answer.
    assert src.startswith("/_dash-files/") and src.endswith("/plot.png"), src[:100]
    assert width == PNG_WIDTH
    # The app answered the picture's GET with a 307 (and served no byte of it).
    gets = _file_gets(site, since)
    assert [(path, status) for _, _, path, status in gets] == [(src, 307)], gets
    # That redirect leads to the bucket, and the bucket has the picture's bytes.
    location = _redirect_of(site, src)
    assert location.startswith(site.bucket_url), location
    assert _get(location) == (200, PNG)
    # The page's own fetch of the picture follows it there too.
    fetched = _page_fetch(driver, src)
    assert fetched.get("status") == 200 and fetched["redirected"] is True, fetched
    assert fetched["url"].startswith(site.bucket_url), fetched
    assert fetched["sha256"] == hashlib.sha256(PNG).hexdigest()


def test_a_download_from_the_bucket_is_saved_under_its_exact_name(
    driver: Any, site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "downloads"
    since = site.server.mark()
    _open(driver, site)
    _click(driver, "export")
    saved = folder / CSV_NAME

    def finished() -> bool:
        site.server.check_no_error(since)
        return saved.is_file() and not list(folder.glob("*.crdownload"))

    wait_until(
        finished,
        timeout=60,
        message=lambda: f"not saved; the folder has {os.listdir(folder)}; {site.server.output()[-2000:]}",
    )
    assert saved.read_bytes() == CSV
    assert os.listdir(folder) == [CSV_NAME]
    # The browser got the file from the bucket: the app answered its one GET with a 307.
    gets = _file_gets(site, since)
    assert len(gets) == 1 and gets[0][3] == 307, gets


def test_an_upload_goes_straight_into_the_bucket_and_is_read_back(
    driver: Any, site: Site, tmp_path: Path
) -> None:
    path = tmp_path / "big upload.bin"
    expected = _write_file(path, UPLOAD_SIZE)
    since = site.server.mark()
    _open(driver, site)
    workers = site.workers()
    assert len(workers) == 2, workers
    base = {pid: _reset_peak(pid) for pid in workers}
    started = time.monotonic()
    driver.find_element(By.CSS_SELECTOR, "#up input[type=file]").send_keys(str(path))

    def digest() -> str:
        return str(driver.find_element(By.ID, "digest").text)

    def done() -> bool:
        site.server.check_no_error(since)
        return digest().startswith(f"{path.name} {UPLOAD_SIZE} ")

    def status() -> str:
        found = driver.find_elements(By.CSS_SELECTOR, "#up .dfc-upload__status")
        return str(found[0].text) if found else ""

    try:
        wait_until(
            done,
            timeout=150,
            message=lambda: f"digest {digest()!r}, status {status()!r}; {site.server.output()[-3000:]}",
        )
        growth = {pid: _status(pid, "VmHWM:") - base[pid] for pid in workers}
    finally:
        path.unlink()
    print(
        f"\n{UPLOAD_SIZE // MIB} MiB uploaded to the bucket and read back in {time.monotonic() - started:.1f} s; "
        f"worker growth {[f'{g / MIB:.1f} MiB' for g in growth.values()]}"
    )
    name_size_sha, _, reader = digest().rpartition(" ")
    assert name_size_sha == f"{path.name} {UPLOAD_SIZE} {expected}"
    assert int(reader) in workers
    # The app started and completed the upload, and took none of its parts.
    requests = [(m, p, s) for _, m, p, s in site.requests(since) if p.startswith("/_dash-files/_upload")]
    assert ("POST", "/_dash-files/_upload", 201) in requests, requests
    assert any(m == "POST" and p.count("/") == 3 and s == 200 for m, p, s in requests), requests
    assert not [r for r in requests if r[0] == "PUT"], requests
    # The page PUT every part to the bucket, each once.
    parts = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'xmlhttprequest' && e.name.startsWith(arguments[0]))"
        ".map(e => e.name);",
        site.bucket_url,
    )
    numbers = sorted(int(parse_qs(urlsplit(url).query)["partNumber"][0]) for url in parts)
    assert len(numbers) >= 2 and numbers == list(range(1, len(numbers) + 1)), numbers
    # The bucket holds the file as one object.
    objects = site.seaweed.client().list_objects_v2(Bucket=site.bucket).get("Contents", [])
    assert [o["Size"] for o in objects if o["Size"] == UPLOAD_SIZE] == [UPLOAD_SIZE]
    # Neither the parts nor the read-back went through the workers' memory.
    assert sum(growth.values()) < MEMORY_BUDGET, {pid: f"{g / MIB:.1f} MiB" for pid, g in growth.items()}
