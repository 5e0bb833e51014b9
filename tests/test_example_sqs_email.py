"""examples/sqs_email run by fastric against a moto server, with the tests playing Lambda's SQS poller."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import RuntimeRunner
from runtime_api import Invocation
from services import REGION, LocalFunction, MotoServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sqs_email"
EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"
SENDER = "welcome@example.com"
TABLE = "sent-emails"
QUEUE = "user-signups"
MAX_RECEIVE_COUNT = 2

ADA = {"name": "Ada Lovelace", "email": "ada@example.com"}
GRACE = {"name": "Grace Hopper", "email": "grace@example.com"}
KATHERINE = {"name": "Katherine Johnson", "email": "katherine@example.com"}


@dataclass
class Aws:
    """The clients and resources of one test, on a freshly reset moto server."""

    moto: MotoServer
    sqs: Any
    dynamodb: Any
    ses: Any
    queue_url: str
    queue_arn: str
    dead_letter_url: str

    def send(self, *bodies: str) -> list[str]:
        """Queues the bodies, in order; returns their message ids."""
        entries = [{"Id": str(number), "MessageBody": body} for number, body in enumerate(bodies)]
        sent = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        assert not sent.get("Failed"), sent["Failed"]
        by_entry = {entry["Id"]: entry["MessageId"] for entry in sent["Successful"]}
        return [by_entry[str(number)] for number in range(len(bodies))]

    def sent_emails(self) -> list[tuple[str, str, str]]:
        """(recipient, subject, text) of every email SES accepted, in sending order."""
        with urllib.request.urlopen(f"{self.moto.endpoint_url}/moto-api/data.json", timeout=10) as response:
            messages = json.load(response)["ses"]["Message"]
        assert all(message["source"] == SENDER for message in messages)
        return [
            (recipient, message["subject"], message["body"])
            for message in messages
            for recipient in message["destinations"]["ToAddresses"]
        ]

    def recipients(self) -> list[str]:
        return sorted(recipient for recipient, _, _ in self.sent_emails())

    def records(self) -> dict[str, dict[str, Any]]:
        """The sent-email table, by message id."""
        items = self.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
        return {item["message_id"]["S"]: item for item in items}

    def bodies_left(self, url: str) -> list[str]:
        """Bodies of the messages in a queue, received once with no visibility change."""
        received = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return sorted(message["Body"] for message in received.get("Messages", []))

    def queue_is_empty(self) -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        return all(attributes[name] == "0" for name in names)


@dataclass
class Poll:
    """One round of the poller: the batch it received and what became of it."""

    received: list[str]
    response: Any = None
    function_error: bool = False
    failed: list[str] = field(default_factory=list)


class SqsPoller:
    """Plays Lambda's event source mapping for an SQS queue with ``ReportBatchItemFailures``.

    Receives a batch, invokes the function with it, deletes the messages that succeeded and leaves
    the failures in the queue. The whole batch fails when the function fails or answers with an
    item identifier that is empty or not in the batch, as Lambda does.
    """

    def __init__(self, aws: Aws, function: LocalFunction) -> None:
        self.aws = aws
        self.function = function

    def poll(self, *, lose_outcome: bool = False) -> Poll:
        """One batch. With `lose_outcome` nothing is deleted, as when the invocation timed out."""
        received = self.aws.sqs.receive_message(
            QueueUrl=self.aws.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        poll = Poll(received=[message["MessageId"] for message in received])
        if not received:
            return poll

        poll.function_error, poll.response = invoke(self.function, self.event(received))
        poll.failed = self.failures(poll)
        if not lose_outcome:
            done = [message for message in received if message["MessageId"] not in poll.failed]
            for message in done:
                self.aws.sqs.delete_message(QueueUrl=self.aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return poll

    def drain(self, max_polls: int = 10) -> list[Poll]:
        """Polls until the queue is empty, the redrive policy included; returns the rounds that got messages."""
        polls = []
        for _ in range(max_polls):
            poll = self.poll()
            if poll.received:
                polls.append(poll)
            elif self.aws.queue_is_empty():
                return polls
        raise AssertionError(f"queue not empty after {max_polls} polls: {polls}")

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [self.record(message) for message in messages]}

    def record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message["Attributes"],
            "messageAttributes": attributes,
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.aws.queue_arn,
            "awsRegion": REGION,
        }

    @staticmethod
    def failures(poll: Poll) -> list[str]:
        if poll.function_error:
            return poll.received
        reported = (poll.response or {}).get("batchItemFailures") or []
        ids = [item.get("itemIdentifier") for item in reported]
        if any(not message_id or message_id not in poll.received for message_id in ids):
            return poll.received
        return ids


def invoke(function: LocalFunction, event: dict[str, Any]) -> tuple[bool, Any]:
    """Invokes the function; returns whether it failed (Lambda's X-Amz-Function-Error) and its JSON answer."""
    request = urllib.request.Request(function.invoke_url, data=json.dumps(event).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers.get("X-Amz-Function-Error") is not None, json.loads(response.read())


def failures(*message_ids: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in message_ids]}


def sqs_batch_fixture() -> dict[str, Any]:
    return json.loads((EVENTS / "example-sqs-batch.json").read_text())


def welcome(person: dict[str, str]) -> tuple[str, str, str]:
    name = person["name"]
    return person["email"], f"Welcome, {name}", f"Hello {name},\n\nyour account is ready. Thank you for signing up!\n"


def function_env(moto: MotoServer) -> dict[str, str]:
    return {**moto.env(), "SENDER": SENDER, "SENT_TABLE": TABLE}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer) -> Aws:
    """An empty account with the queue, its dead-letter queue, the table and the verified sender."""
    moto.reset()
    sqs, dynamodb, ses = moto.client("sqs"), moto.client("dynamodb"), moto.client("ses")
    dead_letter_url = sqs.create_queue(QueueName=f"{QUEUE}-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": dead_letter_arn["Attributes"]["QueueArn"], "maxReceiveCount": MAX_RECEIVE_COUNT}
    # No visibility timeout: a failed message can be received again at once, so retries take no time.
    queue_url = sqs.create_queue(
        QueueName=QUEUE, Attributes={"VisibilityTimeout": "0", "RedrivePolicy": json.dumps(redrive)}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ses.verify_email_identity(EmailAddress=SENDER)
    return Aws(moto, sqs, dynamodb, ses, queue_url, queue_arn, dead_letter_url)


@pytest.fixture(scope="module")
def function(moto: MotoServer) -> Iterator[LocalFunction]:
    with LocalFunction("app.handler", cwd=EXAMPLE, env=function_env(moto)) as function:
        yield function


@pytest.fixture
def poller(aws: Aws, function: LocalFunction) -> SqsPoller:
    return SqsPoller(aws, function)


def test_non_json_second_body_fails_only_itself(aws: Aws, poller: SqsPoller) -> None:
    ada, malformed, katherine = aws.send(json.dumps(ADA), "not json", json.dumps(KATHERINE))

    poll = poller.poll()

    assert sorted(poll.received) == sorted([ada, malformed, katherine])
    assert poll.response == failures(malformed)
    assert sorted(aws.sent_emails()) == [welcome(ADA), welcome(KATHERINE)]
    assert {message_id: item["state"]["S"] for message_id, item in aws.records().items()} == {
        ada: "sent",
        katherine: "sent",
    }
    assert aws.bodies_left(aws.queue_url) == ["not json"]


def test_repeated_failure_goes_to_the_dead_letter_queue_and_the_rest_is_sent_once(aws: Aws, poller: SqsPoller) -> None:
    malformed_body = json.dumps({"name": "No Address"})
    _, malformed, _ = aws.send(json.dumps(ADA), malformed_body, json.dumps(GRACE))

    polls = poller.drain()

    assert [poll.failed for poll in polls] == [[malformed]] * MAX_RECEIVE_COUNT
    assert aws.recipients() == ["ada@example.com", "grace@example.com"]
    assert aws.bodies_left(aws.dead_letter_url) == [malformed_body]
    assert aws.queue_is_empty()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body is not valid JSON"),
        ("[" * 100_000, "body is not valid JSON"),
        ('["ada@example.com"]', "body must be a JSON object"),
        ('{"email": "ada@example.com"}', "name must be a non-empty string"),
        ('{"name": "Ada", "email": "ada.example.com"}', "email must be a valid email address"),
        ('{"name": "Ada", "email": null}', "email must be a valid email address"),
    ],
)
def test_malformed_message_fails_alone(
    aws: Aws, poller: SqsPoller, function: LocalFunction, body: str, reason: str
) -> None:
    _, malformed = aws.send(json.dumps(ADA), body)

    poll = poller.poll()

    assert poll.response == failures(malformed)
    assert aws.recipients() == ["ada@example.com"]
    assert f"message {malformed} failed and stays in the queue: {reason}" in function.output()


