"""Sections of the settings for the Kafka services: the ingest worker and the inference consumer."""

from __future__ import annotations

from dataclasses import dataclass

from consumers.settings.checks import check, check_types, positive

#: The inference consumers' group on ``frames`` (the embedded pipeline's in-process consumer too).
INFERENCE_GROUP = "livetag-inference"


@dataclass(frozen=True)
class IngestSettings:
    """One ingest worker (``livetag ingest``).

    Attributes:
        group_id: Consumer group on ``streams`` shared by all ingest workers.
        max_streams: Streams one worker runs at once (more go to ``dlq``, policy
            ``reject_over_capacity``).
        poll_timeout_s: Longest wait of one ``streams`` poll (kept short: kafka-python serves every
            client of the process from one network loop, which a long poll would hold up).
        flush_interval_s: How often published frames are flushed (delivery errors are logged).
        stop_join_s: How long a stopping stream thread is awaited before the loop moves on.
        open_timeout_s: Seconds to open a source (connect + probe).
        stall_timeout_s: Seconds without a packet before a live source is reopened.
        max_retries: Failed opens in a row before a stream goes to ``dlq``.
        backoff_initial_s: Delay before the first reopen.
        backoff_cap_s: Largest delay between reopens.
        realtime: Pace file sources to their own timestamps (files replayed as live feeds).
        allow_files: Folders whose local files a ``streams`` record may name (default: none).
        allow_loopback: Let records name loopback / link-local hosts (a local ingest point, tests).
    """

    group_id: str = "livetag-ingest"
    max_streams: int = 64
    poll_timeout_s: float = 0.1
    flush_interval_s: float = 1.0
    stop_join_s: float = 0.5
    open_timeout_s: float = 10.0
    stall_timeout_s: float = 10.0
    max_retries: int = 5
    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 30.0
    realtime: bool = False
    allow_files: tuple[str, ...] = ()
    allow_loopback: bool = False

    def __post_init__(self) -> None:
        check_types(self, "ingest")
        check(bool(self.group_id), "ingest.group_id", "is empty")
        check(self.max_streams >= 1, "ingest.max_streams", f"must be >= 1, got {self.max_streams}")
        for name in ("poll_timeout_s", "flush_interval_s", "open_timeout_s", "stall_timeout_s", "backoff_initial_s"):
            positive(f"ingest.{name}", getattr(self, name))
        check(self.stop_join_s >= 0, "ingest.stop_join_s", f"must be >= 0, got {self.stop_join_s}")
        check(self.max_retries >= 0, "ingest.max_retries", f"must be >= 0, got {self.max_retries}")
        check(self.backoff_cap_s >= self.backoff_initial_s, "ingest.backoff_cap_s",
              f"must be >= backoff_initial_s ({self.backoff_initial_s}), got {self.backoff_cap_s}")


@dataclass(frozen=True)
class InferSettings:
    """One inference consumer (``livetag infer``).

    Attributes:
        group_id: Consumer group on ``frames`` shared by all inference consumers.
        gallery_timeout_s: Seconds to read the gallery topic to its end at start.
    """

    group_id: str = INFERENCE_GROUP
    gallery_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        check_types(self, "infer")
        check(bool(self.group_id), "infer.group_id", "is empty")
        positive("infer.gallery_timeout_s", self.gallery_timeout_s)
