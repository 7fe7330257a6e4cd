"""A plain Flask app with a FileService, run by gunicorn for tests/test_attacks.py.

``DFC_TEST_BACKEND``: ``default`` (the default store) or ``redis://HOST:PORT``.
``POST /register?size=N&one_time=1`` stores N bytes made from a seed and answers
``{"url": ..., "sha256": ...}``.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

from cachelib import RedisCache
from flask import Flask, request

from dfc_transform import FileService


def _backend() -> Any:
    spec = os.environ.get("DFC_TEST_BACKEND", "default")
    if spec == "default":
        return None
    host, port = spec.removeprefix("redis://").split(":")
    return RedisCache(host=host, port=int(port), key_prefix="attack:", socket_timeout=5)


server = Flask(__name__)
service = FileService(_backend())
service.init_app(server)


@server.get("/pid")
def pid() -> dict[str, Any]:
    return {"pid": os.getpid(), "namespace": service.store.namespace}


@server.post("/register")
def register() -> dict[str, Any]:
    size = int(request.args["size"])
    data = random.Random(request.args.get("seed", "0")).randbytes(size)
    url = service.register(data, filename="once.bin", one_time=request.args.get("one_time") == "1")
    return {"url": url, "sha256": hashlib.sha256(data).hexdigest()}
