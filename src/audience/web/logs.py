"""Logging of a server process: plain lines or one JSON object a line (AUDIENCE_LOG_FORMAT).

The access log (web/access.py) writes one line per request. A client that goes away before
its request is read is one short warning, not a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

#: Attributes a LogRecord always has: anything else was passed in `extra`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(log_format: str) -> dict[str, Any]:
    """The logging configuration of `audience serve` (given to uvicorn, so its workers use it)."""
    formatter: dict[str, Any] = (
        {"()": "audience.web.logs.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "audience": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }
