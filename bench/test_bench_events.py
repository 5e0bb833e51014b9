"""fastric.events against the usual ways of reading the same records: boto3's `TypeDeserializer`,
Powertools' data classes, and `orjson` plus the idiomatic decode written by hand.

Every implementation starts from the event dict a handler receives and produces the same values;
one whose answer differs gets no number. `json.loads event` times decoding the event's bytes alone,
for scale.
"""

from __future__ import annotations

import base64
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote_plus, unquote_plus

import orjson
import pytest
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent as PowertoolsProxyEvent,
)
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEventV2 as PowertoolsProxyEventV2,
)
from aws_lambda_powertools.utilities.data_classes import (
    DynamoDBStreamEvent as PowertoolsDynamoDBStreamEvent,
)
from aws_lambda_powertools.utilities.data_classes import (
    EventBridgeEvent as PowertoolsEventBridgeEvent,
)
from aws_lambda_powertools.utilities.data_classes import (
    KinesisStreamEvent as PowertoolsKinesisStreamEvent,
)
from aws_lambda_powertools.utilities.data_classes import (
    S3Event as PowertoolsS3Event,
)
from aws_lambda_powertools.utilities.data_classes import (
    SQSEvent as PowertoolsSQSEvent,
)
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from fastric import events

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "events"
REGION_ARN = "arn:aws:{service}:us-east-1:123456789012:{resource}"


def fixture(name: str) -> dict[str, Any]:
    return delivered(json.loads((FIXTURES / name).read_text()))


def delivered(event: dict[str, Any]) -> dict[str, Any]:
    """The event as a handler receives it: decoded from JSON bytes, as fastric's runtime decodes
    them, so its objects lie in memory as they would."""
    return orjson.loads(json.dumps(event))


# Record sets at the sizes Lambda delivers: 100 records is the default batch of a stream.


def dynamodb_orders(count: int = 100) -> dict[str, Any]:
    """Order items changing status, with the nesting and number density of a typical table."""
    generator = random.Random(7)
    serializer = TypeSerializer()
    records = []
    for index in range(count):
        items = [
            {
                "sku": f"SKU-{generator.randrange(10**5):05d}",
                "qty": generator.randrange(1, 5),
                "price": Decimal(f"{generator.uniform(1, 200):.2f}"),
            }
            for _ in range(3)
        ]
        old = {
            "pk": f"ORDER#{index:06d}",
            "sk": "METADATA",
            "customer": f"customer{generator.randrange(10**4)}@example.com",
            "status": "PENDING",
            "total": sum(item["price"] * item["qty"] for item in items),
            "created_at": f"2026-12-03T12:{index % 60:02d}:00Z",
            "updated_at": 1796299200 + index,
            "shipping": {"street": f"{index} Harbour Road", "city": "London", "zip": "W1A 1AA", "country": "GB"},
            "items": items,
            "tags": {"web", "priority"} if index % 3 else {"web"},
            "gift": index % 5 == 0,
            "coupon": None,
        }
        new = {**old, "status": "SHIPPED", "updated_at": old["updated_at"] + 3600}
        image = lambda item: {name: serializer.serialize(value) for name, value in item.items()}  # noqa: E731
        records.append(
            {
                "eventID": f"{index:032x}",
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1796299200 + index,
                    "Keys": image({"pk": old["pk"], "sk": old["sk"]}),
                    "NewImage": image(new),
                    "OldImage": image(old),
                    "SequenceNumber": str(111100000000000000000000 + index),
                    "SizeBytes": 512,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": REGION_ARN.format(service="dynamodb", resource="table/orders/stream/2026-12-01"),
            }
        )
    return delivered({"Records": records})


