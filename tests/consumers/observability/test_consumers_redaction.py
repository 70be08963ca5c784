"""Credentials never reach the logs or /metrics: redaction rules, log setup, and a real failing source."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from local_ports import free_port
from prometheus_client import CollectorRegistry

from consumers.bus import Record
from consumers.observability.health import HealthServer, Readiness
from consumers.observability.logging_setup import (
    StreamLoggerAdapter,
    bind_stream,
    reset_logging,
    setup_logging,
)
from consumers.observability.metrics import PipelineMetrics
from consumers.services.embedded import SourceSpec
from consumers.services.replay import replay
from consumers.settings import KafkaSettings, SecretStr, Settings
from consumers.settings.redact import Redactor, redact_url, secrets_from_environ, secrets_from_settings
from stream.clock import FakeClock
from stream.errors import SourceOpenError
from stream.source import SourceOptions, VideoSource

RTMP_PASSWORD = "S3cretStreamPass"
SASL_PASSWORD = "sasl-Pa55word-7f3a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("open rtmp://alice:pw@live.example.com/app/key failed", "open rtmp://***@live.example.com/app/key failed"),
        ("rtsps://cam%40site:p%3Aw@10.0.0.2:322/s", "rtsps://***@10.0.0.2:322/s"),
        ("rtmp://token-only@host/app", "rtmp://***@host/app"),
        ("https://cdn.example.com/a.m3u8?token=abc&ok=1", "https://cdn.example.com/a.m3u8?token=***&ok=1"),
        ("{'sasl_plain_password': 'x y', 'client_id': 'livetag'}", "{'sasl_plain_password': '***', 'client_id': 'livetag'}"),
        ('{"password": "abc", "user": "u"}', '{"password": "***", "user": "u"}'),
        ("secret_key=q1 api-key: zz", "secret_key=*** api-key: ***"),
        ("rtmp://host/app/stream ok, mail me@example.com", "rtmp://host/app/stream ok, mail me@example.com"),
        ("", ""),
    ],
)
def test_redaction_rules(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_configured_secrets_are_masked_anywhere_longest_first() -> None:
    redactor = Redactor(["abc", "", "abcdef"])
    assert redactor.secret_count == 2
    assert redactor("x=abcdef y=abc zabcz") == "x=*** y=*** z***z"
    assert redact_url("rtmp://u:p@h:1935/live/s?sig=1") == "rtmp://***@h:1935/live/s?sig=***"
    settings = Settings().with_overrides(kafka=_sasl_kafka())
    assert secrets_from_settings(settings) == [SASL_PASSWORD]
    assert secrets_from_settings(Settings()) == []
    environ = {"LIVETAG_KAFKA_SASL_PASSWORD": "p1", "HOME": "/root", "API_TOKEN": "t", "EMPTY_SECRET": ""}
    assert sorted(secrets_from_environ(environ)) == ["p1", "t"]


def _sasl_kafka() -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=("kafka-0.kafka:9093",),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="livetag",
        sasl_password=SecretStr(SASL_PASSWORD),
    )


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    yield io.StringIO()
    reset_logging()



def test_json_lines_carry_the_stream_id_from_context_adapter_or_dash(log_buffer: io.StringIO) -> None:
    setup_logging("json", "INFO", stream=log_buffer)
    log = logging.getLogger("livetag.test")
    log.info("no stream here")
    with bind_stream("cam-7"):
        log.info("inside %s", "context")
    StreamLoggerAdapter(log, "cam-9").warning("adapter line")
    log.debug("below the level")
    lines = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    assert [(d["stream_id"], d["message"], d["level"]) for d in lines] == [
        ("-", "no stream here", "INFO"),
        ("cam-7", "inside context", "INFO"),
        ("cam-9", "adapter line", "WARNING"),
    ]
    assert all(d["logger"] == "livetag.test" and d["ts"].endswith("Z") for d in lines)
    setup_logging("text", "INFO", stream=log_buffer)
    assert len(logging.getLogger().handlers) >= 1
    with bind_stream("cam-8"):
        log.info("as text")
    assert log_buffer.getvalue().splitlines()[-1].endswith("livetag.test [cam-8]: as text")
    with pytest.raises(ValueError, match="text or json"):
        setup_logging("xml")


class _NoFramesStage:
    """An inference stage that is never reached: the only source fails to open."""

    def process(self, records: Sequence[Record]) -> list[Record]:
        raise AssertionError("no frame was expected")

    def end_streams(self, stream_ids: Sequence[str], ends: dict[str, float]) -> list[Record]:
        return []


def test_credentials_of_a_failing_rtmp_source_and_sasl_never_reach_logs_or_metrics(log_buffer: io.StringIO) -> None:
    settings = Settings().with_overrides(kafka=_sasl_kafka())
    redactor = setup_logging("json", "DEBUG", secrets=secrets_from_settings(settings), stream=log_buffer)
    url = f"rtmp://seller42:{RTMP_PASSWORD}@127.0.0.1:{free_port()}/live/cam1"
    log = logging.getLogger("livetag.ops")

    # A live source retrying with backoff (fake clock: no sleeping), then giving up.
    source = VideoSource(url, SourceOptions(max_retries=2, open_timeout_s=2.0), clock=FakeClock())
    with bind_stream("cam1"), pytest.raises(SourceOpenError) as failure:
        for _ in source.packets():
            pass
    assert RTMP_PASSWORD in str(failure.value)  # the error itself holds the URL; logs must not
    assert source.counters.open_failures == 3
    log.error("source gave up", exc_info=failure.value)

    # The embedded replay of the same URL: the reader thread logs the failure, replay raises.
    with pytest.raises(SourceOpenError):
        replay(_NoFramesStage(), [SourceSpec("cam1", url)], Settings(), on_event=lambda doc: None, progress=False)

    # Careless lines that print the Kafka client configuration and the settings object.
    log.info("kafka client: %s", settings.kafka.client_kwargs())
    log.info("settings: %r", settings)
    log.info("connect with password=%s", SASL_PASSWORD)

    metrics = PipelineMetrics(CollectorRegistry(), redactor=redactor)
    metrics.dead_letter("source", f"cannot open {url}")
    metrics.set_models({"detector": f"d@1 {SASL_PASSWORD}", "embedder": "e@1"})
    metrics.record_consumed(3)
    with HealthServer(metrics.registry, Readiness(), host="127.0.0.1", port=0, redactor=redactor) as server, \
            urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
        exposition = response.read().decode()

    logs = log_buffer.getvalue()
    lines: list[dict[str, Any]] = [json.loads(line) for line in logs.splitlines()]
    assert len(lines) >= 6
    for secret in (RTMP_PASSWORD, SASL_PASSWORD, "seller42:"):
        assert secret not in logs
        assert secret not in exposition
    retries = [d for d in lines if d["logger"] == "stream.source" and "retry" in d["message"]]
    assert len(retries) == 2
    assert all(d["stream_id"] == "cam1" and "rtmp://***@127.0.0.1" in d["message"] for d in retries)
    gave_up = next(d for d in lines if d["message"] == "source gave up")
    assert "rtmp://***@127.0.0.1" in gave_up["exc"] and "SourceOpenError" in gave_up["exc"]
    assert any(d["logger"] == "consumers.services.embedded" and "rtmp://***@" in d["message"] and d["stream_id"] == "cam1"
               for d in lines)
    kafka_line = next(d for d in lines if d["message"].startswith("kafka client"))
    assert "'sasl_plain_password': '***'" in kafka_line["message"]
    assert "livetag_frames_in_total 3.0" in exposition
    assert 'reason="cannot open rtmp://***@127.0.0.1' in exposition


def test_cli_masks_credentials_in_its_error_line_and_json_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from consumers import cli

    (tmp_path / "livetag_failing_command.py").write_text(
        "import logging\n"
        "from stream.errors import SourceOpenError\n"
        "def configure(parser):\n"
        "    parser.add_argument('url')\n"
        "def run(args, settings):\n"
        "    logging.getLogger('livetag.cmd').warning('opening %s', args.url)\n"
        "    raise SourceOpenError(f'cannot open {args.url} after 1 attempt(s): Connection refused')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, ("fail-open",), ("livetag_failing_command", "Fails to open its source."))
    monkeypatch.setenv("LIVETAG_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    url = f"rtmp://seller:{RTMP_PASSWORD}@127.0.0.1:1/live/cam"
    try:
        code = cli.main(["fail-open", url, "--log-format", "json"])
    finally:
        reset_logging()
    err = capsys.readouterr().err
    assert code == 1
    assert RTMP_PASSWORD not in err
    lines = err.strip().splitlines()
    assert json.loads(lines[0])["message"] == "opening rtmp://***@127.0.0.1:1/live/cam"
    assert lines[-1] == "livetag: error: cannot open rtmp://***@127.0.0.1:1/live/cam after 1 attempt(s): Connection refused"
