"""A module that fails while it is being imported."""


def configure() -> None:
    raise RuntimeError("configuration missing at import")


configure()


def handler(event, context):
    return event