def kinesis_clicks(count: int = 100) -> dict[str, Any]:
    """Click events of about 300 bytes each."""
    generator = random.Random(11)
    records = []
    for index in range(count):
        payload = {
            "user": f"user-{generator.randrange(10**6)}",
            "page": f"/products/{generator.randrange(10**4)}",
            "referrer": "https://www.example.com/search?q=harbour+lights",
            "at": 1796299200.0 + index / 10,
            "agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
            "viewport": [1280, 720],
        }
        sequence = str(49652092535498686752553990198702151702908476548028022517 + index)
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": payload["user"],
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(json.dumps(payload).encode()).decode(),
                    "approximateArrivalTimestamp": payload["at"],
                },
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventSourceARN": REGION_ARN.format(service="kinesis", resource="stream/clicks"),
            }
        )
    return delivered({"Records": records})


def s3_uploads(count: int = 10) -> dict[str, Any]:
    """Uploads whose keys need decoding: spaces, accents, brackets."""
    template = fixture("example-s3-put.json")["Records"][0]
    records = []
    for index in range(count):
        record = json.loads(json.dumps(template))
        record["s3"]["object"]["key"] = quote_plus(f"uploads/summer trip {index}/café ({index}).jpg", safe="/")
        records.append(record)
    return delivered({"Records": records})


def sqs_orders(count: int = 10) -> dict[str, Any]:
    """Messages whose bodies are JSON orders of about 1 KB."""
    template = fixture("example-sqs-batch.json")["Records"][0]
    generator = random.Random(5)
    records = []
    for index in range(count):
        body = {
            "order": f"ord-{index:05d}",
            "lines": [{"sku": f"SKU-{generator.randrange(10**5)}", "qty": 1, "price": 9.99} for _ in range(12)],
            "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
        }
        records.append({**template, "messageId": f"msg-{index}", "body": json.dumps(body)})
    return delivered({"Records": records})


# The operations: one function per implementation, each returning comparable plain values.

DESERIALIZER = TypeDeserializer()


def boto3_images(event: dict[str, Any]) -> list[Any]:
    deserialize = DESERIALIZER.deserialize
    return [
        (
            {name: deserialize(value) for name, value in record["dynamodb"]["NewImage"].items()},
            {name: deserialize(value) for name, value in record["dynamodb"]["OldImage"].items()},
        )
        for record in event["Records"]
    ]


def reference_value(value: dict[str, Any]) -> Any:
    """Attribute values as documented, written plainly: the answer every implementation must give."""
    ((tag, inner),) = value.items()
    decoders: dict[str, Callable[[Any], Any]] = {
        "S": str,
        "N": Decimal,
        "B": base64.b64decode,
        "BOOL": bool,
        "NULL": lambda _: None,
        "L": lambda items: [reference_value(item) for item in items],
        "M": lambda image: {name: reference_value(item) for name, item in image.items()},
        "SS": set,
        "NS": lambda items: {Decimal(item) for item in items},
        "BS": lambda items: {base64.b64decode(item) for item in items},
    }
    return decoders[tag](inner)


DYNAMODB: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fastric": lambda event: [(record.new_image, record.old_image) for record in events.DynamoDBStreamEvent(event)],
    "boto3": boto3_images,
    "powertools": lambda event: [
        (record.dynamodb.new_image, record.dynamodb.old_image)
        for record in PowertoolsDynamoDBStreamEvent(event).records
    ],
}


def reference_images(event: dict[str, Any]) -> list[Any]:
    return [
        tuple(
            {name: reference_value(value) for name, value in record["dynamodb"][image].items()}
            for image in ("NewImage", "OldImage")
        )
        for record in event["Records"]
    ]


SQS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fastric": lambda event: [record.json() for record in events.SQSEvent(event)],
    "orjson": lambda event: [orjson.loads(record["body"]) for record in event["Records"]],
    "powertools": lambda event: [record.json_body for record in PowertoolsSQSEvent(event).records],
}

KINESIS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fastric": lambda event: [record.json() for record in events.KinesisEvent(event)],
    "orjson": lambda event: [orjson.loads(base64.b64decode(record["kinesis"]["data"])) for record in event["Records"]],
    "powertools": lambda event: [
        record.kinesis.data_as_json() for record in PowertoolsKinesisStreamEvent(event).records
    ],
}

S3: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fastric": lambda event: [(record.bucket, record.key) for record in events.S3Event(event)],
    "orjson": lambda event: [
        (record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])) for record in event["Records"]
    ],
    "powertools": lambda event: [
        (record.s3.bucket.name, record.s3.get_object.key) for record in PowertoolsS3Event(event).records
    ],
}


