"""Metrics of the ingest side: a source reader's cumulative counters turned into metric increments.

(The inference stage times its own calls: ``consumers.stage.model_calls``.)
"""

from __future__ import annotations

from typing import Any

from consumers.observability.metrics import PipelineMetrics


class SourceMeter:
    """Turns one source reader's cumulative counters into metric increments (call ``update`` often).

    Reads ``reader.source.counters.reconnects`` (-> ``source_reconnects_total``) and
    ``reader.counters.dropped_rate`` (-> ``dropped_total{queue="source_rate", policy="max_rate"}``)
    of a :class:`stream.frames.FrameReader`; counters it does not find are ignored.
    """

    def __init__(self, metrics: PipelineMetrics) -> None:
        self.metrics = metrics
        self._reconnects = 0
        self._rate_drops = 0

    def update(self, reader: Any) -> None:
        """Record what changed since the previous call."""
        reconnects = int(getattr(getattr(getattr(reader, "source", None), "counters", None), "reconnects", 0))
        if reconnects > self._reconnects:
            self.metrics.record_reconnects(reconnects - self._reconnects)
            self._reconnects = reconnects
        rate_drops = int(getattr(getattr(reader, "counters", None), "dropped_rate", 0))
        if rate_drops > self._rate_drops:
            self.metrics.record_drops("source_rate", "max_rate", rate_drops - self._rate_drops)
            self._rate_drops = rate_drops
