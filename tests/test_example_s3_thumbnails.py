"""examples/s3_thumbnails run by fastric against a moto server standing in for S3.

The tests put generated images in a bucket, send the S3 event notifications Lambda would, through
`python -m fastric` (local mode) or the Runtime API loop, then read what the bucket holds.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from PIL import Image, ImageStat

from conftest import RuntimeRunner
from runtime_api import Invocation
from services import LocalFunction, MotoServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "s3_thumbnails"
EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"
BUCKET = "example-uploads"
MAX_BYTES = 1_000_000
CAFE = "uploads/summer trip/café (1).jpg"
CAFE_THUMBNAIL = "thumbnails/uploads/summer trip/café (1).jpg"

BLUE, YELLOW, RED, WHITE = (0, 0, 255), (255, 255, 0), (255, 0, 0), (255, 255, 255)


# Images.


def two_tone(
    width: int, height: int, left: tuple[int, int, int] = BLUE, right: tuple[int, int, int] = YELLOW
) -> Image.Image:
    """An RGB image whose left half is `left` and right half `right`, to see that a thumbnail is not flipped."""
    image = Image.new("RGB", (width, height), left)
    image.paste(right, (width // 2, 0, width, height))
    return image


def encode(image: Image.Image, format: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, format, **({"quality": 90} if format == "JPEG" else {}))
    return out.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small valid JPEG whose frame header announces `width` x `height` pixels."""
    data = bytearray(encode(two_tone(64, 64)))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def mean_colour(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image.convert("RGB").crop(box)).mean)


def near(colour: tuple[float, ...], expected: tuple[int, int, int], tolerance: float = 12) -> bool:
    return all(abs(got - want) <= tolerance for got, want in zip(colour, expected))


# Events.


def s3_record(key: str, *, event_name: str = "ObjectCreated:Put", bucket: str = BUCKET) -> dict[str, Any]:
    """A record of S3's notification for `key`, encoded as S3 encodes keys: `+` for spaces, `%xx` for the rest."""
    record = copy.deepcopy(json.loads((EVENTS / "example-s3-put.json").read_text())["Records"][0])
    record["eventName"] = event_name
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    return record


def s3_event(*keys: str) -> dict[str, Any]:
    return {"Records": [s3_record(key) for key in keys]}


def fixture_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"example-{name}.json").read_text())


