"""Results written and events read byte for byte as awslambdaric writes and reads them.

Every case runs under both runtimes in one process per runtime and encoding mode; the stock
runtime's bytes are the expected ones, and a few are also spelled out here so that a change in the
reference cannot go unnoticed.
"""

from __future__ import annotations

import importlib.util
import json
import os
from types import ModuleType

import pytest

from conftest import HANDLERS_DIR, REFERENCE, RunResult, RuntimeRunner
from runtime_api import Invocation, xray_cause


def _handler_module(name: str) -> ModuleType:
    """The handler module `name`, loaded apart from the runtimes' imports, to share its case tables."""
    spec = importlib.util.spec_from_file_location(f"_cases_{name}", HANDLERS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results = _handler_module("results")

CWD = os.path.realpath(HANDLERS_DIR)
HANDLER = "results.returns"

# The stock runtime writes non-ASCII text raw on the managed python3.12+ runtimes, and escaped
# everywhere else, container images included.
MODES = {"ascii": {}, "raw": {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}}

RESULT_SCRIPT = (
    *(Invocation(body=json.dumps({"case": case}).encode(), request_id=f"ok-{case}") for case in results.ENCODABLE),
    *(Invocation(body=json.dumps({"case": case}).encode(), request_id=f"raw-{case}") for case in results.RAW),
    *(
        invocation
        for n, case in enumerate(results.UNENCODABLE)
        for invocation in (
            Invocation(body=json.dumps({"case": case}).encode(), request_id=f"bad-{case}"),
            Invocation(body=json.dumps({"n": n}).encode(), request_id=f"after-{case}"),
        )
    ),
)

# Bytes that must be posted whatever the reference does, per mode where the two differ.
EXACT = {
    "prices": b'{"price": 19.99, "qty": 3, "big": 1180591620717411303424}',
    "decimal_forms": (
        b"[1.10, 1E+400, -0, 1.23E-10, 0.000001, 123456789012345678901234567890.123456789, Infinity, -Infinity]"
    ),
    "decimal_nan": b"[NaN, NaN, NaN]",
    "big_ints": (
        b"[9223372036854775808, 18446744073709551616, -18446744073709551617, "
        b"10000000000000000000000000000000000000000, -1000000000000000000000000000000]"
    ),
    "floats": b"[0.1, 1.0, -0.0, 1e+300, 5e-324, 1e+16, 123456789.123, 0.30000000000000004]",
    "non_finite": b"[NaN, Infinity, -Infinity]",
    "key_order": b'{"z": 1, "a": 2, "m": {"y": 1, "b": 2}}',
    "namedtuple": b'{"at": {"x": 1, "y": 2}, "list": [{"x": 3, "y": {"x": 4, "y": 5}}]}',
    "non_str_keys": b'{"3": "int", "2.5": "float", "false": "bool", "null": "none", "k": "bytes"}',
    ("non_ascii", "ascii"): b'{"name": "Zo\\u00eb \\ud83d\\ude80", "cjk": "\\u6f22\\u5b57", "latin": "\\u00a3\\u00e9"}',
    ("non_ascii", "raw"): '{"name": "Zo\u00eb \U0001f680", "cjk": "\u6f22\u5b57", "latin": "\u00a3\u00e9"}'.encode(),
    ("nested_bytes", "ascii"): b'{"b": "caf\\u00e9", "l": ["x", ""]}',
    ("nested_bytes", "raw"): '{"b": "caf\u00e9", "l": ["x", ""]}'.encode(),
    ("line_separators", "ascii"): b'"a\\u2028b\\u2029c"',
    ("line_separators", "raw"): '"a\u2028b\u2029c"'.encode(),
}


def result_runs(run_runtime: RuntimeRunner, impl: str, mode: str) -> tuple[RunResult, RunResult]:
    env = MODES[mode]
    return run_runtime(impl, HANDLER, RESULT_SCRIPT, env=env), run_runtime(REFERENCE, HANDLER, RESULT_SCRIPT, env=env)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(results.ENCODABLE))
def test_result_body(run_runtime: RuntimeRunner, impl: str, case: str, mode: str) -> None:
    result, reference = result_runs(run_runtime, impl, mode)
    post = result.post_for(f"ok-{case}")

    assert (post.kind, post.header("Content-Type")) == ("response", "application/json"), result.describe()
    assert post.body == reference.post_for(f"ok-{case}").body
    expected = EXACT.get((case, mode), EXACT.get(case))
    if expected is not None:
        assert post.body == expected


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(results.RAW))
def test_top_level_bytes_posted_raw(run_runtime: RuntimeRunner, impl: str, case: str, mode: str) -> None:
    result, _ = result_runs(run_runtime, impl, mode)
    post = result.post_for(f"raw-{case}")

    assert (post.kind, post.header("Content-Type")) == ("response", "application/unknown")
    assert post.body == results.RAW[case]
    assert post.header("Content-Length") == str(len(results.RAW[case]))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(results.UNENCODABLE))
