"""Differential tests of fastric._logging against awslambdaric 4.2.2.

Each case runs `logging_probe/probe.py` twice in subprocesses, once with awslambdaric's logging
and once with fastric's, under the same environment, and compares what reached stdout, stderr and
the telemetry log descriptor (a pipe passed down as `_LAMBDA_TELEMETRY_LOG_FD`). Timestamps are
checked against the run's time window and then blanked before comparing.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from awslambdaric.lambda_literals import lambda_unhandled_exception_warning_message as RIC_WARNING

from fastric import _logging

TESTS_DIR = Path(__file__).resolve().parent
PROBE = TESTS_DIR / "logging_probe" / "probe.py"
# Children import fastric from where this process did.
PYTHON_DIR = Path(_logging.__file__).parent.parent

# Every timestamp a log line can carry: text (milliseconds) and JSON (whole seconds).
TIMESTAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{3})?Z")

TEXT_FRAMES = {"NOTSET": 0xA55A0003, "DEBUG": 0xA55A000B, "INFO": 0xA55A000F, "WARNING": 0xA55A0013}
TEXT_FRAMES |= {"ERROR": 0xA55A0017, "CRITICAL": 0xA55A001B}
JSON_FRAMES = {name: code - 1 for name, code in TEXT_FRAMES.items()}

LOG_ENV = ("AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL", "AWS_EXECUTION_ENV", "_LAMBDA_TELEMETRY_LOG_FD")


@dataclass
class Frame:
    frame_type: int
    timestamp_us: int
    payload: bytes


@dataclass
class Run:
    stdout: bytes
    stderr: bytes
    frames: list[Frame]
    started_us: int
    ended_us: int

    def normalised(self) -> tuple[bytes, bytes, list[tuple[int, bytes]]]:
        """Everything the run wrote, with timestamps blanked after checking they are plausible."""
        for frame in self.frames:
            assert self.started_us <= frame.timestamp_us <= self.ended_us, frame
        return (
            blank_timestamps(self.stdout, self),
            self.stderr,
            [(frame.frame_type, blank_timestamps(frame.payload, self)) for frame in self.frames],
        )


def blank_timestamps(data: bytes, run: Run) -> bytes:
    """Replace UTC timestamps by a marker, failing if one lies outside the run's time window."""

    def check(match: re.Match[bytes]) -> bytes:
        seconds = datetime.strptime(match.group(1).decode(), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        epoch_us = int(seconds.timestamp()) * 1_000_000
        if match.group(2):
            epoch_us += int(match.group(2)[1:]) * 1000
        # Second-precision stamps are truncated, millisecond ones too: allow one unit of slack below.
        assert run.started_us - 1_000_000 <= epoch_us <= run.ended_us, match.group(0)
        return b"<TS.mmmZ>" if match.group(2) else b"<TSZ>"

    return TIMESTAMP.sub(check, data)


def parse_frames(data: bytes) -> list[Frame]:
    frames = []
    offset = 0
    while offset < len(data):
        frame_type, length, timestamp = struct.unpack_from(">IIQ", data, offset)
        offset += 16
        frames.append(Frame(frame_type, timestamp, data[offset : offset + length]))
        offset += length
    assert offset == len(data), "trailing bytes after the last frame"
    return frames


def child_environment() -> dict[str, str]:
    """This process's environment without logging settings, importing fastric from the same place."""
    child_env = {key: value for key, value in os.environ.items() if key not in LOG_ENV}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(PYTHON_DIR), os.environ.get("PYTHONPATH"))))
    return child_env


def run_probe(implementation: str, scenario: str, *, framed: bool = False, **env: str | None) -> Run:
    """Run one probe scenario; `env` sets (str) or removes (None) environment variables."""
    child_env = child_environment()
    # A zone far from UTC, so that a missing gmtime conversion shows up in the timestamp check.
    child_env["TZ"] = "Asia/Kolkata"
    for key, value in env.items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value

    read_fd, write_fd = os.pipe() if framed else (-1, -1)
    if framed:
        child_env["_LAMBDA_TELEMETRY_LOG_FD"] = str(write_fd)
    telemetry = bytearray()

    def drain() -> None:
        while chunk := os.read(read_fd, 65536):
            telemetry.extend(chunk)

    started_us = time.time_ns() // 1000
    process = subprocess.Popen(
        [sys.executable, str(PROBE), implementation, scenario],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(write_fd,) if framed else (),
    )
    reader = None
    if framed:
        os.close(write_fd)
        reader = threading.Thread(target=drain)
        reader.start()
    try:
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if reader is not None:
            reader.join(timeout=30)
            os.close(read_fd)
    ended_us = time.time_ns() // 1000
    assert process.returncode == 0, stderr.decode(errors="replace")
    return Run(stdout, stderr, parse_frames(bytes(telemetry)), started_us, ended_us)


