"""Log formats: LOG_FORMAT=text (one readable line per record) or json (one JSON object per line,
for log collectors that index fields). Used by the app's loggers and by gunicorn's."""

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from flask import g, has_request_context, request

TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT ("text" or "json")."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601, milliseconds), level, logger, message,
    pid; `request_id`, `trace_id`, `method` and `path` for a record made while serving a
    request; for gunicorn's access line also `status` and `duration_ms`; `exception` with the
    traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            entry |= access_fields(record.args)
        elif has_request_context():
            entry |= request_fields()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def request_fields() -> dict:
    """The request id, trace id (when the caller sent a valid traceparent), method and path of
    the request being served."""
    fields = {"request_id": g.get("request_id"), "method": request.method, "path": request.path}
    trace = g.get("trace")
    if trace is not None:
        fields["trace_id"] = trace[0]
    return fields


def access_fields(atoms: Mapping) -> dict:
    """Fields of gunicorn's access atoms (its `atoms()` names; '-' when absent): the response's
    X-Request-ID and traceparent (set by service.middleware) give request_id and trace_id."""
    fields = {
        "request_id": atoms["{x-request-id}o"],
        "method": atoms["m"],
        "path": atoms["U"],
        "status": int(atoms["s"]),
        "duration_ms": round(atoms["D"] / 1000, 3),
        "bytes": atoms["B"],
    }
    traceparent = atoms["{traceparent}o"]
    if traceparent != "-":
        fields["trace_id"] = traceparent.split("-")[1]
    return fields
