"""Blob store on S3 (any S3-compatible server: AWS, Ceph radosgw, ...), through boto3.

S3 has no rename, so a blob's key is known before the first byte is sent: the upload is spooled to a
temporary file while it is hashed, then PUT under ``name.digest16.dcm`` (the key storage/files.py
gives; Ingest puts a random token of its own in ``name``, so every write has a key of its own). The PUT
is conditional (``If-None-Match: *``, honoured by Ceph 16 and AWS): an existing object is never
overwritten. A multipart upload (large instances) first HEADs the key, since CompleteMultipartUpload
is not conditional everywhere. Either way an object is visible only once complete: a failed PUT
leaves nothing, a failed multipart upload is aborted (one a killed process left is found by
``stale_uploads``).

Reads are ranged GETs: ``read`` is one GET, ``stream`` one GET read in chunks (constant memory).
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from .base import DERIVED, BlobInfo

CHUNK = 1 << 20
SPOOL_IN_MEMORY = 8 << 20
STALE_UPLOAD_SECONDS = 3600.0  # an unfinished multipart upload older than this was left by a dead process  # uploads up to this stay in memory while hashed; larger ones go to a temp file


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where the blobs live, parsed from ``s3://bucket[/prefix]?endpoint=URL&region=R&path_style=true``.

    Credentials are never in the URL: boto3 reads them as the AWS tools do (AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/...); AWS_ENDPOINT_URL and AWS_REGION / AWS_DEFAULT_REGION
    apply when the URL names no endpoint or region.
    """

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = True  # Ceph and most self-hosted servers want path-style addressing
    multipart_threshold: int = 16 << 20
    part_size: int = 16 << 20

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an S3 URL (s3://bucket?endpoint=http://host:port): {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        known = {"endpoint", "region", "path_style", "multipart_threshold_mb", "part_size_mb"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(f"unknown S3 URL parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        prefix = unquote(parts.path).strip("/")
        megabytes = {name: int(query[name]) << 20 for name in ("multipart_threshold_mb", "part_size_mb") if name in query}
        part_size = megabytes.get("part_size_mb", 16 << 20)
        if part_size < 5 << 20:
            raise ValueError("S3 multipart parts must be at least 5 MiB (part_size_mb >= 5)")
        return cls(
            bucket=parts.netloc,
            prefix=prefix + "/" if prefix else "",
            endpoint=query.get("endpoint") or None,
            region=query.get("region") or None,
            path_style=query.get("path_style", "true").lower() not in ("false", "0", "no"),
            multipart_threshold=megabytes.get("multipart_threshold_mb", 16 << 20),
            part_size=part_size,
        )


def make_client(location: S3Location) -> Any:
    """A boto3 S3 client with the settings S3-compatible servers need (checked against Ceph 16)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - boto3 is a dependency; say so if it was removed
        raise RuntimeError("the S3 blob store needs boto3 (pip install boto3)") from exc
    config = Config(
        s3={"addressing_style": "path" if location.path_style else "auto"},
        # Newer botocore adds CRC checksums (trailers, aws-chunked) that older servers reject.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=64,  # one per thread that reads: the CPU executor and the server's pool
        tcp_keepalive=True,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=location.endpoint, region_name=location.region or None, config=config
    )


class S3BlobStore:
    """Blobs as S3 objects under ``bucket/prefix``; an object exists only once it is complete."""

    def __init__(self, location: S3Location, client: Any = None) -> None:
        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.client = client if client is not None else make_client(location)
        self._conditional: bool | None = None  # whether the server honours If-None-Match on PUT
        self.stale_upload_seconds = STALE_UPLOAD_SECONDS
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        return cls(S3Location.parse(url))

    def _object(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return self.prefix + key

    # -- writing -----------------------------------------------------------------------------

    def put(self, source: BinaryIO, name: str) -> BlobInfo:
        source.seek(0)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            digest = hashlib.sha256()
            size = 0
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            hexdigest = digest.hexdigest()
            key = f"{name}.{hexdigest[:16]}.dcm"
            spool.seek(0)
            if size > self.location.multipart_threshold:
                self._put_multipart(spool, self._object(key), hexdigest)
            else:
                self._put_single(spool, self._object(key), hexdigest, size)
        return BlobInfo(key, size, hexdigest)

    def _put_single(self, body: IO[bytes], object_key: str, digest: str, size: int) -> None:
        from botocore.exceptions import ClientError

        args: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key, "Body": body, "ContentLength": size,
                                "ContentType": "application/dicom", "Metadata": {"sha256": digest}}
        if self._conditional is not False:
            args["IfNoneMatch"] = "*"  # conditional create: an existing object (the same bytes) is kept
        try:
            self.client.put_object(**args)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412 or code == "PreconditionFailed":
                return  # already there: the key names the digest, so the same bytes
            if status == 409 and code == "ConditionalRequestConflict":
                return  # a concurrent conditional PUT of the same key won
            if "IfNoneMatch" in args and status in (400, 501) and code in ("NotImplemented", "InvalidArgument"):
                self._conditional = False  # the server refuses the header: fall back to plain PUT
                body.seek(0)
                self._put_single(body, object_key, digest, size)
                return
            raise _os_error(exc) from exc

    def _put_multipart(self, body: IO[bytes], object_key: str, digest: str) -> None:
        """Upload in parts; complete only when every part arrived, abort otherwise.

        CompleteMultipartUpload is not conditional on every server, so the key is HEADed first: a key names
        its content's digest, so an object already there holds these bytes.
        """
        from botocore.exceptions import ClientError

        if self.exists(object_key[len(self.prefix):]):
            return
        try:
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=object_key,
                                                         ContentType="application/dicom",
                                                         Metadata={"sha256": digest})
        except ClientError as exc:
            raise _os_error(exc) from exc
        upload_id = upload["UploadId"]
        try:
            parts = []
            number = 1
            while data := body.read(self.location.part_size):
                result = self.client.upload_part(Bucket=self.bucket, Key=object_key, UploadId=upload_id,
                                                 PartNumber=number, Body=data)
                parts.append({"PartNumber": number, "ETag": result["ETag"]})
                number += 1
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException as exc:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
            except ClientError:
                pass  # the bucket's lifecycle rule for incomplete uploads is the backstop
            if isinstance(exc, ClientError):
                raise _os_error(exc) from exc
            raise

    def delete(self, key: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            raise _os_error(exc) from exc

    # -- reading -----------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise _os_error(exc) from exc
        return True

    def _get(self, key: str, offset: int, length: int | None) -> Any:
        """One GET of the range (RFC 9110 §14.1.2 byte ranges), or None when the range is empty."""
        from botocore.exceptions import ClientError

        if offset < 0 or (length is not None and length < 0):
            raise ValueError("negative blob range")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._object(key)}
        if length == 0:
            return None
        if length is not None:
            args["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            args["Range"] = f"bytes={offset}-"
        try:
            return self.client.get_object(**args)["Body"]
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 416:
                return None  # range starts at or past the end: no bytes, as a file read would give
            if status == 404:
                raise KeyError(key) from exc
            raise _os_error(exc) from exc

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        body = self._get(key, offset, length)
        if body is None:
            return b""
        with body:
            data: bytes = body.read()
        return data

    def stream(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        body = self._get(key, offset, length)
        if body is None:
            return
        with body:
            while chunk := body.read(CHUNK):
                yield chunk

    def modified(self, key: str) -> float:
        """When the object was written (seconds since the epoch): ``check`` leaves young orphans alone."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                raise KeyError(key) from exc
            raise _os_error(exc) from exc
        return float(head["LastModified"].timestamp())

    def _uploads(self) -> Iterator[tuple[str, str, float]]:
        """Incomplete multipart uploads under the prefix: (object key, upload id, initiated)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.prefix:
            args["Prefix"] = self.prefix
        for page in paginator.paginate(**args):
            for upload in page.get("Uploads", ()):
                yield upload["Key"], upload["UploadId"], float(upload["Initiated"].timestamp())

    def stale_uploads(self) -> list[str]:
        """Multipart uploads begun more than ``stale_upload_seconds`` ago (a process killed mid-upload).

        S3 cannot tell whether a writer is still alive; no single instance takes that long to upload.
        """
        cutoff = time.time() - self.stale_upload_seconds
        return [f"{key} (upload {upload_id})" for key, upload_id, initiated in self._uploads() if initiated < cutoff]

    def remove_stale_uploads(self) -> int:
        """Abort the stale multipart uploads (their parts are freed); return how many."""
        cutoff = time.time() - self.stale_upload_seconds
        removed = 0
        for key, upload_id, initiated in list(self._uploads()):
            if initiated < cutoff:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                removed += 1
        return removed

    def keys(self, prefix: str = "") -> Iterator[str]:
        """List the bucket under the prefix; incomplete multipart uploads are never listed as objects."""
        paginator = self.client.get_paginator("list_objects_v2")
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.prefix or prefix:
            args["Prefix"] = self.prefix + prefix
        for page in paginator.paginate(**args):
            for item in page.get("Contents", ()):
                key = item["Key"][len(self.prefix):]
                if prefix or not key.startswith(DERIVED):
                    yield key

    def write(self, key: str, data: bytes) -> None:
        """One plain PUT: S3 makes an object visible only once whole, the last PUT of a key wins."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._object(key), Body=data, ContentLength=len(data))
        except ClientError as exc:
            raise _os_error(exc) from exc

    def close(self) -> None:
        self.client.close()


def _os_error(exc: Exception) -> OSError:
    """S3 failures as OSError, which ingest turns into 'cannot write to storage' (Out of Resources)."""
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = f"S3 {status or ''} {error.get('Code', '')}: {error.get('Message', str(exc))}".strip()
    return OSError(0, message)

