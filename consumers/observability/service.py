"""Everything a long-running service needs to be operated, built once in its ``run`` from settings.

``ServiceObservability.start(settings, conditions)`` makes a fresh registry with the LiveTag metric
set, the readiness conditions and a liveness watchdog, adds the settings' secrets to the log
redactor, and serves ``/healthz``, ``/readyz`` and ``/metrics`` on
``settings.observability.bind_host:port`` (port 0 = no server). ``close()`` stops the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from consumers.observability.health import HealthServer, Liveness, Readiness, serve_from_settings
from consumers.observability.logging_setup import installed_redactor
from consumers.observability.metrics import PipelineMetrics
from consumers.settings import Settings
from consumers.settings.redact import Redactor, secrets_from_settings
from stream.clock import Clock, SystemClock

#: A record loop that has not polled for this long is reported dead on /healthz.
DEFAULT_MAX_SILENCE_S = 120.0
#: Least seconds between two consumer-lag readings (each costs a broker round trip).
LAG_INTERVAL_S = 5.0


@dataclass
class ServiceObservability:
    """The metrics, probes and server of one service process.

    Attributes:
        metrics: The metric facade to pass to the stages and loops.
        readiness: Conditions the service sets as it starts (served on ``/readyz``).
        liveness: Beaten by the record loop through ``metrics`` (served on ``/healthz``).
        server: The HTTP server, None when ``observability.port`` is 0.
        redactor: Masks credentials in logs, label values and served bodies.
    """

    metrics: PipelineMetrics
    readiness: Readiness
    liveness: Liveness
    server: HealthServer | None
    redactor: Redactor

    @classmethod
    def start(
        cls,
        settings: Settings,
        conditions: Sequence[str],
        clock: Clock | None = None,
        max_silence_s: float | None = DEFAULT_MAX_SILENCE_S,
    ) -> ServiceObservability:
        """Build the registry, metrics and probes, and start serving them.

        Args:
            settings: Validated settings (``observability`` section; secrets are taken from ``kafka``).
            conditions: Readiness condition names, e.g. ``health.INFERENCE_CONDITIONS``.
            clock: Injected time (default: the system clock).
            max_silence_s: Longest gap between loop polls before ``/healthz`` fails (None: unchecked).

        Raises:
            HealthServerError: The configured address cannot be bound.
        """
        the_clock = clock or SystemClock()
        redactor = installed_redactor() or Redactor()
        redactor.add(*secrets_from_settings(settings))
        liveness = Liveness(the_clock, max_silence_s)
        readiness = Readiness(conditions, redactor)
        metrics = PipelineMetrics(CollectorRegistry(), the_clock, redactor, liveness, lag_interval_s=LAG_INTERVAL_S)
        server = serve_from_settings(settings.observability, metrics.registry, readiness, liveness, redactor)
        return cls(metrics, readiness, liveness, server, redactor)

    def close(self) -> None:
        """Stop the HTTP server (idempotent)."""
        if self.server is not None:
            self.server.stop()
