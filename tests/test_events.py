"""fastric.events: typed accessors over the event fixtures, the native decoders behind them, and
partial batch responses."""

from __future__ import annotations

import base64
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from boto3.dynamodb.types import TypeDeserializer

from fastric import EventDecodeError, FastricError, _fastric
from fastric.events import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    DynamoDBStreamEvent,
    EventBridgeEvent,
    Headers,
    KinesisEvent,
    S3Event,
    SNSEvent,
    SQSEvent,
    process_batch,
    s3_records,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("example-*.json")), ids=lambda path: path.stem)
def test_fixture_round_trips(path: Path) -> None:
    decoded = json.loads(path.read_bytes())
    assert json.loads(json.dumps(decoded)) == decoded
    assert _fastric.decode_json(json.dumps(decoded).encode()) == decoded


def test_every_fixture_is_listed_in_sources() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    missing = [path.name for path in FIXTURES.glob("example-*.json") if f"`{path.name}`" not in sources]
    assert missing == []


# S3


def test_s3_keys_are_decoded_in_every_record() -> None:
    event = S3Event(fixture("example-s3-put-encoded-keys.json"))
    assert [record.key for record in event] == ["uploads/summer trip/café (1).jpg", "uploads/résumé 2026+.pdf"]
    assert event.records[0].raw_key == "uploads/summer+trip/caf%C3%A9+%281%29.jpg"
    assert (event.records[0].bucket, event.records[0].size) == ("example-uploads", 2097152)


@pytest.mark.parametrize(
    "key",
    ["plain.txt", "a+b", "100%25", "bad%zz%4", "%e9t%C3%A9", "%F0%9F%93%B7+photo.jpg", "%", "+%2B+", "caf\u00e9+%C3"],
)
def test_s3_keys_decode_as_urllib_does(key: str) -> None:
    assert _fastric.unquote_plus(key) == unquote_plus(key)


def test_s3_records_are_found_through_sqs_and_sns_and_the_test_event_is_skipped() -> None:
    records = s3_records(fixture("example-sqs-sns-s3.json"))
    assert [(record.bucket, record.key) for record in records] == [
        ("example-uploads", "uploads/summer trip/café (1).jpg")
    ]


def test_s3_records_reads_direct_and_sns_events_too() -> None:
    assert [record.key for record in s3_records(fixture("example-s3-put.json"))] == ["photos/2026/harbour at dusk.jpg"]
    sns = fixture("example-sns-notification.json")
    sns["Records"][0]["Sns"]["Message"] = json.dumps(fixture("example-s3-put-encoded-keys.json"))
    assert len(s3_records(sns)) == 2


def test_s3_records_reports_a_body_that_is_not_json() -> None:
    with pytest.raises(EventDecodeError, match=r"body of SQS message 8b7e6d5c-.* is not JSON"):
        s3_records(fixture("example-sqs-batch-malformed-body.json"))


# SQS and SNS


def test_sqs_records_read_their_fields_and_decode_the_body_once() -> None:
    event = SQSEvent(fixture("example-sqs-batch.json"))
    record = event.records[2]
    assert len(event) == 3
    assert record.message_id == "63defc39-6948-413d-b936-645b232a05b9"
    assert record.json() == {"name": "Katherine Johnson", "email": "katherine@example.com"}
    assert record.json() is record.json()
    assert record.queue_name == "user-signups"
    assert record.attributes["ApproximateReceiveCount"] == "1"
    assert record.message_attributes["source"]["stringValue"] == "signup-form"


def test_sns_records_read_the_message_and_its_attributes() -> None:
    (record,) = SNSEvent(fixture("example-sns-notification.json")).records
    assert record.subject == "order placed"
    assert record.json() == {"orderId": "ord-1001", "email": "ada@example.com", "total": "42.50"}
    assert record.message_attributes == {"priority": "high", "attempt": "1"}
    assert record.topic_arn.endswith(":upload-events")


# DynamoDB Streams


def test_dynamodb_images_decode_every_attribute_type() -> None:
    (record,) = DynamoDBStreamEvent(fixture("example-dynamodb-stream-modify-all-types.json")).records
    image = record.new_image
    assert image is not None
    assert image["email"] == "ada@example.com"
    assert image["balance"] == Decimal("-1234.5600") and str(image["balance"]) == "-1234.5600"
    assert image["ratio"] == Decimal("1500")
    assert image["avatar"] == b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    assert (image["verified"], image["deleted"], image["nickname"]) == (True, False, None)
    assert image["roles"] == {"admin", "editor"}
    assert image["lucky_numbers"] == {Decimal(7), Decimal(13), Decimal(42)}
    assert image["keys"] == {b"\x00\x01\x02", b"\xff\xfe"}
    assert image["history"] == ["signup", Decimal(1796299200), {"ip": "198.51.100.24"}, None, b"\x00"]
    assert image["address"] == {"city": "London", "postcode": "W1A 1AA", "floors": [1, 2], "tags": {"home"}}
    assert record.old_image == {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "logins": 3,
        "verified": False,
        "nickname": "ada",
    }
    assert record.keys == {"email": "ada@example.com"}
    assert (record.event_name, record.sequence_number) == ("MODIFY", "111200000000012345678902")


