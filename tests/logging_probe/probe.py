"""Runs one logging scenario against awslambdaric or fastric, for the differential logging tests.

Usage: probe.py {ric,fastric} SCENARIO

Both implementations read the same environment (log format, level, telemetry descriptor), so the
bytes a scenario writes to stdout, stderr and the telemetry descriptor can be compared directly.
Each scenario runs the same lines of this file whichever implementation is selected, so file
paths and line numbers in tracebacks agree too.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable


class RicApi:
    """The stock runtime's logging, driven through the same calls as fastric's."""

    def __init__(self) -> None:
        from awslambdaric import bootstrap, lambda_literals
        from awslambdaric.lambda_context import LambdaContext

        self.bootstrap = bootstrap
        self.warning = lambda_literals.lambda_unhandled_exception_warning_message
        self.context_class = LambdaContext
        self.sink = None
        self.request_id: str | None = None

    def setup(self) -> None:
        # The steps of awslambdaric's bootstrap.run before the handler import.
        bootstrap = self.bootstrap
        sys.stdout = bootstrap.Unbuffered(sys.stdout)
        sys.stderr = bootstrap.Unbuffered(sys.stderr)
        self.sink = bootstrap.create_log_sink()
        self.sink.__enter__()
        bootstrap._setup_logging(bootstrap._AWS_LAMBDA_LOG_FORMAT, bootstrap._AWS_LAMBDA_LOG_LEVEL, self.sink)

    def set_request(self, request_id: str, tenant_id: str | None) -> None:
        self.request_id = request_id
        self.bootstrap._GLOBAL_AWS_REQUEST_ID = request_id
        self.bootstrap._GLOBAL_TENANT_ID = tenant_id

    def log_error(self, error_type: str, error_message: str, stack_trace: list[str]) -> None:
        error = self.bootstrap.make_error(error_message, error_type, stack_trace, self.request_id)
        self.bootstrap.log_error(error, self.sink)

    def warn_unhandled(self) -> None:
        logging.warning(self.warning)

    def context_log(self, message: str) -> None:
        self.context_class(self.request_id, None, None, 0).log(message)


def fastric_api() -> object:
    from fastric import _logging

    return _logging


# --- scenarios: each takes the implementation's API object -------------------------------------


def levels(api) -> None:
    api.setup()
    logging.addLevelName(25, "NOTICE")
    api.set_request("req-levels", None)
    logger = logging.getLogger("app.levels")
    for level in (5, logging.DEBUG, logging.INFO, 25, logging.WARNING, logging.ERROR, logging.CRITICAL, 55):
        logger.log(level, "at level %d", level)
    print(f"root level {logging.getLogger().level}")


def outside_invocation(api) -> None:
    api.setup()
    logging.warning("before any invocation")
    api.set_request("req-1", None)
    logging.warning("inside the first invocation")
    api.set_request("req-2", None)
    logging.getLogger("x").error("inside the second invocation")


def basic_config(api) -> None:
    api.setup()
    logging.basicConfig(level=logging.DEBUG, format="%(message)s")
    api.set_request("req-basic", None)
    logging.warning("after basicConfig")
    logging.debug("debug after basicConfig")
    print(f"handlers {len(logging.getLogger().handlers)}")


def other_thread(api) -> None:
    api.setup()
    api.set_request("req-thread", "tenant-thread")
    worker = threading.Thread(target=lambda: logging.getLogger("worker").warning("from a thread"))
    worker.start()
    worker.join()


def propagation(api) -> None:
    api.setup()
    api.set_request("req-child", None)
    child = logging.getLogger("pkg.mod.sub")
    child.setLevel(logging.DEBUG)
    child.debug("debug from a child logger")
    logging.getLogger("pkg").info("info from a parent below root level")


def _fail() -> None:
    raise ZeroDivisionError("division by zero")


def exc_info(api) -> None:
    api.setup()
    api.set_request("req-exc", None)
    try:
        _fail()
    except ZeroDivisionError:
        logging.exception("failed %s", "here")
        logging.getLogger("exc").error("again", exc_info=True)
    logging.warning("with stack", stack_info=True)
    api.context_log("sticks to the previous line\n")


class Strish:
    def __str__(self) -> str:
        return "strish-value"

    def __repr__(self) -> str:
        return "Strish()"


def dict_message(api) -> None:
    api.setup()
    api.set_request("req-dict", None)
    logging.warning({"key": "value", "number": 1, "nested": {"list": [1, 2]}})
    logging.warning("%(a)s and %(b)s", {"a": "A", "b": "B"})
    logging.warning({"with": Strish()})


def extras(api) -> None:
    api.setup()
    api.set_request("req-extra", None)
    logging.warning(
        "extras",
        extra={"custom": "v", "number": 3, "obj": Strish(), "none": None, "location": "fake", "tenantId": "x"},
    )
    logging.warning("unicode \u00e9 \U0001f600 \u2028 and a tab\t.")
    logging.error("timestamp, level and message as extras", extra={"timestamp": 1, "level": 2, "logger": 3})


def tenant(api) -> None:
    api.setup()
    api.set_request("req-tenant", "tenant-1")
    logging.warning("with tenant")
    api.set_request("req-no-tenant", None)
    logging.warning("without tenant")


def user_formatter(api) -> None:
    api.setup()
    api.set_request("req-fmt", "t")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.handlers[0].setFormatter(logging.Formatter("%(levelname)s|%(aws_request_id)s|%(tenant_id)s|%(message)s"))
    logging.info("info with the user's formatter")
    logging.critical("critical with the user's formatter")


_TRACE = [
    '  File "/var/task/app.py", line 15, in handler\n    raise ValueError("bad value")\n',
    '  File "/var/task/lib.py", line 3, in helper\n',
    "",
    "\tTabbed line\n  two-space line\nno indent",
]


def log_error(api) -> None:
    api.setup()
    # Init errors: no request id yet.
    api.log_error("Runtime.ImportModuleError", "Unable to import module 'nosuch': No module named 'nosuch'", [])
    api.log_error("Runtime.UserCodeSyntaxError", "Syntax error", ['  File "/var/task/syn.py" Line 1\n    def f(\n'])
    api.set_request("req-err", None)
    api.log_error("ValueError", "bad value", _TRACE)
    api.log_error("", "message only", _TRACE[:1])
    api.log_error("TypeOnly", "", [])
    api.log_error("", "", [])
    api.log_error("UnicodeError", 'caf\u00e9 \U0001f600 \u2028 "quoted" back\\slash', ["  \u00e9\n"])


def context_log(api) -> None:
    api.setup()
    api.set_request("req-ctx", None)
    api.context_log("plain")
    api.context_log(" and a line\n")
    api.context_log("multi\nline\n")
    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)
    api.context_log("after the handler was removed\n")


def environment(api) -> None:
    api.setup()
    root = logging.getLogger()
    handler = root.handlers[0]
    facts = {
        "fd_env": os.environ.get("_LAMBDA_TELEMETRY_LOG_FD"),
        "gmtime": logging.Formatter.converter is time.gmtime,
        "handlers": len(root.handlers),
        "handler_class": type(handler).__name__,
        "plain_formatter": type(handler.formatter) is logging.Formatter,
        "formatter_class": type(handler.formatter).__name__,
        "filters": len(handler.filters),
        "has_log_sink": hasattr(handler, "log_sink"),
        "root_level": root.level,
        "stdout_class": type(sys.stdout).__name__,
        "stderr_class": type(sys.stderr).__name__,
    }
    print(facts)


def streams(api) -> None:
    api.setup()
    print("print to stdout")
    print("print to stderr", file=sys.stderr)
    sys.stdout.write("no newline, no flush")
    sys.stderr.writelines(["lines ", "on stderr"])
    logging.warning("a record")
    # Skips interpreter shutdown, so only what was flushed at write time gets out.
    os._exit(0)


def warn_unhandled(api) -> None:
    api.setup()
    api.warn_unhandled()


SCENARIOS: dict[str, Callable[[object], None]] = {
    function.__name__: function
    for function in (
        levels,
        outside_invocation,
        basic_config,
        other_thread,
        propagation,
        exc_info,
        dict_message,
        extras,
        tenant,
        user_formatter,
        log_error,
        context_log,
        environment,
        streams,
        warn_unhandled,
    )
}


def main() -> None:
    implementation, scenario = sys.argv[1], sys.argv[2]
    api = RicApi() if implementation == "ric" else fastric_api()
    SCENARIOS[scenario](api)


if __name__ == "__main__":
    main()
