"""The CLI's logging set-up: plain text lines, or one JSON object per line (``--log-format json``).

A JSON record holds ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``pid``
(the process that logged it: a pre-fork worker's own pid), ``message``, ``exception`` when there
is one, and every field the caller attached with ``extra=`` (the access log's ``service``,
``method``, ``peer``, ``duration_ms`` and ``outcome``, unchanged). The chosen format is put in
``SOA_LOG_FORMAT`` so processes the command starts (``soa up``'s services) log the same way.
"""

import json
import logging
import os
import time

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record):
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level, log_format="text"):
    """Configure the root logger once per process: ``level`` and ``log_format`` (text|json)."""
    log_format = log_format or "text"
    os.environ["SOA_LOG_FORMAT"] = log_format
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