def invoke_raw(function: LocalFunction, event: dict[str, Any]) -> tuple[bool, bytes]:
    """Invokes the function; returns whether it failed (Lambda's X-Amz-Function-Error) and its answer."""
    request = urllib.request.Request(function.invoke_url, data=json.dumps(event).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers.get("X-Amz-Function-Error") is not None, response.read()


def invoke(function: LocalFunction, event: dict[str, Any]) -> tuple[bool, Any]:
    """Like `invoke_raw`, the answer decoded from JSON."""
    function_error, body = invoke_raw(function, event)
    return function_error, json.loads(body)


def readme_answer() -> str:
    """The answer the README shows, the one line of its JSON block."""
    readme = (EXAMPLE / "README.md").read_text()
    return readme.split("```json\n", 1)[1].split("\n```", 1)[0]


def summary(
    processed: list[dict[str, Any]] | None = None,
    skipped: list[dict[str, Any]] | None = None,
    failed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {"processed": processed or [], "skipped": skipped or [], "failed": failed or []}


def processed(key: str, thumbnail: str, width: int, height: int) -> dict[str, Any]:
    return {"key": key, "thumbnail": thumbnail, "width": width, "height": height}


# The bucket.


class Bucket:
    """The test bucket on a freshly reset moto server."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=content_type)

    def object_keys(self) -> list[str]:
        return sorted(item["Key"] for item in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))

    def thumbnail(self, key: str) -> tuple[Image.Image, str]:
        """The image stored at `key`, checked to be a complete JPEG, and its content type."""
        stored = self.s3.get_object(Bucket=BUCKET, Key=key)
        data = stored["Body"].read()
        assert len(data) == stored["ContentLength"]
        # verify() reads the whole file and raises on a damaged one, but leaves the image unusable.
        Image.open(io.BytesIO(data)).verify()
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.format == "JPEG"
        return image, stored["ContentType"]


def function_env(moto: MotoServer) -> dict[str, str]:
    return {**moto.env(), "THUMBNAIL_SIZE": "200x200", "THUMBNAIL_MAX_BYTES": str(MAX_BYTES)}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def bucket(moto: MotoServer) -> Bucket:
    moto.reset()
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return Bucket(s3)


@pytest.fixture(scope="module")
def function(moto: MotoServer) -> Iterator[LocalFunction]:
    with LocalFunction("app.handler", cwd=EXAMPLE, env=function_env(moto)) as function:
        yield function


# Local mode.


def test_url_encoded_keys_are_read_decoded(bucket: Bucket, function: LocalFunction) -> None:
    event = fixture_event("s3-put-encoded-keys")
    assert [record["s3"]["object"]["key"] for record in event["Records"]] == [
        "uploads/summer+trip/caf%C3%A9+%281%29.jpg",
        "uploads/r%C3%A9sum%C3%A9+2026%2B.pdf",
    ]
    # As in the README: the photo is there, the PDF of the second record is not.
    bucket.put(CAFE, encode(two_tone(640, 480)), "image/jpeg")

    function_error, body = invoke_raw(function, event)

    assert not function_error, body
    assert json.loads(body) == summary(
        processed=[processed(CAFE, CAFE_THUMBNAIL, 200, 150)],
        failed=[{"key": "uploads/résumé 2026+.pdf", "error": "SourceRefusedError: the object no longer exists"}],
    )
    assert body.decode() == readme_answer()

    image, content_type = bucket.thumbnail(CAFE_THUMBNAIL)
    assert content_type == "image/jpeg"
    assert image.size == (200, 150), "fits in 200x200 with the source's 4:3 aspect"
    assert near(mean_colour(image, (10, 10, 90, 140)), BLUE)
    assert near(mean_colour(image, (110, 10, 190, 140)), YELLOW)
    assert bucket.object_keys() == [CAFE_THUMBNAIL, CAFE]


def test_png_transparency_becomes_white_in_a_jpg(bucket: Bucket, function: LocalFunction) -> None:
    # Transparent black on the left: dropping the alpha channel instead of flattening it shows black.
    logo = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    logo.paste((*RED, 255), (150, 0, 300, 200))
    bucket.put("uploads/logo.PNG", encode(logo, "PNG"), "image/png")

    function_error, answer = invoke(function, s3_event("uploads/logo.PNG"))

    assert not function_error, answer
    assert answer == summary(processed=[processed("uploads/logo.PNG", "thumbnails/uploads/logo.jpg", 200, 133)])
    image, content_type = bucket.thumbnail("thumbnails/uploads/logo.jpg")
    assert content_type == "image/jpeg"
    assert image.mode == "RGB"
    assert image.size == (200, 133)
    assert near(mean_colour(image, (5, 5, 90, 128)), WHITE)
    assert near(mean_colour(image, (110, 5, 195, 128)), RED)


def test_thumbnail_names_replace_any_extension_with_jpg(bucket: Bucket, function: LocalFunction) -> None:
    names = {
        "IMG_0001.JPEG": "thumbnails/IMG_0001.jpg",
        "scans/page": "thumbnails/scans/page.jpg",
        "albums/2026.v2/cover": "thumbnails/albums/2026.v2/cover.jpg",
        "albums/.cover": "thumbnails/albums/.cover.jpg",
        "albums/cover.tar.gz": "thumbnails/albums/cover.tar.jpg",
    }
    small = encode(two_tone(120, 160), "PNG")
    for key in names:
        bucket.put(key, small)

    function_error, answer = invoke(function, s3_event(*names))

    assert not function_error, answer
    # Never larger than the source: 120x160 fits in 200x200 as it is.
    assert answer == summary(processed=[processed(key, name, 120, 160) for key, name in names.items()])
    assert set(names.values()) <= set(bucket.object_keys())


def test_keys_under_the_prefix_and_other_non_uploads_are_skipped(bucket: Bucket, function: LocalFunction) -> None:
    old = "thumbnails/uploads/old.jpg"
    bucket.put(old, encode(two_tone(400, 300)), "image/jpeg")
    bucket.put("uploads/new folder/", b"")
    event = {
        "Records": [
            s3_record(old),
            s3_record("uploads/gone.jpg", event_name="ObjectRemoved:Delete"),
            s3_record("uploads/new folder/"),
        ]
    }

    function_error, answer = invoke(function, event)

    assert not function_error, answer
    assert answer == summary(
        skipped=[
            {"key": old, "reason": "already under thumbnails/"},
            {"key": "uploads/gone.jpg", "reason": "ObjectRemoved:Delete is not an upload"},
            {"key": "uploads/new folder/", "reason": "a folder"},
        ]
    )
    assert bucket.object_keys() == [old, "uploads/new folder/"], "nothing written"


def test_a_non_image_fails_alone_and_the_batch_goes_on(bucket: Bucket, function: LocalFunction) -> None:
    bucket.put("batch/first.jpg", encode(two_tone(400, 300)), "image/jpeg")
    bucket.put("batch/second.jpg", b"this is not an image\n", "image/jpeg")
    bucket.put("batch/third.png", encode(two_tone(300, 600), "PNG"), "image/png")

    function_error, answer = invoke(function, s3_event("batch/first.jpg", "batch/second.jpg", "batch/third.png"))

    assert not function_error, answer
    assert answer["processed"] == [
        processed("batch/first.jpg", "thumbnails/batch/first.jpg", 200, 150),
        processed("batch/third.png", "thumbnails/batch/third.jpg", 100, 200),
    ]
    assert answer["skipped"] == []
    [failure] = answer["failed"]
    assert failure["key"] == "batch/second.jpg"
    assert failure["error"].startswith("UnidentifiedImageError: ")
    assert bucket.thumbnail("thumbnails/batch/first.jpg")[0].size == (200, 150)
    assert bucket.thumbnail("thumbnails/batch/third.jpg")[0].size == (100, 200)
    assert "thumbnails/batch/second.jpg" not in bucket.object_keys()
    assert f"s3://{BUCKET}/batch/second.jpg: no thumbnail: {failure['error'].split(': ', 1)[1]}" in function.output()


def test_sources_that_cannot_succeed_are_reported_without_a_retry(bucket: Bucket, function: LocalFunction) -> None:
    truncated = encode(two_tone(640, 480))
    bucket.put("bad/bomb.jpg", jpeg_claiming(60000, 60000), "image/jpeg")
    bucket.put("bad/truncated.jpg", truncated[: len(truncated) * 6 // 10], "image/jpeg")
    bucket.put("bad/huge.jpg", b"\xff\xd8" + bytes(MAX_BYTES - 1), "image/jpeg")
    keys = ["bad/bomb.jpg", "bad/truncated.jpg", "bad/huge.jpg", "bad/deleted.jpg"]

    function_error, answer = invoke(function, s3_event(*keys))

    assert not function_error, answer
    assert answer["processed"] == answer["skipped"] == []
    errors = {failure["key"]: failure["error"] for failure in answer["failed"]}
    assert list(errors) == keys
    assert errors["bad/bomb.jpg"].startswith("DecompressionBombError: ")
    assert errors["bad/truncated.jpg"].startswith("CorruptImageError: ")
    assert errors["bad/huge.jpg"] == f"SourceRefusedError: {MAX_BYTES + 1} bytes is over the limit of {MAX_BYTES}"
    assert errors["bad/deleted.jpg"] == "SourceRefusedError: the object no longer exists"
    assert not [key for key in bucket.object_keys() if key.startswith("thumbnails/")]


def test_an_s3_error_fails_the_invocation_after_the_other_records(bucket: Bucket, function: LocalFunction) -> None:
    bucket.put("uploads/after.jpg", encode(two_tone(300, 300)), "image/jpeg")
    event = {"Records": [s3_record("uploads/elsewhere.jpg", bucket="no-such-bucket"), s3_record("uploads/after.jpg")]}

    function_error, answer = invoke(function, event)

    assert function_error, answer
    assert answer["errorType"] == "ThumbnailsIncompleteError"
    assert answer["errorMessage"].startswith("S3 failed for 1 of the event's records, retry the event: ")
    assert "uploads/elsewhere.jpg (An error occurred (NoSuchBucket)" in answer["errorMessage"]
    assert bucket.thumbnail("thumbnails/uploads/after.jpg")[0].size == (200, 200)


# The Runtime API loop.


def test_runtime_loop_finds_the_upload_behind_sqs_and_sns(
    bucket: Bucket, moto: MotoServer, run_runtime: RuntimeRunner
) -> None:
    # S3 -> SNS -> SQS: the first message is the s3:TestEvent S3 sends when notifications are set up.
    event = fixture_event("sqs-sns-s3")
    bucket.put(CAFE, encode(two_tone(300, 400)), "image/jpeg")

    run = run_runtime(
        "fastric",
        "app.handler",
        [Invocation(body=json.dumps(event).encode())],
        env=function_env(moto),
        cwd=EXAMPLE,
        cache=False,
    )

    assert [post.kind for post in run.posts] == ["response"], run.describe()
    assert json.loads(run.posts[0].body) == summary(processed=[processed(CAFE, CAFE_THUMBNAIL, 150, 200)])
    image, content_type = bucket.thumbnail(CAFE_THUMBNAIL)
    assert (content_type, image.size) == ("image/jpeg", (150, 200))
