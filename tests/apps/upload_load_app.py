"""A plain Flask app with a FileService under a small byte budget, run by gunicorn for
tests/test_upload_load.py: uploads, registrations and downloads at once.

``DFC_TEST_BACKEND``: ``default`` (the default store) or ``redis://HOST:PORT``, its keys under
``DFC_TEST_REDIS_PREFIX``. The settings come from ``DFC_LOAD_MAX_TOTAL_SIZE``,
``DFC_LOAD_CHUNK_SIZE``, ``DFC_LOAD_UPLOAD_BYTES``, ``DFC_LOAD_SESSION_BYTES`` and
``DFC_LOAD_IDLE``. Every file evicted or removed is appended to the file named by
``DFC_TEST_EVENTS`` (``evicted <token>``), so that the test can tell a file the budget took
from a file that was lost.

- ``GET /pid``: the worker's process id, the store's namespace and its ledger's key;
- ``GET /ticket``: a fresh upload ticket (``private=False``: each ticket counts as one session)
  and the protocol's endpoint;
- ``POST /register?size=N&seed=S``: stores N bytes made from the seed; ``{url, sha256}``;
- ``GET /stats``: the service's stats, what the ledger counts against the budget (``used``), holds
  for unfinished uploads (``upload_reserved``) and for evicted files still being read (``kept``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from typing import Any

from cachelib import RedisCache
from flask import Flask, request

from dfc_transform import FileService
from dfc_transform.events import FileEvent
from dfc_transform.exc import StoreFullError
from dfc_transform.http.tickets import Tickets

MIB = 1024 * 1024


def _backend() -> Any:
    spec = os.environ.get("DFC_TEST_BACKEND", "default")
    if spec == "default":
        return None
    host, port = spec.removeprefix("redis://").split(":")
    prefix = os.environ.get("DFC_TEST_REDIS_PREFIX", "load:")
    return RedisCache(host=host, port=int(port), key_prefix=prefix, socket_timeout=10)


def _setting(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _note(event: FileEvent) -> None:
    """Append evictions and removals to the events file (one short line: one atomic append)."""
    path = os.environ.get("DFC_TEST_EVENTS")
    if path and event.kind in ("evicted", "removed") and event.token:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{event.kind} {event.token}\n".encode())
        finally:
            os.close(fd)


server = Flask(__name__)
service = FileService(
    _backend(),
    max_total_size=_setting("DFC_LOAD_MAX_TOTAL_SIZE", 32 * MIB),
    chunk_size=_setting("DFC_LOAD_CHUNK_SIZE", 64 * 1024),
    max_upload_bytes=_setting("DFC_LOAD_UPLOAD_BYTES", 8 * MIB),
    max_upload_bytes_per_session=_setting("DFC_LOAD_SESSION_BYTES", 1 * MIB),
    upload_idle_timeout=_setting("DFC_LOAD_IDLE", 5),
    on_event=[_note],
)
service.init_app(server)


@server.get("/pid")
def pid() -> dict[str, Any]:
    return {"pid": os.getpid(), "namespace": service.store.namespace, "ledger": service.store.ledger.key}


@server.get("/ticket")
def ticket() -> dict[str, Any]:
    token = Tickets(service.store).issue("load", private=False)
    return {"ticket": token, "endpoint": f"{request.script_root}/_dash-files/_upload"}


@server.post("/register")
def register() -> Any:
    size = int(request.args["size"])
    data = random.Random(request.args["seed"]).randbytes(size)
    try:
        url = service.register(data, filename="made.bin")
    except StoreFullError as err:
        return {"error": str(err)}, 507
    return {"url": url, "sha256": hashlib.sha256(data).hexdigest()}


@server.get("/stats")
def stats() -> dict[str, Any]:
    answer = dataclasses.asdict(service.stats())
    head = service.store.ledger.read()
    # Files, files being written, unfinished uploads and evicted files a transfer still reads:
    # what the ledger counts against the budget.
    answer["used"] = head.used
    answer["upload_reserved"] = head.upload_reserved
    answer["kept"] = sum(int(kept[0]) for kept in head.kept.values())  # evicted, still read
    return answer
