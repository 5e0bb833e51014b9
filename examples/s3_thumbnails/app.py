"""Thumbnails of the images uploaded to an S3 bucket, written back to the bucket under a prefix.

For each object an S3 event notification announces (delivered directly, or through SNS or SQS), the
image is read, a thumbnail made with `fastric.image` and written to the same bucket as
``<THUMBNAIL_PREFIX><key without its extension>.jpg``, a JPEG whatever the source format; a PNG's
transparent pixels become white. Keys already under the prefix are skipped, so the function's own
writes never feed it again.

The handler returns a summary of the event::

    {"processed": [{"key": ..., "thumbnail": ..., "width": ..., "height": ...}],
     "skipped": [{"key": ..., "reason": ...}],
     "failed": [{"key": ..., "error": ...}]}

A record that can never succeed (not an image, too large, damaged, deleted since) is listed under
``failed`` and logged; the other records go on. S3 delivers to Lambda asynchronously, and a raise
makes Lambda retry the whole event, so the handler raises only for S3 errors, which a retry may
get past, and only after every other record was handled. Thumbnail keys depend only on the source
key, so a retry overwrites what the first attempt wrote.

Environment:
    THUMBNAIL_SIZE: the box thumbnails fit in, ``WIDTHxHEIGHT``. Defaults to ``200x200``.
    THUMBNAIL_PREFIX: where thumbnails go, prepended to the source key as it is. Defaults to
        ``thumbnails/``.
    THUMBNAIL_MAX_BYTES: objects larger than this are refused unread. Defaults to 50 MiB.
    AWS_ENDPOINT_URL: honoured by boto3, e.g. to point at a local S3.
"""

from __future__ import annotations

import logging
import os
import posixpath
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from fastric.events import S3Record, s3_records
from fastric.image import ImageError, thumbnail_with_info


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise ValueError(f"THUMBNAIL_SIZE must be WIDTHxHEIGHT in pixels, e.g. 200x200, not {text!r}")
    return int(width), int(height)


THUMBNAIL_SIZE = _size(os.environ.get("THUMBNAIL_SIZE", "200x200"))
THUMBNAIL_PREFIX = os.environ.get("THUMBNAIL_PREFIX") or "thumbnails/"
MAX_SOURCE_BYTES = int(os.environ.get("THUMBNAIL_MAX_BYTES", str(50 * 1024 * 1024)))
# S3's limit on a key, in UTF-8 bytes: a long source key plus the prefix can pass it.
MAX_KEY_BYTES = 1024
# S3 answers these when the object is gone: deleted, or replaced in a versioned bucket. A retry
# would meet the same answer.
GONE = frozenset({"NoSuchKey", "NoSuchVersion"})

# Created once per execution environment so that warm invocations reuse its connection pool.
s3 = boto3.client("s3")
logger = logging.getLogger(__name__)


class SourceRefusedError(Exception):
    """The source object cannot be made into a thumbnail, now or on any retry."""


class ThumbnailsIncompleteError(Exception):
    """Some records failed on S3 errors; raised so that Lambda retries the event."""


def handler(event: dict[str, Any], context: object) -> dict[str, list[dict[str, Any]]]:
    """Makes a thumbnail of each image the event announces; returns what became of each record.

    Raises:
        ThumbnailsIncompleteError: S3 failed for some records (the others were handled first).
    """
    summary: dict[str, list[dict[str, Any]]] = {"processed": [], "skipped": [], "failed": []}
    s3_failures: list[str] = []
    for record in s3_records(event):
        key = record.key
        reason = _skip_reason(record)
        if reason:
            summary["skipped"].append({"key": key, "reason": reason})
            continue
        try:
            summary["processed"].append(_make_thumbnail(record))
        except (ImageError, SourceRefusedError) as error:
            # Logged, not raised: a retry would refuse the same bytes again.
            logger.warning("s3://%s/%s: no thumbnail: %s", record.bucket, key, error)
            summary["failed"].append({"key": key, "error": f"{type(error).__name__}: {error}"})
        except (ClientError, BotoCoreError) as error:
            logger.exception("s3://%s/%s: no thumbnail, S3 failed", record.bucket, key)
            s3_failures.append(f"{key} ({error})")
    if s3_failures:
        raise ThumbnailsIncompleteError(
            f"S3 failed for {len(s3_failures)} of the event's records, retry the event: {'; '.join(s3_failures)}"
        )
    return summary


def thumbnail_key(key: str) -> str:
    """The key of the thumbnail of `key`: under the prefix, the extension (if any) replaced by ``.jpg``.

    ``uploads/café (1).PNG`` gives ``thumbnails/uploads/café (1).jpg``, ``scans/page`` gives
    ``thumbnails/scans/page.jpg``. A dot that starts the file name (``.hidden``) is no extension.
    """
    stem, _extension = posixpath.splitext(key)
    return f"{THUMBNAIL_PREFIX}{stem}.jpg"


def _skip_reason(record: S3Record) -> str | None:
    if not record.event_name.startswith("ObjectCreated:"):
        return f"{record.event_name} is not an upload"
    if record.key.startswith(THUMBNAIL_PREFIX):
        return f"already under {THUMBNAIL_PREFIX}"
    if record.key.endswith("/"):
        # What the S3 console creates for a folder: an empty object.
        return "a folder"
    return None


def _make_thumbnail(record: S3Record) -> dict[str, Any]:
    key = record.key
    target = thumbnail_key(key)
    if len(target.encode()) > MAX_KEY_BYTES:
        raise SourceRefusedError(f"the thumbnail key would be longer than S3's {MAX_KEY_BYTES} bytes")

    data = _read(record)
    thumbnail = thumbnail_with_info(data, THUMBNAIL_SIZE, format="JPEG")
    s3.put_object(Bucket=record.bucket, Key=target, Body=thumbnail.data, ContentType=thumbnail.content_type)
    logger.info("s3://%s/%s: thumbnail %s, %dx%d", record.bucket, key, target, thumbnail.width, thumbnail.height)
    return {"key": key, "thumbnail": target, "width": thumbnail.width, "height": thumbnail.height}


def _read(record: S3Record) -> bytes:
    """Reads the object, the version the event names when the bucket is versioned.

    Raises:
        SourceRefusedError: the object is gone or over `MAX_SOURCE_BYTES`.
    """
    # The version that was uploaded, not whatever replaced it since: that upload has its own event.
    version = {"VersionId": record.version_id} if record.version_id else {}
    try:
        response = s3.get_object(Bucket=record.bucket, Key=record.key, **version)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in GONE:
            raise SourceRefusedError("the object no longer exists") from None
        raise
    body = response["Body"]
    with body:
        if response["ContentLength"] > MAX_SOURCE_BYTES:
            raise SourceRefusedError(f"{response['ContentLength']} bytes is over the limit of {MAX_SOURCE_BYTES}")
        return body.read()