def test_redelivered_batch_does_not_send_again(aws: Aws, poller: SqsPoller) -> None:
    ada, grace = aws.send(json.dumps(ADA), json.dumps(GRACE))

    # The emails go out, but the outcome is lost (say the invocation timed out): SQS delivers again.
    first = poller.poll(lose_outcome=True)
    second = poller.poll()

    assert sorted(first.received) == sorted(second.received) == sorted([ada, grace])
    assert first.response == second.response == failures()
    assert sorted(aws.sent_emails()) == [welcome(ADA), welcome(GRACE)]
    assert aws.queue_is_empty()


def test_message_claimed_by_a_running_invocation_waits_for_it(aws: Aws, poller: SqsPoller) -> None:
    [ada] = aws.send(json.dumps(ADA))
    claim = {"message_id": {"S": ada}, "state": {"S": "sending"}}
    until = int(time.time() * 1000) + 60_000
    aws.dynamodb.put_item(TableName=TABLE, Item={**claim, "claimed_until": {"N": str(until)}})

    assert poller.poll().response == failures(ada)
    assert aws.sent_emails() == []

    # The holder's deadline passed without it finishing: the retry takes the claim over.
    aws.dynamodb.put_item(TableName=TABLE, Item={**claim, "claimed_until": {"N": str(until - 120_000)}})
    assert poller.poll().response == failures()
    assert aws.sent_emails() == [welcome(ADA)]
    assert aws.records()[ada]["state"]["S"] == "sent"


