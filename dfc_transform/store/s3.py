"""Files in an S3 bucket (AWS S3, MinIO, Cloudflare R2, GCS's S3 interface, SeaweedFS, Ceph).

:class:`S3Store` is a cachelib backend, so that every part of the store works on it as on the
others (records, the ledger and its lock, claims, the expiry journal): each key is an object,
its time-to-live in the object's metadata. A lock or a claim is a conditional write
(``If-None-Match: *``), atomic in the bucket. Beyond a backend it offers what only object
storage has (the methods under "blobs" and "multipart uploads" below):

- a file is **one object**, written by a multipart upload as the value is read (memory: one
  part), so that it can be read in ranges and handed out as a presigned URL;
- the file route answers with a **307 to a presigned GET** (the bytes never pass through the
  app), carrying the file's ``Content-Type`` and ``Content-Disposition``;
- uploads go **straight to the bucket** through presigned ``UploadPart`` URLs.

boto3 is the client: it presigns GETs with response overrides and ``UploadPart`` requests, which
the lighter clients cannot (see docs/backends.md). Every call has a connect and a read timeout,
so that a bucket that does not answer is a clear error within seconds, never a hung worker.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from cachelib import BaseCache

from ..exc import BackendUnavailableError
from .backends import Profile
from .expiry import GRACE
from .s3_journal import S3Journal
from .s3_writer import BlobWriter

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "S3Store"]

#: S3 refuses multipart parts under 5 MiB (but the last).
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: Reads of an object are handed on this many bytes at a time.
READ_SIZE = 1024 * 1024
_EXPIRES = "dfc-expires"  # metadata: when the key expires (Unix time), absent for never
_MISSING = ("NoSuchKey", "404", "NotFound", "NoSuchUpload")


class S3Store(BaseCache):
    """Keep files in the S3 bucket ``bucket``, under ``prefix``.

    :param endpoint_url: the store's URL (MinIO, R2, SeaweedFS...); ``None``: AWS.
    :param client: a boto3 S3 client to use as it is; else one is made from the usual
        ``AWS_*`` variables and config files (credentials, region).
    :param prefix: where in the bucket the files go (several apps may share a bucket).
    :param redirect: answer a file's GET with a 307 to a presigned URL of the bucket (the
        bytes never pass through the app); ``False``: serve everything through the app.
    :param url_seconds: how long a presigned URL works.
    :param part_size: bytes per part of a multipart upload (at least 5 MiB).
    :param timeout: seconds to connect and to wait for each answer.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        prefix: str = "dfc/",
        region_name: str | None = None,
        redirect: bool = True,
        url_seconds: int = 300,
        part_size: int = DEFAULT_PART_SIZE,
        timeout: float = 10,
    ) -> None:
        super().__init__(default_timeout=0)
        if not bucket or not isinstance(bucket, str):
            raise ValueError(f"S3Store needs a bucket name, got {bucket!r}")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least 5 MiB (S3's minimum), got {part_size}")
        self.bucket = bucket
        self.prefix = prefix
        self.redirect = redirect
        self.url_seconds = url_seconds
        self.part_size = part_size
        self.endpoint_url = endpoint_url
        self.client = client if client is not None else _make_client(endpoint_url, region_name, timeout)
        self._checked = False

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Store({self.bucket!r}{where})"

    @property
    def label(self) -> str:
        """The store as messages name it: its bucket, and its endpoint unless AWS."""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3 bucket {self.bucket!r}{where}"

    def store_profile(self, *, chunk_size: int) -> Profile:
        """What the store needs to know of a bucket (see :class:`.backends.ProfiledBackend`):
        every host sees the same files, each file is one object (written in parts, read in
        ranges, handed out as presigned URLs), and a journal of objects sweeps what expired."""
        return Profile(
            name=self.label,
            chunk_size=chunk_size,
            per_process=False,
            host_local=False,
            expiry="journal",
            journal=S3Journal(self, grace=GRACE),
            blobs=self,
        )

    def object_key(self, key: str) -> str:
        return self.prefix + key

    # -- the cachelib interface: small values with a time-to-live -----------------------

    def get(self, key: str) -> Any:
        try:
            answer = self.call("get_object", Key=self.object_key(key))
        except KeyError:
            return None
        if _expired(answer.get("Metadata", {})):
            answer["Body"].close()
            return None
        with contextlib.closing(answer["Body"]):
            return answer["Body"].read()

    def has(self, key: str) -> bool:
        try:
            answer = self.call("head_object", Key=self.object_key(key))
        except KeyError:
            return False
        return not _expired(answer.get("Metadata", {}))

    def set(self, key: str, value: Any, timeout: int | timedelta | None = None) -> bool:
        self.call("put_object", Key=self.object_key(key), Body=_bytes(value), Metadata=self._meta(timeout))
        return True

    def add(self, key: str, value: Any, timeout: int | timedelta | None = None) -> bool:
        """Write ``value`` unless ``key`` exists (and has not expired): one conditional PUT."""
        for _ in range(2):
            try:
                self.call(
                    "put_object",
                    Key=self.object_key(key),
                    Body=_bytes(value),
                    Metadata=self._meta(timeout),
                    IfNoneMatch="*",
                )
                return True
            except _Conflict:
                if self.has(key):
                    return False
                self.delete(key)  # there, but expired: gone, and try once more
        return False

    def delete(self, key: str) -> bool:
        self.call("delete_object", Key=self.object_key(key))
        return True

    def clear(self) -> bool:
        """Delete every object under the prefix."""
        for keys in self._pages(self.prefix):
            self.delete_objects(keys)
        return True

    def _meta(self, timeout: int | timedelta | None) -> dict[str, str]:
        seconds = self._normalize_timeout(timeout)
        return {_EXPIRES: f"{time.time() + seconds:.3f}"} if seconds else {}

    # -- objects: listing, deleting many -----------------------------------------------

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[list[str]]:
        """The keys (or with ``delimiter``, the common prefixes) under ``prefix``, a page at a time."""
        args: dict[str, Any] = {"Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        while True:
            answer = self.call("list_objects_v2", **args)
            if delimiter:
                yield [p["Prefix"] for p in answer.get("CommonPrefixes", ())]
            else:
                yield [o["Key"] for o in answer.get("Contents", ())]
            if not answer.get("IsTruncated"):
                return
            args["ContinuationToken"] = answer["NextContinuationToken"]

    def list_keys(self, prefix: str, delimiter: str | None = None) -> Iterator[str]:
        """Object keys (or common prefixes) under ``prefix``, in the bucket's order."""
        for page in self._pages(prefix, delimiter):
            yield from page

    def delete_objects(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3's most per request
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.call("delete_objects", Delete={"Objects": batch, "Quiet": True})

    # -- blobs: one object per file ---------------------------------------------------------

    def writer(self, key: str) -> BlobWriter:
        """A writer of the object ``key``, part by part (see :mod:`.s3_writer`)."""
        return BlobWriter(self, self.object_key(key))

    def read(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        """Bytes ``[start, stop)`` of the object ``key``, streamed.

        The request is made before this returns: a missing object is a ``KeyError`` then,
        not in the middle of a response.
        """
        answer = self.call("get_object", Key=self.object_key(key), Range=f"bytes={start}-{stop - 1}")
        body = answer["Body"]
        expected = stop - start

        def pieces() -> Iterator[bytes]:
            sent = 0
            with contextlib.closing(body):
                try:
                    for piece in body.iter_chunks(READ_SIZE):
                        sent += len(piece)
                        yield piece
                except Exception as err:
                    raise BackendUnavailableError(f"reading from the {self.label} failed: {err}") from err
            if sent != expected:
                raise BackendUnavailableError(
                    f"the {self.label} sent {sent} of the {expected} bytes asked for {key!r}"
                )

        return pieces()

    def presigned_get(self, key: str, *, content_type: str, disposition: str, cache_control: str) -> str:
        """A URL that GETs object ``key`` for ``url_seconds``, answered with these headers."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.object_key(key),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": disposition,
                    "ResponseCacheControl": cache_control,
                },
                ExpiresIn=self.url_seconds,
            )
        )

    # -- multipart uploads that browsers send straight to the bucket ------------------------

    def start_multipart(self, key: str) -> str:
        """Begin a multipart upload of object ``key``; its upload id."""
        return str(self.call("create_multipart_upload", Key=self.object_key(key))["UploadId"])

    def presigned_part(self, key: str, upload_id: str, number: int, seconds: int) -> str:
        """A URL a browser PUTs part ``number`` (from 1) of the upload to."""
        return str(
            self.client.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.object_key(key),
                    "UploadId": upload_id,
                    "PartNumber": number,
                },
                ExpiresIn=seconds,
            )
        )

    def parts_of(self, key: str, upload_id: str) -> dict[int, tuple[str, int]]:
        """The parts the bucket holds of an upload: ``{number: (etag, size)}``."""
        found: dict[int, tuple[str, int]] = {}
        args: dict[str, Any] = {"Key": self.object_key(key), "UploadId": upload_id}
        while True:
            answer = self.call("list_parts", **args)
            for part in answer.get("Parts", ()):
                found[int(part["PartNumber"])] = (str(part["ETag"]), int(part["Size"]))
            if not answer.get("IsTruncated"):
                return found
            args["PartNumberMarker"] = answer["NextPartNumberMarker"]

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
        self.call(
            "complete_multipart_upload",
            Key=self.object_key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(KeyError):
            self.call("abort_multipart_upload", Key=self.object_key(key), UploadId=upload_id)

    def size_of(self, key: str) -> int | None:
        """The size of object ``key``, or ``None`` if there is none."""
        try:
            return int(self.call("head_object", Key=self.object_key(key))["ContentLength"])
        except KeyError:
            return None

    # -- calls ---------------------------------------------------------------------------

    def call(self, method: str, **args: Any) -> Any:
        """``client.<method>(Bucket=<bucket>, **args)``; a missing key is a ``KeyError``, a
        conditional write that lost is :class:`_Conflict`, anything else a
        :class:`BackendUnavailableError` that names the bucket and the cause."""
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **args)
        except Exception as err:
            code = _error_code(err)
            if code in _MISSING and code != "NoSuchBucket":
                raise KeyError(args.get("Key")) from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise _Conflict from None
            raise BackendUnavailableError(self._explain(err, code)) from None

    def _explain(self, err: Exception, code: str | None) -> str:
        if code == "NoSuchBucket":
            return f"the {self.label} does not exist: create it, or give S3Store the right bucket name"
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"):
            return (
                f"the {self.label} refused our credentials ({code}): check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY (or the client given) and the bucket's policy"
            )
        kind = type(err).__name__
        if code is None and kind in ("NoCredentialsError", "PartialCredentialsError"):
            return f"no credentials for the {self.label}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        if code is None:  # no answer at all: connection refused, timed out, DNS
            return f"the {self.label} does not answer: {kind}: {err}"
        return f"the {self.label} failed: {code}: {err}"


class _Conflict(Exception):
    """A conditional write found the key there."""


def _expired(metadata: dict[str, str]) -> bool:
    text = metadata.get(_EXPIRES)
    if not text:
        return False
    try:
        return float(text) <= time.time()
    except ValueError:
        return False


def _bytes(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"S3Store keeps bytes only, not {type(value).__name__}")
    return bytes(value)


def _error_code(err: Exception) -> str | None:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(status) if status else None
    return None


def _make_client(endpoint_url: str | None, region_name: str | None, timeout: float) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ImportError("S3Store needs boto3: pip install 'dfc-transform[s3]'") from None
    config = Config(
        signature_version="s3v4",
        # Path-style URLs for stores at an endpoint of their own (MinIO, SeaweedFS, Ceph):
        # their buckets are not subdomains.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
    )