def differential(scenario: str, *, framed: bool = False, **env: str | None) -> Run:
    """Run a scenario with both implementations, assert identical output and return fastric's run."""
    ours = run_probe("fastric", scenario, framed=framed, **env)
    theirs = run_probe("ric", scenario, framed=framed, **env)
    assert ours.normalised() == theirs.normalised()
    return ours


def probe_line(text: str) -> int:
    """Line number of the first probe line containing `text`."""
    lines = PROBE.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def text_lines(run: Run) -> list[str]:
    return run.stdout.decode().splitlines(keepends=True)


# --- formats and levels -----------------------------------------------------------------------


# How many of the probe's records (levels 5, 10, 20, 25, 30, 40, 50, 55) each setting lets through.
LEVELS = {None: 4, "": 4, "DEBUG": 7, "TRACE": 7, "trace": 4, "info": 6, "WARN": 4, "ERROR": 3, "FATAL": 2}
LEVELS |= {"CRITICAL": 2, "NOTSET": 8, "bogus": 4}


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_levels_in_frames(log_format: str, level: str | None) -> None:
    run = differential("levels", framed=True, AWS_LAMBDA_LOG_FORMAT=log_format, AWS_LAMBDA_LOG_LEVEL=level)
    assert run.stdout.startswith(b"root level ")
    assert len(run.frames) == LEVELS[level]
    table = JSON_FRAMES if log_format == "JSON" else TEXT_FRAMES
    if log_format == "Text" and not level:
        assert {frame.frame_type for frame in run.frames} == {TEXT_FRAMES["NOTSET"]}
    else:
        # Level 55 is clamped to CRITICAL.
        assert run.frames[-1].frame_type == table["CRITICAL"]


@pytest.mark.parametrize("level", [None, "DEBUG"])
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_levels_on_stdout(log_format: str, level: str | None) -> None:
    run = differential("levels", AWS_LAMBDA_LOG_FORMAT=log_format, AWS_LAMBDA_LOG_LEVEL=level)
    assert run.frames == []
    assert b"at level 50" in run.stdout


def test_text_layout() -> None:
    run = differential("outside_invocation")
    assert [TIMESTAMP.sub(b"T", line.encode()) for line in text_lines(run)] == [
        b"[WARNING]\tT\t\tbefore any invocation\n",
        b"[WARNING]\tT\treq-1\tinside the first invocation\n",
        b"[ERROR]\tT\treq-2\tinside the second invocation\n",
    ]


def test_text_timestamp_is_utc_with_milliseconds() -> None:
    run = run_probe("fastric", "outside_invocation")
    stamp = TIMESTAMP.search(run.stdout)
    assert stamp is not None and stamp.group(2) is not None
    run.normalised()  # checks the stamp against the time window, in UTC


def test_json_layout() -> None:
    run = differential("outside_invocation", AWS_LAMBDA_LOG_FORMAT="json")
    records = [json.loads(line) for line in text_lines(run)]
    assert list(records[1]) == ["timestamp", "level", "message", "logger", "requestId"]
    assert records[0]["requestId"] == ""
    assert records[2]["logger"] == "x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", records[0]["timestamp"])


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_basic_config_is_a_no_op(log_format: str) -> None:
    run = differential("basic_config", AWS_LAMBDA_LOG_FORMAT=log_format)
    assert run.stdout.endswith(b"handlers 1\n")
    assert b"debug after basicConfig" not in run.stdout


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_record_from_another_thread_carries_request_id(log_format: str) -> None:
    run = differential("other_thread", framed=True, AWS_LAMBDA_LOG_FORMAT=log_format)
    (frame,) = run.frames
    assert b"req-thread" in frame.payload
    assert (b'"tenantId": "tenant-thread"' in frame.payload) == (log_format == "JSON")


def test_child_logger_records_pass_the_root_handler() -> None:
    run = differential("propagation", framed=True, AWS_LAMBDA_LOG_LEVEL="WARN")
    assert [frame.frame_type for frame in run.frames] == [TEXT_FRAMES["DEBUG"]]
    assert run.frames[0].payload.startswith(b"[DEBUG]\t")


# --- records with exceptions, dicts, extras, tenants --------------------------------------------