def test_email_refused_by_ses_is_sent_by_the_retry(aws: Aws, poller: SqsPoller) -> None:
    ada, grace = aws.send(json.dumps(ADA), json.dumps(GRACE))
    aws.ses.delete_identity(Identity=SENDER)

    refused = poller.poll()
    assert refused.response == failures(*refused.received)
    assert sorted(refused.failed) == sorted([ada, grace])
    assert aws.records() == {}, "claims are released when SES refuses"

    aws.ses.verify_email_identity(EmailAddress=SENDER)
    assert poller.poll().response == failures()
    assert sorted(aws.sent_emails()) == [welcome(ADA), welcome(GRACE)]


def test_fifo_batch_stops_at_the_first_failure(aws: Aws, function: LocalFunction) -> None:
    event = sqs_batch_fixture()
    for record in event["Records"]:
        record["eventSourceARN"] += ".fifo"
    event["Records"][1]["body"] = "not json"
    ids = [record["messageId"] for record in event["Records"]]

    function_error, response = invoke(function, event)

    assert not function_error
    assert response == failures(ids[1], ids[2])
    assert aws.sent_emails() == [welcome(ADA)]


def test_runtime_loop_reports_the_failed_message_and_matches_awslambdaric(
    aws: Aws, moto: MotoServer, run_runtime: RuntimeRunner
) -> None:
    event = sqs_batch_fixture()
    event["Records"][1]["body"] = "not json"
    malformed = event["Records"][1]["messageId"]
    batch = Invocation(body=json.dumps(event).encode())

    # The same batch twice, as SQS redelivers it: the second delivery sends nothing.
    fastric = run_runtime("fastric", "app.handler", [batch, batch], env=function_env(moto), cwd=EXAMPLE, cache=False)

    assert [post.kind for post in fastric.posts] == ["response", "response"], fastric.describe()
    assert [json.loads(post.body) for post in fastric.posts] == [failures(malformed)] * 2
    assert sorted(aws.sent_emails()) == [welcome(ADA), welcome(KATHERINE)]
    assert f"message {malformed} failed and stays in the queue: body is not valid JSON".encode() in fastric.stdout
    assert fastric.posts[0].body.decode() in (EXAMPLE / "README.md").read_text(), "the README shows this answer"

    reference = run_runtime("awslambdaric", "app.handler", [batch], env=function_env(moto), cwd=EXAMPLE, cache=False)
    assert reference.posts[0].body == fastric.posts[0].body
    assert len(aws.sent_emails()) == 2
