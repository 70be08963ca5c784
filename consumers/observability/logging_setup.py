"""Structured logs: JSON or text lines, the stream id on every line, credentials masked.

``setup_logging`` installs one handler on the root logger (replacing the one it installed before).
The handler carries two filters and a redacting formatter:

- :class:`StreamContextFilter` stamps ``record.stream_id`` from ``extra={"stream_id": ...}``, else
  from the context variable set by :func:`bind_stream` (per thread / task), else ``"-"``;
- :class:`RedactionFilter` rewrites the message, its arguments and any exception text through a
  :class:`~consumers.settings.redact.Redactor`, so a credentialed URL is masked before any
  formatter sees it; the formatters redact their final line once more.

JSON lines look like ``{"ts": "2026-01-01T00:00:00.000Z", "level": "INFO", "logger": "stream.source",
"stream_id": "s1", "message": "...", "thread": "livetag-source_0"}`` plus ``"exc"`` for exceptions.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from consumers.settings.redact import Redactor, secrets_from_environ

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(stream_id)s]: %(message)s"
NO_STREAM = "-"

_stream_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetag_stream_id", default=None)


@contextlib.contextmanager
def bind_stream(stream_id: str) -> Iterator[None]:
    """Within this block (this thread / task), log lines carry ``stream_id``."""
    token = _stream_id.set(stream_id)
    try:
        yield
    finally:
        _stream_id.reset(token)


def current_stream() -> str | None:
    """The stream id bound by :func:`bind_stream` here, if any."""
    return _stream_id.get()


class StreamLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose every line carries a fixed stream id (for code that serves one stream)."""

    def __init__(self, logger: logging.Logger, stream_id: str) -> None:
        super().__init__(logger, {"stream_id": stream_id})

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("stream_id", (self.extra or {}).get("stream_id", NO_STREAM))
        kwargs["extra"] = extra
        return msg, kwargs


class StreamContextFilter(logging.Filter):
    """Sets ``record.stream_id`` (explicit ``extra`` first, then the bound context, else ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "stream_id", None):
            record.stream_id = _stream_id.get() or NO_STREAM
        return True


class RedactionFilter(logging.Filter):
    """Masks credentials in the message, its arguments and exception text of every record.

    Args:
        redactor: The masking rules (URL user-info, secret keys, configured secrets).
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the raw parts, masked
            message = f"{record.msg} {record.args}"
        record.msg = self.redactor(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        stream_id = getattr(record, "stream_id", None)
        if isinstance(stream_id, str):
            record.stream_id = self.redactor(stream_id)
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [stream]: message``, redacted once more as a whole line."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "stream_id"):
            record.stream_id = NO_STREAM
        return self.redactor(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (keys: ts, level, logger, stream_id, message, thread, exc)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "stream_id": getattr(record, "stream_id", NO_STREAM) or NO_STREAM,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return self.redactor(json.dumps(doc, ensure_ascii=False))


_installed: list[logging.Handler] = []


def setup_logging(
    log_format: str = "text",
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    stream: IO[str] | None = None,
) -> Redactor:
    """Install the LiveTag handler on the root logger (idempotent: a second call replaces the first).

    Args:
        log_format: ``text`` or ``json``.
        level: Root level (name or number).
        secrets: Literal values to mask (e.g. the SASL password).
        environ: When given, values of secret-looking variables (``*PASSWORD*``, ``*TOKEN*``...) are masked.
        stream: Where lines go (default ``sys.stderr``).

    Returns:
        The handler's redactor; call ``.add(secret)`` when more secrets become known (settings).

    Raises:
        ValueError: ``log_format`` is not text or json.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be text or json, got {log_format!r}")
    redactor = Redactor(secrets)
    if environ is not None:
        redactor.add(*secrets_from_environ(environ))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(StreamContextFilter())
    handler.addFilter(RedactionFilter(redactor))
    handler.setFormatter(JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor))
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed.clear()
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(level)
    return redactor


def installed_redactor() -> Redactor | None:
    """The redactor of the handler :func:`setup_logging` installed, if any (to add secrets later)."""
    for handler in _installed:
        for flt in handler.filters:
            if isinstance(flt, RedactionFilter):
                return flt.redactor
    return None


def reset_logging() -> None:
    """Remove the handler :func:`setup_logging` installed (tests; embedding applications)."""
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed.clear()
