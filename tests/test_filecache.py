"""The default store's cache (``dfc_transform.store.filecache``): cachelib's format and atomic
renames, with empty temp files made ahead by each process for its own writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cachelib import FileSystemCache

from dfc_transform.store.filecache import BytesFileSystemCache

SUFFIX = FileSystemCache._fs_transaction_suffix


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(SUFFIX))


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end
        time.sleep(0.01)


def test_values_round_trip_in_cachelibs_format(tmp_path: Path) -> None:
    ours = BytesFileSystemCache(str(tmp_path), threshold=0)
    assert ours.set("a", b"\x00" * 100_000) and ours.set("b", b"short", timeout=1)
    assert ours.get("a") == b"\x00" * 100_000 and ours.has("b")
    # cachelib's own reader agrees on the layout (expiry header, then the bytes).
    theirs = BytesFileSystemCache.__mro__[1](str(tmp_path), threshold=0)
    with open(theirs._get_filename("b"), "rb") as f:
        assert f.read()[4:] == b"short"
    time.sleep(2.1)
    assert ours.get("b") is None and not ours.has("b")
    assert ours.get("missing") is None
    with pytest.raises(TypeError, match="bytes only"):
        ours.set("c", "text")


def test_writes_use_temp_files_made_ahead_and_survive_them_being_swept(tmp_path: Path) -> None:
    cache = BytesFileSystemCache(str(tmp_path), threshold=0)
    cache.set("first", b"1")
    _wait_for(lambda: len(_temps(tmp_path)) == 16)
    made = set(_temps(tmp_path))
    assert all(name.startswith(f"temp-{os.getpid()}-") for name in made)
    cache.set("second", b"2")
    assert len(made - set(_temps(tmp_path))) == 1  # one of them became "second"
    for name in _temps(tmp_path):  # a sweep of stale temp files takes them all
        os.unlink(tmp_path / name)
    for i in range(20):
        assert cache.set(f"k{i}", str(i).encode())
    assert [cache.get(f"k{i}") for i in range(20)] == [str(i).encode() for i in range(20)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_worker_never_fills_its_parents_temp_files(tmp_path: Path) -> None:
    cache = BytesFileSystemCache(str(tmp_path), threshold=0)
    cache.set("parent", b"p")
    _wait_for(lambda: len(_temps(tmp_path)) == 16)
    parents = set(_temps(tmp_path))
    pid = os.fork()
    if pid == 0:  # the child: writes, then reports which temp files it used
        try:
            for i in range(5):
                cache.set(f"child{i}", b"c")
            os._exit(0 if parents <= set(_temps(tmp_path)) else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [cache.get(f"child{i}") for i in range(5)] == [b"c"] * 5


def test_a_process_removes_its_unused_temp_files_when_it_exits(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from dfc_transform.store.filecache import BytesFileSystemCache\n"
        "c = BytesFileSystemCache(sys.argv[1], threshold=0)\n"
        "c.set('x', b'1'); time.sleep(0.5)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    assert _temps(tmp_path) == []
    assert BytesFileSystemCache(str(tmp_path), threshold=0).get("x") == b"1"
