"""Sections of the settings for the brokers and the topics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.settings.checks import SecretStr, check, check_types


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
