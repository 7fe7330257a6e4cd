"""The store: files in chunks in any cachelib backend, with expiry, a byte budget and claims.

- :mod:`.backends`: what a backend is (its profile), and the default store;
- :mod:`.records`: a file's metadata record and its token;
- :mod:`.keys`: keys, and every call to the backend;
- :mod:`.chunkstore`: files written in chunks, found and removed;
- :mod:`.budgeted`: content read in chunks, room reserved in the byte budget before each;
- :mod:`.dedupe`: content-addressed tokens: the same content stored once;
- :mod:`.growing`: files served while they are written;
- :mod:`.reader`: reading stored files: byte ranges, the file on disk, the bucket's URL, a stream;
- :mod:`.parts`: files written in parts (uploads); :mod:`.upload_limits`: what they may hold;
- :mod:`.claims`: one-time files, claimed once;
- :mod:`.lifecycle`: removal, expiry and eviction;
- :mod:`.listing`: the files a store holds;
- :mod:`.ledger`, :mod:`.ledger_state`: sizes and ages of every file and upload, the byte budget;
- :mod:`.locks`: a lock that every process and host sharing the backend honours;
- :mod:`.namespaces`: the namespaces of a shared store, each with a readable name;
- :mod:`.expiry`: the journal that removes expired files from backends that do not;
- :mod:`.filecache`: the default store's cache on disk;
- :mod:`.s3`, :mod:`.s3_journal`, :mod:`.s3_writer`: files in an S3 bucket, one object each;
- :mod:`.direct_parts`: uploads sent by the browser straight to the bucket.
"""

from __future__ import annotations

from .backends import (
    CacheLike,
    Profile,
    default_backend,
    default_cache_dir,
    profile_of,
    unwrap,
    warn_on_count_pruning,
)
from .chunkstore import ChunkStore
from .listing import FileInfo
from .parts import Uploads
from .reader import ChunkReader
from .records import TOKEN_BYTES, FileRecord, content_token, is_token, new_token
from .upload_limits import UploadLimits

__all__ = [
    "TOKEN_BYTES",
    "CacheLike",
    "ChunkReader",
    "ChunkStore",
    "FileInfo",
    "FileRecord",
    "Profile",
    "UploadLimits",
    "Uploads",
    "content_token",
    "default_backend",
    "default_cache_dir",
    "is_token",
    "new_token",
    "profile_of",
    "unwrap",
    "warn_on_count_pruning",
]
