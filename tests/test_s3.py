"""Files in an S3 bucket (``S3Store``), on a real S3 store: SeaweedFS's ``weed mini``.

The backend contract suite runs on it too (``tests/test_backends.py``, kind ``s3``); here is what
only object storage does: redirects to presigned URLs (and where there are none), two processes
sharing a bucket, private and one-time files, expiry emptying the bucket, uploads straight to the
bucket, the command line, clear errors, and a 1 GiB file with the app's memory bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask

from dfc_transform import FileService, S3Store
from dfc_transform.exc import BackendUnavailableError, FileServeError
from dfc_transform.http.session import COOKIE
from dfc_transform.http.tickets import Tickets
from dfc_transform.store.expiry import BUCKET_SECONDS

from .servers import SeaweedServer

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


class Site:
    """A Flask app with a ``FileService`` on a bucket."""

    def __init__(self, seaweed: SeaweedServer, bucket: str, **options: Any) -> None:
        self.store = S3Store(bucket, endpoint_url=seaweed.endpoint_url, client=seaweed.client(), **options)
        self.files = FileService(self.store, timeout=options.pop("timeout", 3600))
        self.app = Flask(__name__)
        self.files.init_app(self.app)
        self.client = self.app.test_client()

    def register(self, value: Any, **options: Any) -> str:
        with self.app.test_request_context():
            return self.files.register(value, **options)


@pytest.fixture
def site(seaweed_server: SeaweedServer, s3_bucket: str) -> Site:
    return Site(seaweed_server, s3_bucket)


def _fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET a URL of the bucket as a browser would follow a redirect to it."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_a_file_is_one_object_served_by_a_redirect_with_its_headers(site: Site) -> None:
    data = os.urandom(20 * MiB + 3)  # a multipart upload of three parts
    name = "Überblick - données 報告.bin"
    url = site.register(data, filename=name)
    record = site.files.store.get(url.split("/")[-2])
    assert record is not None and record.blob
    r = site.client.get(url)
    assert r.status_code == 307 and r.data == b""
    assert r.headers["Cache-Control"].startswith("private, max-age=")
    status, headers, body = _fetch(r.headers["Location"])
    assert status == 200 and body == data
    assert headers["Content-Type"] == "application/octet-stream"
    assert f"filename*=UTF-8''{quote(name, safe='')}" in headers["Content-Disposition"]
    assert headers["Content-Disposition"].startswith("inline")
    # Ranges and conditional requests go to the bucket.
    status, _, part = _fetch(r.headers["Location"], {"Range": "bytes=10-19"})
    assert status == 206 and part == data[10:20]
    # As an attachment: another redirect, saying so.
    saved = site.client.get(url + "?download=1")
    assert saved.status_code == 307
    assert _fetch(saved.headers["Location"])[1]["Content-Disposition"].startswith("attachment")


def test_what_is_not_redirected_is_served_through_the_app(site: Site) -> None:
    page = b"<script>document.title = 'ran'</script>" + b"<p>text</p>" * 200_000  # not kept in its record
    html = site.register(page, filename="page.html")
    r = site.client.get(html)  # active content shown inline: our sandbox, not the bucket's headers
    assert r.status_code == 200 and r.data == page
    assert r.headers["Content-Security-Policy"] == "sandbox"
    assert site.client.get(html + "?download=1").status_code == 307  # saved, never rendered
    once = site.register(os.urandom(6 * MiB), filename="once.bin", one_time=True)
    first = site.client.get(once)  # a presigned URL could be replayed until it expires
    assert first.status_code == 200 and len(first.data) == 6 * MiB
    assert site.client.get(once).status_code == 410


def test_redirect_false_serves_everything_through_the_app(
    seaweed_server: SeaweedServer, s3_bucket: str
) -> None:
    site = Site(seaweed_server, s3_bucket, redirect=False)
    data = os.urandom(9 * MiB)
    url = site.register(data, filename="a.bin")
    r = site.client.get(url)
    assert r.status_code == 200 and r.data == data
    part = site.client.get(url, headers={"Range": f"bytes={5 * MiB}-{5 * MiB + 99}"})
    assert part.status_code == 206 and part.data == data[5 * MiB : 5 * MiB + 100]


def test_a_private_file_is_redirected_for_its_browser_only(site: Site) -> None:
    site.files.uses_private = True
    owner = site.app.test_client()
    owner.get("/")  # no page here: the cookie is made as a page would
    session_id = "s" * 43
    owner.set_cookie(COOKIE, session_id)
    with site.app.test_request_context(headers={"Cookie": f"{COOKIE}={session_id}"}):
        url = site.files.register(b"mine" * MiB, filename="mine.txt", private=True)
    assert owner.get(url).status_code == 307
    assert site.app.test_client().get(url).status_code == 404


def test_two_processes_share_a_bucket(
    site: Site, seaweed_server: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    """One process stores (with a default store of its own), the other serves."""
    script = f"""
