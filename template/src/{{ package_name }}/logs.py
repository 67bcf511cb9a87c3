"""Logging set up at start-up: text for people or JSON lines for collectors, with request ids."""

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

request_id: ContextVar[str] = ContextVar("request_id", default="-")
"""The id of the request being served; "-" outside requests (start-up, shutdown)."""


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line, as log collectors ingest them."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, log_format: Literal["text", "json"]) -> None:
    """Send every log record, uvicorn's and Alembic's included, to stderr in one format."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {
                "request_id": {"()": RequestIdFilter},
            },
            "formatters": {
                "text": {
                    "format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
                },
                "json": {"()": JSONFormatter},
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": log_format,
                    "filters": ["request_id"],
                }
            },
            "root": {"level": level, "handlers": ["stderr"]},
            "loggers": {
                # uvicorn's own lines go to the same handler; its access log is replaced by the
                # one line per request that `middleware.RequestContext` writes.
                "uvicorn": {"handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                "uvicorn.access": {"handlers": [], "propagate": False},
                # Statements are logged only when asked for (and never their parameters).
                "sqlalchemy.engine": {"level": "WARNING"},
                # Alembic logs the revisions a deploy runs ("Running upgrade 0001 -> 0002") at
                # INFO, but also each of its plugins as it loads them, on every start-up.
                "alembic.runtime.plugins": {"level": "WARNING"},
            },
        }
    )
