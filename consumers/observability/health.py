"""Health and metrics over HTTP: ``/healthz`` (alive), ``/readyz`` (ready for traffic), ``/metrics``.

- :class:`Liveness`: alive unless the main loop stopped beating for ``max_silence_s`` (a wedged
  consumer gets restarted by the kubelet) or a fatal error was recorded.
- :class:`Readiness`: named conditions (``engines_loaded``, ``gallery_bootstrapped``,
  ``partitions_assigned`` for the inference consumer); ready when every one holds.
- :class:`HealthServer`: a threaded HTTP server on a configurable address serving both plus the
  Prometheus text format of a registry; ``start`` / ``stop`` (stop shuts the listener down and joins).

Responses are small JSON documents, e.g. ``{"ready": false, "conditions": {"engines_loaded":
{"ok": true, "detail": "detector@1"}, ...}}``; status 200 when healthy / ready, 503 otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumers.settings import ObservabilitySettings
from consumers.settings.redact import Redactor
from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError

log = logging.getLogger(__name__)

INFERENCE_CONDITIONS = ("engines_loaded", "gallery_bootstrapped", "partitions_assigned")
INGEST_CONDITIONS = ("partitions_assigned",)


class HealthServerError(LiveTagError):
    """The health / metrics server could not listen on its address."""


@dataclass(frozen=True)
class Condition:
    """One readiness condition: whether it holds and a short human detail."""

    ok: bool = False
    detail: str = "not yet"


class Readiness:
    """A set of named conditions that must all hold before the service takes traffic.

    Args:
        names: The condition names; setting any other name raises ``KeyError``.
        redactor: Masks details before they are served.
    """

    def __init__(self, names: Sequence[str] = INFERENCE_CONDITIONS, redactor: Redactor | None = None) -> None:
        if not names:
            raise ValueError("readiness needs at least one condition")
        self._lock = threading.Lock()
        self._conditions = {name: Condition() for name in names}
        self._redactor = redactor or Redactor()

    @property
    def names(self) -> tuple[str, ...]:
        """The condition names in declaration order."""
        return tuple(self._conditions)

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        """Mark condition ``name`` as holding (``ok``) or not, with a short detail."""
        if name not in self._conditions:
            raise KeyError(f"unknown readiness condition {name!r}; known: {', '.join(self._conditions)}")
        with self._lock:
            self._conditions[name] = Condition(bool(ok), self._redactor(detail or ("ok" if ok else "not yet")))

    def ready(self) -> bool:
        """True when every condition holds."""
        with self._lock:
            return all(c.ok for c in self._conditions.values())

    def snapshot(self) -> dict[str, Any]:
        """``{"ready": bool, "conditions": {name: {"ok", "detail"}}}``."""
        with self._lock:
            conditions = {n: {"ok": c.ok, "detail": c.detail} for n, c in self._conditions.items()}
        return {"ready": all(c["ok"] for c in conditions.values()), "conditions": conditions}


class Liveness:
    """Alive while the main loop beats at least every ``max_silence_s`` and nothing fatal happened.

    Before the first beat the process counts as alive (start-up is the readiness probe's business).

    Args:
        clock: Injected time.
        max_silence_s: Longest allowed gap between two beats (None: beats are not checked).
    """

    def __init__(self, clock: Clock | None = None, max_silence_s: float | None = None) -> None:
        if max_silence_s is not None and max_silence_s <= 0:
            raise ValueError(f"max_silence_s must be > 0, got {max_silence_s}")
        self.clock = clock or SystemClock()
        self.max_silence_s = max_silence_s
        self._last_beat: float | None = None
        self._fatal: str | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The main loop made progress (call once per poll)."""
        with self._lock:
            self._last_beat = self.clock.monotonic()

    def fail(self, reason: str) -> None:
        """Record a fatal error: the service is dead and should be restarted."""
        with self._lock:
            self._fatal = reason

    def snapshot(self) -> dict[str, Any]:
        """``{"alive": bool, "detail": str}``."""
        with self._lock:
            if self._fatal is not None:
                return {"alive": False, "detail": f"fatal: {self._fatal}"}
            if self._last_beat is None or self.max_silence_s is None:
                return {"alive": True, "detail": "ok"}
            silence = self.clock.monotonic() - self._last_beat
        if silence > self.max_silence_s:
            return {"alive": False, "detail": f"main loop silent for {silence:.1f}s (limit {self.max_silence_s:g}s)"}
        return {"alive": True, "detail": "ok"}


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` in a background thread.

    Args:
        registry: The Prometheus registry served at ``/metrics``.
        readiness: Conditions served at ``/readyz``.
        liveness: Served at ``/healthz`` (default: always alive).
        host: Bind address (``0.0.0.0`` in a pod, ``127.0.0.1`` in tests).
        port: TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).
        redactor: Masks credentials in served bodies (``/metrics`` included).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        liveness: Liveness | None = None,
        host: str = "0.0.0.0",
        port: int = 9108,
        redactor: Redactor | None = None,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.liveness = liveness or Liveness()
        self.host = host
        self._port = port
        self.redactor = redactor or Redactor()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        """Bind and serve in a daemon thread; returns self.

        Raises:
            HealthServerError: The address is taken or invalid.
        """
        if self._server is not None:
            return self
        try:
            server = ThreadingHTTPServer((self.host, self._port), _handler_for(self))
        except OSError as exc:
            raise HealthServerError(
                f"cannot serve health and metrics on {self.host}:{self._port}: {exc.strerror or exc}; "
                "pick another LIVETAG_OBSERVABILITY_PORT"
            ) from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="livetag-health", daemon=True)
        self._thread.start()
        log.info("health and metrics on %s (/healthz, /readyz, /metrics)", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread (idempotent)."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def metrics_text(self) -> bytes:
        """The registry in Prometheus text format, credentials masked."""
        return self.redactor(generate_latest(self.registry).decode("utf-8")).encode("utf-8")


def _handler_for(owner: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "livetag-health"

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                doc = owner.liveness.snapshot()
                self._send(200 if doc["alive"] else 503, json.dumps(doc).encode(), "application/json")
            elif path == "/readyz":
                doc = owner.readiness.snapshot()
                self._send(200 if doc["ready"] else 503, json.dumps(doc).encode(), "application/json")
            elif path == "/metrics":
                self._send(200, owner.metrics_text(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b'{"error": "not found; try /healthz, /readyz or /metrics"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def serve_from_settings(
    settings: ObservabilitySettings,
    registry: CollectorRegistry,
    readiness: Readiness,
    liveness: Liveness | None = None,
    redactor: Redactor | None = None,
) -> HealthServer | None:
    """Start the server on ``settings.bind_host:settings.port``; None when ``port`` is 0 (turned off)."""
    if settings.port == 0:
        return None
    return HealthServer(registry, readiness, liveness, settings.bind_host, settings.port, redactor).start()
