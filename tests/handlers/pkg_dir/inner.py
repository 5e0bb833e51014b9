"""A handler reached through the `pkg_dir/inner.handler` form."""

from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"module": __name__, "event": event}