def test_dynamodb_images_match_boto3_where_boto3_can_read_them() -> None:
    (record,) = DynamoDBStreamEvent(fixture("example-dynamodb-stream-modify-all-types.json")).records
    raw_image = record.raw["dynamodb"]["OldImage"]
    deserializer = TypeDeserializer()
    assert record.old_image == {name: deserializer.deserialize(value) for name, value in raw_image.items()}
    # boto3 cannot read the base64 text stream records carry for binary attributes.
    with pytest.raises(TypeError, match="Value must be of the following types"):
        deserializer.deserialize(record.raw["dynamodb"]["NewImage"]["avatar"])


def test_dynamodb_images_are_decoded_once() -> None:
    (record,) = DynamoDBStreamEvent(fixture("example-dynamodb-stream-insert.json")).records
    assert record.new_image is record.new_image
    assert record.old_image is None
    assert record.new_image == {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "created_at": "2026-12-03T12:00:00.123Z",
        "logins": Decimal(3),
    }


def test_dynamodb_values_keep_bytes_given_as_bytes() -> None:
    assert _fastric.dynamodb_value({"B": b"\x00"}) == b"\x00"
    assert _fastric.dynamodb_value({"BS": [b"\x01", "Ag=="]}) == {b"\x01", b"\x02"}


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ({"a": {"X": "1"}}, r"^a: unknown attribute type 'X': expected S, N, B, BOOL, NULL, L, M, SS, NS or BS$"),
        ({"a": {"L": [{"S": "x"}, {"N": "abc"}]}}, r"^a\[1\]: N value 'abc' is not a number$"),
        ({"a": {"M": {"b": {"B": "!!"}}}}, r"^a\.b: B value is invalid base64: byte 0x21 at offset 0$"),
        ({"a": "text"}, r"^a: expected an attribute value such as \{\"S\": \"text\"\}, found 'text'$"),
        ({"a": {"S": "x", "N": "1"}}, r"^a: expected an attribute value"),
        ({"a": {"S": 1}}, r"^a: S value must be a string, found int$"),
        ({"a": {"NS": ["1", 2]}}, r"^a\[1\]: N value must be a string, found int$"),
        ({"a": {"SS": ["x", None]}}, r"^a\[1\]: SS items must be strings, found NoneType$"),
        ([{"S": "x"}], r"^expected an object of attributes, found list$"),
    ],
)
def test_malformed_attribute_values_name_where_they_are(image: Any, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        _fastric.dynamodb_image(image)


def test_a_malformed_image_names_its_record() -> None:
    event = fixture("example-dynamodb-stream-insert.json")
    event["Records"][0]["dynamodb"]["NewImage"]["logins"] = {"N": "three"}
    (record,) = DynamoDBStreamEvent(event).records
    with pytest.raises(EventDecodeError, match=r"record 83abf10f\w+ NewImage: logins: N value 'three' is not a number"):
        _ = record.new_image


def test_deep_nesting_is_refused_rather_than_overflowing() -> None:
    value: dict[str, Any] = {"S": "bottom"}
    for _ in range(200):
        value = {"L": [value]}
    with pytest.raises(EventDecodeError, match="nested deeper than 64 levels"):
        _fastric.dynamodb_value(value)


def test_event_decode_errors_are_value_errors() -> None:
    assert issubclass(EventDecodeError, FastricError)
    assert issubclass(EventDecodeError, ValueError)


# Kinesis


def test_kinesis_data_is_decoded_from_base64() -> None:
    event = KinesisEvent(fixture("example-kinesis-batch.json"))
    assert [record.json()["user"] for record in event] == ["ada@example.com", "grace@example.com"]
    assert event.records[0].data == b'{"path": "/users", "user": "ada@example.com"}'
    assert event.records[0].partition_key == "user-ada"


def test_kinesis_data_that_is_not_base64_names_its_record() -> None:
    record = KinesisEvent(fixture("example-kinesis-bad-base64.json")).records[1]
    with pytest.raises(EventDecodeError, match=r"Kinesis record 4965\d+: invalid base64: byte 0x7b at offset 0"):
        _ = record.data


@pytest.mark.parametrize("payload", [b"", b"a", b"ab", b"abc", bytes(range(256)), "café ✓".encode()])
def test_b64decode_matches_the_standard_library(payload: bytes) -> None:
    text = base64.b64encode(payload).decode()
    assert _fastric.b64decode(text) == payload
    assert _fastric.b64decode(text.rstrip("=")) == payload


@pytest.mark.parametrize("text", ["a", "ab!c", "aGk=\n", "aGk=aGk="])
def test_b64decode_refuses_what_is_not_base64(text: str) -> None:
    with pytest.raises(EventDecodeError, match=r"^invalid base64: "):
        _fastric.b64decode(text)


# API Gateway


def test_rest_api_headers_are_case_insensitive() -> None:
    request = APIGatewayProxyEvent(fixture("example-apigw-v1-post-users.json"))
    content_type = request.raw["headers"].get("Content-Type") or request.raw["headers"]["content-type"]
    assert request.headers["content-type"] == content_type
    assert request.headers["CONTENT-TYPE"] == content_type
    assert request.headers.get("Content-Type") == content_type
    assert "Content-type" in request.headers
    assert request.headers.get("x-missing", "none") == "none"
    assert all(name == name.lower() for name in request.headers)
    assert request.http_method == "POST"
    assert request.json() == json.loads(request.raw["body"])


def test_http_api_bodies_are_decoded_from_base64() -> None:
    request = APIGatewayProxyEventV2(fixture("example-apigw-v2-post-users-base64.json"))
    assert request.is_base64_encoded
    assert request.body == base64.b64decode(request.raw["body"])
    assert request.json() == json.loads(base64.b64decode(request.raw["body"]))
    assert request.http_method == "POST"


def test_http_api_requests_without_a_body() -> None:
    request = APIGatewayProxyEventV2(fixture("example-apigw-v2-get-users.json"))
    assert request.body == b""
    assert request.headers["Host"] == request.raw["headers"]["host"]


def test_a_malformed_body_is_an_event_decode_error() -> None:
    request = APIGatewayProxyEvent(fixture("example-apigw-v1-post-malformed-body.json"))
    with pytest.raises(EventDecodeError, match=r"^the request body is not JSON: "):
        request.json()


def test_headers_raise_key_error_for_missing_names() -> None:
    headers = Headers({"X-Request-Id": "r-1"})
    assert dict(headers) == {"x-request-id": "r-1"}
    with pytest.raises(KeyError, match="x-other"):
        _ = headers["X-Other"]


# EventBridge


def test_eventbridge_scheduler_detail_given_as_text_is_an_empty_detail() -> None:
    event = EventBridgeEvent(fixture("example-eventbridge-scheduler-string-detail.json"))
    assert event.detail == {}
    assert (event.source, event.detail_type) == ("aws.scheduler", "Scheduled Event")


def test_eventbridge_detail_as_object_or_json_text() -> None:
    assert EventBridgeEvent(fixture("example-eventbridge-scheduled.json")).detail == {}
    assert EventBridgeEvent({"detail": '{"order": 7}'}).detail == {"order": 7}
    assert EventBridgeEvent({"detail": ""}).detail == {}
    with pytest.raises(EventDecodeError, match="detail of EventBridge event e-1 is not JSON"):
        _ = EventBridgeEvent({"id": "e-1", "detail": "{oops"}).detail


# Partial batch responses


def test_sqs_batch_reports_only_the_message_whose_body_is_not_json(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def save(record: Any) -> None:
        seen.append(record.json()["name"])

    with caplog.at_level(logging.ERROR, logger="fastric.events"):
        response = process_batch(fixture("example-sqs-batch-malformed-body.json"), save)
    assert response == {"batchItemFailures": [{"itemIdentifier": "8b7e6d5c-4a3f-4e2d-8c1b-0a9f8e7d6c5b"}]}
    assert seen == ["Ada Lovelace", "Katherine Johnson"]
    assert "record 8b7e6d5c-4a3f-4e2d-8c1b-0a9f8e7d6c5b failed" in caplog.text


def test_fifo_batch_stops_at_the_first_failure_and_reports_the_rest() -> None:
    event = fixture("example-sqs-batch-malformed-body.json")
    for record in event["Records"]:
        record["eventSourceARN"] += ".fifo"
    seen: list[str] = []
    response = process_batch(event, lambda record: seen.append(record.json()["name"]))
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": "8b7e6d5c-4a3f-4e2d-8c1b-0a9f8e7d6c5b"},
            {"itemIdentifier": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"},
        ]
    }
    assert seen == ["Ada Lovelace"]


def test_kinesis_batch_reports_the_record_whose_data_does_not_decode() -> None:
    response = process_batch(fixture("example-kinesis-bad-base64.json"), lambda record: record.json())
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "49652092535498686752553990198703360628728091177202728961"}]
    }


def test_dynamodb_batch_reports_the_sequence_number_of_the_failed_record() -> None:
    def reject_modify(record: Any) -> None:
        if record.event_name == "MODIFY":
            raise RuntimeError("no updates allowed")

    event = fixture("example-dynamodb-stream-insert.json")
    event["Records"] += fixture("example-dynamodb-stream-modify-all-types.json")["Records"]
    assert process_batch(event, reject_modify) == {
        "batchItemFailures": [{"itemIdentifier": "111200000000012345678902"}]
    }
    assert process_batch(event, lambda record: record.new_image) == {"batchItemFailures": []}


def test_process_batch_refuses_other_event_sources() -> None:
    with pytest.raises(EventDecodeError, match="not records from 'aws:s3'"):
        process_batch(fixture("example-s3-put.json"), print)
    assert process_batch({"Records": []}, print) == {"batchItemFailures": []}
