"""Where awslambdaric crashes or loses an answer, fastric reports and keeps serving; elsewhere it agrees.

Each improvement asserts fastric's own behaviour, and, where it costs one short run, the stock
runtime's known failure next to it, so that the difference stays documented by a test.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import HANDLERS_DIR, REFERENCE, RunResult, RuntimeRunner
from runtime_api import Invocation, Reply, xray_cause

CWD = os.path.realpath(HANDLERS_DIR)
HANDLER = "robust.dispatch"
RESPONSE_LIMIT = 6 * 1024 * 1024 + 100
RAW_UTF8 = {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}
MODES = {"ascii": {}, "raw": RAW_UTF8}
STANDARD_KEYS = ["errorMessage", "errorType", "requestId", "stackTrace"]


def case(name: str, request_id: str | None = None, **invocation: object) -> Invocation:
    """An invocation of `robust.dispatch` for the case `name`."""
    return Invocation(body=json.dumps({"case": name}).encode(), request_id=request_id or name, **invocation)  # type: ignore[arg-type]


def until_exit_for_reference(impl: str) -> str:
    """How long to run: until the stock runtime dies, or until fastric has posted everything."""
    return "exit" if impl == REFERENCE else "posts"


# ---- responses over the 6 MB limit ----

SIZE_SCRIPT = (
    case("over_limit"),
    case("small", "after-over_limit"),
    case("far_over_limit"),
    case("bytes_over_limit"),
    case("at_limit"),
    case("bytes_at_limit"),
    case("small", "after-all"),
)
# Encoded size of each oversized result.
OVERSIZED = {
    "over_limit": RESPONSE_LIMIT + 1,
    "far_over_limit": len(json.dumps({"items": ["y" * 1000] * 7000}).encode()),
    "bytes_over_limit": RESPONSE_LIMIT + 1,
}


def size_run(run_runtime: RuntimeRunner) -> RunResult:
    return run_runtime("fastric", HANDLER, SIZE_SCRIPT, timeout=40)


@pytest.mark.parametrize("name", list(OVERSIZED))
def test_oversized_response_is_reported(run_runtime: RuntimeRunner, name: str) -> None:
    result = size_run(run_runtime)
    post = result.post_for(name)
    size = OVERSIZED[name]

    assert post.kind == "error", result.describe()
    assert len(post.body) < 1024
    document = post.json()
    assert list(document) == STANDARD_KEYS
    assert document["errorType"] == "Function.ResponseSizeTooLarge"
    assert document["errorMessage"] == (
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes)."
    )
    assert document["requestId"] == name
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Function.ResponseSizeTooLarge"


@pytest.mark.parametrize(("name", "content_type"), [("at_limit", "application/json"), ("bytes_at_limit", None)])
def test_response_at_limit_is_posted(run_runtime: RuntimeRunner, name: str, content_type: str | None) -> None:
    result = size_run(run_runtime)
    post = result.post_for(name)

    assert post.kind == "response", result.describe()
    assert len(post.body) == RESPONSE_LIMIT
    assert post.header("Content-Type") == (content_type or "application/unknown")


def test_serving_goes_on_after_oversized_responses(run_runtime: RuntimeRunner) -> None:
    result = size_run(run_runtime)

    for request_id in ("after-over_limit", "after-all"):
        post = result.post_for(request_id)
        assert (post.kind, post.json()) == ("response", {"small": True})
    assert not result.timed_out
    assert result.ended_by_run


# The Runtime API's answer to a response over the limit.
TOO_LARGE = Reply(
    413,
    b'{"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"}',
)


def test_413_answer(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [case("small", "rejected"), case("small", "next-one")]
    overrides = {("response", 0): TOO_LARGE}
    result = run_runtime(impl, HANDLER, script, overrides=overrides, until=until_exit_for_reference(impl))

    if impl == REFERENCE:
        # Known failure: the stock runtime exits, and the next invocation never comes.
        assert result.returncode == 1, result.describe()
        assert [post.request_id for post in result.posts] == ["rejected"]
        assert b"Http response code: 413" in result.stdout
        return
    # Improvement: one log line, and the next invocation is served.
    assert result.ended_by_run, result.describe()
    assert result.post_for("next-one").json() == {"small": True}
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    assert b"413" in lines[0]


# ---- lone surrogates ----

SURROGATE_RESULTS = {
    "surrogate": {"s": "lone \ud800 and caf\u00e9"},
    "surrogate_low": ["\udcff"],
    "surrogate_halves": "\U0001f680",  # the two halves, escaped, read back as one character
}
SURROGATE_SCRIPT = (
    *(case(name) for name in SURROGATE_RESULTS),
    case("raise_surrogate"),
    case("small", "after-surrogates"),
)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(SURROGATE_RESULTS))
def test_lone_surrogate_result(run_runtime: RuntimeRunner, name: str, mode: str) -> None:
    result = run_runtime("fastric", HANDLER, SURROGATE_SCRIPT, env=MODES[mode])
    post = result.post_for(name)

    assert post.kind == "response", result.describe()
    post.body.decode("utf-8")  # valid UTF-8
    assert b"\\ud" in post.body
    assert post.json() == SURROGATE_RESULTS[name]


def test_lone_surrogate_result_raw_utf8_elsewhere(run_runtime: RuntimeRunner) -> None:
    result = run_runtime("fastric", HANDLER, SURROGATE_SCRIPT, env=RAW_UTF8)

    assert result.post_for("surrogate").body == '{"s": "lone \\ud800 and caf\u00e9"}'.encode()


def test_lone_surrogate_result_ascii_matches_reference(run_runtime: RuntimeRunner, impl: str) -> None:
    # Escaping everything, the stock runtime copes with lone surrogates in results; the two agree.
    script = (*(case(name) for name in SURROGATE_RESULTS), case("small", "after-surrogates"))
    result = run_runtime(impl, HANDLER, script)
    reference = run_runtime(REFERENCE, HANDLER, script)

    assert [post.body for post in result.posts] == [post.body for post in reference.posts]
    assert result.post_for("surrogate").body == b'{"s": "lone \\ud800 and caf\\u00e9"}'


def test_lone_surrogate_result_raw_utf8_reference_crashes(run_runtime: RuntimeRunner) -> None:
    result = run_runtime(REFERENCE, HANDLER, [case("surrogate"), case("small")], env=RAW_UTF8, until="exit")

    # Known failure: encoding the result to UTF-8 raises outside any handler, and the process dies.
    assert (result.returncode, result.posts) == (1, []), result.describe()
    assert b"UnicodeEncodeError" in result.stderr


@pytest.mark.parametrize("mode", list(MODES))
def test_lone_surrogate_error_message(run_runtime: RuntimeRunner, mode: str) -> None:
    result = run_runtime("fastric", HANDLER, SURROGATE_SCRIPT, env=MODES[mode])
    post = result.post_for("raise_surrogate")

    assert post.kind == "error", result.describe()
    post.body.decode("utf-8")
    document = post.json()
    assert (document["errorType"], document["errorMessage"]) == ("ValueError", "bad \udcff value")
    assert b'"errorMessage": "bad \\udcff value"' in post.body
    cause = xray_cause(post, CWD)
    assert cause is not None
    assert cause["exceptions"][0]["message"] == "bad \udcff value"
    assert result.post_for("after-surrogates").json() == {"small": True}


def test_lone_surrogate_error_message_ascii_matches_reference(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [case("raise_surrogate"), case("small", "after-surrogates")]
    result = run_runtime(impl, HANDLER, script)
    reference = run_runtime(REFERENCE, HANDLER, script)

    assert result.post_for("raise_surrogate").body == reference.post_for("raise_surrogate").body
    # The log line carries the surrogate as the byte it stands for, as stdout's error handler writes it.
    assert result.stdout == reference.stdout
    assert result.stdout.startswith(b"[ERROR] ValueError: bad \xff value\r")


def test_lone_surrogate_error_message_raw_utf8_reference_crashes(run_runtime: RuntimeRunner) -> None:
    result = run_runtime(REFERENCE, HANDLER, [case("raise_surrogate"), case("small")], env=RAW_UTF8, until="exit")

    # Known failure: encoding the X-Ray cause raises outside any handler, and the process dies.
    assert (result.returncode, result.posts) == (1, []), result.describe()
    assert b"UnicodeEncodeError" in result.stderr


# ---- exceptions that cannot describe themselves ----

UNPRINTABLE = {"raise_unprintable": "UnprintableError", "raise_not_a_string": "NotAStringError"}
UNPRINTABLE_SCRIPT = (*(case(name) for name in UNPRINTABLE), case("small", "after-unprintable"))


@pytest.mark.parametrize("name", list(UNPRINTABLE))
def test_exception_str_fails(run_runtime: RuntimeRunner, impl: str, name: str) -> None:
    result = run_runtime(impl, HANDLER, UNPRINTABLE_SCRIPT, until=until_exit_for_reference(impl))

    if impl == REFERENCE:
        # Known failure: str() raises inside the error path, and the process dies.
        assert result.returncode == 1, result.describe()
        assert result.posts == []
        return
    post = result.post_for(name)
    document = post.json()
    type_name = UNPRINTABLE[name]
    assert post.kind == "error"
    assert list(document) == STANDARD_KEYS
    assert (document["errorType"], document["errorMessage"]) == (type_name, f"<exception str() failed: {type_name}>")
    assert [frame.split("\n")[0].rsplit(" ", 1)[1] for frame in document["stackTrace"]] == ["dispatch"]
    assert result.post_for("after-unprintable").json() == {"small": True}


# ---- a stdout that cannot take non-ASCII text ----

ASCII_STDOUT = {"PYTHONIOENCODING": "ascii"}
NON_ASCII_SCRIPT = (case("raise_non_ascii"), case("small", "after-non-ascii"))


def test_non_ascii_error_with_ascii_stdout(run_runtime: RuntimeRunner, impl: str) -> None:
    result = run_runtime(impl, HANDLER, NON_ASCII_SCRIPT, env=ASCII_STDOUT, until=until_exit_for_reference(impl))

    if impl == REFERENCE:
        # Known failure: the log line cannot be written, and the process dies before posting.
        assert (result.returncode, result.posts) == (1, []), result.describe()
        return
    # The error document is what a UTF-8 stdout would have given.
    expected = run_runtime(REFERENCE, HANDLER, NON_ASCII_SCRIPT).post_for("raise_non_ascii")
    assert result.post_for("raise_non_ascii").body == expected.body
    assert result.post_for("after-non-ascii").json() == {"small": True}
    assert result.ended_by_run
    result.stdout.decode("ascii")
    assert result.stdout.split(b"\r", 1)[0] == b"[ERROR] ValueError: h\\xe9llo \\u2713 \\U0001f600"


# ---- the event's Content-Type ----

CONTENT_TYPE_SCRIPT = (
    Invocation(body=b'{"a": 1}', request_id="charset", content_type="application/json; charset=utf-8"),
    Invocation(body=b'{"a": 2}', request_id="charset-upper", content_type="application/json;charset=UTF-8"),
    Invocation(body=b"not json", request_id="charset-bad", content_type="application/json; charset=utf-8"),
    Invocation(body=b'{"a": 3}', request_id="plain-json"),
)


@pytest.mark.parametrize("request_id", ["charset", "charset-upper"])
def test_json_with_charset(run_runtime: RuntimeRunner, impl: str, request_id: str) -> None:
    result = run_runtime(impl, HANDLER, CONTENT_TYPE_SCRIPT)
    post = result.post_for(request_id)
    number = {"charset": 1, "charset-upper": 2}[request_id]

    if impl == REFERENCE:
        # Known failure: the handler is given bytes, so `event["a"]` would fail.
        assert post.json() == {"type": "bytes", "event": f'{{"a": {number}}}'}
    else:
        assert post.json() == {"type": "dict", "event": {"a": number}}
    assert result.post_for("plain-json").json() == {"type": "dict", "event": {"a": 3}}


def test_json_with_charset_not_json(run_runtime: RuntimeRunner) -> None:
    result = run_runtime("fastric", HANDLER, CONTENT_TYPE_SCRIPT)
    post = result.post_for("charset-bad")

    assert post.json() == {
        "errorMessage": "Unable to unmarshal input: Expecting value: line 1 column 1 (char 0)",
        "errorType": "Runtime.UnmarshalError",
        "requestId": "charset-bad",
        "stackTrace": [],
    }


def test_missing_content_type(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [
        Invocation(body=b'{"a": 1}', request_id="no-type", omit=("Content-Type",)),
        Invocation(body=b'"text"', request_id="no-type-string", omit=("Content-Type",)),
        Invocation(body=b'{"b": 2}', request_id="typed"),
    ]
    result = run_runtime(impl, HANDLER, script, until=until_exit_for_reference(impl))

    if impl == REFERENCE:
        # Known failure: the stock runtime's native client dies by SIGSEGV.
        assert (result.returncode, result.posts) == (-11, []), result.describe()
        return
    assert result.post_for("no-type").json() == {"type": "dict", "event": {"a": 1}}
    assert result.post_for("no-type-string").json() == {"type": "str", "event": "text"}
    assert result.post_for("typed").json() == {"type": "dict", "event": {"b": 2}}


# ---- handlers that leave the process ----

# Handler, exit status, and whether the stock runtime leaves a traceback on stderr.
EXIT_CASES = {
    "exit_one": ("robust.exit_one", 1),
    "exit_zero": ("robust.exit_zero", 0),
    "exit_message": ("robust.exit_message", 1),
    "keyboard_interrupt": ("robust.keyboard_interrupt", -2),
    "base_exception": ("robust.base_exception", 1),
}


@pytest.mark.parametrize("name", list(EXIT_CASES))
def test_handler_leaves_the_process(run_runtime: RuntimeRunner, impl: str, name: str) -> None:
    handler, status = EXIT_CASES[name]
    script = [Invocation(request_id="leaving"), Invocation(request_id="never-served")]
    result = run_runtime(impl, handler, script, until="exit")
    reference = run_runtime(REFERENCE, handler, script, until="exit")

    # Nothing is posted, the process ends with the status the exception stands for, and it does
    # not ask for another event first.
    assert result.returncode == status, result.describe()
    assert [request.kind for request in result.requests] == ["next"]
    assert result.returncode == reference.returncode
    if name == "exit_message":
        assert b"leaving with a message" in result.stderr


@pytest.mark.parametrize("handler", ["robust.one_argument", "robust.not_callable"])
def test_handler_that_cannot_be_called(run_runtime: RuntimeRunner, impl: str, handler: str) -> None:
    script = [Invocation(request_id="call-1"), Invocation(request_id="call-2")]
    result = run_runtime(impl, handler, script)
    reference = run_runtime(REFERENCE, handler, script)
    document = result.post_for("call-1").json()
    expected = reference.post_for("call-1").json()

    assert (document["errorType"], document["errorMessage"]) == (expected["errorType"], expected["errorMessage"])
    assert document["errorType"] == "TypeError"
    # With no frame of its own, the trace keeps the single runtime frame that made the call.
    assert len(document["stackTrace"]) == len(expected["stackTrace"]) == 1
    assert result.post_for("call-2").kind == "error"


# ---- error documents the stock runtime does write ----

ERROR_SCRIPT = (
    case("raise_elsewhere"),
    case("raise_dict_message"),
    case("raise_huge"),
    case("raise_non_ascii"),
    case("small", "after-errors"),
)


def error_runs(run_runtime: RuntimeRunner, impl: str, mode: str) -> tuple[RunResult, RunResult]:
    env = MODES[mode]
    return run_runtime(impl, HANDLER, ERROR_SCRIPT, env=env), run_runtime(REFERENCE, HANDLER, ERROR_SCRIPT, env=env)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ["raise_elsewhere", "raise_dict_message", "raise_huge", "raise_non_ascii"])
def test_error_document_matches(run_runtime: RuntimeRunner, impl: str, name: str, mode: str) -> None:
    result, reference = error_runs(run_runtime, impl, mode)
    post, expected = result.post_for(name), reference.post_for(name)

    assert post.kind == "error", result.describe()
    assert post.body == expected.body
    assert xray_cause(post, CWD) == xray_cause(expected, CWD)
    assert result.post_for("after-errors").kind == "response"


def test_error_across_two_files(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = error_runs(run_runtime, impl, "ascii")
    post = result.post_for("raise_elsewhere")
    cause = xray_cause(post, CWD)

    assert post.json()["errorMessage"] == "from the helper"
    assert cause is not None
    assert cause["paths"] == ["<cwd>/helper_module.py", "<cwd>/robust.py"]
    assert [frame["label"] for frame in cause["exceptions"][0]["stack"]] == ["dispatch", "fail"]


def test_huge_error_drops_xray_cause(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = error_runs(run_runtime, impl, "ascii")
    post = result.post_for("raise_huge")

    # A cause of 1 MiB or more is not sent; the error document still is.
    assert post.header("Lambda-Runtime-Function-Xray-Error-Cause") is None
    assert post.json()["errorMessage"] == "m" * (1024 * 1024)