@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_exc_info(log_format: str, framed: bool) -> None:
    run = differential("exc_info", framed=framed, AWS_LAMBDA_LOG_FORMAT=log_format)
    if framed:
        exc_frame = run.frames[0]
        assert exc_frame.frame_type == (JSON_FRAMES["ERROR"] if log_format == "JSON" else TEXT_FRAMES["NOTSET"])
        output = exc_frame.payload
    else:
        output = run.stdout
    if log_format == "JSON":
        record = json.loads(output.splitlines()[0])
        assert record["errorType"] == "ZeroDivisionError" and record["errorMessage"] == "division by zero"
        assert record["location"] == f"{PROBE}:exc_info:{probe_line('logging.exception(')}"
        assert record["stackTrace"][-1].startswith('  File "')
    else:
        assert b"ZeroDivisionError: division by zero" in output
    if not framed and log_format == "Text":
        # The traceback has no final newline, so the next write continues its last line.
        assert b"sticks to the previous line\n" in run.stdout
        assert b"\nsticks to the previous line" not in run.stdout


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_dict_messages(log_format: str) -> None:
    run = differential("dict_message", AWS_LAMBDA_LOG_FORMAT=log_format)
    first = run.stdout.splitlines()[0]
    if log_format == "JSON":
        assert json.loads(first)["message"] == {"key": "value", "number": 1, "nested": {"list": [1, 2]}}
        assert b'"message": {"with": "strish-value"}' in run.stdout
    else:
        assert first.endswith(b"\t{'key': 'value', 'number': 1, 'nested': {'list': [1, 2]}}")
    assert b"A and B" in run.stdout


@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_extras_and_unicode(log_format: str, framed: bool) -> None:
    run = differential("extras", framed=framed, AWS_LAMBDA_LOG_FORMAT=log_format)
    output = b"".join(frame.payload for frame in run.frames) if framed else run.stdout
    assert "\U0001f600".encode() in output
    if log_format == "JSON":
        record = json.loads(output.splitlines()[0])
        assert record["custom"] == "v" and record["obj"] == "strish-value" and record["tenantId"] == "x"
        assert "location" not in record and "none" not in record
        assert list(json.loads(output.splitlines()[2]))[:4] == ["timestamp", "level", "message", "logger"]


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_tenant_id(log_format: str) -> None:
    run = differential("tenant", AWS_LAMBDA_LOG_FORMAT=log_format)
    with_tenant, without_tenant = run.stdout.splitlines()
    if log_format == "JSON":
        assert json.loads(with_tenant)["tenantId"] == "tenant-1"
        assert "tenantId" not in json.loads(without_tenant)
    else:
        assert b"tenant-1" not in run.stdout


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_user_formatter_keeps_frame_type_rules(log_format: str) -> None:
    run = differential("user_formatter", framed=True, AWS_LAMBDA_LOG_FORMAT=log_format)
    # Without a level, text logs use the default frame type; JSON mode falls back to text types by level.
    info, critical = ("NOTSET", "NOTSET") if log_format == "Text" else ("INFO", "CRITICAL")
    assert [(frame.frame_type, frame.payload) for frame in run.frames] == [
        (TEXT_FRAMES[info], b"INFO|req-fmt|t|info with the user's formatter"),
        (TEXT_FRAMES[critical], b"CRITICAL|req-fmt|t|critical with the user's formatter"),
    ]


# --- the runtime's own lines ----------------------------------------------------------------------


@pytest.mark.parametrize("execution_env", [None, "AWS_Lambda_python3.12", "AWS_Lambda_python3.11"])
@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_log_error(log_format: str, framed: bool, execution_env: str | None) -> None:
    run = differential("log_error", framed=framed, AWS_LAMBDA_LOG_FORMAT=log_format, AWS_EXECUTION_ENV=execution_env)
    if framed:
        assert run.stdout == b""
        assert len(run.frames) == 7
        error_type = JSON_FRAMES["ERROR"] if log_format == "JSON" else TEXT_FRAMES["ERROR"]
        assert {frame.frame_type for frame in run.frames} == {error_type}
        entries = [frame.payload for frame in run.frames]
    else:
        entries = run.stdout.split(b"\n")
        assert entries.pop() == b""
        assert len(entries) == 7
    if log_format == "JSON":
        document = json.loads(entries[2])
        assert list(document) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
        assert document["requestId"] == "req-err" and json.loads(entries[0])["requestId"] == ""
        escaped = b"caf\\u00e9" in entries[6]
        assert escaped == (execution_env != "AWS_Lambda_python3.12")
    else:
        separator = b"\n" if framed else b"\r"
        lines = entries[2].split(separator)
        assert lines[:3] == [
            b"[ERROR] ValueError: bad value",
            b"Traceback (most recent call last):",
            "\u00a0\u00a0File".encode() + b' "/var/task/app.py", line 15, in handler',
        ]
        assert entries[5] == b"[ERROR]" + separator + b"Traceback (most recent call last):"


