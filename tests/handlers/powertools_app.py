"""Handlers written with Powertools for AWS Lambda, as users write them: Logger, BatchProcessor, routing."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

logger = Logger(service="signups")
processor = BatchProcessor(event_type=EventType.SQS)
app = APIGatewayHttpResolver()


@logger.inject_lambda_context
def logged(event: Any, context: Any) -> dict[str, Any]:
    logger.info("handling order", extra={"order": event.get("order")})
    logger.append_keys(customer=event.get("customer"))
    logger.warning("done with order")
    logger.remove_keys(["customer"])
    return {"order": event.get("order")}


@logger.inject_lambda_context
def logged_failure(event: Any, context: Any) -> None:
    try:
        raise ValueError("order rejected")
    except ValueError:
        logger.exception("could not handle order")
        raise


def record_handler(record: SQSRecord) -> str:
    payload = record.json_body
    if payload["name"].startswith("Grace"):
        raise ValueError(f"rejected {payload['email']}")
    logger.info("processed", extra={"message_id": record.message_id})
    return payload["name"]


@logger.inject_lambda_context
def batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


@app.get("/users")
def list_users() -> dict[str, Any]:
    return {"users": [{"name": "Ada Lovelace"}], "request": app.lambda_context.aws_request_id}


@app.post("/users")
def create_user() -> tuple[dict[str, Any], int]:
    return {"created": app.current_event.json_body["name"]}, 201


def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
