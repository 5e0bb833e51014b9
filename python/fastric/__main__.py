"""`python -m fastric HANDLER`: the runtime when Lambda's Runtime API is there, else local mode."""

from __future__ import annotations

import os
import sys

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

_USAGE = "python -m fastric [--host HOST] [--port PORT] HANDLER"


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    # Lambda starts the runtime with the handler as the only argument; argument parsing is left to
    # local mode so that it costs nothing at a cold start.
    if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        handler = argv[0] if argv else os.environ.get("_HANDLER")
        if not handler:
            return _no_handler()
        max_concurrency = os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY")
        if max_concurrency is not None:
            from .bootstrap import run_workers

            return run_workers(handler, int(max_concurrency))

        from .bootstrap import run

        run(handler)

    if argv and argv[0] == "layer":
        from .layer import main as layer_main

        return layer_main(argv[1:])

    return _serve_locally(argv)


def _serve_locally(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fastric", description=__doc__)
    parser.add_argument("handler", nargs="?", help="module.function, or path/module.function (default: $_HANDLER)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, or $FASTRIC_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080, or $FASTRIC_PORT)")
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="run up to N runtime processes for concurrent invokes, like reserved concurrency"
        " (default 1, or $FASTRIC_CONCURRENCY)",
    )
    parser.add_argument(
        "--limit-memory",
        action="store_true",
        help="cap each runtime process's address space (RLIMIT_AS) at AWS_LAMBDA_FUNCTION_MEMORY_SIZE;"
        " virtual memory, so cruder than Lambda's limit",
    )
    parser.add_argument(
        "--invoke",
        metavar="EVENT",
        help="invoke once with the JSON event in this file ('-' for stdin), print the result and exit"
        " (status 1 on a function error)",
    )
    arguments = parser.parse_args(argv)
    handler = arguments.handler or os.environ.get("_HANDLER")
    if not handler:
        return _no_handler()
    concurrency = arguments.concurrency or int(os.environ.get("FASTRIC_CONCURRENCY", "1"))
    if concurrency < 1:
        parser.error("--concurrency must be at least 1")

    if arguments.invoke is not None:
        from .local import invoke_once

        try:
            if arguments.invoke == "-":
                event = sys.stdin.buffer.read()
            else:
                with open(arguments.invoke, "rb") as file:
                    event = file.read()
        except OSError as exc:
            sys.stderr.write(f"fastric: cannot read the event: {exc}\n")
            return 2
        return invoke_once(handler, event, memory_limit=arguments.limit_memory)

    from .local import serve

    host = arguments.host or os.environ.get("FASTRIC_HOST", "127.0.0.1")
    port = arguments.port or int(os.environ.get("FASTRIC_PORT", "8080"))
    return serve(handler, host=host, port=port, concurrency=concurrency, memory_limit=arguments.limit_memory)


def _no_handler() -> int:
    sys.stderr.write(f"usage: {_USAGE}\nfastric: no handler given and _HANDLER is not set\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
