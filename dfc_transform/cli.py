"""``python -m dfc_transform``: look at a store and tidy it from the command line.

python -m dfc_transform stats                      # the default store of this user
python -m dfc_transform stats --dir /srv/files     # a FileSystemCache directory
python -m dfc_transform stats --redis redis://:secret@127.0.0.1:6379/0
python -m dfc_transform purge --expired            # remove the files whose time is over
python -m dfc_transform purge                      # remove every file
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .exc import FileServeError
from .service import FileService
from .store import default_backend, default_cache_dir

__all__ = ["main"]

#: Seconds before a Redis that does not answer is given up: a hung server must not hang us.
REDIS_TIMEOUT = 5.0

_DESCRIPTION = """\
Look at a dfc_transform store, or remove files from it.

The store is the default one of this user (the directory in $DFC_TRANSFORM_DIR, else
<tempdir>/dfc_transform-<uid>), a cachelib FileSystemCache directory (--dir), or a Redis
server (--redis). Each app keeps its files under its own namespace in a shared store;
every namespace found is shown, or only the one given with --namespace.
"""

_EPILOG = """\
examples:
  python -m dfc_transform stats
  python -m dfc_transform stats --json
  python -m dfc_transform purge --expired --dir /srv/app/files
  python -m dfc_transform purge --redis redis://:secret@10.0.0.5:6379/0 --namespace myapp
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        services = _services(args)
        if args.command == "stats":
            return _stats(services, as_json=args.json)
        return _purge(services, expired_only=args.expired)
    except FileServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dfc_transform",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stats = commands.add_parser("stats", help="how many files and bytes the store holds")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    purge = commands.add_parser(
        "purge", help="remove files: every one, or with --expired those whose time is over"
    )
    purge.add_argument("--expired", action="store_true", help="remove only the files whose time is over")
    for command in (stats, purge):
        where = command.add_mutually_exclusive_group()
        where.add_argument("--dir", type=Path, help="a cachelib FileSystemCache directory")
        where.add_argument(
            "--redis", metavar="URL", help="a Redis server, e.g. redis://:password@host:6379/0"
        )
        command.add_argument("--key-prefix", default="", help="the RedisCache key_prefix the app uses")
        command.add_argument("--namespace", help="only this app's files (default: every namespace found)")
    return parser


def _services(args: argparse.Namespace) -> list[tuple[str, FileService]]:
    backend, namespaces = _backend(args)
    if args.namespace is not None:
        namespaces = [args.namespace]
    return [(ns, FileService(backend, namespace=ns, timeout=0)) for ns in namespaces]


def _clear_redis(service: FileService) -> int:
    """Remove every file of a namespace from Redis, which lists its keys (the ledger lists
    files one by one only under a byte budget); return how many files there were."""
    backend: Any = service.backend
    client, prefix = backend._write_client, backend.key_prefix
    ns = service.store.namespace
    pattern = f"{prefix}dfc:{ns}:*" if ns else f"{prefix}dfc:*"
    keep = {f"{prefix}dfc:{ns}:hmac-key" if ns else f"{prefix}dfc:hmac-key"}
    files = 0
    for raw in client.scan_iter(match=pattern, count=1000):
        key = raw.decode()
        if not ns and key.count(":") - prefix.count(":") > 2:
            continue  # dfc:<namespace>:<token>:<part>: another namespace's
        if key in keep:
            continue
        files += key.endswith(":m")
        client.delete(key)
    return files


def _backend(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The backend, and the namespaces that have files in it."""
    if args.redis:
        return _redis(args.redis, args.key_prefix)
    from cachelib import FileSystemCache

    if args.dir is not None:
        if not args.dir.is_dir():
            raise FileServeError(f"{str(args.dir)!r} is not a directory")
        backend: Any = FileSystemCache(str(args.dir), threshold=0)
        journal = default_cache_dir() / "caches"
        return backend, _journal_namespaces(journal, recursive=True)
    store = default_cache_dir()
    if not (store / "files").is_dir():
        raise FileServeError(f"there is no default store in {str(store)!r} (set DFC_TRANSFORM_DIR?)")
    return default_backend(), _journal_namespaces(store / "expiry", recursive=False)


def _redis(url: str, key_prefix: str) -> tuple[Any, list[str]]:
    try:
        import redis
        from cachelib import RedisCache
    except ImportError as err:
        raise FileServeError("--redis needs the redis package: pip install 'dfc-transform[redis]'") from err
    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    try:
        ledgers = [key.decode() for key in client.scan_iter(match=f"{key_prefix}dfc:*ledger", count=1000)]
    except redis.RedisError as err:
        raise FileServeError(f"the Redis at {url!r} cannot be reached: {err}") from err
    namespaces = sorted({_namespace_of_ledger(key[len(key_prefix) :]) for key in ledgers})
    return RedisCache(host=client, key_prefix=key_prefix), namespaces or [""]


def _namespace_of_ledger(key: str) -> str:
    parts = key.split(":")  # dfc:ledger or dfc:<namespace>:ledger
    return parts[1] if len(parts) == 3 else ""


def _journal_namespaces(directory: Path, *, recursive: bool) -> list[str]:
    """The namespaces with files noted in the journal(s) under ``directory``."""
    found = {""}
    pattern = "**/*.tokens" if recursive else "*.tokens"
    buckets = list(directory.glob(pattern)) if directory.is_dir() else []
    for bucket in buckets:
        for line in bucket.read_text("ascii", "replace").splitlines():
            name = line.split(" ", 1)[0]  # <namespace>/<storage>[/<token>], or a bare token
            found.add(name.split("/", 1)[0] if "/" in name else "")
    return sorted(found)


def _stats(services: list[tuple[str, FileService]], *, as_json: bool) -> int:
    rows: list[dict[str, Any]] = []
    for namespace, service in services:
        stats = service.stats()
        rows.append({"namespace": namespace, "files": stats.files, "bytes": stats.bytes})
    files, size = sum(r["files"] for r in rows), sum(r["bytes"] for r in rows)
    if as_json:
        print(json.dumps({"files": files, "bytes": size, "namespaces": rows}))
        return 0
    print(f"{'namespace':<16} {'files':>10} {'bytes':>16}")
    for row in rows:
        print(f"{row['namespace'] or '(none)':<16} {row['files']:>10} {row['bytes']:>16,}")
    if len(rows) > 1:
        print(f"{'total':<16} {files:>10} {size:>16,}")
    return 0


def _purge(services: list[tuple[str, FileService]], *, expired_only: bool) -> int:
    from cachelib import RedisCache

    total = 0
    for _, service in services:
        if expired_only:
            total += service.purge_expired()
        elif isinstance(service.backend, RedisCache):
            total += _clear_redis(service)
        else:
            total += service.clear()
    what = "expired files" if expired_only else "files"
    print(f"removed {total} {what}")
    return 0
