"""Operating LiveTag: Prometheus metrics, health endpoints, structured logs with credential redaction."""

from consumers.observability.health import HealthServer, Liveness, Readiness, serve_from_settings
from consumers.observability.logging_setup import bind_stream, setup_logging
from consumers.observability.metrics import PipelineMetrics
from consumers.settings.redact import Redactor, redact_url

__all__ = [
    "HealthServer",
    "Liveness",
    "PipelineMetrics",
    "Readiness",
    "Redactor",
    "bind_stream",
    "redact_url",
    "serve_from_settings",
    "setup_logging",
]
