"""What a backend is, decided once by its type: the default store, and each backend's profile.

The store is built from a :class:`Profile`: how big its chunks are, whether every
process (and host) sees the same data, whether a path on this host is visible to
every reader, how files expire, and where one-time files are claimed. The profile
is resolved with ``isinstance`` against cachelib's classes (``flask_caching``'s
backends derive from them; a ``flask_caching.Cache`` is unwrapped first); a store of
ours that is not a plain cache (:class:`.s3.S3Store`) gives its own
(:class:`ProfiledBackend`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from cachelib import FileSystemCache, MemcachedCache, NullCache, SimpleCache

from ..exc import FileServeError
from .expiry import GRACE, DirectoryJournal, ExpiryJournal, MemoryJournal
from .filecache import BytesFileSystemCache

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = [
    "CacheLike",
    "Profile",
    "ProfiledBackend",
    "default_backend",
    "default_cache_dir",
    "profile_of",
    "unwrap",
    "warn_on_count_pruning",
]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1024 * 1024
#: memcached refuses items over 1 MB by default, key and pickling included.
MEMCACHED_CHUNK_SIZE = 512 * 1024


class CacheLike(Protocol):
    """The part of ``cachelib.BaseCache`` (and ``flask_caching.Cache``) we use."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any, timeout: int | None = None) -> Any: ...
    def delete(self, key: str) -> Any: ...
    def has(self, key: str) -> Any: ...


@dataclass(frozen=True)
class Profile:
    """What the store needs to know of its backend."""

    #: A short name for messages (the backend's class name).
    name: str
    #: Bytes per chunk.
    chunk_size: int
    #: Files live in this process only (``SimpleCache``): other processes cannot serve them.
    per_process: bool
    #: Data lives on this host only: a path registered here is visible to every reader.
    host_local: bool
    #: ``"native"``: the backend drops expired keys itself (Redis, memcached).
    #: ``"journal"``: keys are stored without a time-to-live and the journal sweeps them.
    expiry: Literal["native", "journal"]
    journal: ExpiryJournal | None = None
    #: Where one-time files are claimed with ``O_EXCL``; ``None``: through the backend's ``add``.
    claims_dir: Path | None = None
    #: A directory of this host for locks (the ledger's), when the backend has no atomic ``add``.
    lock_dir: Path | None = None
    #: Where the data lies on this host's disk (its free space is watched); ``None``: elsewhere.
    disk: Path | None = None
    #: A memcached server: it reports being down as a miss, never as an error.
    memcached: bool = False
    #: Object storage: each file is one object, written in parts and read in ranges, and may
    #: be handed out as a presigned URL (see :mod:`.s3`).
    blobs: S3Store | None = None


@runtime_checkable
class ProfiledBackend(Protocol):
    """A backend that says what it is, where a cachelib class cannot tell (:class:`.s3.S3Store`):
    a new kind of store is one module whose class has this method, and nothing here changes."""

    def store_profile(self, *, chunk_size: int) -> Profile:
        """The profile the store is built from, with chunks of ``chunk_size`` bytes."""
        ...


def default_cache_dir() -> Path:
    """Where the default store keeps files.

    ``$DFC_TRANSFORM_DIR`` if set, else ``<tempdir>/dfc_transform-<user>``: every
    process of the app on one host (gunicorn workers, background-callback
    processes) computes the same directory without talking to the others.
    """
    env = os.environ.get("DFC_TRANSFORM_DIR")
    if env:
        return Path(env)
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"dfc_transform-{user}"


def default_backend(directory: str | os.PathLike[str] | None = None) -> BytesFileSystemCache:
    """The default backend, in ``<dir>/files`` of :func:`default_cache_dir`.

    A ``FileSystemCache`` with ``threshold=0``, which turns off cachelib's count-based
    pruning (it could drop single chunks of a file), and with a serializer that writes
    our bytes as they are: nothing read back is ever unpickled, so whoever can write to
    the directory cannot run code in the app.
    """
    path = _own_directory(Path(directory) if directory is not None else default_cache_dir())
    return BytesFileSystemCache(str(path / "files"), threshold=0, default_timeout=0, mode=0o600)


def unwrap(backend: Any) -> Any:
    """The cachelib backend inside a ``flask_caching.Cache``, or ``None`` if it has no app yet."""
    if _is_flask_caching(backend):
        try:
            return backend.cache
        except Exception:  # not bound to an app yet
            return None
    return backend


