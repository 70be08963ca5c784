"""The settings: one frozen dataclass per section, validated once in ``__post_init__``, then passed down.

Nothing here reads the environment on import. Every command gets its settings from
:func:`consumers.settings.options.load_settings`: the defaults, then ``LIVETAG_<SECTION>_<FIELD>``
environment variables (e.g. ``LIVETAG_KAFKA_BOOTSTRAP_SERVERS=a:9092,b:9092`` or
``LIVETAG_VOTER_HALF_LIFE_S=2.5``; tuples are comma-separated, mappings are JSON, booleans are
``1/0/true/false/yes/no``), then the command-line options: CLI > environment > defaults.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consumers.settings.checks import SettingsError, check, parse_env_value
from consumers.settings.kafka import KafkaSettings, TopicSettings
from consumers.settings.sections import (
    BatchSettings,
    ModelSettings,
    ObservabilitySettings,
    PipelineSettings,
    ReplaySettings,
)
from consumers.settings.services import InferSettings, IngestSettings
from consumers.settings.text import TextSettings
from consumers.settings.voter import VoterSettings

ENV_PREFIX = "LIVETAG_"


@dataclass(frozen=True)
class Settings:
    """Every section, validated. Build with ``Settings()``, ``from_env`` or ``with_overrides``."""

    models: ModelSettings = field(default_factory=ModelSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    voter: VoterSettings = field(default_factory=VoterSettings)
    text: TextSettings = field(default_factory=TextSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    infer: InferSettings = field(default_factory=InferSettings)

    def __post_init__(self) -> None:
        check(self.batch.model_workers == 1 or self.models.backend == "onnxruntime", "batch.model_workers",
              f"above 1 needs models.backend onnxruntime (its sessions run concurrently), got {self.models.backend!r}")

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
