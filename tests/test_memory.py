"""Serving a 1 GiB file keeps the server's memory bounded (measured, not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Runs in a fresh process so that its peak RSS (VmHWM) is its own.
SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from cachelib import FileSystemCache, SimpleCache
    from flask import Flask
    from dfc_transform import FileService

    SIZE = 1024 ** 3
    BLOCK = 1024 * 1024

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    class Pattern:
        # A 1 GiB binary stream produced on the fly: never in memory as a whole.
        def __init__(self):
            self.pos = 0
        def read(self, n=-1):
            n = min(n if n > 0 else BLOCK, SIZE - self.pos)
            start = self.pos
            self.pos += n
            return (start.to_bytes(8, "big") * (n // 8 + 1))[:n]

    kind, directory = sys.argv[1], sys.argv[2]
    backend = FileSystemCache(directory, threshold=0) if kind == "filesystem" else SimpleCache(threshold=0)
    app = Flask(__name__)
    service = FileService(backend)
    service.init_app(app)
    client = app.test_client()

    expected = hashlib.sha256()
    source = Pattern()
    while source.pos < SIZE:
        expected.update(source.read(BLOCK))

    open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
    base = status("VmRSS:")
    url = service.register(Pattern(), filename="big.bin")
    register_peak = status("VmHWM:") - base

    open("/proc/self/clear_refs", "w").write("5")
    base = status("VmRSS:")
    response = client.get(url, buffered=False)
    digest = hashlib.sha256()
    received = 0
    for piece in response.response:
        digest.update(piece)
        received += len(piece)
    response.close()
    serve_peak = status("VmHWM:") - base
    print(json.dumps({
        "status": response.status_code, "received": received,
        "content_length": int(response.headers["Content-Length"]),
        "same": digest.hexdigest() == expected.hexdigest(),
        "register_growth": register_peak, "serve_growth": serve_peak,
    }))
    """
)

MiB = 1024 * 1024


@pytest.mark.parametrize("kind", ["filesystem"])
def test_serving_1gib_stays_bounded(tmp_path: Path, kind: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["received"] == report["content_length"] == 1024**3
    assert report["same"], "served bytes differ from the registered ones"
    # Tens of MiB at most, whatever the file size: one chunk at a time.
    assert report["register_growth"] < 48 * MiB, report
    assert report["serve_growth"] < 48 * MiB, report