def profile_of(backend: Any, *, chunk_size: int | None = None) -> Profile:
    """The profile of a cachelib backend (already unwrapped, see :func:`unwrap`)."""
    name = type(backend).__name__
    if isinstance(backend, NullCache):
        raise TypeError(
            "a NullCache stores nothing: every URL would be a 404; use the default store, "
            "cachelib.FileSystemCache(dir, threshold=0) or cachelib.RedisCache"
        )
    memcached = isinstance(backend, MemcachedCache) or "Memcache" in name
    size = chunk_size or (MEMCACHED_CHUNK_SIZE if memcached else DEFAULT_CHUNK_SIZE)
    if isinstance(backend, FileSystemCache):
        home = _journal_home(backend)
        return Profile(
            name=name,
            chunk_size=size,
            per_process=False,
            host_local=True,
            expiry="journal",
            journal=DirectoryJournal(
                home / "expiry",
                grace=GRACE,
                temp_dir=Path(backend._path),
                temp_suffix=FileSystemCache._fs_transaction_suffix,
            ),
            claims_dir=home / "claims",
            lock_dir=home,
            disk=Path(backend._path),
        )
    if isinstance(backend, ProfiledBackend):
        return backend.store_profile(chunk_size=size)
    if isinstance(backend, SimpleCache):
        return Profile(
            name=name,
            chunk_size=size,
            per_process=True,
            host_local=True,
            expiry="journal",
            journal=MemoryJournal(grace=GRACE),
        )
    # Redis, Valkey, memcached and any other shared cache: it expires keys itself.
    if memcached:
        name = _memcached_name(backend)
    return Profile(
        name=name, chunk_size=size, per_process=False, host_local=False, expiry="native", memcached=memcached
    )


def _memcached_name(backend: Any) -> str:
    """``MemcachedCache (memcached at 127.0.0.1:11211)``: a memcached client reports a server
    that is down as a miss, so messages must say which server to look at. cachelib names its
    servers nowhere public: they are read from its client, for this message only."""
    name = type(backend).__name__
    servers = getattr(getattr(backend, "_client", None), "servers", None)
    try:
        where = ", ".join(str(s).removeprefix("inet:") for s in servers or ())
    except TypeError:
        where = ""
    return f"{name} (memcached at {where})" if where else name


# A SimpleCache always prunes by count (it reads 0 as 500); past this many items (100 GB of
# 1 MiB chunks) the count is never the limit in practice.
_ENOUGH_ITEMS = 100_000


def warn_on_count_pruning(backend: Any) -> None:
    """Warn about a backend that deletes items by count: files would vanish before their time."""
    threshold = getattr(backend, "_threshold", 0)
    if isinstance(backend, FileSystemCache) and threshold > 0:
        setting = "cachelib.FileSystemCache(dir, threshold=0) (flask_caching: CACHE_THRESHOLD=0)"
    elif isinstance(backend, SimpleCache) and threshold < _ENOUGH_ITEMS:
        setting = (
            "a SimpleCache threshold above the number of chunks it will hold (it reads 0 as 500; "
            "flask_caching: CACHE_THRESHOLD)"
        )
    else:
        return
    message = (
        f"the {type(backend).__name__} deletes items by count once it holds more than {threshold}: "
        f"chunks of files go before their timeout and their URLs answer 404/410; use {setting}"
    )
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=5)


def _journal_home(backend: FileSystemCache) -> Path:
    """Our own directory beside a ``FileSystemCache``'s: its journal, claims and locks.

    Never inside the cache's directory, which cachelib counts and prunes. For the default
    store it is the store directory itself; for a cache of the user's, a directory of ours
    named after the cache's (cachelib keeps where it lives in ``_path``, and offers no
    public name for it), the same for every process of this host.
    """
    files = Path(backend._path).resolve()
    if isinstance(backend, BytesFileSystemCache) and files.name == "files":
        return files.parent
    digest = hashlib.sha256(str(files).encode()).hexdigest()[:16]
    return _own_directory(default_cache_dir() / "caches" / digest)


def _own_directory(path: Path) -> Path:
    """``path``, made with mode 0700 if needed, and refused unless this user owns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hasattr(os, "getuid"):
        # In a shared temp dir another user could have made the directory first.
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise FileServeError(
                f"the store directory {str(path)!r} is not a directory owned by this user; "
                "set DFC_TRANSFORM_DIR or pass a backend"
            )
    return path


def _is_flask_caching(backend: Any) -> bool:
    return type(backend).__module__.startswith("flask_caching") and type(backend).__name__ == "Cache"
