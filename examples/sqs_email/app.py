"""Welcome emails for new users: an SQS batch of sign-ups, one email through SES for each.

Each message body is a JSON object ``{"name": "Ada Lovelace", "email": "ada@example.com"}``. The
function returns a partial batch response: ``batchItemFailures`` lists only the messages that
failed, so SQS deletes the others and delivers only the failures again. A message whose body is not
a valid sign-up fails by itself, and after the queue's ``maxReceiveCount`` its redrive policy moves
it to the dead-letter queue.

SQS delivers a message at least once, and a whole batch comes back when an invocation dies half
way. Each sent email is recorded in a DynamoDB table, keyed by the SQS message id and written with a
condition, so a message whose email already went out is not sent again.

Environment:
    SENDER: the address the emails come from, a verified SES identity (required).
    SENT_TABLE: DynamoDB table of sent emails, partition key ``message_id`` (string). Defaults to
        ``sent-emails``.
    AWS_ENDPOINT_URL: honoured by boto3, e.g. to point at local services.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

SENDER = os.environ["SENDER"]
TABLE_NAME = os.environ.get("SENT_TABLE", "sent-emails")
SUBJECT = "Welcome, {name}"
TEXT = "Hello {name},\n\nyour account is ready. Thank you for signing up!\n"
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
# Good enough to catch typos; only a confirmation mail proves an address.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Records outlive SQS's longest retention (14 days): no redelivery can come after them. Enable
# DynamoDB's time to live on `expires_at` to have them removed.
RECORD_LIFETIME_S = 15 * 24 * 3600

# Created once per execution environment so that warm invocations reuse their connection pools.
ses = boto3.client("ses")
dynamodb = boto3.client("dynamodb")
logger = logging.getLogger(__name__)


class MalformedMessageError(ValueError):
    """The message body is not a sign-up this function can send a welcome email for."""


class SendingElsewhereError(Exception):
    """Another invocation, still running, is sending this message's email."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sends the welcome emails of an SQS batch; returns the ids of the messages that failed."""
    records = event.get("Records") or []
    # A FIFO queue must not see a message's successors succeed before it: stop at the first
    # failure and hand back everything after it unprocessed.
    fifo = any(record.get("eventSourceARN", "").endswith(".fifo") for record in records)
    failed: list[str] = []
    for index, record in enumerate(records):
        message_id = record["messageId"]
        try:
            _process(record, context)
        except (MalformedMessageError, SendingElsewhereError) as error:
            logger.warning("message %s failed and stays in the queue: %s", message_id, error)
            failed.append(message_id)
        except Exception:
            logger.exception("message %s failed and stays in the queue", message_id)
            failed.append(message_id)
        if failed and fifo:
            failed += [later["messageId"] for later in records[index + 1 :]]
            break
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _process(record: dict[str, Any], context: Any) -> None:
    message_id = record["messageId"]
    name, email = _sign_up(record.get("body"))
    if not _claim(message_id, context):
        logger.info("message %s: its email was already sent", message_id)
        return
    try:
        sent = ses.send_email(
            Source=SENDER,
            Destination={"ToAddresses": [email]},
            Message={
                "Subject": {"Data": SUBJECT.format(name=name), "Charset": "UTF-8"},
                "Body": {"Text": {"Data": TEXT.format(name=name), "Charset": "UTF-8"}},
            },
        )
    except Exception:
        _release(message_id)
        raise
    _mark_sent(message_id, sent["MessageId"])


def _sign_up(body: object) -> tuple[str, str]:
    """Returns the name and email address of the sign-up in a message body."""
    try:
        sign_up = json.loads(body) if isinstance(body, str) else None
    except (ValueError, RecursionError):
        raise MalformedMessageError("body is not valid JSON") from None
    if not isinstance(sign_up, dict):
        raise MalformedMessageError("body must be a JSON object")
    name = sign_up.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise MalformedMessageError(f"name must be a non-empty string of at most {MAX_NAME_LENGTH} characters")
    email = sign_up.get("email")
    if not isinstance(email, str) or len(email) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.fullmatch(email.strip()):
        raise MalformedMessageError("email must be a valid email address")
    return name.strip(), email.strip()


def _claim(message_id: str, context: Any) -> bool:
    """Records that this invocation is sending the message's email.

    Returns False if the email was already sent. The claim lasts until this invocation's deadline,
    after which a retry may take over a claim its holder could not finish.

    Raises:
        SendingElsewhereError: another invocation holds the claim and may still be running.
    """
    now_ms = int(time.time() * 1000)
    try:
        dynamodb.put_item(
            TableName=TABLE_NAME,
            Item={
                "message_id": {"S": message_id},
                "state": {"S": "sending"},
                "claimed_until": {"N": str(now_ms + context.get_remaining_time_in_millis())},
                "expires_at": {"N": str(now_ms // 1000 + RECORD_LIFETIME_S)},
            },
            ConditionExpression="attribute_not_exists(message_id) OR (#state = :sending AND claimed_until < :now)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":sending": {"S": "sending"}, ":now": {"N": str(now_ms)}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        held = error.response.get("Item", {})
        if held.get("state", {}).get("S") == "sent":
            return False
        raise SendingElsewhereError(
            f"another invocation is sending it until {held.get('claimed_until', {}).get('N')} (epoch ms)"
        ) from None
    return True


def _release(message_id: str) -> None:
    """Gives up the claim after SES refused or failed the email, so that the retry can send it."""
    try:
        dynamodb.delete_item(
            TableName=TABLE_NAME,
            Key={"message_id": {"S": message_id}},
            ConditionExpression="#state = :sending",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":sending": {"S": "sending"}},
        )
    except ClientError:
        # The claim still ends at this invocation's deadline; the sending error matters more.
        logger.exception("message %s: could not release its claim", message_id)


def _mark_sent(message_id: str, ses_message_id: str) -> None:
    try:
        dynamodb.update_item(
            TableName=TABLE_NAME,
            Key={"message_id": {"S": message_id}},
            UpdateExpression="SET #state = :sent, ses_message_id = :ses_id REMOVE claimed_until",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":sent": {"S": "sent"}, ":ses_id": {"S": ses_message_id}},
        )
    except ClientError:
        # The email went out, so the message counts as done: failing it would send the email again
        # once the claim expires. Left as it is, the claim blocks any redelivery until then.
        logger.exception("message %s: email %s sent but not recorded", message_id, ses_message_id)