def test_marshal_error(run_runtime: RuntimeRunner, impl: str, case: str, mode: str) -> None:
    result, reference = result_runs(run_runtime, impl, mode)
    post = result.post_for(f"bad-{case}")

    assert post.kind == "error", result.describe()
    assert post.json() == {
        "errorMessage": f"Unable to marshal response: {results.UNENCODABLE[case][1]}",
        "errorType": "Runtime.MarshalError",
        "requestId": f"bad-{case}",
        "stackTrace": [],
    }
    assert post.body == reference.post_for(f"bad-{case}").body


@pytest.mark.parametrize("case", list(results.UNENCODABLE))
def test_marshal_error_xray_cause(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = result_runs(run_runtime, impl, "ascii")
    cause = xray_cause(result.post_for(f"bad-{case}"), CWD)

    assert cause == {
        "working_directory": "<cwd>",
        "exceptions": [
            {
                "message": f"Unable to marshal response: {results.UNENCODABLE[case][1]}",
                "type": "LambdaValidationError",
                "stack": [],
            }
        ],
        "paths": [],
    }
    assert cause == xray_cause(reference.post_for(f"bad-{case}"), CWD)


@pytest.mark.parametrize("case", list(results.UNENCODABLE))
def test_loop_goes_on_after_marshal_error(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, _ = result_runs(run_runtime, impl, "ascii")
    post = result.post_for(f"after-{case}")

    assert (post.kind, post.json()) == ("response", {"n": list(results.UNENCODABLE).index(case)})


def test_marshal_error_log_line(run_runtime: RuntimeRunner, impl: str) -> None:
    result, reference = result_runs(run_runtime, impl, "ascii")
    line = b"[ERROR] Runtime.MarshalError: Unable to marshal response: Object of type datetime is not JSON serializable"

    assert line + b"\rTraceback (most recent call last):\n" in result.stdout
    assert result.stdout == reference.stdout


def test_fault_names_its_type_in_a_header(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = result_runs(run_runtime, impl, "ascii")
    headers = {post.header("Lambda-Runtime-Function-Error-Type") for post in result.of_kind("error")}

    # Deliberate difference: awslambdaric leaves the error type to the body, where the platform
    # does not read it; fastric states it in the header too.
    assert headers == ({None} if impl == REFERENCE else {"Runtime.MarshalError"})


# ---- events ----

# Event bodies, each decoded and described by `results.event_repr`, compared with the reference.
DECODE_CASES = {
    "raw_utf8": '{"name": "Zo\u00eb \U0001f680"}'.encode(),
    "escaped_utf16": b'{"name": "Zo\\u00EB \\ud83d\\ude80"}',
    "floats": b"[0.1, 1.5e308, 1e-400, -0, -0.0, 0.30000000000000004, 1E5, 2.50]",
    "big_ints": b"[18446744073709551616, -18446744073709551617, 1267650600228229401496703205376]",
    "escapes": b'"\\b\\f\\n\\r\\t\\/\\\\\\"\\u0000"',
    "lone_surrogate": b'["\\udc80", "\\ud800x"]',
    "nested": b'{"a": {"b": {"c": [[], {}, [{"d": null}]]}}}',
    "deep": b"[" * 300 + b"]" * 300,
    "tabs_and_newlines": b'\t{\r\n"a"\t:\n1\r\n}\t',
    "top_level_string": b'"text"',
    "top_level_number": b"-12.5e-3",
    "top_level_true": b"true",
    "unicode_keys": '{"\u00e9": 1, "\u6f22": [2]}'.encode(),
    "bom": b'\xef\xbb\xbf["bom"]',
    "duplicate_keys": b'{"k": 1, "j": 0, "k": 2}',
}
DECODE_SCRIPT = tuple(Invocation(body=body, request_id=f"ev-{name}") for name, body in DECODE_CASES.items())

# Bodies the reference decoder rejects; the message is the decoder's, which fastric must repeat.
UNMARSHAL_CASES = {
    "trailing_comma": b"[1,]",
    "single_quotes": b"{'a': 1}",
    "bare_word": b"tru",
    "unterminated_string": b'"open',
    "extra_data": b"1 2",
    "infinity": b"Infinity",
    "minus_infinity": b"[-Infinity]",
    "bad_escape": b'"\\x41"',
    "raw_control_char": b'"a\x01b"',
    "missing_colon": b'{"a" 1}',
    "bom_only": b"\xef\xbb\xbf",
    "closing_brace": b'{"a": 1}}',
    # Small enough for the native parser, too deep for the stock decoder's recursion limit.
    "nested_too_deep": b"[" * 2000 + b"]" * 2000,
    "leading_zero": b"[01]",
    "utf16_body": '{"a": 1}'.encode("utf-16"),
}
UNMARSHAL_SCRIPT = tuple(
    invocation
    for name, body in UNMARSHAL_CASES.items()
    for invocation in (
        Invocation(body=body, request_id=f"bad-{name}"),
        Invocation(body=b'{"after": "%s"}' % name.encode(), request_id=f"after-{name}"),
    )
)


@pytest.mark.parametrize("case", list(DECODE_CASES))
def test_event_decoded_alike(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result = run_runtime(impl, "results.event_repr", DECODE_SCRIPT)
    reference = run_runtime(REFERENCE, "results.event_repr", DECODE_SCRIPT)
    post = result.post_for(f"ev-{case}")

    assert post.kind == "response", result.describe()
    assert post.json() == reference.post_for(f"ev-{case}").json()


def test_event_decoded_values(run_runtime: RuntimeRunner, impl: str) -> None:
    result = run_runtime(impl, "results.event_repr", DECODE_SCRIPT)
    described = {case: result.post_for(f"ev-{case}").json() for case in DECODE_CASES}

    assert described["raw_utf8"] == ["dict", repr({"name": "Zo\u00eb \U0001f680"})]
    assert described["escaped_utf16"] == described["raw_utf8"]
    assert described["floats"] == ["list", "[0.1, 1.5e+308, 0.0, 0, -0.0, 0.30000000000000004, 100000.0, 2.5]"]
    assert described["big_ints"][1] == repr([2**64, -(2**64) - 1, 2**100])
    assert described["lone_surrogate"] == ["list", repr(["\udc80", "\ud800x"])]
    assert described["top_level_number"] == ["float", "-0.0125"]
    assert described["duplicate_keys"] == ["dict", "{'k': 2, 'j': 0}"]


@pytest.mark.parametrize("case", list(UNMARSHAL_CASES))
def test_unmarshal_error(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result = run_runtime(impl, "results.event_repr", UNMARSHAL_SCRIPT)
    reference = run_runtime(REFERENCE, "results.event_repr", UNMARSHAL_SCRIPT)
    post = result.post_for(f"bad-{case}")
    document = post.json()

    assert post.kind == "error", result.describe()
    assert document["errorType"] == "Runtime.UnmarshalError"
    assert document["errorMessage"].startswith("Unable to unmarshal input: ")
    assert post.body == reference.post_for(f"bad-{case}").body
    assert post.header("Lambda-Runtime-Function-Error-Type") == (
        None if impl == REFERENCE else "Runtime.UnmarshalError"
    )
    assert result.post_for(f"after-{case}").json() == ["dict", repr({"after": case})]


# ---- non-ASCII text and AWS_EXECUTION_ENV ----

ZOE = {"name": "Zo\u00eb \U0001f680"}
ZOE_SCRIPT = (
    Invocation(body=json.dumps(ZOE).encode(), request_id="zoe-echo"),
    Invocation(body=json.dumps({"raise": "Zo\u00eb \U0001f680 failed"}).encode(), request_id="zoe-error"),
)
# AWS_EXECUTION_ENV value, and whether the stock runtime writes raw UTF-8 under it.
EXECUTION_ENVS = {
    "unset": (None, False),
    "python3.11": ("AWS_Lambda_python3.11", False),
    "python3.12": ("AWS_Lambda_python3.12", True),
    "python3.13": ("AWS_Lambda_python3.13", True),
    "python3.14": ("AWS_Lambda_python3.14", True),
    "python3.15": ("AWS_Lambda_python3.15", True),
    "image": ("AWS_Lambda_Image", False),
    "lowercase": ("aws_lambda_python3.12", False),
}


def zoe_runs(run_runtime: RuntimeRunner, impl: str, name: str) -> tuple[RunResult, RunResult]:
    env = {"AWS_EXECUTION_ENV": EXECUTION_ENVS[name][0]}
    return (
        run_runtime(impl, "results.echo_or_raise", ZOE_SCRIPT, env=env),
        run_runtime(REFERENCE, "results.echo_or_raise", ZOE_SCRIPT, env=env),
    )


@pytest.mark.parametrize("name", list(EXECUTION_ENVS))
def test_non_ascii_result_by_execution_env(run_runtime: RuntimeRunner, impl: str, name: str) -> None:
    result, reference = zoe_runs(run_runtime, impl, name)
    body = result.post_for("zoe-echo").body

    if EXECUTION_ENVS[name][1]:
        assert body == '{"name": "Zo\u00eb \U0001f680"}'.encode()
    else:
        assert body == b'{"name": "Zo\\u00eb \\ud83d\\ude80"}'
    assert body == reference.post_for("zoe-echo").body


@pytest.mark.parametrize("name", list(EXECUTION_ENVS))
def test_non_ascii_error_by_execution_env(run_runtime: RuntimeRunner, impl: str, name: str) -> None:
    result, reference = zoe_runs(run_runtime, impl, name)
    post = result.post_for("zoe-error")
    expected = reference.post_for("zoe-error")
    raw = EXECUTION_ENVS[name][1]

    assert post.json()["errorMessage"] == "Zo\u00eb \U0001f680 failed"
    assert ("Zo\u00eb".encode() in post.body) == raw
    assert post.body == expected.body
    assert xray_cause(post, CWD) == xray_cause(expected, CWD)
    # The header travels as raw UTF-8 when the body does.
    raw_header = post.header("Lambda-Runtime-Function-Xray-Error-Cause")
    assert raw_header is not None
    assert ("Zo\u00eb".encode() in raw_header.encode("utf-8", "surrogateescape")) == raw
    assert raw_header == expected.header("Lambda-Runtime-Function-Xray-Error-Cause")
