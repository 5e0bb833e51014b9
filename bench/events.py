"""The events the benchmarks feed both runtimes: realistic shapes at the sizes Lambda sees."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "events"


def _filler(size: int, seed: int) -> dict[str, object]:
    """A JSON object of about `size` bytes of mixed records, like a typical API payload."""
    generator = random.Random(seed)
    records: list[dict[str, object]] = []
    total = 0
    while total < size:
        index = len(records)
        records.append(
            {
                "id": f"item-{index:06d}",
                "name": f"product {generator.randrange(10**6)}",
                "price": round(generator.uniform(1, 500), 2),
                "quantity": generator.randrange(100),
                "tags": [f"tag{generator.randrange(50)}" for _ in range(3)],
                "active": generator.random() < 0.5,
                "note": None,
            }
        )
        total += len(json.dumps(records[-1], separators=(",", ":"))) + 1
    return {"records": records}


def apigw_event() -> dict[str, object]:
    return json.loads((FIXTURES / "example-apigw-v1-post-users.json").read_text())


def sqs_batch(count: int = 10) -> dict[str, object]:
    """An SQS batch of `count` messages whose bodies are JSON orders of about 4 KB each."""
    records = []
    for index in range(count):
        body = json.dumps(_filler(4000, seed=index))
        records.append(
            {
                "messageId": f"059f36b4-87a3-44ab-83d2-661975830a{index:02d}",
                "receiptHandle": base64.b64encode(hashlib.sha512(body.encode()).digest() * 2).decode(),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1545082649183",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1545082649185",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:orders",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def sized(size: int) -> dict[str, object]:
    return _filler(size, seed=size)


def workloads() -> dict[str, bytes]:
    """Event bytes by workload name, encoded once as Lambda would deliver them."""
    events = {
        "1KB": sized(1000),
        "apigw": apigw_event(),
        "sqs10": sqs_batch(),
        "1MB": sized(1_000_000),
        "5MB": sized(5_000_000),
    }
    return {name: json.dumps(event, separators=(",", ":")).encode() for name, event in events.items()}