import os, sys
from flask import Flask
from dfc_transform import FileService, S3Store
store = S3Store({s3_bucket!r}, endpoint_url={seaweed_server.endpoint_url!r})
files = FileService(store)
app = Flask("other")
files.init_app(app)
with app.test_request_context():
    print(files.register(b"from the other process " * 100_000, filename="shared.txt"))
"""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": seaweed_server.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed_server.secret_key,
        "AWS_DEFAULT_REGION": seaweed_server.region,
        "DFC_TRANSFORM_DIR": str(tmp_path / "other-store"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    url = done.stdout.strip().splitlines()[-1]
    r = site.client.get(url)
    assert r.status_code == 307
    assert _fetch(r.headers["Location"])[2] == b"from the other process " * 100_000
    assert [f.filename for f in site.files.files()] == ["shared.txt"]


def test_expiry_empties_the_bucket(seaweed_server: SeaweedServer, s3_bucket: str) -> None:
    site = Site(seaweed_server, s3_bucket, timeout=1)
    urls = [site.register(os.urandom(n), filename=f"f{n}.bin") for n in (10, 7 * MiB)]
    assert site.files.stats().files == 2
    later = time.time() + 3 * BUCKET_SECONDS
    assert site.files.store.sweep(now=later, force=True) == 2
    left = [k for k in site.store.list_keys(site.store.prefix) if not _state(k)]
    assert left == []
    assert [site.client.get(u).status_code for u in urls] == [404, 404]
    assert site.files.stats().files == 0


def _state(key: str) -> bool:
    """The store's own keys, which stay: its HMAC key, ledger, registry of namespaces."""
    return key.endswith((":hmac-key", ":ledger", ":namespaces", "dfc:namespaces"))


def test_remove_deletes_the_object(site: Site) -> None:
    url = site.register(os.urandom(MiB), filename="a.bin")
    assert site.files.remove(url)
    assert site.client.get(url).status_code == 404
    assert [
        k for k in site.store.list_keys(site.store.prefix) if not _state(k) and "/journal/" not in k
    ] == []


# -- uploads straight to the bucket ----------------------------------------------------------


def _ticket(site: Site) -> dict[str, str]:
    with site.app.test_request_context():
        return {"X-Upload-Ticket": Tickets(site.files.store).issue("up", private=False)}


