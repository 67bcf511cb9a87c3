"""Logging set up at start-up: text for people or JSON lines for collectors, with request ids."""

import copy
import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
"""What `logging.Formatter.formatException` is given (`sys.exc_info()`'s shape)."""

request_id: ContextVar[str] = ContextVar("request_id", default="-")
"""The id of the request being served; "-" outside requests (start-up, shutdown)."""


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


# Characters that would break a text line or what a terminal shows: C0 and C1 controls (newline,
# carriage return, escape, NUL...), Unicode's line and paragraph separators, invisible format
# characters (bidirectional overrides, zero-width spaces), lone surrogates; and the backslash, so
# an escape in the log always means an escaped character.
_UNSAFE = re.compile(
    r"[\\\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    r"\ufff9-\ufffb\ud800-\udfff]"
)
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    named = _NAMED_ESCAPES.get(character)
    if named is not None:
        return named
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """`text` with every character that could end a line, forge one or drive a terminal escaped
    as Python would write it (`\\n`, `\\x1b`, `\\u2028`)."""
    return _UNSAFE.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """One line per record, for people: what a message says is escaped (see `one_line`).

    Messages carry what clients send (a path, a header), and a path with `%0a` in it must not
    write a line of its own that looks like a record, nor `%1b` clear an operator's terminal.
    A traceback follows its record on lines of its own, each indented and escaped: an exception's
    message may quote what a client sent too, and only a record starts at the line's beginning.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        escaped = one_line(record.message)
        if escaped != record.message:
            record = copy.copy(record)
            record.message = escaped
        return super().formatMessage(record)

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 (logging's name)
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging's name)
        return _indented(super().formatStack(stack_info))


def _indented(lines: str) -> str:
    """`lines` (a traceback) with each line escaped and indented under its record."""
    return "\n".join(f"    {one_line(line)}" for line in lines.split("\n"))


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
                    "()": TextFormatter,
                    "format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s",
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