def idiomatic_request(event: dict[str, Any]) -> Any:
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body)
    return headers.get("content-type"), orjson.loads(body)


API_GATEWAY: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fastric": lambda event: (lambda request: (request.headers.get("Content-Type"), request.json()))(
        (events.APIGatewayProxyEventV2 if event.get("version") == "2.0" else events.APIGatewayProxyEvent)(event)
    ),
    "orjson": idiomatic_request,
    "powertools": lambda event: (lambda request: (request.headers.get("Content-Type"), request.json_body))(
        (PowertoolsProxyEventV2 if event.get("version") == "2.0" else PowertoolsProxyEvent)(event)
    ),
}


def idiomatic_detail(event: dict[str, Any]) -> Any:
    detail = event.get("detail")
    return (orjson.loads(detail) if detail else {}) if isinstance(detail, str) else detail


EVENTBRIDGE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fastric": lambda event: events.EventBridgeEvent(event).detail,
    "orjson": idiomatic_detail,
    "powertools": lambda event: PowertoolsEventBridgeEvent(event).detail,
}

# Operation name: (implementations, record sets, the reference that decides what is correct).
OPERATIONS: dict[str, tuple[dict[str, Callable[[dict[str, Any]], Any]], dict[str, dict[str, Any]], Any]] = {
    "dynamodb images": (
        DYNAMODB,
        {
            "orders-100": dynamodb_orders(),
            "all-types": fixture("example-dynamodb-stream-modify-all-types.json"),
        },
        reference_images,
    ),
    "sqs json bodies": (
        SQS,
        {"orders-10": sqs_orders(), "signups-3": fixture("example-sqs-batch.json")},
        SQS["orjson"],
    ),
    "kinesis json data": (
        KINESIS,
        {"clicks-100": kinesis_clicks(), "fixture-2": fixture("example-kinesis-batch.json")},
        KINESIS["orjson"],
    ),
    "s3 keys": (
        S3,
        {"uploads-10": s3_uploads(), "encoded-2": fixture("example-s3-put-encoded-keys.json")},
        S3["orjson"],
    ),
    "api gateway request": (
        API_GATEWAY,
        {
            "v1-post": fixture("example-apigw-v1-post-users.json"),
            "v2-base64": fixture("example-apigw-v2-post-users-base64.json"),
        },
        API_GATEWAY["orjson"],
    ),
    "eventbridge detail": (
        EVENTBRIDGE,
        {
            "scheduled": fixture("example-eventbridge-scheduled.json"),
            "scheduler-text": fixture("example-eventbridge-scheduler-string-detail.json"),
        },
        EVENTBRIDGE["orjson"],
    ),
}

CASES = [
    pytest.param(operation, implementation, record_set, id=f"{operation}-{record_set}-{implementation}")
    for operation, (implementations, record_sets, _) in OPERATIONS.items()
    for record_set in record_sets
    for implementation in [*implementations, "json.loads event"]
]


@pytest.mark.parametrize(("operation", "implementation", "record_set"), CASES)
def test_events(benchmark: Any, operation: str, implementation: str, record_set: str) -> None:
    implementations, record_sets, reference = OPERATIONS[operation]
    event = record_sets[record_set]
    benchmark.group = f"{operation} {record_set}"
    if implementation == "json.loads event":
        data = json.dumps(event).encode()
        benchmark.extra_info.update(implementation=implementation, correct=True)
        benchmark(json.loads, data)
        return

    # No implementation writes to the event or caches in it: each call starts from scratch.
    run = implementations[implementation]
    try:
        correct = run(event) == reference(event)
    except Exception as error:  # an implementation that cannot read the records gets no number
        pytest.skip(f"{implementation} cannot read {record_set}: {type(error).__name__}: {error}")
    benchmark.extra_info.update(implementation=implementation, correct=correct)
    if not correct:
        pytest.skip(f"{implementation} reads {record_set} wrongly")
    benchmark(run, event)
