"""Settings: frozen dataclasses, validated once in ``__post_init__``, then passed down.

Nothing here reads the environment on import; ``Settings.from_env(os.environ)`` is called by a
service's ``run``. Environment names are ``LIVETAG_<SECTION>_<FIELD>`` in upper case, e.g.
``LIVETAG_KAFKA_BOOTSTRAP_SERVERS=a:9092,b:9092`` or ``LIVETAG_VOTER_HALF_LIFE_S=2.5``; tuples are
comma-separated, mappings are JSON, booleans are ``1/0/true/false/yes/no``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.bus import TopicSpec
from consumers.setting_checks import (
    SecretStr,
    SettingsError,
    check,
    check_types,
    parse_env_value,
    unit_interval,
)
from consumers.text.text_settings import TextSettings
from consumers.voter_settings import VOTE_WEIGHTS, VoterSettings

__all__ = [
    "VOTE_WEIGHTS",
    "BatchSettings",
    "KafkaSettings",
    "ObservabilitySettings",
    "PipelineSettings",
    "SecretStr",
    "Settings",
    "SettingsError",
    "TextSettings",
    "TopicSettings",
    "VoterSettings",
]

ENV_PREFIX = "LIVETAG_"


@dataclass(frozen=True)
class PipelineSettings:
    """Models and per-frame thresholds of the inference pipeline.

    Attributes:
        detector_dir: Detector model package directory (model.onnx + spec.json).
        embedder_dir: Embedder model package directory.
        backend: ``onnxruntime``, ``tensorrt`` or ``torch``.
        detection_threshold: Minimum objectness to keep a box.
        nms_iou: IoU above which the weaker of two boxes is dropped.
        top_k: Gallery hits kept per detection.
        category_top_k: Top categories of a detection compared with the product's categories. The
            shipped detector's category head is weak (about 0.2 mAP@0.5 over 23 categories on stream
            frames), so the check is loose: the top 8, and a mismatch only halves a vote
            (``voter.category_mismatch_weight``); see docs/benchmarks.md.
        crop_expand: Ratio a box is expanded by before embedding.
        sold_threshold: Minimum sold-item probability for a detection to vote.
        max_detections_per_frame: Detections embedded per frame (highest sold score first).
        max_frame_age_s: Live load shedding: a frame whose ingest wall clock is older than this when
            it reaches the models is dropped and counted (``dropped_frames_total{reason="stale"}``),
            so latency stays bounded when the consumer is behind; 0 never drops
            (replays and evaluation).
        newest_frame_wins: Live streams: of several frames of one stream in a batch (the consumer
            is behind), only the newest is decoded and analysed; the others are counted
            (``dropped_frames_total{reason="superseded"}``). Off for replays and evaluation.
        decoder_threads: FFmpeg slice threads per stream's decoder (0: FFmpeg chooses).
        skip_loop_filter: Decode keyframes without H.264/HEVC deblocking (faster, slightly
            blockier pictures; see ``stream.decode.PacketDecoder``).
    """

    detector_dir: str = "models/detector"
    embedder_dir: str = "models/embedder"
    backend: str = "onnxruntime"
    detection_threshold: float = 0.3
    nms_iou: float = 0.6
    top_k: int = 5
    category_top_k: int = 8
    crop_expand: float = 0.1
    sold_threshold: float = 0.3
    max_detections_per_frame: int = 8
    max_frame_age_s: float = 0.0
    newest_frame_wins: bool = False
    decoder_threads: int = 1
    skip_loop_filter: bool = False

    def __post_init__(self) -> None:
        check_types(self, "pipeline")
        check(0 <= self.decoder_threads <= 64, "pipeline.decoder_threads",
              f"must be in 0..64 (0: FFmpeg chooses), got {self.decoder_threads}")
        check(self.max_frame_age_s >= 0, "pipeline.max_frame_age_s", f"must be >= 0, got {self.max_frame_age_s}")
        check(self.backend in ("onnxruntime", "tensorrt", "torch"), "pipeline.backend",
              f"must be onnxruntime, tensorrt or torch, got {self.backend!r}")
        check(bool(self.detector_dir), "pipeline.detector_dir", "is empty")
        check(bool(self.embedder_dir), "pipeline.embedder_dir", "is empty")
        for name in ("detection_threshold", "nms_iou", "sold_threshold"):
            unit_interval(f"pipeline.{name}", getattr(self, name))
        for name in ("top_k", "category_top_k", "max_detections_per_frame"):
            check(getattr(self, name) >= 1, f"pipeline.{name}", f"must be >= 1, got {getattr(self, name)}")
        check(0.0 <= self.crop_expand <= 1.0, "pipeline.crop_expand", f"must be in [0, 1], got {self.crop_expand}")


@dataclass(frozen=True)
class BatchSettings:
    """Cross-stream micro-batching.

    Attributes:
        max_batch: Most frames in one model call.
        max_wait_ms: Longest a frame waits for the batch to fill.
        decoded_queue_batches: Decoded batches waiting for the model thread
            (:func:`consumers.stage_runner.run_decoupled_loop`); drop policy ``block``: a full queue
            holds the poller back, nothing is dropped.
    """

    max_batch: int = 16
    max_wait_ms: float = 20.0
    decoded_queue_batches: int = 2

    def __post_init__(self) -> None:
        check_types(self, "batch")
        check(self.max_batch >= 1, "batch.max_batch", f"must be >= 1, got {self.max_batch}")
        check(self.max_wait_ms >= 0, "batch.max_wait_ms", f"must be >= 0, got {self.max_wait_ms}")
        check(self.decoded_queue_batches >= 1, "batch.decoded_queue_batches",
              f"must be >= 1, got {self.decoded_queue_batches}")


def _default_topic_configs() -> dict[str, dict[str, str]]:
    return {
        "frames": {"retention.ms": "3600000"},
        "matches": {"retention.ms": "604800000"},
        "dlq": {"retention.ms": "1209600000"},
        "transcripts": {"retention.ms": "3600000"},
    }


TOPIC_BASES = ("streams", "frames", "gallery", "matches", "dlq", "transcripts", "segments")


@dataclass(frozen=True)
class TopicSettings:
    """Topic names and layout.

    Attributes:
        prefix: Prepended to every name (e.g. ``prod.``).
        streams, frames, gallery, matches, dlq, transcripts, segments: Base names of the topics.
        partitions: Partitions of every topic (the unit of parallelism).
        replication: Replication factor.
        configs: Extra broker configs per base name, e.g. ``{"frames": {"retention.ms": "3600000"}}``.
    """

    prefix: str = ""
    streams: str = "streams"
    frames: str = "frames"
    gallery: str = "gallery"
    matches: str = "matches"
    dlq: str = "dlq"
    transcripts: str = "transcripts"
    segments: str = "segments"
    partitions: int = 6
    replication: int = 1
    configs: Mapping[str, Mapping[str, str]] = field(default_factory=_default_topic_configs)

    def __post_init__(self) -> None:
        check_types(self, "topics")
        for name in TOPIC_BASES:
            value = getattr(self, name)
            check(bool(value) and all(c.isalnum() or c in "._-" for c in self.prefix + value),
                  f"topics.{name}", f"must be letters, digits, '.', '_' or '-', got {self.prefix + value!r}")
        check(self.partitions >= 1, "topics.partitions", f"must be >= 1, got {self.partitions}")
        check(self.replication >= 1, "topics.replication", f"must be >= 1, got {self.replication}")
        unknown = set(self.configs) - set(TOPIC_BASES)
        check(not unknown, "topics.configs", f"names unknown topics: {', '.join(sorted(unknown))}")

    def name(self, base: str) -> str:
        """The full name of ``base`` (one of :data:`TOPIC_BASES`)."""
        return self.prefix + str(getattr(self, base))

    def specs(self) -> list[TopicSpec]:
        """Every topic; ``streams``, ``gallery`` and ``segments`` are compacted."""
        out = []
        for base in TOPIC_BASES:
            compacted = base in ("streams", "gallery", "segments")
            configs = dict(self.configs.get(base, {}))
            if compacted:
                configs.setdefault("cleanup.policy", "compact")
            out.append(TopicSpec(self.name(base), self.partitions, self.replication, compacted, configs))
        return out


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the brokers.

    Attributes:
        bootstrap_servers: ``host:port`` entries.
        security_protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
        sasl_mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols only).
        sasl_username: SASL user.
        sasl_password: SASL password (never shown).
        ssl_cafile, ssl_certfile, ssl_keyfile: PEM files (must exist when given).
        client_id: Client id reported to the brokers.
    """

    bootstrap_servers: tuple[str, ...] = ("localhost:9092",)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    client_id: str = "livetag"

    def __post_init__(self) -> None:
        check_types(self, "kafka")
        check(bool(self.bootstrap_servers), "kafka.bootstrap_servers", "is empty")
        for server in self.bootstrap_servers:
            host, _, port = server.rpartition(":")
            check(bool(host) and port.isdigit(), "kafka.bootstrap_servers", f"entry {server!r} is not host:port")
        check(self.security_protocol in SECURITY_PROTOCOLS, "kafka.security_protocol",
              f"must be one of {', '.join(SECURITY_PROTOCOLS)}, got {self.security_protocol!r}")
        if self.security_protocol.startswith("SASL"):
            check(self.sasl_mechanism in SASL_MECHANISMS, "kafka.sasl_mechanism",
                  f"must be one of {', '.join(SASL_MECHANISMS)} with {self.security_protocol}")
            check(bool(self.sasl_username) and bool(self.sasl_password), "kafka.sasl_username",
                  "and kafka.sasl_password are required with SASL")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            check(path is None or Path(path).is_file(), f"kafka.{name}", f"names a missing file: {path}")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (KafkaProducer, KafkaConsumer, KafkaAdminClient)."""
        out: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if self.security_protocol.startswith("SASL"):
            out["sasl_mechanism"] = self.sasl_mechanism
            out["sasl_plain_username"] = self.sasl_username
            out["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class ObservabilitySettings:
    """Metrics, health and logs.

    Attributes:
        bind_host: Address of the metrics (``/metrics``) and health (``/healthz``) HTTP server.
        port: Its port; 0 turns the server off.
        log_format: ``json`` or ``text``.
        log_level: DEBUG, INFO, WARNING or ERROR.
    """

    bind_host: str = "0.0.0.0"
    port: int = 9108
    log_format: str = "text"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        check_types(self, "observability")
        check(bool(self.bind_host), "observability.bind_host", "is empty")
        check(0 <= self.port <= 65535, "observability.port", f"must be in [0, 65535], got {self.port}")
        check(self.log_format in ("json", "text"), "observability.log_format",
              f"must be json or text, got {self.log_format!r}")
        check(self.log_level in ("DEBUG", "INFO", "WARNING", "ERROR"), "observability.log_level",
              f"must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")


@dataclass(frozen=True)
class Settings:
    """Every section, validated. Build with ``Settings()``, ``from_env`` or ``with_overrides``."""

    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    voter: VoterSettings = field(default_factory=VoterSettings)
    text: TextSettings = field(default_factory=TextSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], base: Settings | None = None) -> Settings:
        """Settings from ``LIVETAG_<SECTION>_<FIELD>`` variables over ``base`` (defaults).

        Raises SettingsError naming the variable for a value that does not parse or validate, and for
        an unknown field of a known section (a typo).
        """
        settings = base or cls()
        changes: dict[str, Any] = {}
        for section in dataclasses.fields(cls):
            current = getattr(settings, section.name)
            head = f"{ENV_PREFIX}{section.name.upper()}_"
            hints = typing.get_type_hints(type(current))
            known = {f.name for f in dataclasses.fields(current)}
            for env_name, raw in environ.items():
                if not env_name.startswith(head):
                    continue
                field_name = env_name[len(head) :].lower()
                check(field_name in known, env_name, f"is not a setting of [{section.name}]")
                changes[f"{section.name}__{field_name}"] = parse_env_value(env_name, raw, hints[field_name])
        return settings.with_overrides(**changes)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with whole sections (``voter=VoterSettings(...)``) or fields (``voter__min_votes=5``)
        replaced; the result is validated again."""
        sections: dict[str, Any] = {}
        per_section: dict[str, dict[str, Any]] = {}
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in overrides.items():
            section, _, field_name = key.partition("__")
            check(section in names, key, f"is not a settings section ({', '.join(sorted(names))})")
            if field_name:
                per_section.setdefault(section, {})[field_name] = value
            else:
                sections[section] = value
        for section, fields in per_section.items():
            current = sections.get(section, getattr(self, section))
            known = {f.name for f in dataclasses.fields(current)}
            unknown = sorted(set(fields) - known)
            check(not unknown, f"{section}.{unknown[0] if unknown else ''}", "is not a setting")
            try:
                sections[section] = dataclasses.replace(current, **fields)
            except TypeError as exc:
                raise SettingsError(f"settings of [{section}] have a wrong type: {exc}") from exc
        return dataclasses.replace(self, **sections)
