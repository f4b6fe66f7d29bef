"""Structured logging: key=value lines, one per request (method, path, status, duration, user).
Never logs bodies, tokens, passwords or identity numbers."""

from __future__ import annotations

import logging
import sys
import time

from flask import Flask, Response, g, request

LOGGER_NAME = "fieldsync"
_HANDLER_FLAG = "_fieldsync_handler"


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        level = record.levelname.lower()
        line = f"ts={stamp} level={level} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            # The traceback follows its event line, indented, so log shippers keep them together.
            trace = self.formatException(record.exc_info).replace("\n", "\n  ")
            line = f"{line}\n  {trace}"
        return line


def configure_logging(level: str) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    if not any(getattr(h, _HANDLER_FLAG, False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(KeyValueFormatter())
        setattr(handler, _HANDLER_FLAG, True)
        logger.addHandler(handler)
        logger.propagate = False


def init_request_log(app: Flask) -> None:
    log = logging.getLogger(f"{LOGGER_NAME}.request")

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _log_request(response: Response) -> Response:
        started = g.get("request_started", time.perf_counter())
        actor = g.get("actor")
        log.info(
            "method=%s path=%s status=%d duration_ms=%.1f user=%s",
            request.method,
            request.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            actor.username if actor is not None else "-",
        )
        return response
