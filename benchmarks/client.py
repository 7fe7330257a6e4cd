"""The HTTP client of the benchmarks: http.client on 127.0.0.1, reading in large blocks.

It runs in the benchmark's main process, never in the server's: each request opens a
fresh connection (as a browser fetching a new URL may), and the time measured runs from
the connection to the last byte of the body.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from dataclasses import dataclass
from typing import Any

BLOCK = 1024 * 1024
_buffer = memoryview(bytearray(BLOCK))


@dataclass(frozen=True)
class Fetched:
    status: int
    #: Body bytes received.
    size: int
    #: Request and response bytes on the wire: request line, headers and body, both ways.
    wire: int
    seconds: float
    sha256: str | None
    #: The body, when asked for (``keep=True``).
    body: bytes | None
    headers: dict[str, str]


def fetch(
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    digest: bool = False,
    keep: bool = False,
    timeout: float = 600,
) -> Fetched:
    """One request; the body is read in blocks of 1 MiB and dropped unless ``keep``."""
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    sha = hashlib.sha256() if digest else None
    kept: list[bytes] = []
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        response = conn.getresponse()
        size = 0
        while True:
            n = response.readinto(_buffer)
            if not n:
                break
            size += n
            if sha is not None:
                sha.update(_buffer[:n])
            if keep:
                kept.append(bytes(_buffer[:n]))
        seconds = time.perf_counter() - start
    finally:
        conn.close()
    response_headers = dict(response.getheaders())
    request_bytes = _head_size(f"{method} {path} HTTP/1.1", {"Host": f"127.0.0.1:{port}", **hdrs})
    request_bytes += len(body or b"")
    response_bytes = _head_size(f"HTTP/1.1 {response.status} {response.reason}", response_headers) + size
    return Fetched(
        status=response.status,
        size=size,
        wire=request_bytes + response_bytes,
        seconds=seconds,
        sha256=sha.hexdigest() if sha is not None else None,
        body=b"".join(kept) if keep else None,
        headers=response_headers,
    )


def get_json(port: int, path: str, *, method: str = "GET", payload: Any = None) -> Any:
    body = json.dumps(payload).encode() if payload is not None else None
    fetched = fetch(port, path, method=method, body=body, keep=True)
    if fetched.status != 200:
        raise RuntimeError(f"{method} {path} answered {fetched.status}: {fetched.body!r:.500}")
    return json.loads(fetched.body or b"null")


def _head_size(first_line: str, headers: dict[str, str]) -> int:
    return len(first_line) + 2 + sum(len(k) + 2 + len(v) + 2 for k, v in headers.items()) + 2
