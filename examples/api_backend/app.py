"""A users API behind API Gateway, stored in DynamoDB.

Routes: ``GET /users`` lists users a page at a time, ``POST /users`` creates one. Both REST API
(payload 1.0) and HTTP API (payload 2.0) proxy events are accepted.

Environment:
    USERS_TABLE: DynamoDB table, partition key ``email`` (string). Defaults to ``users``.
    AWS_ENDPOINT_URL: honoured by boto3, e.g. to point at a local DynamoDB.
"""

from __future__ import annotations

import base64
import json
import os
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

TABLE_NAME = os.environ.get("USERS_TABLE", "users")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_NAME_LENGTH = 200
# Good enough to catch typos; only a confirmation mail proves an address.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_EMAIL_LENGTH = 254

# Created once per execution environment so that warm invocations reuse its connection pool.
dynamodb = boto3.client("dynamodb")
_deserializer = TypeDeserializer()

Response = dict[str, Any]


class BadRequestError(Exception):
    """The request cannot be served as sent; the message is shown to the caller."""


def handler(event: dict[str, Any], context: object) -> Response:
    """Routes an API Gateway proxy event to the matching operation."""
    method, path = _route(event)
    if path != "/users":
        return _response(404, {"error": f"no route for {method} {path}"})
    try:
        if method == "GET":
            return _list_users(event.get("queryStringParameters") or {})
        if method == "POST":
            return _create_user(_json_body(event))
    except BadRequestError as error:
        return _response(400, {"error": str(error)})
    return _response(405, {"error": f"method {method} not allowed on {path}"}, {"Allow": "GET, POST"})


def _route(event: dict[str, Any]) -> tuple[str, str]:
    """Returns the HTTP method and the path relative to the API stage."""
    if event.get("version") == "2.0":
        request_context = event.get("requestContext") or {}
        http = request_context.get("http") or {}
        method = http.get("method") or ""
        path = event.get("rawPath") or http.get("path") or "/"
        # Payload 2.0 keeps a named stage in the path; payload 1.0 strips it from `path`.
        stage = request_context.get("stage")
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
    else:
        method = event.get("httpMethod") or ""
        path = event.get("path") or "/"
    return method.upper(), path.rstrip("/") or "/"


def _json_body(event: dict[str, Any]) -> dict[str, Any]:
    """Decodes the request body, which must be a JSON object."""
    body = event.get("body")
    if not body:
        raise BadRequestError("request body is required")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (TypeError, ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise BadRequestError("request body is not valid base64-encoded UTF-8") from None
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError, RecursionError):
        raise BadRequestError("request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequestError("request body must be a JSON object")
    return parsed


def _create_user(body: dict[str, Any]) -> Response:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise BadRequestError(f"name must be a non-empty string of at most {MAX_NAME_LENGTH} characters")
    email = body.get("email")
    if not isinstance(email, str) or len(email) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.fullmatch(email.strip()):
        raise BadRequestError("email must be a valid email address")

    # Lowercased so that one mailbox cannot register twice under different spellings.
    user = {
        "email": email.strip().lower(),
        "name": name.strip(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    try:
        dynamodb.put_item(
            TableName=TABLE_NAME,
            Item={key: {"S": value} for key, value in user.items()},
            ConditionExpression="attribute_not_exists(email)",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return _response(409, {"error": f"a user with email {user['email']} already exists"})
        # Anything else is a fault on our side: let the runtime report it rather than hide it.
        raise
    return _response(201, user)


def _list_users(query: dict[str, str]) -> Response:
    limit = _page_size(query.get("limit"))
    scan: dict[str, Any] = {"TableName": TABLE_NAME, "Limit": limit}
    if query.get("next"):
        scan["ExclusiveStartKey"] = _decode_page_token(query["next"])

    page = dynamodb.scan(**scan)
    users = [{key: _deserializer.deserialize(value) for key, value in item.items()} for item in page["Items"]]
    result: dict[str, Any] = {"users": users}
    if "LastEvaluatedKey" in page:
        result["next"] = _encode_page_token(page["LastEvaluatedKey"])
    return _response(200, result)


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE):
        raise BadRequestError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


# The table's key is the email alone, so a page token only has to carry the last email seen.
def _encode_page_token(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(last_key["email"]["S"].encode()).decode()


def _decode_page_token(token: str) -> dict[str, Any]:
    try:
        email = base64.b64decode(token, altchars=b"-_", validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        email = ""
    if not email:
        raise BadRequestError("next is not a valid page token")
    return {"email": {"S": email}}


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, default=_json_default),
    }


def _json_default(value: object) -> object:
    """Encodes the types DynamoDB gives back that `json` does not know."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