def test_an_upload_goes_straight_to_the_bucket_and_resumes(site: Site) -> None:
    data = os.urandom(13 * MiB + 5)
    headers = _ticket(site)
    started = site.client.post(
        "/_dash-files/_upload",
        data=json.dumps({"name": "big.bin", "size": len(data)}),
        headers=headers,
        content_type="text/plain",
    )
    assert started.status_code == 201, started.data
    status = started.get_json()
    size, urls = status["part_size"], status["direct"]
    assert size >= 5 * MiB and len(urls) == status["parts"] == -(-len(data) // size)
    upload = status["upload"]
    # The app refuses the bytes: they go to the bucket.
    refused = site.client.put(f"/_dash-files/_upload/{upload}/0", data=data[:size], headers=headers)
    assert refused.status_code == 409 and refused.get_json()["reason"] == "direct"
    # The first part only, then the page reloads: the status says which arrived.
    assert _put(urls[0], data[:size]) == 200
    again = site.client.get(f"/_dash-files/_upload/{upload}", headers=headers).get_json()
    assert again["received"] == [0] and len(again["direct"]) == len(urls)
    incomplete = site.client.post(
        f"/_dash-files/_upload/{upload}",
        data=json.dumps({"parts": ["0" * 8] * len(urls)}),
        headers=headers,
        content_type="text/plain",
    )
    assert incomplete.status_code == 409 and incomplete.get_json()["missing"] == list(range(1, len(urls)))
    for part in range(1, len(urls)):
        assert _put(again["direct"][part], data[part * size : (part + 1) * size]) == 200
    done = site.client.post(
        f"/_dash-files/_upload/{upload}",
        data=json.dumps({"parts": ["0" * 8] * len(urls)}),
        headers=headers,
        content_type="text/plain",
    )
    assert done.status_code == 200, done.data
    file = done.get_json()["file"]
    r = site.client.get(file["url"])
    assert (
        r.status_code == 307
        and hashlib.sha256(_fetch(r.headers["Location"])[2]).digest() == hashlib.sha256(data).digest()
    )
    assert site.files.stats().files == 1 and site.files.stats().uploads == 0


def test_a_cancelled_upload_leaves_nothing_in_the_bucket(site: Site) -> None:
    headers = _ticket(site)
    status = site.client.post(
        "/_dash-files/_upload",
        data=json.dumps({"name": "a.bin", "size": 12 * MiB}),
        headers=headers,
        content_type="text/plain",
    ).get_json()
    assert _put(status["direct"][0], os.urandom(status["part_size"])) == 200
    r = site.client.delete(f"/_dash-files/_upload/{status['upload']}", headers=headers)
    assert r.status_code == 200 and r.get_json()["cancelled"] is True
    uploads = site.store.client.list_multipart_uploads(Bucket=site.store.bucket).get("Uploads", [])
    assert uploads == []
    assert site.files.stats().upload_bytes == 0


def _put(url: str, data: bytes) -> int:
    request = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return int(answer.status)


# -- errors ---------------------------------------------------------------------------------


def test_a_missing_bucket_is_named_at_the_first_use(seaweed_server: SeaweedServer) -> None:
    store = S3Store(
        "no-such-bucket", endpoint_url=seaweed_server.endpoint_url, client=seaweed_server.client()
    )
    with pytest.raises(
        FileServeError, match=r"S3 bucket 'no-such-bucket' at http://127\.0\.0\.1:[0-9]+ does not exist"
    ):
        FileService(store).register(b"x")


def test_wrong_credentials_are_named(seaweed_server: SeaweedServer, s3_bucket: str) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=seaweed_server.endpoint_url,
        aws_access_key_id="wrong",
        aws_secret_access_key="wrong",
        region_name=seaweed_server.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    with pytest.raises(FileServeError, match="refused our credentials"):
        FileService(S3Store(s3_bucket, endpoint_url=seaweed_server.endpoint_url, client=client)).register(
            b"x"
        )


def test_a_store_that_does_not_answer_is_a_503_within_the_timeout(
    seaweed_server: SeaweedServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    site = Site(seaweed_server, s3_bucket)
    url = site.register(os.urandom(MiB), filename="a.bin")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nobody listens there once closed
    down = S3Store(s3_bucket, endpoint_url=dead, timeout=1)
    with pytest.raises(BackendUnavailableError, match="does not answer"):
        FileService(down).register(b"x")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(BackendUnavailableError, match="no credentials for the S3 bucket"):
        FileService(S3Store(s3_bucket, endpoint_url=seaweed_server.endpoint_url)).register(b"x")
    # The app whose store goes away answers 503, promptly.
    site.files.store.profile.blobs.client = down.client  # type: ignore[union-attr]
    site.store.client = down.client
    start = time.monotonic()
    r = site.client.get(url)
    assert r.status_code == 503 and time.monotonic() - start < 15


# -- the command line -----------------------------------------------------------------------


def test_the_command_line_lists_and_purges_a_bucket(
    site: Site, seaweed_server: SeaweedServer, s3_bucket: str
) -> None:
    site.register(b"a" * 100, filename="a.txt")
    site.register(os.urandom(6 * MiB), filename="b.bin")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": seaweed_server.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed_server.secret_key,
        "AWS_DEFAULT_REGION": seaweed_server.region,
    }
    where = ["--s3", s3_bucket, "--endpoint-url", seaweed_server.endpoint_url]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dfc_transform", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli("list", "--json", *where)
    assert listed.returncode == 0, listed.stderr
    assert sorted(f["name"] for f in json.loads(listed.stdout)) == ["a.txt", "b.bin"]
    purged = cli("purge", "--all", *where)
    assert purged.returncode == 0, purged.stderr
    assert site.files.stats().files == 0
    missing = cli("stats", "--s3", "no-such-bucket", "--endpoint-url", seaweed_server.endpoint_url)
    assert (
        missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    )
    alone = cli("stats", "--endpoint-url", seaweed_server.endpoint_url)
    assert alone.returncode == 1 and "--endpoint-url goes with --s3" in alone.stderr


# -- big files ------------------------------------------------------------------------------


BIG = """
import hashlib, os, resource, sys
from flask import Flask
from dfc_transform import FileService, S3Store

class Stream:  # 1 GiB made as it is read: no copy of it anywhere in this process
    def __init__(self, size):
        self.left, self.hash = size, hashlib.sha256()
    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        data = os.urandom(n) if n < 4096 else (b"%d" % n) * (n // len(b"%d" % n)) + b"x" * (n % len(b"%d" % n))
        self.hash.update(data)
        return data

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

store = S3Store(sys.argv[1], endpoint_url=sys.argv[2], redirect=False)
files = FileService(store)
app = Flask("big")
files.init_app(app)
before = peak()
source = Stream(1024 ** 3)
with app.test_request_context():
    url = files.register(source, filename="big.bin")
stored = peak()
served = hashlib.sha256()
with app.test_client() as client:
    answer = client.get(url, buffered=False)
    for piece in answer.response:
        served.update(piece)
print(url, source.hash.hexdigest() == served.hexdigest(), stored - before, peak() - before)
"""


def test_a_gigabyte_goes_in_and_out_with_the_apps_memory_bounded(
    seaweed_server: SeaweedServer, s3_bucket: str
) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": seaweed_server.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed_server.secret_key,
        "AWS_DEFAULT_REGION": seaweed_server.region,
    }
    done = subprocess.run(
        [sys.executable, "-c", BIG, s3_bucket, seaweed_server.endpoint_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _, same, stored_growth, served_growth = done.stdout.split()
    assert same == "True"
    # A part (8 MiB) and its joined copy while it goes out, a chunk being served: well under 64 MiB.
    assert int(stored_growth) < 64 * MiB and int(served_growth) < 64 * MiB, done.stdout
