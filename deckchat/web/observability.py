"""Request ids, one structured access-log line per request, JSON log formatting and proxy headers."""
from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, g, has_request_context, request
from werkzeug.middleware.proxy_fix import ProxyFix

access_log = logging.getLogger("deckchat.access")
REQUEST_ID_HEADER = "X-Request-ID"
# Accept the proxy's id only when it is short and plain, so nobody can inject text into log lines.
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def request_id() -> str | None:
    """The id of the request being handled, if any."""
    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Stamp every record logged while a request is handled with its id."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `request_id` to the record; never drops one."""
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


JsonFormatter.converter = time.gmtime


def _route() -> str:
    """The matched URL rule (share tokens stay out of logs), else the raw path."""
    rule = request.url_rule
    return rule.rule if rule is not None else request.path[:200]


def init_observability(app: Flask) -> None:
    """Give each request an id (X-Request-ID in and out) and log one JSON-ready line when it ends."""
    if app.config.get("TRUSTED_PROXIES"):
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    id_filter = RequestIdFilter()
    for logger in (app.logger, access_log, logging.getLogger("deckchat")):
        if not any(isinstance(f, RequestIdFilter) for f in logger.filters):
            logger.addFilter(id_filter)

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _GOOD_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response):
        rid, started = g.get("request_id"), g.get("request_started", time.perf_counter())
        response.headers[REQUEST_ID_HEADER] = rid or ""
        fields = {"request_id": rid, "method": request.method, "route": _route(),
                  "status": response.status_code, "remote": request.remote_addr}

        # A streamed answer ends long after this hook: log when the server closes the body instead.
        def _log() -> None:
            fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            access_log.info("%s %s %s", fields["method"], fields["route"], fields["status"], extra=fields)

        if response.direct_passthrough:
            _log()  # file sends: the server hands the file over without ever closing the response object
        else:
            response.call_on_close(_log)
        return response