@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_warn_unhandled_line(log_format: str, framed: bool) -> None:
    ours = run_probe("fastric", "warn_unhandled", framed=framed, AWS_LAMBDA_LOG_FORMAT=log_format)
    theirs = run_probe("ric", "warn_unhandled", framed=framed, AWS_LAMBDA_LOG_FORMAT=log_format)

    # Same line with each implementation's own wording in place of the warning text.
    def placeholder(run: Run, warning: str) -> tuple[bytes, bytes, list[tuple[int, bytes]]]:
        encoded = json.dumps(warning, ensure_ascii=False)[1:-1] if log_format == "JSON" else warning
        stdout, stderr, frames = run.normalised()
        swap = encoded.encode()
        return stdout.replace(swap, b"<W>"), stderr, [(kind, data.replace(swap, b"<W>")) for kind, data in frames]

    replaced = placeholder(ours, _logging._UNHANDLED_WARNING)
    assert replaced == placeholder(theirs, RIC_WARNING)
    line = replaced[2][0][1] if framed else replaced[0]
    assert b"<W>" in line
    assert b"LAMBDA_WARNING: Unhandled exception." in (ours.frames[0].payload if framed else ours.stdout)


def test_warning_keeps_marker_and_link() -> None:
    theirs = RIC_WARNING
    ours = _logging._UNHANDLED_WARNING
    marker = "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code."
    link = re.compile(r"https://\S+?(?=\r$)")
    assert theirs.startswith(marker) and ours.startswith(marker)
    assert link.search(ours).group(0) == link.search(theirs).group(0)
    assert ours.endswith(".html\r")


@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_context_log(log_format: str, framed: bool) -> None:
    run = differential("context_log", framed=framed, AWS_LAMBDA_LOG_FORMAT=log_format, AWS_LAMBDA_LOG_LEVEL="INFO")
    if framed:
        assert [(frame.frame_type, frame.payload) for frame in run.frames] == [
            (TEXT_FRAMES["NOTSET"], b"plain"),
            (TEXT_FRAMES["NOTSET"], b" and a line\n"),
            (TEXT_FRAMES["NOTSET"], b"multi\nline\n"),
        ]
        # Without the runtime's handler the text goes to stdout, unframed.
        assert run.stdout == b"after the handler was removed\n"
    else:
        assert run.stdout == b"plain and a line\nmulti\nline\nafter the handler was removed\n"


# --- setup side effects -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log_format", "level", "framed"),
    [("Text", None, False), ("Text", None, True), ("Text", "DEBUG", True), ("JSON", None, True)],
)
def test_setup_side_effects(log_format: str, level: str | None, framed: bool) -> None:
    run = differential("environment", framed=framed, AWS_LAMBDA_LOG_FORMAT=log_format, AWS_LAMBDA_LOG_LEVEL=level)
    assert b"'fd_env': None" in run.stdout and b"'gmtime': True" in run.stdout
    assert b"'handlers': 1" in run.stdout and b"'filters': 1" in run.stdout


@pytest.mark.parametrize("framed", [False, True])
def test_streams_are_unbuffered_and_never_framed(framed: bool) -> None:
    run = differential("streams", framed=framed)
    assert run.stdout.startswith(b"print to stdout\nno newline, no flush")
    assert run.stderr == b"print to stderr\nlines on stderr"
    assert len(run.frames) == (1 if framed else 0)


# --- fastric only ------------------------------------------------------------------------------------


def test_bad_telemetry_fd_falls_back_to_stdout() -> None:
    run = run_probe("fastric", "outside_invocation", _LAMBDA_TELEMETRY_LOG_FD="not-a-number")
    assert run.stdout.count(b"[WARNING]") == 2


def test_unencodable_record_is_framed_with_escapes() -> None:
    code = "import logging; from fastric import _logging; _logging.setup(); logging.warning('lone \\udc80 surrogate')"
    read_fd, write_fd = os.pipe()
    env = child_environment() | {"_LAMBDA_TELEMETRY_LOG_FD": str(write_fd)}
    process = subprocess.run(
        [sys.executable, "-c", code], env=env, pass_fds=(write_fd,), capture_output=True, timeout=30, check=True
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        (frame,) = parse_frames(pipe.read())
    assert frame.payload.endswith(b"\tlone \\udc80 surrogate\n")
    assert process.stderr == b""


def test_import_is_light_and_set_request_only_assigns() -> None:
    code = (
        "import sys, fastric; before = set(sys.modules); from fastric import _logging; "
        "heavy = sorted({'json', 'simplejson'} & (set(sys.modules) - before)); "
        "_logging.set_request('r', 't'); print(heavy, _logging._request_id, _logging._tenant_id)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_environment(), capture_output=True, timeout=30, check=True
    )
    assert result.stdout == b"[] r t\n"
