"""A handler configuring logging at import time, as many functions do, and logging from a thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger(__name__)


def handler(event: Any, context: Any) -> dict[str, Any]:
    logger.info("info line %s", event["n"])
    logger.warning("main thread %s", event["n"])

    worker = threading.Thread(target=logger.warning, args=("worker thread %s", event["n"]))
    worker.start()
    worker.join()

    logging.getLogger().error("root logger %s", event["n"])
    return {"root_handlers": len(logging.getLogger().handlers), "root_level": logging.getLogger().level}
