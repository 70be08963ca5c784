"""The LiveTag topics on a Kafka cluster: names, partition counts, configs, and their creation.

=========  =========  =============================================================================
topic      key        value / policy
=========  =========  =============================================================================
streams    stream id  JSON {url, catalog, title, sampling}; compacted; a tombstone stops the stream
frames     stream id  packet bytes, metadata in headers (stream.packet); delete after retention
gallery    image id   gallery vector record (consumers.services.gallery_follower); compacted
matches    stream id  match event v1 JSON; delete after retention
dlq        original   the original value and headers plus ``lt-dlq-*`` headers with the reason
transcr.   stream id  JSON {text, start, end, source} (consumers.text.transcripts); 1 h retention
segments   stream id  the stream's open match segment (consumers.messages.segment_state); compacted; a
                      tombstone when it ends; same partition count as frames (same stream, same number)
=========  =========  =============================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consumers.bus import BusError, TopicSpec
from consumers.settings.kafka import TOPIC_BASES, TopicSettings

log = logging.getLogger(__name__)

ROLES = TOPIC_BASES

#: Record size limits the broker needs for frames (a 1080p keyframe can pass 1 MiB) and for dead
#: letters that carry a frame; set unless the settings give the config.
SIZE_CONFIGS: dict[str, dict[str, str]] = {
    "frames": {"max.message.bytes": str(8 * 1024 * 1024)},
    "dlq": {"max.message.bytes": str(8 * 1024 * 1024)},
    "gallery": {"max.message.bytes": str(4 * 1024 * 1024)},
}


@dataclass(frozen=True)
class TopicNames:
    """Full topic names after the prefix (``prod.`` gives ``prod.frames`` ...)."""

    streams: str
    frames: str
    gallery: str
    matches: str
    dlq: str
    transcripts: str
    segments: str

    @classmethod
    def from_settings(cls, settings: TopicSettings) -> TopicNames:
        return cls(**{role: settings.name(role) for role in ROLES})

    def by_role(self) -> dict[str, str]:
        return {role: getattr(self, role) for role in ROLES}


def topic_specs(settings: TopicSettings) -> list[TopicSpec]:
    """Every topic of the settings: ``streams``, ``gallery`` and ``segments`` compacted, size limits,
    then the configured extras (which win)."""
    out = []
    for role in ROLES:
        compacted = role in ("streams", "gallery", "segments")
        configs = {**SIZE_CONFIGS.get(role, {}), **dict(settings.configs.get(role, {}))}
        if compacted:
            configs.setdefault("cleanup.policy", "compact")
        out.append(TopicSpec(settings.name(role), settings.partitions, settings.replication, compacted, configs))
    return out


def _broker_configs(spec: TopicSpec) -> dict[str, str]:
    out = dict(spec.configs)
    if spec.compacted:
        out["cleanup.policy"] = "compact"
    return out


def ensure_topics(admin: Any, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that do not exist; check the partition count of those that do.

    Args:
        admin: A kafka-python ``KafkaAdminClient``.
        specs: Topics to have.

    Returns:
        Names of the topics created now.

    Raises:
        BusError: An existing topic has another partition count, or the broker refused a topic.
    """
    from kafka.errors import KafkaError

    try:
        existing = {t["name"]: len(t["partitions"]) for t in admin.describe_topics() if not t.get("error_code")}
    except KafkaError as exc:
        raise BusError(f"cannot list topics: {exc}") from exc
    for spec in specs:
        have = existing.get(spec.name)
        if have is not None and have != spec.partitions:
            raise BusError(
                f"topic {spec.name!r} exists with {have} partitions, not {spec.partitions}; "
                "change the settings or recreate the topic"
            )
    todo = [s for s in specs if s.name not in existing]
    if not todo:
        return []
    request = {
        s.name: {"num_partitions": s.partitions, "replication_factor": s.replication, "configs": _broker_configs(s)}
        for s in todo
    }
    try:
        admin.create_topics(request, timeout_ms=30_000, wait_for_metadata=True)
    except KafkaError as exc:
        if "TopicAlreadyExists" not in type(exc).__name__:
            raise BusError(f"creating topics {', '.join(request)} failed: {exc}") from exc
    _wait_for_leaders(admin, list(request))
    for name in request:
        log.info("created topic %s", name)
    return list(request)


def _wait_for_leaders(admin: Any, names: list[str], timeout_s: float = 30.0) -> None:
    """Block until every partition of ``names`` has a leader in the cluster metadata."""
    import time

    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = {t["name"]: t for t in admin.describe_topics(names)}
        except KafkaError:
            found = {}
        ready = all(
            name in found and not found[name].get("error_code") and found[name]["partitions"]
            and all(not p.get("error_code") and p.get("leader_id", -1) >= 0 for p in found[name]["partitions"])
            for name in names
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise BusError(f"topics {', '.join(names)} have no partition leaders after {timeout_s:.0f} s")
        time.sleep(0.1)
