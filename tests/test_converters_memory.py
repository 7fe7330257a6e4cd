"""Converted values stream into the store: a large CSV export or PNG never sits in memory whole.

Measured like tests/test_memory.py: in a fresh process, the peak RSS (VmHWM) while ``register()`` writes
the value, over the RSS before (the value itself already in memory). The growth stays a few chunks while
the file is a hundred MiB and more; writing into a BytesIO first would grow by the file's size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import pandas as pd
    from cachelib import FileSystemCache
    from flask import Flask
    from PIL import Image
    from dfc_transform import File, FileService

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    kind, directory = sys.argv[1], sys.argv[2]
    service = FileService(FileSystemCache(directory, threshold=0))
    app = Flask(__name__)
    service.init_app(app)
    rng = np.random.default_rng(12)
    if kind == "csv":
        # 4 million rows of four random integers: about 180 MiB of CSV.
        value = pd.DataFrame({column: rng.integers(0, 10**9, 4_000_000) for column in "abcd"})
        check = lambda body: len(body.splitlines()) == 4_000_001
    else:
        # 5000 x 5000 pixels of noise, which does not compress: about 72 MiB of PNG.
        image = Image.frombytes("RGB", (5000, 5000), rng.bytes(5000 * 5000 * 3))
        value = File(image, writer={"compress_level": 1})
        check = lambda body: Image.open(__import__("io").BytesIO(body)).size == (5000, 5000)

    open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
    base = status("VmRSS:")
    url = service.register(value)
    growth = status("VmHWM:") - base
    size = service.stats().bytes

    response = app.test_client().get(url)
    print(json.dumps({
        "growth": growth, "size": size, "status": response.status_code,
        "name": url.rsplit("/", 1)[1], "parsed": bool(check(response.data)),
        "chunk_size": service.store.chunk_size,
    }))
    """
)

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("kind", "name", "least"), [("csv", "data.csv", 150 * MiB), ("png", "image.png", 64 * MiB)]
)
def test_converted_value_streams_into_the_store(tmp_path: Path, kind: str, name: str, least: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200 and report["name"] == name and report["parsed"], report
    assert report["size"] >= least, report
    # A few chunks (the pipe's limit, the chunk being stored, the writer's own batch), whatever the size.
    assert report["chunk_size"] == MiB
    assert report["growth"] < 24 * MiB, report
