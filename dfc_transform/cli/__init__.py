"""``python -m dfc_transform``: look at a store and tidy it from the command line.

- :mod:`.locate`: which store and which namespaces the arguments name;
- :mod:`.commands`: ``stats``, ``list`` and ``purge``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..exc import FileServeError
from .commands import list_files, purge, stats
from .locate import locate

__all__ = ["main"]

_DESCRIPTION = """\
Look at a dfc_transform store, or remove files from it.

The store is the default one of this user (the directory in $DFC_TRANSFORM_DIR, else
<tempdir>/dfc_transform-<uid>), a store directory (--dir: a DFC_TRANSFORM_DIR, or a cachelib
FileSystemCache directory an app stored files in), a Redis server (--redis), a memcached
server (--memcached) or an S3 bucket (--s3, with --endpoint-url for a store other than AWS).
Each app keeps its files under its own namespace in a shared store, shown with the app's
module and URL prefix; every namespace is shown, or only --namespace.
"""

_EPILOG = """\
examples:
  python -m dfc_transform stats
  python -m dfc_transform list --json
  python -m dfc_transform purge --expired --dir /srv/app/files
  python -m dfc_transform purge --all                  # every app's files in a shared store
  python -m dfc_transform purge --redis redis://:secret@10.0.0.5:6379/0 --namespace 85b63d0ce8aa
  python -m dfc_transform stats --memcached 127.0.0.1:11211 --namespace myapp
  python -m dfc_transform purge --expired --s3 app-files --endpoint-url http://minio:9000
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        store = locate(args)
        if args.command == "stats":
            return stats(store, as_json=args.json)
        if args.command == "list":
            return list_files(store, as_json=args.json)
        return purge(store, expired_only=args.expired, every_namespace=args.all)
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
    stats_ = commands.add_parser("stats", help="how many files and bytes the store holds, per app")
    list_ = commands.add_parser(
        "list", help="every file: its URL path, name, type, size, age, time left, flags, namespace"
    )
    purge_ = commands.add_parser(
        "purge", help="remove files: every one of a namespace, or with --expired those whose time is over"
    )
    purge_.add_argument("--expired", action="store_true", help="remove only the files whose time is over")
    purge_.add_argument(
        "--all", action="store_true", help="in a store shared by several apps: every app's files"
    )
    for command in (stats_, list_, purge_):
        where = command.add_mutually_exclusive_group()
        where.add_argument(
            "--dir", type=Path, help="a store directory (a DFC_TRANSFORM_DIR or a FileSystemCache)"
        )
        where.add_argument(
            "--redis", metavar="URL", help="a Redis server, e.g. redis://:password@host:6379/0"
        )
        where.add_argument(
            "--memcached", metavar="HOST:PORT", help="a memcached server, e.g. 127.0.0.1:11211"
        )
        where.add_argument(
            "--s3", metavar="BUCKET", help="an S3 bucket (credentials from the AWS_* variables and files)"
        )
        command.add_argument(
            "--endpoint-url", metavar="URL", help="with --s3: the store's URL (MinIO, R2, SeaweedFS...)"
        )
        command.add_argument(
            "--s3-prefix", default="dfc/", help="with --s3: the prefix the app gives S3Store (default dfc/)"
        )
        command.add_argument(
            "--key-prefix", default="", help="the key_prefix the app gives RedisCache or MemcachedCache"
        )
        command.add_argument("--namespace", help="only this app's files (default: every namespace)")
        if command is not purge_:
            command.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser
