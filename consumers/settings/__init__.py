"""Settings of every command: sections, the one loader and the command-line options that override them."""

from consumers.settings.checks import SecretStr, SettingsError
from consumers.settings.kafka import KafkaSettings, TopicSettings
from consumers.settings.root import Settings
from consumers.settings.sections import (
    BatchSettings,
    ModelSettings,
    ObservabilitySettings,
    PipelineSettings,
    ReplaySettings,
)
from consumers.settings.services import InferSettings, IngestSettings
from consumers.settings.text import TextSettings
from consumers.settings.voter import VOTE_WEIGHTS, VoterSettings

__all__ = [
    "VOTE_WEIGHTS",
    "BatchSettings",
    "IngestSettings",
    "InferSettings",
    "KafkaSettings",
    "ModelSettings",
    "ObservabilitySettings",
    "PipelineSettings",
    "ReplaySettings",
    "SecretStr",
    "Settings",
    "SettingsError",
    "TextSettings",
    "TopicSettings",
    "VoterSettings",
]
