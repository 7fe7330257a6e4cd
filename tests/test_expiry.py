"""Expired files leave the default store and SimpleCache, including half-written ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cachelib import SimpleCache

from dfc_transform import FileService
from dfc_transform.store import expiry
from dfc_transform.store.expiry import BUCKET_SECONDS, DirectoryJournal, MemoryJournal

from .store_files import file_entries

LATER = BUCKET_SECONDS * 3  # far enough ahead that every bucket noted now is due


def _keys(root: Path) -> list[str]:
    """The store's entries, less a temporary file cachelib may leave when killed mid-write."""
    return [name for name in _files(root) if not name.endswith(".__wz_cache")]


def _files(root: Path) -> list[str]:
    return file_entries(root)


def test_default_store_sweeps_expired_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path))
    service = FileService(timeout=5, chunk_size=1024)
    assert isinstance(service.store.journal, DirectoryJournal)
    service.register(os.urandom(5000))
    service.register(os.urandom(10))
    assert len(_files(tmp_path)) == 5 + 1 + 1  # chunks, a record, a small file in its record
    # Nothing is due yet: a sweep now keeps everything.
    assert service.store.sweep(force=True) == 0
    assert len(_files(tmp_path)) == 7
    purged = service.store.sweep(now=time.time() + LATER, force=True)
    assert purged == 2
    assert _files(tmp_path) == []
    assert os.listdir(tmp_path / "expiry") == []
    # The store directory itself stays: workers being recycled keep sharing it.
    assert (tmp_path / "files").is_dir()


def test_sweep_removes_chunks_of_a_killed_writer(tmp_path: Path) -> None:
    """A background job cancelled mid-write leaves chunks without a record; the sweep finds them."""
    script = textwrap.dedent(
        """
        import os, sys
        from dfc_transform import FileService
        class Endless:
            def read(self, n=-1):
                sys.stdout.write("chunk\\n"); sys.stdout.flush()
                return b"x" * n
        FileService(timeout=5, chunk_size=1024).register(Endless())
        """
    )
    env = {**os.environ, "DFC_TRANSFORM_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(20):  # let it write some chunks
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    orphans = _keys(tmp_path)
    assert len(orphans) >= 10
    os.environ["DFC_TRANSFORM_DIR"] = str(tmp_path)
    try:
        service = FileService(timeout=5, chunk_size=1024)
    finally:
        del os.environ["DFC_TRANSFORM_DIR"]
    assert service.store.journal is not None
    # Swept, though not counted: what a killed writer left is no stored file.
    assert service.store.sweep(now=time.time() + LATER, force=True) == 0
    # A writer killed inside cachelib's set() may leave that set's temporary file: it goes too.
    assert _files(tmp_path) == []


def test_simplecache_sweeps_expired_files() -> None:
    backend = SimpleCache(threshold=0)
    service = FileService(backend, timeout=5, chunk_size=1024)
    assert isinstance(service.store.journal, MemoryJournal)
    url = service.register(os.urandom(3000))
    token = url.split("/")[2]
    record = service.store.get(token)
    assert record is not None
    assert backend.has(f"dfc:{record.storage}:2")
    service.store.sweep(now=time.time() + LATER, force=True)
    assert not backend.has(f"dfc:{token}:m")
    assert not any(backend.has(f"dfc:{record.storage}:{i}") for i in range(3))


def test_sweeps_run_by_themselves_off_the_registration_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFC_TRANSFORM_DIR", str(tmp_path))
    monkeypatch.setattr(expiry, "SWEEP_INTERVAL", 0.2)
    service = FileService(timeout=1, chunk_size=1024)
    journal = service.store.journal
    assert journal is not None
    swept: list[float] = []

    def recording(*args: Any, **kwargs: Any) -> int:
        swept.append(time.time())
        return 0

    monkeypatch.setattr(journal, "sweep_due", recording)
    for _ in range(5):
        service.register(b"x")
    assert swept == []  # a registration never sweeps itself
    deadline = time.monotonic() + 10
    while len(swept) < 2:  # the daemon thread does, again and again
        assert time.monotonic() < deadline, "the sweeper thread never ran"
        time.sleep(0.05)
    assert any(t.name == "dfc_transform-sweeper" for t in threading.enumerate())
