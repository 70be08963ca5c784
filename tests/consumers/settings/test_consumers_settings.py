"""Settings: validation naming the field, environment parsing, overrides, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.bus.topics import topic_specs
from consumers.settings import (
    BatchSettings,
    InferSettings,
    IngestSettings,
    KafkaSettings,
    ModelSettings,
    ObservabilitySettings,
    PipelineSettings,
    ReplaySettings,
    SecretStr,
    Settings,
    SettingsError,
    TopicSettings,
    VoterSettings,
)
from consumers.voting import voter
from stream.errors import LiveTagError


def test_defaults_are_valid_and_voter_settings_are_shared() -> None:
    settings = Settings()
    assert settings.pipeline.crop_expand == pytest.approx(0.1)
    assert voter.VoterSettings is VoterSettings
    assert issubclass(SettingsError, LiveTagError)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ModelSettings(backend="tflite"), "models.backend"),
        (lambda: ModelSettings(detector_dir=""), "models.detector_dir"),
        (lambda: ModelSettings(intra_op_threads=-1), "models.intra_op_threads"),
        (lambda: ModelSettings(opencv_threads=-1), "models.opencv_threads"),
        (lambda: ReplaySettings(sampling="every:2"), "replay.sampling"),
        (lambda: ReplaySettings(max_in_flight=0), "replay.max_in_flight"),
        (lambda: IngestSettings(max_streams=0), "ingest.max_streams"),
        (lambda: IngestSettings(backoff_initial_s=2.0, backoff_cap_s=1.0), "ingest.backoff_cap_s"),
        (lambda: InferSettings(gallery_timeout_s=0), "infer.gallery_timeout_s"),
        (lambda: PipelineSettings(top_k=0), "pipeline.top_k"),
        (lambda: PipelineSettings(sold_threshold=1.5), "pipeline.sold_threshold"),
        (lambda: PipelineSettings(crop_expand=-0.1), "pipeline.crop_expand"),
        (lambda: PipelineSettings(decoder_threads=-1), "pipeline.decoder_threads"),
        (lambda: PipelineSettings(decode_workers=0), "pipeline.decode_workers"),
        (lambda: BatchSettings(max_batch=0), "batch.max_batch"),
        (lambda: BatchSettings(decoded_queue_batches=0), "batch.decoded_queue_batches"),
        (lambda: VoterSettings(half_life_s=0), "voter.half_life_s"),
        (lambda: VoterSettings(margin=0.9), "voter.margin"),
        (lambda: VoterSettings(end_score=5.0), "voter.end_score"),
        (lambda: VoterSettings(min_votes=0), "voter.min_votes"),
        (lambda: VoterSettings(min_votes="3"), "voter.min_votes"),  # type: ignore[arg-type]
        (lambda: TopicSettings(prefix="bad prefix "), "topics.streams"),
        (lambda: TopicSettings(partitions=0), "topics.partitions"),
        (lambda: TopicSettings(configs={"other": {}}), "topics.configs"),
        (lambda: KafkaSettings(bootstrap_servers=("nohost",)), "kafka.bootstrap_servers"),
        (lambda: KafkaSettings(security_protocol="TLS"), "kafka.security_protocol"),
        (lambda: KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN"), "kafka.sasl_username"),
        (lambda: KafkaSettings(security_protocol="SASL_PLAINTEXT"), "kafka.sasl_mechanism"),
        (lambda: KafkaSettings(ssl_cafile="/nonexistent/ca.pem"), "kafka.ssl_cafile"),
        (lambda: ObservabilitySettings(log_format="xml"), "observability.log_format"),
        (lambda: ObservabilitySettings(port=70000), "observability.port"),
    ],
)
def test_bad_values_name_the_field(make: Any, field: str) -> None:
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")) as info:
        make()
    assert "\n" not in str(info.value)


def test_from_env_reads_every_kind_of_field(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    env = {
        "LIVETAG_KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9093",
        "LIVETAG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "LIVETAG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "LIVETAG_KAFKA_SASL_USERNAME": "svc",
        "LIVETAG_KAFKA_SASL_PASSWORD": "hunter2",
        "LIVETAG_KAFKA_SSL_CAFILE": str(ca),
        "LIVETAG_VOTER_HALF_LIFE_S": "2.5",
        "LIVETAG_VOTER_MIN_VOTES": "4",
        "LIVETAG_TOPICS_PREFIX": "prod.",
        "LIVETAG_TOPICS_CONFIGS": '{"frames": {"retention.ms": "60000"}}',
        "LIVETAG_OBSERVABILITY_LOG_FORMAT": "json",
        "PATH": "/usr/bin",
        "LIVETAG_UNRELATED": "ignored",
    }
    s = Settings.from_env(env)
    assert s.kafka.bootstrap_servers == ("k1:9092", "k2:9093")
    assert s.voter.half_life_s == 2.5 and s.voter.min_votes == 4
    assert s.topics.name("frames") == "prod.frames"
    specs = {spec.name: spec for spec in topic_specs(s.topics)}
    assert specs["prod.frames"].configs["retention.ms"] == "60000"
    assert specs["prod.streams"].compacted and specs["prod.gallery"].compacted
    assert not specs["prod.matches"].compacted
    assert s.observability.log_format == "json"
    kwargs = s.kafka.client_kwargs()
    assert kwargs["sasl_plain_password"] == "hunter2" and kwargs["ssl_cafile"] == str(ca)
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.kafka.sasl_password)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVETAG_VOTER_MIN_VOTES": "three"}, "LIVETAG_VOTER_MIN_VOTES"),
        ({"LIVETAG_VOTER_HALF_LIFE": "2"}, "LIVETAG_VOTER_HALF_LIFE is not a setting"),
        ({"LIVETAG_VOTER_MIN_VOTES": "0"}, "voter.min_votes"),
        ({"LIVETAG_TOPICS_CONFIGS": "[1]"}, "LIVETAG_TOPICS_CONFIGS"),
        ({"LIVETAG_TOPICS_CONFIGS": "{"}, "LIVETAG_TOPICS_CONFIGS"),
    ],
)
def test_bad_environment_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_overrides_replace_fields_or_sections_and_revalidate() -> None:
    base = Settings()
    changed = base.with_overrides(voter__min_votes=5, batch=BatchSettings(max_batch=4))
    assert changed.voter.min_votes == 5 and changed.batch.max_batch == 4
    assert base.voter.min_votes == VoterSettings().min_votes
    with pytest.raises(SettingsError, match="voter.min_votes"):
        base.with_overrides(voter__min_votes=-1)
    with pytest.raises(SettingsError, match="is not a settings section"):
        base.with_overrides(engine__x=1)
    with pytest.raises(SettingsError, match="voter.nope"):
        base.with_overrides(voter__nope=1)


def test_secret_str_hides_its_value() -> None:
    secret = SecretStr("p@ss")
    assert secret.get_secret_value() == "p@ss"
    assert "p@ss" not in repr(secret) and "p@ss" not in f"{secret}"
    assert secret == SecretStr("p@ss") and secret != SecretStr("other") and not SecretStr("")
