"""Typed accessors for the events Lambda receives from its event sources.

Each class wraps the event dict as the handler receives it and reads fields on demand; the heavy
parts (DynamoDB attribute values, base64 payloads, S3 keys, header names) are decoded natively, and
anything decoded is computed once, however often it is read. `raw` always gives the dict back.

    from fastric.events import SQSEvent, process_batch

    def handler(event, context):
        return process_batch(event, lambda record: save(record.json()))
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Optional, Union

import orjson

from . import _fastric
from .errors import EventDecodeError

__all__ = [
    "APIGatewayProxyEvent",
    "APIGatewayProxyEventV2",
    "DynamoDBRecord",
    "DynamoDBStreamEvent",
    "EventBridgeEvent",
    "Headers",
    "KinesisEvent",
    "KinesisRecord",
    "S3Event",
    "S3Record",
    "SNSEvent",
    "SNSRecord",
    "SQSEvent",
    "SQSRecord",
    "process_batch",
    "s3_records",
]

_logger = logging.getLogger("fastric.events")

_orjson_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError

# Marks a value not decoded yet; `None` is a legitimate decoded value (an absent image).
_UNSET: Any = object()


def _not_json(what: str, error: Exception) -> EventDecodeError:
    return EventDecodeError(f"{what} is not JSON: {error}")


def _loads(data: Union[str, bytes], what: Callable[[], str]) -> Any:
    """Decodes JSON; `what` names the data in the error, and is only called when there is one."""
    try:
        return _orjson_loads(data)
    except _JSONDecodeError as error:
        raise _not_json(what(), error) from error


class _Wrapper:
    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    @property
    def raw(self) -> dict[str, Any]:
        """The dict this object reads, as the event carried it."""
        return self._raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._raw!r})"


# SQS


class SQSRecord(_Wrapper):
    """One message of an SQS batch."""

    __slots__ = ("_json",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._json = _UNSET

    @property
    def message_id(self) -> str:
        return self._raw["messageId"]

    @property
    def receipt_handle(self) -> str:
        return self._raw["receiptHandle"]

    @property
    def body(self) -> str:
        return self._raw["body"]

    def json(self) -> Any:
        """The body decoded as JSON, decoded on the first call only.

        Raises:
            fastric.EventDecodeError: the body is not JSON.
        """
        value = self._json
        if value is _UNSET:
            try:
                value = self._json = _orjson_loads(self._raw["body"])
            except _JSONDecodeError as error:
                raise _not_json(f"the body of SQS message {self.message_id}", error) from error
        return value

    @property
    def attributes(self) -> dict[str, str]:
        """System attributes such as `ApproximateReceiveCount` and, on FIFO queues, `MessageGroupId`."""
        return self._raw.get("attributes") or {}

    @property
    def message_attributes(self) -> dict[str, dict[str, Any]]:
        return self._raw.get("messageAttributes") or {}

    @property
    def md5_of_body(self) -> Optional[str]:
        return self._raw.get("md5OfBody")

    @property
    def event_source_arn(self) -> str:
        return self._raw["eventSourceARN"]

    @property
    def queue_name(self) -> str:
        return self._raw["eventSourceARN"].rpartition(":")[2]

    @property
    def aws_region(self) -> str:
        return self._raw["awsRegion"]


class SQSEvent(_Wrapper):
    """A batch of SQS messages."""

    __slots__ = ("_records",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._records: Optional[list[SQSRecord]] = None

    @property
    def records(self) -> list[SQSRecord]:
        if self._records is None:
            self._records = [SQSRecord(record) for record in self._raw["Records"]]
        return self._records

    def __iter__(self) -> Iterator[SQSRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self._raw["Records"])


# SNS


class SNSRecord(_Wrapper):
    """One SNS notification, as Lambda receives it from a topic subscription."""

    __slots__ = ("_json",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._json = _UNSET

    @property
    def _sns(self) -> dict[str, Any]:
        return self._raw["Sns"]

    @property
    def message_id(self) -> str:
        return self._sns["MessageId"]

    @property
    def topic_arn(self) -> str:
        return self._sns["TopicArn"]

    @property
    def subject(self) -> Optional[str]:
        return self._sns.get("Subject")

    @property
    def message(self) -> str:
        return self._sns["Message"]

    def json(self) -> Any:
        """The message decoded as JSON, decoded on the first call only.

        Raises:
            fastric.EventDecodeError: the message is not JSON.
        """
        if self._json is _UNSET:
            self._json = _loads(self._sns["Message"], lambda: f"the SNS message {self.message_id}")
        return self._json

    @property
    def timestamp(self) -> str:
        return self._sns["Timestamp"]

    @property
    def message_attributes(self) -> dict[str, str]:
        """Attribute names to their values (the `Value` of each attribute)."""
        return {name: attribute["Value"] for name, attribute in (self._sns.get("MessageAttributes") or {}).items()}

    @property
    def event_subscription_arn(self) -> str:
        return self._raw["EventSubscriptionArn"]


class SNSEvent(_Wrapper):
    """SNS notifications delivered to a subscribed function."""

    __slots__ = ("_records",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._records: Optional[list[SNSRecord]] = None

    @property
    def records(self) -> list[SNSRecord]:
        if self._records is None:
            self._records = [SNSRecord(record) for record in self._raw["Records"]]
        return self._records

    def __iter__(self) -> Iterator[SNSRecord]:
        return iter(self.records)


# S3


class S3Record(_Wrapper):
    """One S3 event notification record."""

    __slots__ = ("_key",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._key: Optional[str] = None

    @property
    def event_name(self) -> str:
        """E.g. `ObjectCreated:Put`."""
        return self._raw["eventName"]

    @property
    def event_time(self) -> str:
        return self._raw["eventTime"]

    @property
    def aws_region(self) -> str:
        return self._raw["awsRegion"]

    @property
    def bucket(self) -> str:
        return self._raw["s3"]["bucket"]["name"]

    @property
    def key(self) -> str:
        """The object key, decoded: S3 sends it URL-encoded, with `+` for spaces."""
        if self._key is None:
            self._key = _fastric.unquote_plus(self._raw["s3"]["object"]["key"])
        return self._key

    @property
    def raw_key(self) -> str:
        """The object key as the event carries it, URL-encoded."""
        return self._raw["s3"]["object"]["key"]

    @property
    def size(self) -> Optional[int]:
        """The object size in bytes (absent from deletion events)."""
        return self._raw["s3"]["object"].get("size")

    @property
    def etag(self) -> Optional[str]:
        return self._raw["s3"]["object"].get("eTag")

    @property
    def version_id(self) -> Optional[str]:
        return self._raw["s3"]["object"].get("versionId")

    @property
    def sequencer(self) -> Optional[str]:
        return self._raw["s3"]["object"].get("sequencer")


class S3Event(_Wrapper):
    """An S3 event notification, every record's key decoded."""

    __slots__ = ("_records",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._records: Optional[list[S3Record]] = None

    @property
    def records(self) -> list[S3Record]:
        if self._records is None:
            self._records = [S3Record(record) for record in self._raw.get("Records") or ()]
        return self._records

    def __iter__(self) -> Iterator[S3Record]:
        return iter(self.records)


def s3_records(event: dict[str, Any]) -> list[S3Record]:
    """Finds the S3 records in an event, through the envelopes S3 notifications travel in.

    S3 can notify Lambda directly, or through an SQS queue, an SNS topic, or SNS then SQS; this
    opens each envelope (SQS bodies and SNS messages are decoded as JSON) and skips the
    `s3:TestEvent` message S3 sends when a notification is configured.

    Raises:
        fastric.EventDecodeError: an SQS body or SNS message in the event is not JSON.
    """
    found: list[S3Record] = []
    _collect_s3(event, found)
    return found


def _collect_s3(event: Any, found: list[S3Record]) -> None:
    if not isinstance(event, dict):
        return
    for record in event.get("Records") or ():
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:s3":
            found.append(S3Record(record))
        elif source == "aws:sqs":
            _collect_s3(_unwrap_sns(SQSRecord(record).json()), found)
        elif source == "aws:sns":
            _collect_s3(SNSRecord(record).json(), found)


def _unwrap_sns(document: Any) -> Any:
    """An SNS notification delivered to SQS carries its message as JSON text; the test event and
    anything else is returned as it is."""
    if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
        return _loads(document["Message"], lambda: f"the SNS message {document.get('MessageId')}")
    return document


# DynamoDB Streams


class DynamoDBRecord(_Wrapper):
    """One DynamoDB stream record, its images decoded to Python values.

    `N` numbers become `Decimal`, `B` (base64 in stream records) `bytes`, `SS`/`NS`/`BS` `set`s,
    `L` lists, `M` dicts, `NULL` None.
    """

    __slots__ = ("_keys", "_new_image", "_old_image")

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._keys = self._new_image = self._old_image = _UNSET

    @property
    def event_id(self) -> str:
        return self._raw["eventID"]

    @property
    def event_name(self) -> str:
        """`INSERT`, `MODIFY` or `REMOVE`."""
        return self._raw["eventName"]

    @property
    def event_source_arn(self) -> str:
        return self._raw["eventSourceARN"]

    @property
    def sequence_number(self) -> str:
        return self._raw["dynamodb"]["SequenceNumber"]

    @property
    def approximate_creation_time(self) -> Optional[float]:
        """Seconds since the epoch."""
        return self._raw["dynamodb"].get("ApproximateCreationDateTime")

    @property
    def stream_view_type(self) -> Optional[str]:
        return self._raw["dynamodb"].get("StreamViewType")

    @property
    def size_bytes(self) -> Optional[int]:
        return self._raw["dynamodb"].get("SizeBytes")

    def _image(self, name: str) -> Optional[dict[str, Any]]:
        image = self._raw["dynamodb"].get(name)
        if image is None:
            return None
        try:
            return _fastric.dynamodb_image(image)
        except EventDecodeError as error:
            raise EventDecodeError(f"record {self.event_id} {name}: {error}") from None

    @property
    def keys(self) -> Optional[dict[str, Any]]:
        """The key attributes of the item.

        Raises:
            fastric.EventDecodeError: an attribute value is malformed.
        """
        if self._keys is _UNSET:
            self._keys = self._image("Keys")
        return self._keys

    @property
    def new_image(self) -> Optional[dict[str, Any]]:
        """The item after the change, or None when the stream view type leaves it out.

        Raises:
            fastric.EventDecodeError: an attribute value is malformed.
        """
        if self._new_image is _UNSET:
            self._new_image = self._image("NewImage")
        return self._new_image

    @property
    def old_image(self) -> Optional[dict[str, Any]]:
        """The item before the change, or None when the stream view type leaves it out.

        Raises:
            fastric.EventDecodeError: an attribute value is malformed.
        """
        if self._old_image is _UNSET:
            self._old_image = self._image("OldImage")
        return self._old_image


class DynamoDBStreamEvent(_Wrapper):
    """A batch of DynamoDB stream records."""

    __slots__ = ("_records",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._records: Optional[list[DynamoDBRecord]] = None

    @property
    def records(self) -> list[DynamoDBRecord]:
        if self._records is None:
            self._records = [DynamoDBRecord(record) for record in self._raw["Records"]]
        return self._records

    def __iter__(self) -> Iterator[DynamoDBRecord]:
        return iter(self.records)


# Kinesis


class KinesisRecord(_Wrapper):
    """One Kinesis Data Streams record."""

    __slots__ = ("_data", "_json")

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._data: Optional[bytes] = None
        self._json = _UNSET

    @property
    def sequence_number(self) -> str:
        return self._raw["kinesis"]["sequenceNumber"]

    @property
    def partition_key(self) -> str:
        return self._raw["kinesis"]["partitionKey"]

    @property
    def approximate_arrival_timestamp(self) -> float:
        return self._raw["kinesis"]["approximateArrivalTimestamp"]

    @property
    def event_id(self) -> str:
        return self._raw["eventID"]

    @property
    def event_source_arn(self) -> str:
        return self._raw["eventSourceARN"]

    @property
    def data(self) -> bytes:
        """The record's payload, decoded from base64.

        Raises:
            fastric.EventDecodeError: the data is not valid base64.
        """
        if self._data is None:
            try:
                self._data = _fastric.b64decode(self._raw["kinesis"]["data"])
            except EventDecodeError as error:
                raise EventDecodeError(f"the data of Kinesis record {self.sequence_number}: {error}") from None
        return self._data

    def json(self) -> Any:
        """The payload decoded as JSON, decoded on the first call only.

        Raises:
            fastric.EventDecodeError: the data is not base64, or its payload is not JSON.
        """
        value = self._json
        if value is _UNSET:
            try:
                value = self._json = _orjson_loads(self.data)
            except _JSONDecodeError as error:
                raise _not_json(f"the data of Kinesis record {self.sequence_number}", error) from error
        return value


class KinesisEvent(_Wrapper):
    """A batch of Kinesis Data Streams records."""

    __slots__ = ("_records",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._records: Optional[list[KinesisRecord]] = None

    @property
    def records(self) -> list[KinesisRecord]:
        if self._records is None:
            self._records = [KinesisRecord(record) for record in self._raw["Records"]]
        return self._records

    def __iter__(self) -> Iterator[KinesisRecord]:
        return iter(self.records)


# API Gateway


class Headers(Mapping[str, str]):
    """HTTP headers looked up without regard to the case of their names.

    Iteration yields the names in lower case.
    """

    __slots__ = ("_lowered",)

    def __init__(self, headers: Optional[dict[str, str]]) -> None:
        self._lowered: dict[str, str] = _fastric.lower_keys(headers) if headers else {}

    def __getitem__(self, name: str) -> str:
        lowered = self._lowered
        # Most lookups name headers in lower case already; lower-casing is the exception.
        value = lowered.get(name, _UNSET)
        if value is _UNSET:
            return lowered[name.lower()]
        return value

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        lowered = self._lowered
        value = lowered.get(name, _UNSET)
        if value is _UNSET:
            return lowered.get(name.lower(), default)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._lowered or name.lower() in self._lowered)

    def __iter__(self) -> Iterator[str]:
        return iter(self._lowered)

    def __len__(self) -> int:
        return len(self._lowered)

    def __repr__(self) -> str:
        return f"Headers({self._lowered!r})"


class _HttpEvent(_Wrapper):
    __slots__ = ("_body", "_headers", "_json")

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._headers: Optional[Headers] = None
        self._body: Optional[bytes] = None
        self._json = _UNSET

    @property
    def headers(self) -> Headers:
        """The request headers, looked up case-insensitively."""
        if self._headers is None:
            self._headers = Headers(self._raw.get("headers"))
        return self._headers

    @property
    def query_string_parameters(self) -> dict[str, str]:
        return self._raw.get("queryStringParameters") or {}

    @property
    def path_parameters(self) -> dict[str, str]:
        return self._raw.get("pathParameters") or {}

    @property
    def stage_variables(self) -> dict[str, str]:
        return self._raw.get("stageVariables") or {}

    @property
    def request_context(self) -> dict[str, Any]:
        return self._raw.get("requestContext") or {}

    @property
    def is_base64_encoded(self) -> bool:
        return bool(self._raw.get("isBase64Encoded"))

    @property
    def raw_body(self) -> Optional[str]:
        """The body as the event carries it: base64 text when `is_base64_encoded`."""
        return self._raw.get("body")

    @property
    def body(self) -> bytes:
        """The request body: decoded from base64 when the event says it is encoded, else the text
        encoded as UTF-8; empty when there is none.

        Raises:
            fastric.EventDecodeError: the body is marked as base64 but does not decode.
        """
        if self._body is None:
            text = self._raw.get("body")
            if not text:
                self._body = b""
            elif self._raw.get("isBase64Encoded"):
                try:
                    self._body = _fastric.b64decode(text)
                except EventDecodeError as error:
                    raise EventDecodeError(f"the request body: {error}") from None
            else:
                self._body = text.encode()
        return self._body

    def json(self) -> Any:
        """The body decoded as JSON, decoded on the first call only.

        Raises:
            fastric.EventDecodeError: the body is not JSON (or is marked as base64 but is not).
        """
        if self._json is _UNSET:
            text = self._raw.get("body")
            # Text bodies are handed to the decoder as they are, without a copy to bytes.
            data = self.body if self._raw.get("isBase64Encoded") or not text else text
            self._json = _loads(data, lambda: "the request body")
        return self._json


class APIGatewayProxyEvent(_HttpEvent):
    """A REST API (or HTTP API payload 1.0) proxy integration request."""

    __slots__ = ()

    @property
    def http_method(self) -> str:
        return self._raw["httpMethod"]

    @property
    def path(self) -> str:
        return self._raw["path"]

    @property
    def resource(self) -> str:
        return self._raw["resource"]

    @property
    def multi_value_headers(self) -> dict[str, list[str]]:
        """Every value of each header, with the names as sent."""
        return self._raw.get("multiValueHeaders") or {}

    @property
    def multi_value_query_string_parameters(self) -> dict[str, list[str]]:
        return self._raw.get("multiValueQueryStringParameters") or {}


class APIGatewayProxyEventV2(_HttpEvent):
    """An HTTP API payload 2.0 request (also the shape of Lambda function URL requests)."""

    __slots__ = ()

    @property
    def http_method(self) -> str:
        return self._raw["requestContext"]["http"]["method"]

    @property
    def path(self) -> str:
        return self._raw["requestContext"]["http"]["path"]

    @property
    def route_key(self) -> str:
        return self._raw["routeKey"]

    @property
    def raw_path(self) -> str:
        return self._raw["rawPath"]

    @property
    def raw_query_string(self) -> str:
        return self._raw.get("rawQueryString") or ""

    @property
    def cookies(self) -> list[str]:
        return self._raw.get("cookies") or []


# EventBridge


class EventBridgeEvent(_Wrapper):
    """An EventBridge event, from a rule, a pipe or EventBridge Scheduler."""

    __slots__ = ("_detail",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._detail = _UNSET

    @property
    def id(self) -> str:
        return self._raw["id"]

    @property
    def source(self) -> str:
        return self._raw["source"]

    @property
    def detail_type(self) -> str:
        return self._raw["detail-type"]

    @property
    def account(self) -> str:
        return self._raw["account"]

    @property
    def time(self) -> str:
        return self._raw["time"]

    @property
    def region(self) -> str:
        return self._raw["region"]

    @property
    def resources(self) -> list[str]:
        return self._raw.get("resources") or []

    @property
    def detail(self) -> Any:
        """The event's detail. Some senders (EventBridge Scheduler among them) put it as JSON text,
        `"{}"` for none; that text is decoded, and an empty or absent detail is `{}`.

        Raises:
            fastric.EventDecodeError: the detail is text that is not JSON.
        """
        detail = self._detail
        if detail is _UNSET:
            detail = self._raw.get("detail")
            if isinstance(detail, str):
                what = lambda: f"the detail of EventBridge event {self._raw.get('id')}"  # noqa: E731
                detail = _loads(detail, what) if detail.strip() else {}
            elif detail is None:
                detail = {}
            self._detail = detail
        return detail


# Partial batch responses

_Record = Union[SQSRecord, KinesisRecord, DynamoDBRecord]


def process_batch(event: dict[str, Any], callback: Callable[[Any], object]) -> dict[str, list[dict[str, str]]]:
    """Calls `callback` on each record of an SQS, Kinesis or DynamoDB Streams batch and returns
    the partial batch response that names the records it failed on.

    The callback receives an `SQSRecord`, `KinesisRecord` or `DynamoDBRecord`; a record fails
    when the callback raises an `Exception` (logged on the `fastric.events` logger). Return the
    result from the handler, with `ReportBatchItemFailures` enabled on the event source mapping,
    and Lambda retries only what failed.

    Records are reported by message id (SQS) or sequence number (streams). Where order matters,
    processing stops at the first failure, and that record and every one after it are reported,
    so none is processed ahead of one that came before it: on FIFO queues, and on streams, where
    Lambda resumes from the first reported sequence number anyway (so only that one is reported).

    Raises:
        fastric.EventDecodeError: the event is not an SQS, Kinesis or DynamoDB Streams batch.
    """
    raw_records = event.get("Records") or []
    if not raw_records:
        return {"batchItemFailures": []}
    source = raw_records[0].get("eventSource")
    if source == "aws:sqs":
        records: list[_Record] = [SQSRecord(record) for record in raw_records]
        ordered = raw_records[0].get("eventSourceARN", "").endswith(".fifo")
        identify: Callable[[Any], str] = _message_id
    elif source == "aws:kinesis":
        records = [KinesisRecord(record) for record in raw_records]
        ordered, identify = True, _kinesis_sequence_number
    elif source == "aws:dynamodb":
        records = [DynamoDBRecord(record) for record in raw_records]
        ordered, identify = True, _dynamodb_sequence_number
    else:
        raise EventDecodeError(
            f"process_batch takes SQS, Kinesis or DynamoDB Streams batches, not records from {source!r}"
        )

    failures: list[dict[str, str]] = []
    for index, record in enumerate(records):
        try:
            callback(record)
        except Exception:
            identifier = identify(record)
            _logger.exception("record %s failed; it is reported for a retry", identifier)
            if not ordered:
                failures.append({"itemIdentifier": identifier})
                continue
            if source == "aws:sqs":
                # FIFO: this message and every later one go back, so the group keeps its order.
                failures.extend({"itemIdentifier": identify(rest)} for rest in records[index:])
            else:
                failures.append({"itemIdentifier": identifier})
            break
    return {"batchItemFailures": failures}


def _message_id(record: SQSRecord) -> str:
    return record.message_id


def _kinesis_sequence_number(record: KinesisRecord) -> str:
    return record.sequence_number


def _dynamodb_sequence_number(record: DynamoDBRecord) -> str:
    return record.sequence_number
