"""Which store the command line's arguments name, and which of its namespaces.

A store directory is recognised whichever way it is given: the directory an app's
``DFC_TRANSFORM_DIR`` names (it holds ``files/`` and ``expiry/``), its ``files/``
directory, or a ``FileSystemCache`` directory an app of this user stored files in (its
journal lives in the default store's ``caches/``). A directory that is none of these is
an error, never an empty store.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exc import FileServeError
from ..service import FileService
from ..store import default_backend, default_cache_dir
from ..store.backends import profile_of
from ..store.keys import Keys
from ..store.namespaces import known
from ..store.s3 import S3Store

__all__ = ["Store", "locate"]

#: Seconds before a server that does not answer is given up: a hung server must not hang us.
SERVER_TIMEOUT = 5.0


@dataclass
class Store:
    """A store found from the command line."""

    #: What it is, for messages: "the default store in /tmp/dfc_transform-0".
    name: str
    backend: Any
    #: Every namespace known to hold files there, with what it is (module, prefix, directory).
    namespaces: dict[str, dict[str, Any]]
    #: The namespaces the command works on (``--namespace``, else all of them).
    chosen: list[str] = field(default_factory=list)

    def service(self, namespace: str) -> FileService:
        return FileService(self.backend, namespace=namespace, timeout=0, min_free_space=0)


def locate(args: argparse.Namespace) -> Store:
    """The store ``args`` name, its namespaces and those chosen.

    :raises FileServeError: no such store, a server that does not answer, an unknown namespace.
    """
    if getattr(args, "endpoint_url", None) and not getattr(args, "s3", None):
        raise FileServeError("--endpoint-url goes with --s3 BUCKET")
    if getattr(args, "s3", None):
        store = _s3(args.s3, args.endpoint_url, args.s3_prefix)
    elif args.redis:
        store = _redis(args.redis, args.key_prefix)
    elif args.memcached:
        store = _memcached(args.memcached, args.key_prefix)
    elif args.dir is not None:
        store = _directory(args.dir)
    else:
        root = default_cache_dir()
        if not (root / "files").is_dir():
            raise FileServeError(f"there is no default store in {str(root)!r} (set DFC_TRANSFORM_DIR?)")
        store = _store_root(root, f"the default store in {str(root)!r}")
    if args.namespace is None:
        store.chosen = sorted(store.namespaces)
    elif args.namespace in store.namespaces:
        store.chosen = [args.namespace]
    else:
        raise FileServeError(
            f"{store.name} has no namespace {args.namespace!r}; it has: {describe(store.namespaces)}"
        )
    return store


def describe(namespaces: dict[str, dict[str, Any]]) -> str:
    """The namespaces as an operator reads them: ``85b63d0ce8aa (app.py, prefix /)``."""
    if not namespaces:
        return "none (no app stored a file there yet)"
    return "; ".join(f"{ns or '(none)'} ({label(about)})" for ns, about in sorted(namespaces.items()))


def label(about: dict[str, Any]) -> str:
    parts = [str(about["module"])] if about.get("module") else []
    if about.get("prefix"):
        parts.append(f"prefix {about['prefix']}")
    return ", ".join(parts) or "an app of an earlier release"


def _directory(path: Path) -> Store:
    if not path.is_dir():
        raise FileServeError(f"{str(path)!r} is not a directory")
    if (path / "files").is_dir():
        return _store_root(path, f"the store in {str(path)!r}")
    if path.name == "files" and (path.parent / "expiry").is_dir():
        return _store_root(path.parent, f"the store in {str(path.parent)!r}")
    home = default_cache_dir() / "caches" / hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    if home.is_dir():
        from cachelib import FileSystemCache

        backend = FileSystemCache(str(path), threshold=0)
        return Store(f"the FileSystemCache in {str(path)!r}", backend, _namespaces(backend, home / "expiry"))
    raise FileServeError(
        f"{str(path)!r} is not a dfc_transform store: it has no files/ directory (as the directory "
        "DFC_TRANSFORM_DIR names has), and no app of this user stored files in it as a FileSystemCache"
    )


def _store_root(root: Path, name: str) -> Store:
    backend = default_backend(root)
    return Store(name, backend, _namespaces(backend, root / "expiry"))


def _namespaces(backend: Any, journal: Path | None = None) -> dict[str, dict[str, Any]]:
    """The namespaces recorded in the backend, and those its journal names (files stored by
    an earlier release, which recorded none)."""
    found = known(Keys(backend, profile_of(backend), namespace="", timeout=0, min_free_space=0))
    for bucket in journal.glob("*.tokens") if journal is not None and journal.is_dir() else []:
        for line in bucket.read_text("ascii", "replace").splitlines():
            name = line.split(" ", 1)[0]  # <namespace>/<storage>[/<token>], or a bare token
            found.setdefault(name.split("/", 1)[0] if "/" in name else "", {})
    return found


def _s3(bucket: str, endpoint_url: str | None, prefix: str) -> Store:
    try:
        backend = S3Store(bucket, endpoint_url=endpoint_url, prefix=prefix, timeout=SERVER_TIMEOUT)
    except ImportError as err:
        raise FileServeError(str(err)) from err
    backend.has("probe")  # a bucket that is missing or refuses us is an error now, said plainly
    return Store(backend.label, backend, _namespaces(backend))


def _redis(url: str, key_prefix: str) -> Store:
    try:
        import redis
        from cachelib import RedisCache
    except ImportError as err:
        raise FileServeError("--redis needs the redis package: pip install 'dfc-transform[redis]'") from err
    client = redis.Redis.from_url(url, socket_timeout=SERVER_TIMEOUT, socket_connect_timeout=SERVER_TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as err:
        raise FileServeError(f"the Redis at {url!r} cannot be reached: {err}") from err
    backend = RedisCache(host=client, key_prefix=key_prefix)
    return Store(f"the Redis at {url!r}", backend, _namespaces(backend))


def _memcached(address: str, key_prefix: str) -> Store:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise FileServeError(f"--memcached takes HOST:PORT, e.g. 127.0.0.1:11211, not {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=SERVER_TIMEOUT):
            pass
    except OSError as err:
        raise FileServeError(f"the memcached at {address} cannot be reached: {err}") from err
    try:
        from cachelib import MemcachedCache

        backend = MemcachedCache([address], key_prefix=key_prefix or None)
    except RuntimeError as err:  # no client library
        raise FileServeError(
            "--memcached needs a memcached client: pip install 'dfc-transform[memcached]'"
        ) from err
    return Store(f"the memcached at {address}", backend, _namespaces(backend))
