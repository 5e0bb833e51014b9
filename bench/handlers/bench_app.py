"""The handlers the benchmarks run under each runtime. They import nothing, so that a cold start
measures the runtime and not the function's own imports."""


def noop(event, context):
    return None


def echo(event, context):
    return event
